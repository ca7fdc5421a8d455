// The KVM guest's execution state as one versioned blob: every vCPU's registers,
// MSRs, FPU/XSAVE, LAPIC, events, debug registers, MP state, TSC rate and CPUID,
// plus the VM's clock and interrupt controllers. This is what travels in the
// VCPU_STATE record; memory travels separately.
//
// Format (little-endian): header {u32 magic "XKVS", u32 version, u32 vcpus,
// u32 flags}, then sections {u32 tag, u32 vcpu (~0 = VM-wide), u32 length,
// bytes}. Fixed-size sections are the kernel's uapi structs as KVM returns
// them; a loader rejects unknown tags, wrong lengths and missing sections
// rather than guess.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "base/status.h"
#include "dirtylog/kvm/kvm_vm.h"

namespace xm::kvm {

inline constexpr uint32_t kStateMagic = 0x53564b58;  // "XKVS"
inline constexpr uint32_t kStateVersion = 1;

// What the VM has, decided when it was created; both sides must agree.
struct StateContext {
  KvmVm* vm = nullptr;
  std::vector<KvmVcpu>* vcpus = nullptr;
  std::vector<uint32_t> msr_indices;  // MSRs that read back on this host
  bool sregs2 = false;                // KVM_CAP_SREGS2
  bool irqchip = false;               // in-kernel PIC/IOAPIC/LAPIC
  size_t xsave_size = 4096;           // KVM_CAP_XSAVE2 on the VM fd, at least 4096
  bool xsave2 = false;
};

// All vCPUs must be stopped (not inside KVM_RUN) for both.
Result<std::vector<uint8_t>> SaveState(const StateContext& ctx);
// Restores in the order KVM needs: per vCPU CPUID, TSC rate, SREGS, MSRS, REGS,
// FPU, XSAVE, XCRS, LAPIC, VCPU_EVENTS, MP_STATE, DEBUGREGS; then the clock and
// the interrupt controllers. Must run before the vCPUs first run.
Status LoadState(const StateContext& ctx, std::span<const uint8_t> blob);

// Size of each section kind in a blob, for reports ("xsave": 4096, ...).
struct StateSummary {
  uint32_t version = 0;
  uint32_t vcpus = 0;
  std::vector<std::pair<const char*, uint64_t>> section_bytes;
};
Result<StateSummary> SummarizeState(std::span<const uint8_t> blob);

}  // namespace xm::kvm
