#include "dirtylog/xen/stream/cpu_policy.h"

#include <algorithm>
#include <cstring>
#include <optional>

#include "dirtylog/xen/stream/le.h"
#include "dirtylog/xen/stream/records.h"

namespace xm::xen {
namespace {

enum Reg { kA, kB, kC, kD, kMsrLo, kMsrHi };

// Where each featureset word lives (Xen's public/arch-x86/cpufeatureset.h).
struct WordPlace {
  uint32_t leaf;
  uint32_t subleaf;
  Reg reg;
};
constexpr uint32_t kMsrArchCaps = 0x10a;
constexpr WordPlace kWords[] = {
    {0x00000001, kNoSubleaf, kD},  // 0  1d
    {0x00000001, kNoSubleaf, kC},  // 1  1c
    {0x80000001, kNoSubleaf, kD},  // 2  e1d
    {0x80000001, kNoSubleaf, kC},  // 3  e1c
    {0x0000000d, 1, kA},           // 4  Da1
    {0x00000007, 0, kB},           // 5  7b0
    {0x00000007, 0, kC},           // 6  7c0
    {0x80000007, kNoSubleaf, kD},  // 7  e7d
    {0x80000008, kNoSubleaf, kB},  // 8  e8b
    {0x00000007, 0, kD},           // 9  7d0
    {0x00000007, 1, kA},           // 10 7a1
    {0x80000021, kNoSubleaf, kA},  // 11 e21a
    {0x00000007, 1, kB},           // 12 7b1
    {0x00000007, 2, kD},           // 13 7d2
    {0x00000007, 1, kC},           // 14 7c1
    {0x00000007, 1, kD},           // 15 7d1
    {kMsrArchCaps, 0, kMsrLo},     // 16 m10Al
    {kMsrArchCaps, 0, kMsrHi},     // 17 m10Ah
    {0x80000021, kNoSubleaf, kC},  // 18 e21c
};
constexpr size_t kNumWords = sizeof(kWords) / sizeof(kWords[0]);

uint32_t& RegOf(CpuidLeaf& l, Reg r) {
  switch (r) {
    case kA: return l.a;
    case kB: return l.b;
    case kC: return l.c;
    default: return l.d;
  }
}

CpuidLeaf& LeafFor(std::vector<CpuidLeaf>& leaves, uint32_t leaf, uint32_t subleaf) {
  for (auto& l : leaves)
    if (l.leaf == leaf && l.subleaf == subleaf) return l;
  leaves.push_back(CpuidLeaf{leaf, subleaf});
  return leaves.back();
}

const CpuidLeaf* FindLeaf(const std::vector<CpuidLeaf>& leaves, uint32_t leaf, uint32_t subleaf) {
  for (const auto& l : leaves)
    if (l.leaf == leaf && l.subleaf == subleaf) return &l;
  return nullptr;
}

// The 12 vendor characters in EBX, EDX, ECX order, as CPUID leaf 0 returns them.
void PutVendor(CpuidLeaf& l, const std::string& vendor) {
  char v[12] = {};
  std::memcpy(v, vendor.data(), std::min<size_t>(vendor.size(), 12));
  std::memcpy(&l.b, v, 4);
  std::memcpy(&l.d, v + 4, 4);
  std::memcpy(&l.c, v + 8, 4);
}

}  // namespace

std::vector<uint8_t> SerialiseCpuidLeaves(std::span<const CpuidLeaf> leaves) {
  std::vector<uint8_t> out;
  for (const auto& l : leaves) {
    PutLe32(out, l.leaf);
    PutLe32(out, l.subleaf);
    PutLe32(out, l.a);
    PutLe32(out, l.b);
    PutLe32(out, l.c);
    PutLe32(out, l.d);
  }
  return out;
}

std::vector<uint8_t> SerialiseMsrs(std::span<const MsrEntry> msrs) {
  std::vector<uint8_t> out;
  for (const auto& m : msrs) {
    PutLe32(out, m.idx);
    PutLe32(out, m.flags);
    PutLe64(out, m.val);
  }
  return out;
}

Result<std::vector<CpuidLeaf>> ParseCpuidLeaves(std::span<const uint8_t> body) {
  if (body.empty() || body.size() % kCpuidLeafSize)
    return Error(Code::kProtocol, "X86_CPUID_POLICY: " + std::to_string(body.size()) +
                                      " bytes is not a non-zero multiple of " + std::to_string(kCpuidLeafSize));
  std::vector<CpuidLeaf> out;
  for (size_t off = 0; off < body.size(); off += kCpuidLeafSize) {
    const uint8_t* p = body.data() + off;
    out.push_back({GetLe32(p), GetLe32(p + 4), GetLe32(p + 8), GetLe32(p + 12), GetLe32(p + 16), GetLe32(p + 20)});
  }
  return out;
}

Result<std::vector<MsrEntry>> ParseMsrs(std::span<const uint8_t> body) {
  if (body.empty() || body.size() % kMsrEntrySize)
    return Error(Code::kProtocol, "X86_MSR_POLICY: " + std::to_string(body.size()) +
                                      " bytes is not a non-zero multiple of " + std::to_string(kMsrEntrySize));
  std::vector<MsrEntry> out;
  for (size_t off = 0; off < body.size(); off += kMsrEntrySize) {
    const uint8_t* p = body.data() + off;
    MsrEntry m{GetLe32(p), GetLe32(p + 4), GetLe64(p + 8)};
    if (m.flags != 0)
      return Error(Code::kProtocol, "X86_MSR_POLICY: MSR " + std::to_string(m.idx) + " has reserved flags set");
    out.push_back(m);
  }
  return out;
}

std::vector<uint8_t> EncodeXenPolicyBlob(const XenCpuPolicy& p) {
  std::vector<uint8_t> out;
  PutLe32(out, static_cast<uint32_t>(p.cpuid.size()));
  PutLe32(out, static_cast<uint32_t>(p.msrs.size()));
  PutBytes(out, SerialiseCpuidLeaves(p.cpuid));
  PutBytes(out, SerialiseMsrs(p.msrs));
  return out;
}

Result<XenCpuPolicy> DecodeXenPolicyBlob(std::span<const uint8_t> blob) {
  if (blob.size() < 8) return Error(Code::kProtocol, "xen-policy-v1 blob: shorter than its header");
  uint64_t nl = GetLe32(blob.data()), nm = GetLe32(blob.data() + 4);
  if (blob.size() != 8 + nl * kCpuidLeafSize + nm * kMsrEntrySize)
    return Error(Code::kProtocol, "xen-policy-v1 blob: " + std::to_string(blob.size()) + " bytes for " +
                                      std::to_string(nl) + " leaves and " + std::to_string(nm) + " MSRs");
  XenCpuPolicy p;
  if (nl) {
    auto l = ParseCpuidLeaves(blob.subspan(8, nl * kCpuidLeafSize));
    if (!l.ok()) return std::move(l).With("xen-policy-v1 blob").status();
    p.cpuid = std::move(l).value();
  }
  if (nm) {
    auto m = ParseMsrs(blob.subspan(8 + nl * kCpuidLeafSize));
    if (!m.ok()) return std::move(m).With("xen-policy-v1 blob").status();
    p.msrs = std::move(m).value();
  }
  return p;
}

XenCpuPolicy SynthesisePolicy(const std::string& vendor, const std::vector<uint32_t>& featureset) {
  XenCpuPolicy p;
  p.synthetic = true;
  const size_t n = std::min(featureset.size(), kNumWords);
  auto has_word = [&](size_t w) { return w < n; };
  // Leaf 0: highest basic leaf and the vendor. Leaf 7 and 0xd exist when any of their words do.
  CpuidLeaf& l0 = LeafFor(p.cpuid, 0, kNoSubleaf);
  PutVendor(l0, vendor);
  l0.a = has_word(4) ? 0xd : has_word(5) ? 0x7 : 0x1;
  LeafFor(p.cpuid, 1, kNoSubleaf);
  if (has_word(5)) LeafFor(p.cpuid, 7, 0).a = has_word(13) ? 2 : has_word(10) ? 1 : 0;
  CpuidLeaf& e0 = LeafFor(p.cpuid, 0x80000000, kNoSubleaf);
  e0.a = has_word(11) ? 0x80000021 : has_word(7) ? 0x80000008 : 0x80000001;
  if (vendor == "AuthenticAMD" || vendor == "HygonGenuine") PutVendor(e0, vendor);
  uint64_t arch_caps = 0;
  bool have_arch_caps = false;
  for (size_t w = 0; w < n; ++w) {
    const WordPlace& wp = kWords[w];
    if (wp.reg == kMsrLo || wp.reg == kMsrHi) {
      have_arch_caps = true;
      arch_caps |= static_cast<uint64_t>(featureset[w]) << (wp.reg == kMsrHi ? 32 : 0);
      continue;
    }
    RegOf(LeafFor(p.cpuid, wp.leaf, wp.subleaf), wp.reg) = featureset[w];
  }
  if (have_arch_caps) p.msrs.push_back({kMsrArchCaps, 0, arch_caps});
  std::sort(p.cpuid.begin(), p.cpuid.end(), [](const CpuidLeaf& x, const CpuidLeaf& y) {
    return x.leaf != y.leaf ? x.leaf < y.leaf : x.subleaf < y.subleaf;
  });
  return p;
}

Result<XenCpuPolicy> XenPolicyFor(const CpuPolicy& policy) {
  if (policy.format == kXenPolicyFormat) return DecodeXenPolicyBlob(policy.blob);
  return SynthesisePolicy(policy.vendor, policy.featureset);
}

CpuPolicy ToCpuPolicy(const XenCpuPolicy& p) {
  CpuPolicy out;
  out.format = std::string(kXenPolicyFormat);
  out.blob = EncodeXenPolicyBlob(p);
  if (const CpuidLeaf* l0 = FindLeaf(p.cpuid, 0, kNoSubleaf)) {
    char v[12];
    std::memcpy(v, &l0->b, 4);
    std::memcpy(v + 4, &l0->d, 4);
    std::memcpy(v + 8, &l0->c, 4);
    out.vendor.assign(v, strnlen(v, 12));
  }
  // Featureset: as many words as the policy can fill, zero for absent leaves.
  out.featureset.assign(kNumWords, 0);
  for (size_t w = 0; w < kNumWords; ++w) {
    const WordPlace& wp = kWords[w];
    if (wp.reg == kMsrLo || wp.reg == kMsrHi) {
      for (const auto& m : p.msrs)
        if (m.idx == wp.leaf) out.featureset[w] = static_cast<uint32_t>(m.val >> (wp.reg == kMsrHi ? 32 : 0));
      continue;
    }
    const CpuidLeaf* l = FindLeaf(p.cpuid, wp.leaf, wp.subleaf);
    if (!l) continue;
    CpuidLeaf copy = *l;
    out.featureset[w] = RegOf(copy, wp.reg);
  }
  return out;
}

uint32_t Leaf1Eax(const XenCpuPolicy& p) {
  const CpuidLeaf* l = FindLeaf(p.cpuid, 1, kNoSubleaf);
  return l ? l->a : 0;
}

}  // namespace xm::xen
