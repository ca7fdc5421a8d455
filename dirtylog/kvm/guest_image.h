// GuestImage: lays out and boots the KVM backend's guest payload in guest
// memory (page tables, parameters, code, the filled working set and its
// reference tables), and reads the guest's status pages back.
//
// See guest_abi.h for the layout the payload expects. The host fills the
// working set (the same content as the sim backend, FillPage by ws index) and
// computes the reference tables in the same pass, so the guest starts from a
// consistent state without spending minutes of emulated instructions on it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "base/status.h"
#include "dirtylog/workload.h"

namespace xm::kvm {

inline constexpr uint64_t kGuestPage = 4096;
// The in-kernel IOAPIC/LAPIC windows start here; guest RAM must stay below.
inline constexpr uint64_t kMaxGuestMemory = 0xfec00000ull;

struct GuestShare {
  uint64_t hot_first = 0, hot_count = 0;    // ws indices
  uint64_t cold_first = 0, cold_count = 0;
};

struct GuestLayout {
  uint64_t memory_bytes = 0;
  uint32_t vcpus = 1;
  uint64_t ws_pages = 0;   // max(ws, hot) / 4 KiB
  uint64_t fill_pages = 0; // the first ws/4 KiB of them get FillPage content
  uint64_t hot_pages = 0;
  uint64_t fp_gpa = 0, sum_gpa = 0, ws_gpa = 0;
  std::vector<GuestShare> shares;  // one per vCPU
};

// Checks that the workload fits next to the payload's own pages.
Result<GuestLayout> PlanGuest(uint64_t memory_bytes, const WorkloadSpec& spec, uint32_t vcpus);

struct GuestTiming {
  uint32_t tsc_khz = 0;
  uint32_t pass_interval_ms = 200;  // a pass starts at most this often
};

// Writes everything the payload needs into zeroed guest memory `mem`.
void BuildGuest(std::byte* mem, const GuestLayout& layout, const WorkloadSpec& spec, const GuestTiming& timing);

// Guest-physical entry point and initial stack of vCPU `v`.
uint64_t GuestEntry();
uint64_t GuestStackTop(uint32_t v);

// A snapshot of one vCPU's status page (racy by design: the guest keeps
// writing; each field is read atomically).
struct GuestStatus {
  uint64_t counter = 0;
  uint64_t passes_ok = 0, passes_bad = 0;  // lifetime, as recorded in guest memory
  uint64_t last_result = 0;                // bad pages in the last completed pass
  uint64_t last_bad = ~0ull;               // ws index of the last bad page
  uint64_t deep_pages = 0;
  uint64_t check_pos = 0;
  uint64_t panic = 0;
  uint32_t cpuid[12] = {};                 // see XMG_C_* in guest_abi.h
  std::string vendor() const;
};

// Whether `mem` holds a booted payload's parameters (e.g. on a destination
// before the memory has arrived it does not), and for how many vCPUs.
bool HasGuestParams(const std::byte* mem, uint64_t memory_bytes, uint32_t* vcpus = nullptr);
GuestStatus ReadGuestStatus(const std::byte* mem, uint32_t vcpu);
uint64_t ReadSleepTicks(const std::byte* mem, uint32_t vcpu);
uint64_t ReadTscKhz(const std::byte* mem);

}  // namespace xm::kvm
