// The KVM guest's CPU policy: its vCPUs' CPUID entry list, carried as the
// CpuPolicy blob in format "kvm-cpuid2-v1", and the per-vCPU fix-ups KVM
// needs when one list is installed on several vCPUs.
//
// Blob layout: u32 entry count, then that many struct kvm_cpuid_entry2
// (40 bytes each, little-endian, exactly as KVM_GET_CPUID2 returns them).
#pragma once

#include <linux/kvm.h>

#include <cstdint>
#include <span>
#include <vector>

#include "base/status.h"
#include "dirtylog/backend.h"

namespace xm::kvm {

inline constexpr const char* kCpuidFormat = "kvm-cpuid2-v1";

std::vector<uint8_t> EncodeCpuid(std::span<const kvm_cpuid_entry2> entries);
Result<std::vector<kvm_cpuid_entry2>> DecodeCpuid(std::span<const uint8_t> blob);

// Vendor and featureset (cpumask's reading of the entries) plus the blob.
CpuPolicy PolicyFromCpuid(std::span<const kvm_cpuid_entry2> entries);

// The entries vCPU `index` gets: the initial APIC ID (leaf 1 EBX[31:24], the
// x2APIC ID in leaves 0xB and 0x1F) made its own.
std::vector<kvm_cpuid_entry2> CpuidForVcpu(std::vector<kvm_cpuid_entry2> entries, uint32_t index);

// The entries a policy asks for: the blob, with every feature the policy's
// featureset lacks hidden (so a levelled featureset masks the source's list).
Result<std::vector<kvm_cpuid_entry2>> CpuidFromPolicy(const CpuPolicy& policy);

// One register of one leaf (subleaf 0 unless the entry is indexed); 0 if absent.
uint32_t CpuidReg(std::span<const kvm_cpuid_entry2> entries, uint32_t leaf, uint32_t subleaf, char reg);

}  // namespace xm::kvm
