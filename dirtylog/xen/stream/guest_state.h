// XenGuestState: everything a Xen stream carries about an HVM/PVH guest besides
// its memory and CPU policy — TSC info, HVM params, the HVM context blob and the
// device model's records — and how it travels inside xmotion's VCPU_STATE.
//
// A Xen source fills it from the hypervisor (and the device model's saved
// state); for guests of other backends a synthetic one stands in so that their
// memory can still be written as a Xen stream. Synthetic state is marked as
// such everywhere it goes (this struct, the HVM header's changeset field, the
// stream tee's summary) and no Xen would run it meaningfully.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "base/status.h"

namespace xm::xen {

struct TscInfo {
  uint32_t mode = 0;  // TSC_MODE_*
  uint32_t khz = 0;
  uint64_t nsec = 0;
  uint32_t incarnation = 0;
  bool operator==(const TscInfo&) const = default;
};

struct HvmParam {
  uint64_t index = 0;
  uint64_t value = 0;
  bool operator==(const HvmParam&) const = default;
};

// An EMULATOR_XENSTORE_DATA or EMULATOR_CONTEXT record of the libxl stream.
struct EmulatorRecord {
  uint32_t emulator_id = 0;  // EmulatorId
  uint32_t index = 0;
  std::vector<uint8_t> data;
  bool operator==(const EmulatorRecord&) const = default;
};

struct XenGuestState {
  std::optional<TscInfo> tsc;
  std::vector<HvmParam> params;        // only non-zero ones, as Xen sends them
  std::vector<uint8_t> hvm_context;    // XEN_DOMCTL_gethvmcontext blob
  std::vector<EmulatorRecord> emulator_xenstore;
  std::vector<EmulatorRecord> emulator_context;
  bool synthetic = false;              // made up for a non-Xen guest, see header comment
  bool operator==(const XenGuestState&) const = default;
};

// xmotion's VCPU_STATE blob for Xen guests (backend "xen"): self-identifying,
// so a destination can tell it from another backend's blob.
std::vector<uint8_t> EncodeGuestStateBlob(const XenGuestState& st);
Result<XenGuestState> DecodeGuestStateBlob(std::span<const uint8_t> blob);
bool IsGuestStateBlob(std::span<const uint8_t> blob);

// --- HVM context blobs ---

struct HvmSaveEntry {
  uint16_t typecode = 0;
  uint16_t instance = 0;
  uint32_t offset = 0;  // of the data, in the blob
  uint32_t length = 0;
};

// Walks an HVM context: checks it is a sequence of descriptors that starts with
// a HEADER (right magic and version) and ends with END, nothing after it.
Result<std::vector<HvmSaveEntry>> WalkHvmContext(std::span<const uint8_t> ctx);

// The HEADER's changeset of synthetic contexts: ASCII "XMSYNTH\0" read as a u64.
inline constexpr uint64_t kSyntheticChangeset = 0x0048544e59534d58ull;

// A synthetic HVM context for a guest that was never a Xen guest: HEADER
// (changeset = kSyntheticChangeset), one CPU record per vCPU holding the x86
// power-on state (real mode, CS:IP = f000:fff0), END.
std::vector<uint8_t> SyntheticHvmContext(uint32_t vcpus, uint32_t cpuid_leaf1_eax, uint32_t gtsc_khz);
// Whether `ctx` says it is synthetic (header changeset).
bool IsSyntheticHvmContext(std::span<const uint8_t> ctx);

// The ring pages named by the HVM params (xenstore, console, ioreq, bufioreq):
// Xen's restore zeroes them whatever the stream said (xg_sr_restore_x86_hvm.c),
// the ioreq pages may leave the p2m, and xenstored/xenconsoled write into the
// rings as soon as the domain is introduced. A destination comparing the new
// domain's memory with what it streamed cannot judge them.
std::vector<uint64_t> RingPfns(const XenGuestState& st);

// The whole synthetic state for a non-Xen guest of `vcpus` vCPUs.
XenGuestState SyntheticGuestState(uint32_t vcpus, uint32_t cpuid_leaf1_eax);

}  // namespace xm::xen
