// Xen's CPU policy records (X86_CPUID_POLICY, X86_MSR_POLICY): the
// xen_cpuid_leaf_t / xen_msr_entry_t arrays that xc_cpu_policy_serialise()
// produces, and how they relate to xmotion's CpuPolicy.
//
// A Xen source ships its policy as CpuPolicy{format "xen-policy-v1", blob =
// EncodeXenPolicyBlob(...)}, the exact leaves and MSRs Xen gave the guest. For
// guests of other backends only the vendor and the featureset are known; then
// the leaves are synthesised from them (the featureset words placed in the
// CPUID registers Xen's cpufeatureset.h assigns them) and the result is marked
// synthetic: it carries the feature bits faithfully but no family/model,
// cache or topology leaves.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "base/status.h"
#include "dirtylog/backend.h"

namespace xm::xen {

inline constexpr uint32_t kNoSubleaf = 0xffffffffu;  // XEN_CPUID_NO_SUBLEAF
inline constexpr std::string_view kXenPolicyFormat = "xen-policy-v1";

struct CpuidLeaf {
  uint32_t leaf = 0, subleaf = kNoSubleaf;
  uint32_t a = 0, b = 0, c = 0, d = 0;
  bool operator==(const CpuidLeaf&) const = default;
};

struct MsrEntry {
  uint32_t idx = 0;
  uint32_t flags = 0;  // reserved, zero
  uint64_t val = 0;
  bool operator==(const MsrEntry&) const = default;
};

struct XenCpuPolicy {
  std::vector<CpuidLeaf> cpuid;
  std::vector<MsrEntry> msrs;
  bool synthetic = false;  // built from a featureset, not read from Xen
  bool operator==(const XenCpuPolicy&) const = default;
};

// Record bodies exactly as the stream carries them.
std::vector<uint8_t> SerialiseCpuidLeaves(std::span<const CpuidLeaf> leaves);
std::vector<uint8_t> SerialiseMsrs(std::span<const MsrEntry> msrs);
Result<std::vector<CpuidLeaf>> ParseCpuidLeaves(std::span<const uint8_t> body);
Result<std::vector<MsrEntry>> ParseMsrs(std::span<const uint8_t> body);

// The "xen-policy-v1" CpuPolicy blob: u32 nr_leaves, u32 nr_msrs, then the two arrays.
std::vector<uint8_t> EncodeXenPolicyBlob(const XenCpuPolicy& p);
Result<XenCpuPolicy> DecodeXenPolicyBlob(std::span<const uint8_t> blob);

// The records to put in a stream for `policy`: its blob when it is
// "xen-policy-v1", otherwise synthesised from vendor + featureset.
Result<XenCpuPolicy> XenPolicyFor(const CpuPolicy& policy);
XenCpuPolicy SynthesisePolicy(const std::string& vendor, const std::vector<uint32_t>& featureset);

// The vendor string (leaf 0) and featureset words a Xen policy describes, as an
// xmotion CpuPolicy of format "xen-policy-v1" carrying the full records.
CpuPolicy ToCpuPolicy(const XenCpuPolicy& p);
// CPUID leaf 1 EAX (processor signature), 0 when the policy has no leaf 1.
uint32_t Leaf1Eax(const XenCpuPolicy& p);

}  // namespace xm::xen
