#include "dirtylog/kvm/cpu_policy.h"

#include <cstring>

#include "cpumask/kvm_cpuid.h"

namespace xm::kvm {
namespace {

bool Matches(const kvm_cpuid_entry2& e, uint32_t leaf, uint32_t subleaf) {
  return e.function == leaf && (!(e.flags & KVM_CPUID_FLAG_SIGNIFCANT_INDEX) || e.index == subleaf);
}

}  // namespace

std::vector<uint8_t> EncodeCpuid(std::span<const kvm_cpuid_entry2> entries) {
  std::vector<uint8_t> out(4 + entries.size() * sizeof(kvm_cpuid_entry2));
  uint32_t n = static_cast<uint32_t>(entries.size());
  std::memcpy(out.data(), &n, 4);
  if (n) std::memcpy(out.data() + 4, entries.data(), entries.size() * sizeof(kvm_cpuid_entry2));
  return out;
}

Result<std::vector<kvm_cpuid_entry2>> DecodeCpuid(std::span<const uint8_t> blob) {
  uint32_t n = 0;
  if (blob.size() < 4) return Error(Code::kProtocol, "kvm: CPUID policy blob truncated");
  std::memcpy(&n, blob.data(), 4);
  if (n > 4096 || blob.size() != 4 + uint64_t{n} * sizeof(kvm_cpuid_entry2))
    return Error(Code::kProtocol, "kvm: CPUID policy blob of " + std::to_string(blob.size()) + " bytes does not hold " +
                                      std::to_string(n) + " entries");
  std::vector<kvm_cpuid_entry2> entries(n);
  if (n) std::memcpy(entries.data(), blob.data() + 4, n * sizeof(kvm_cpuid_entry2));
  return entries;
}

CpuPolicy PolicyFromCpuid(std::span<const kvm_cpuid_entry2> entries) {
  CpuPolicy p = cpumask::PolicyFromKvmCpuid(entries);
  p.format = kCpuidFormat;
  p.blob = EncodeCpuid(entries);
  return p;
}

std::vector<kvm_cpuid_entry2> CpuidForVcpu(std::vector<kvm_cpuid_entry2> entries, uint32_t index) {
  for (auto& e : entries) {
    if (e.function == 1) e.ebx = (e.ebx & 0x00ffffffu) | (index << 24);
    if (e.function == 0xb || e.function == 0x1f) e.edx = index;
  }
  return entries;
}

Result<std::vector<kvm_cpuid_entry2>> CpuidFromPolicy(const CpuPolicy& policy) {
  if (policy.format != kCpuidFormat)
    return Error(Code::kIncompatible, "kvm: cannot apply a CPU policy in format '" + policy.format + "' (needs " +
                                          kCpuidFormat + ")");
  XM_ASSIGN_OR_RETURN(auto entries, DecodeCpuid(policy.blob));
  if (!policy.featureset.empty()) cpumask::MaskKvmCpuid(entries, policy.featureset);
  return entries;
}

uint32_t CpuidReg(std::span<const kvm_cpuid_entry2> entries, uint32_t leaf, uint32_t subleaf, char reg) {
  for (const auto& e : entries) {
    if (!Matches(e, leaf, subleaf)) continue;
    switch (reg) {
      case 'a': return e.eax;
      case 'b': return e.ebx;
      case 'c': return e.ecx;
      case 'd': return e.edx;
    }
  }
  return 0;
}

}  // namespace xm::kvm
