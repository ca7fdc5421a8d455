// Pool levelling and XAPI's rules on featuresets of three Intel generations
// (Haswell-EP, Skylake-SP, Ice Lake-SP) and an AMD EPYC, written in
// tests/cpumask/data from the vendors' manuals.
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "cpumask/feature_table.h"
#include "cpumask/featureset.h"
#include "cpumask/levelling.h"
#include "cpumask/policy_text.h"

namespace xm::cpumask {
namespace {

using ::testing::HasSubstr;

CpuPolicy Load(const std::string& name) {
  auto p = ParsePolicy(std::string("@") + XM_CPUMASK_TESTDATA + "/" + name + ".fs");
  EXPECT_TRUE(p.ok()) << p.status().ToString();
  return p.ok() ? *p : CpuPolicy{};
}

CpuPolicy Names(const std::string& text) {
  auto p = ParsePolicy(text);
  EXPECT_TRUE(p.ok()) << p.status().ToString();
  return p.ok() ? *p : CpuPolicy{};
}

// What the newer generations add, in featureset bit order (from the SDM).
constexpr const char* kSkylakeOverHaswell =
    "3dnowprefetch, xsavec, xgetbv1, xsaves, mpx, pqe, avx512f, avx512dq, rdseed, adx, smap, clflushopt, clwb, "
    "proc_trace, avx512cd, avx512bw, avx512vl, pku";
constexpr const char* kIceLakeOverHaswell =
    "3dnowprefetch, xsavec, xgetbv1, xsaves, pqe, avx512f, avx512dq, rdseed, adx, smap, avx512_ifma, clflushopt, "
    "clwb, proc_trace, avx512cd, sha, avx512bw, avx512vl, avx512_vbmi, umip, pku, avx512_vbmi2, gfni, vaes, "
    "vpclmulqdq, avx512_vnni, avx512_bitalg, avx512_vpopcntdq, rdpid, wbnoinvd, fsrm, arch_caps";
constexpr const char* kIceLakeOverSkylake =
    "avx512_ifma, sha, avx512_vbmi, umip, avx512_vbmi2, gfni, vaes, vpclmulqdq, avx512_vnni, avx512_bitalg, "
    "avx512_vpopcntdq, rdpid, wbnoinvd, fsrm, arch_caps";

class Levelling : public ::testing::Test {
 protected:
  CpuPolicy haswell = Load("haswell");
  CpuPolicy skylake = Load("skylake");
  CpuPolicy icelake = Load("icelake");
  CpuPolicy epyc = Load("epyc-rome");
};

TEST_F(Levelling, ThreeIntelGenerationsLevelToHaswell) {
  std::vector<CpuPolicy> hosts{haswell, skylake, icelake};
  auto pool = ComputePoolLevel(hosts);
  ASSERT_TRUE(pool.ok()) << pool.status().ToString();
  EXPECT_EQ(pool->level.vendor, "GenuineIntel");
  ASSERT_EQ(pool->losses.size(), 3u);
  EXPECT_EQ(JoinNames(pool->losses[0]), "");
  EXPECT_EQ(JoinNames(pool->losses[1]), kSkylakeOverHaswell);
  EXPECT_EQ(JoinNames(pool->losses[2]), kIceLakeOverHaswell);
  // Haswell is a subset of both newer hosts, so the level is exactly Haswell.
  EXPECT_EQ(pool->level.featureset, haswell.featureset);
}

TEST_F(Levelling, SkylakeAndIceLakeEachLoseSomething) {
  std::vector<CpuPolicy> hosts{skylake, icelake};
  auto pool = ComputePoolLevel(hosts);
  ASSERT_TRUE(pool.ok());
  // Ice Lake dropped MPX, so even the older host loses a feature.
  EXPECT_EQ(JoinNames(pool->losses[0]), "mpx");
  EXPECT_EQ(JoinNames(pool->losses[1]), kIceLakeOverSkylake);
  EXPECT_TRUE(TestBit(pool->level.featureset, FindFeature("avx512bw")->bit));
  EXPECT_FALSE(TestBit(pool->level.featureset, FindFeature("mpx")->bit));
}

TEST_F(Levelling, PoolLevelIsOrderIndependent) {
  std::vector<CpuPolicy> a{haswell, skylake, icelake}, b{icelake, haswell, skylake};
  EXPECT_EQ(ComputePoolLevel(a)->level.featureset, ComputePoolLevel(b)->level.featureset);
}

TEST_F(Levelling, VendorsNeverSharePool) {
  std::vector<CpuPolicy> hosts{haswell, skylake, epyc};
  auto pool = ComputePoolLevel(hosts);
  ASSERT_FALSE(pool.ok());
  EXPECT_EQ(pool.status().code(), Code::kIncompatible);
  EXPECT_THAT(pool.status().message(), HasSubstr("host 1 is GenuineIntel but host 3 is AuthenticAMD"));
  EXPECT_EQ(ComputePoolLevel(std::vector<CpuPolicy>{}).status().code(), Code::kInvalidArgument);
}

TEST_F(Levelling, UnspecifiedVendorTakesThePoolsVendor) {
  std::vector<CpuPolicy> hosts{Names("sse2,avx2"), skylake};
  auto pool = ComputePoolLevel(hosts);
  ASSERT_TRUE(pool.ok());
  EXPECT_EQ(pool->level.vendor, "GenuineIntel");
  EXPECT_EQ(JoinNames(SetBits(pool->level.featureset)), "sse2, avx2");
}

TEST_F(Levelling, InPoolCheckNamesWhatTheDestinationLacks) {
  EXPECT_TRUE(CheckVmFits(haswell, skylake, nullptr).ok());
  EXPECT_TRUE(CheckVmFits(skylake, skylake, nullptr).ok());
  Status st = CheckVmFits(icelake, skylake, nullptr);
  EXPECT_EQ(st.code(), Code::kIncompatible);
  EXPECT_EQ(st.message(), std::string("destination lacks ") + kIceLakeOverSkylake);
  st = CheckVmFits(skylake, icelake, nullptr);
  EXPECT_EQ(st.message(), "destination lacks mpx");
}

TEST_F(Levelling, LevelledVmMovesAnywhereInThePool) {
  std::vector<CpuPolicy> hosts{skylake, icelake};
  CpuPolicy level = ComputePoolLevel(hosts)->level;
  CpuPolicy vm = Level(icelake, level);
  EXPECT_TRUE(CheckVmFits(vm, skylake, nullptr).ok());
  EXPECT_TRUE(CheckVmFits(vm, icelake, nullptr).ok());
  EXPECT_TRUE(IsSubset(vm.featureset, level.featureset));
}

TEST_F(Levelling, CrossPoolCheckUsesThePoolLevel) {
  std::vector<CpuPolicy> dest{skylake, icelake};
  CpuPolicy level = ComputePoolLevel(dest)->level;
  EXPECT_TRUE(CheckVmFits(haswell, icelake, &level).ok());
  // Fits the Ice Lake host itself, but not the pool it is joining.
  CpuPolicy vm = Names("intel:sse2,avx2,avx512_vnni");
  EXPECT_TRUE(CheckVmFits(vm, icelake, nullptr).ok());
  Status st = CheckVmFits(vm, icelake, &level);
  EXPECT_EQ(st.code(), Code::kIncompatible);
  EXPECT_EQ(st.message(), "destination pool level lacks avx512_vnni");
  st = CheckVmFits(skylake, icelake, &level);
  EXPECT_EQ(st.message(), "destination lacks mpx; destination pool level lacks mpx");
}

TEST_F(Levelling, VendorMismatchIsRefused) {
  Status st = CheckVmFits(epyc, skylake, nullptr);
  EXPECT_EQ(st.code(), Code::kIncompatible);
  EXPECT_EQ(st.message(), "vendor mismatch: guest CPU is AuthenticAMD, destination is GenuineIntel");
  CpuPolicy amd_level = epyc;
  st = CheckVmFits(haswell, icelake, &amd_level);
  EXPECT_THAT(st.message(), HasSubstr("destination pool is AuthenticAMD"));
  // An unspecified vendor (hand-written set, the sim backend's empty policy) matches.
  EXPECT_TRUE(CheckVmFits(Names("sse2"), epyc, nullptr).ok());
  EXPECT_TRUE(CheckVmFits(CpuPolicy{}, epyc, nullptr).ok());
}

TEST_F(Levelling, EnvironmentBitsAreIgnoredAndKept) {
  CpuPolicy guest = Names("intel:sse2,avx2,hypervisor,osxsave,ospke");
  CpuPolicy bare_metal = Names("intel:sse2,avx2");
  EXPECT_TRUE(CheckVmFits(guest, bare_metal, nullptr).ok());
  CpuPolicy levelled = Level(guest, Names("intel:sse2"));
  EXPECT_EQ(FormatPolicy(levelled, TextFormat::kNames), "intel:sse2,osxsave,hypervisor,ospke");
}

// The nested-Xen lab's first contact: a PVH guest's policy read back from Xen
// on AMD has leaf 1's FPU..FXSR mirrored in word 2; Xen's HVM featureset for
// the destination leaves the mirrors out. The guest must still fit, and what
// decides is word 0.
TEST_F(Levelling, AmdMirroredBitsAreJudgedThroughWordZero) {
  CpuPolicy xen_hvm = epyc;
  xen_hvm.featureset.resize(WordCount(), 0);
  xen_hvm.featureset[kMirroredWord] &= ~kMirroredBits;
  CpuPolicy guest = epyc;
  guest.featureset.resize(WordCount(), 0);
  guest.featureset[kMirroredWord] |= guest.featureset[0] & kMirroredBits;
  ASSERT_NE(guest.featureset[kMirroredWord] & kMirroredBits, 0u);
  EXPECT_TRUE(CheckVmFits(guest, xen_hvm, nullptr).ok()) << CheckVmFits(guest, xen_hvm, nullptr).message();

  // Levelling with that featureset keeps the mirrors the guest had...
  CpuPolicy levelled = Level(guest, xen_hvm);
  EXPECT_EQ(levelled.featureset[kMirroredWord] & kMirroredBits, guest.featureset[kMirroredWord] & kMirroredBits);
  // ...but drops a mirror whose original the mask takes away.
  CpuPolicy no_mmx = xen_hvm;
  const uint32_t mmx = FindFeature("mmx")->bit;
  ASSERT_EQ(mmx / 32, 0u);
  no_mmx.featureset[0] &= ~(1u << mmx);
  levelled = Level(guest, no_mmx);
  EXPECT_FALSE(TestBit(levelled.featureset, mmx));
  EXPECT_EQ(levelled.featureset[kMirroredWord] & (1u << mmx), 0u);
  EXPECT_NE(levelled.featureset[kMirroredWord] & (1u << FindFeature("fxsr")->bit), 0u);

  // The original itself is still checked.
  EXPECT_EQ(CheckVmFits(guest, no_mmx, nullptr).message(), "destination lacks mmx");
  // Bits of word 2 that are not mirrors (nx, lm) are checked as before.
  CpuPolicy no_lm = xen_hvm;
  no_lm.featureset[kMirroredWord] &= ~(1u << (FindFeature("lm")->bit % 32));
  EXPECT_EQ(CheckVmFits(guest, no_lm, nullptr).message(), "destination lacks lm");
}

TEST_F(Levelling, LevelKeepsTheGuestsBlobAndVendor) {
  CpuPolicy vm = skylake;
  vm.format = "kvm-cpuid2-v1";
  vm.blob = {1, 2, 3};
  CpuPolicy out = Level(vm, haswell);
  EXPECT_EQ(out.format, "kvm-cpuid2-v1");
  EXPECT_EQ(out.blob, vm.blob);
  EXPECT_EQ(out.vendor, "GenuineIntel");
  // The AND, plus Skylake's ospke (an environment bit Haswell cannot have).
  FeatureWords expected = Intersect(skylake.featureset, haswell.featureset);
  SetBit(expected, FindFeature("ospke")->bit);
  EXPECT_EQ(out.featureset, expected);
  EXPECT_EQ(Level(Names("sse2,avx2"), skylake).vendor, "GenuineIntel");
}

TEST_F(Levelling, ShorterFeaturesetsAreZeroExtended) {
  // A 10-word featureset from an older Xen is a subset of a 19-word one.
  CpuPolicy old_vm = Names("intel:178bfbff-f7fa3223-2c100800-00000021-00000001-000027ab-00000000-00000000-00000000-0c000400");
  CpuPolicy host = old_vm;
  host.featureset.resize(WordCount(), 0);
  SetBit(host.featureset, FindFeature("avx_vnni")->bit);
  EXPECT_TRUE(CheckVmFits(old_vm, host, nullptr).ok());
  // The other way round, the bit in word 10 is missing from the short set.
  Status st = CheckVmFits(host, old_vm, nullptr);
  EXPECT_EQ(st.message(), "destination lacks avx_vnni");
  EXPECT_EQ(Intersect(old_vm.featureset, host.featureset).size(), WordCount());
}

TEST_F(Levelling, CheckAppliedRefusesLostFeaturesAndWarnsOnForcedOnes) {
  std::vector<std::string> warnings;
  EXPECT_TRUE(CheckApplied(skylake, skylake, warnings).ok());
  EXPECT_TRUE(warnings.empty());

  CpuPolicy lost = skylake;
  lost.featureset[FindFeature("avx512bw")->word()] &= ~(1u << (FindFeature("avx512bw")->bit % 32));
  Status st = CheckApplied(skylake, lost, warnings);
  EXPECT_EQ(st.code(), Code::kIncompatible);
  EXPECT_EQ(st.message(), "the applied CPU policy lacks features the guest already uses: avx512bw");

  // The guest's policy hid AVX/AVX2; the hypervisor put them back.
  CpuPolicy wanted = Names("intel:sse2,popcnt");
  CpuPolicy applied = Names("intel:sse2,popcnt,avx,avx2");
  warnings.clear();
  EXPECT_TRUE(CheckApplied(wanted, applied, warnings).ok());
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_EQ(warnings[0], "the hypervisor forced on CPU features the guest's policy hides: avx, avx2");

  // osxsave follows the guest's CR4: not a loss, not a warning.
  warnings.clear();
  EXPECT_TRUE(CheckApplied(Names("intel:sse2,osxsave"), Names("intel:sse2,hypervisor"), warnings).ok());
  EXPECT_TRUE(warnings.empty());

  st = CheckApplied(skylake, epyc, warnings);
  EXPECT_THAT(st.message(), HasSubstr("installed vendor AuthenticAMD but the guest's CPU is GenuineIntel"));
}

TEST_F(Levelling, JoiningAnOlderHostLowersTheLevel) {
  std::vector<CpuPolicy> pool{skylake, icelake};
  CpuPolicy level = ComputePoolLevel(pool)->level;
  std::vector<CpuPolicy> vms{Level(icelake, level), Names("intel:sse2,avx2,bmi2"), epyc};
  auto r = CheckJoin(pool, haswell, vms);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_TRUE(r->can_join());
  EXPECT_FALSE(r->ok());
  EXPECT_EQ(r->level_before.featureset, level.featureset);
  EXPECT_EQ(r->level_after.featureset, haswell.featureset);
  // Everything Skylake had over Haswell except MPX (already gone with Ice Lake).
  EXPECT_EQ(JoinNames(r->pool_loses),
            "3dnowprefetch, xsavec, xgetbv1, xsaves, pqe, avx512f, avx512dq, rdseed, adx, smap, clflushopt, clwb, "
            "proc_trace, avx512cd, avx512bw, avx512vl, pku");
  EXPECT_EQ(JoinNames(r->host_loses), "");
  ASSERT_EQ(r->vms.size(), 3u);
  EXPECT_FALSE(r->vms[0].can_move());
  EXPECT_EQ(JoinNames(r->vms[0].missing), JoinNames(r->pool_loses));
  EXPECT_TRUE(r->vms[1].can_move());
  EXPECT_FALSE(r->vms[2].can_move());
  EXPECT_THAT(r->vms[2].vendor_problem, HasSubstr("AuthenticAMD"));
}

TEST_F(Levelling, JoiningANewerHostKeepsTheLevel) {
  std::vector<CpuPolicy> pool{haswell, skylake};
  std::vector<CpuPolicy> vms{haswell};
  auto r = CheckJoin(pool, icelake, vms);
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->ok());
  EXPECT_TRUE(r->pool_loses.empty());
  EXPECT_EQ(JoinNames(r->host_loses), kIceLakeOverHaswell);
}

TEST_F(Levelling, JoinRefusesAnotherVendor) {
  std::vector<CpuPolicy> pool{haswell, skylake};
  auto r = CheckJoin(pool, epyc, {});
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(r->can_join());
  EXPECT_FALSE(r->ok());
  EXPECT_THAT(r->vendor_problem, HasSubstr("the pool's CPUs are GenuineIntel but the host's are AuthenticAMD"));
  EXPECT_EQ(r->level_after.featureset, r->level_before.featureset);

  std::vector<CpuPolicy> mixed{haswell, epyc};
  auto bad = CheckJoin(mixed, skylake, {});
  EXPECT_EQ(bad.status().code(), Code::kInvalidArgument);
}

}  // namespace
}  // namespace xm::cpumask
