// Bit arithmetic on featureset words (std::vector<uint32_t> in Xen's word order).
//
// Featuresets of different lengths are compared the way XAPI does: the shorter
// one is zero-extended, so a set written by an older Xen (fewer words) is a
// subset of a newer one that agrees on the common words.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace xm::cpumask {

using FeatureWords = std::vector<uint32_t>;

bool TestBit(const FeatureWords& fs, uint32_t bit);
void SetBit(FeatureWords& fs, uint32_t bit);  // grows `fs` as needed
// a AND b; the result is as long as the longer input.
FeatureWords Intersect(const FeatureWords& a, const FeatureWords& b);
// Bits set in `fs`, ascending.
std::vector<uint32_t> SetBits(const FeatureWords& fs);
// Bits set in `a` but not in `b` (a AND NOT b), ascending, leaving out the
// environment and mirrored bits (see below).
std::vector<uint32_t> Missing(const FeatureWords& a, const FeatureWords& b);
bool IsSubset(const FeatureWords& a, const FeatureWords& b);  // Missing(a, b) is empty

// Bits that describe the guest's situation rather than a CPU capability:
// "hypervisor" (set by every hypervisor, absent on bare metal), "osxsave" and
// "ospke" (mirror the guest kernel's CR4). A guest cannot lose them by moving,
// so the checks ignore them and levelling leaves them as the guest had them.
bool IsEnvironmentBit(uint32_t bit);
uint32_t EnvironmentMask(uint32_t word);

// Bits of word 2 (leaf 0x80000001 EDX) that AMD CPUs mirror from leaf 1 EDX
// (FPU, VME, DE, PSE, TSC, MSR, PAE, MCE, CX8, APIC, MTRR, PGE, MCA, CMOV, PAT,
// PSE36, MMX, FXSR; Xen's CPUID_COMMON_1D_FEATURES). They carry no information
// of their own: Xen leaves them out of its HVM featuresets and recomputes them
// from word 0 when it builds a policy, while a domain's policy read back from
// Xen has them. So the checks judge them through word 0 (ignore them here) and
// Level() keeps a mirrored bit only where word 0 keeps its original. Intel
// CPUs report these bits as reserved-zero, so the rule is vendor-independent.
inline constexpr uint32_t kMirroredWord = 2;
inline constexpr uint32_t kMirroredBits = 0x0183f3ffu;  // bits 0-9, 12-17, 23, 24
uint32_t MirroredMask(uint32_t word);

// "avx512f, avx512bw" (names from the table, "word5.bit22" for unnamed bits).
std::string JoinNames(const std::vector<uint32_t>& bits, std::string_view sep = ", ");
std::vector<std::string> Names(const std::vector<uint32_t>& bits);

}  // namespace xm::cpumask
