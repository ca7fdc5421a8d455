// CPU policy records and guest-state blobs: where featureset words land in
// CPUID leaves (Xen's cpufeatureset.h), blob round trips, HVM context walking,
// and the synthetic power-on CPU record.
#include <gtest/gtest.h>

#include "dirtylog/xen/stream/cpu_policy.h"
#include "dirtylog/xen/stream/guest_state.h"
#include "dirtylog/xen/stream/hvm_cpu_layout.h"
#include "dirtylog/xen/stream/le.h"
#include "dirtylog/xen/stream/records.h"
#include "tests/xen/xen_test_util.h"

namespace xm::xen {
namespace {

const CpuidLeaf* Find(const XenCpuPolicy& p, uint32_t leaf, uint32_t sub = kNoSubleaf) {
  for (const auto& l : p.cpuid)
    if (l.leaf == leaf && l.subleaf == sub) return &l;
  return nullptr;
}

TEST(XenCpuPolicy, FeaturesetWordsLandInTheirCpuidRegisters) {
  std::vector<uint32_t> fs(19);
  for (uint32_t w = 0; w < fs.size(); ++w) fs[w] = 0x1000 + w;
  XenCpuPolicy p = SynthesisePolicy("GenuineIntel", fs);
  EXPECT_TRUE(p.synthetic);
  ASSERT_NE(Find(p, 1), nullptr);
  EXPECT_EQ(Find(p, 1)->d, 0x1000u);  // word 0: 1.edx
  EXPECT_EQ(Find(p, 1)->c, 0x1001u);  // word 1: 1.ecx
  EXPECT_EQ(Find(p, 0x80000001)->d, 0x1002u);
  EXPECT_EQ(Find(p, 0x80000001)->c, 0x1003u);
  EXPECT_EQ(Find(p, 0xd, 1)->a, 0x1004u);
  EXPECT_EQ(Find(p, 7, 0)->b, 0x1005u);
  EXPECT_EQ(Find(p, 7, 0)->c, 0x1006u);
  EXPECT_EQ(Find(p, 0x80000007)->d, 0x1007u);
  EXPECT_EQ(Find(p, 0x80000008)->b, 0x1008u);
  EXPECT_EQ(Find(p, 7, 0)->d, 0x1009u);
  EXPECT_EQ(Find(p, 7, 1)->a, 0x100au);
  EXPECT_EQ(Find(p, 0x80000021)->a, 0x100bu);
  EXPECT_EQ(Find(p, 7, 1)->b, 0x100cu);
  EXPECT_EQ(Find(p, 7, 2)->d, 0x100du);
  EXPECT_EQ(Find(p, 7, 1)->c, 0x100eu);
  EXPECT_EQ(Find(p, 7, 1)->d, 0x100fu);
  EXPECT_EQ(Find(p, 0x80000021)->c, 0x1012u);
  ASSERT_EQ(p.msrs.size(), 1u);
  EXPECT_EQ(p.msrs[0].idx, 0x10au);  // ARCH_CAPABILITIES = words 16 (low) and 17 (high)
  EXPECT_EQ(p.msrs[0].val, (uint64_t{0x1011} << 32) | 0x1010);
  // Leaf 0: vendor in EBX, EDX, ECX order; max leaf covers 7 and 0xd; leaf 7.0 EAX = max subleaf.
  const CpuidLeaf* l0 = Find(p, 0);
  ASSERT_NE(l0, nullptr);
  EXPECT_EQ(l0->b, 0x756e6547u);  // "Genu"
  EXPECT_EQ(l0->d, 0x49656e69u);  // "ineI"
  EXPECT_EQ(l0->c, 0x6c65746eu);  // "ntel"
  EXPECT_EQ(l0->a, 0xdu);
  EXPECT_EQ(Find(p, 7, 0)->a, 2u);
  EXPECT_EQ(Find(p, 0x80000000)->a, 0x80000021u);
  // Leaves are sorted as Xen serialises them.
  for (size_t i = 1; i < p.cpuid.size(); ++i)
    EXPECT_TRUE(p.cpuid[i - 1].leaf < p.cpuid[i].leaf ||
                (p.cpuid[i - 1].leaf == p.cpuid[i].leaf && p.cpuid[i - 1].subleaf < p.cpuid[i].subleaf));
}

TEST(XenCpuPolicy, BackToVendorAndFeaturesetLosslessly) {
  std::vector<uint32_t> fs = {0xbfebfbff, 0x7ffafbff, 0x2c100800, 0x00000121, 0x0000000f, 0x029c6fbf};
  XenCpuPolicy p = SynthesisePolicy("AuthenticAMD", fs);
  CpuPolicy back = ToCpuPolicy(p);
  EXPECT_EQ(back.vendor, "AuthenticAMD");
  EXPECT_EQ(back.format, "xen-policy-v1");
  ASSERT_GE(back.featureset.size(), fs.size());
  for (size_t w = 0; w < fs.size(); ++w) EXPECT_EQ(back.featureset[w], fs[w]) << "word " << w;
  for (size_t w = fs.size(); w < back.featureset.size(); ++w) EXPECT_EQ(back.featureset[w], 0u);
  // AMD also names itself in 0x80000000.
  EXPECT_EQ(Find(p, 0x80000000)->b, Find(p, 0)->b);
  // The blob carries the full records.
  auto again = XenPolicyFor(back);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->cpuid, p.cpuid);
  EXPECT_EQ(again->msrs, p.msrs);
  EXPECT_FALSE(again->synthetic);
}

TEST(XenCpuPolicy, BlobAndRecordParsingRejectBadSizes) {
  XenCpuPolicy p = testing::FixturePolicy();
  auto blob = EncodeXenPolicyBlob(p);
  EXPECT_TRUE(DecodeXenPolicyBlob(blob).ok());
  blob.pop_back();
  EXPECT_EQ(DecodeXenPolicyBlob(blob).status().code(), Code::kProtocol);
  EXPECT_FALSE(ParseCpuidLeaves(std::vector<uint8_t>(23)).ok());
  EXPECT_FALSE(ParseCpuidLeaves({}).ok());
  auto msrs = SerialiseMsrs(p.msrs);
  msrs[4] = 1;  // flags must be zero
  EXPECT_FALSE(ParseMsrs(msrs).ok());
}

TEST(XenGuestState, BlobRoundTripAndRejection) {
  XenGuestState st = testing::FixtureGuestState(2, 7);
  st.emulator_xenstore.push_back({2, 0, {'k', 0, 'v', 0}});
  auto blob = EncodeGuestStateBlob(st);
  EXPECT_TRUE(IsGuestStateBlob(blob));
  auto back = DecodeGuestStateBlob(blob);
  ASSERT_TRUE(back.ok()) << back.status().message();
  EXPECT_EQ(*back, st);
  auto cut = blob;
  cut.resize(cut.size() - 9);
  EXPECT_FALSE(DecodeGuestStateBlob(cut).ok());
  std::vector<uint8_t> sim_blob = {'X', 'S', 'I', 'M', 1, 0, 0, 0};
  EXPECT_FALSE(IsGuestStateBlob(sim_blob));
  EXPECT_FALSE(DecodeGuestStateBlob(sim_blob).ok());
}

TEST(XenGuestState, RingPagesTheRestoreClearsComeFromTheParams) {
  XenGuestState st;
  st.params = {{kHvmParamStorePfn, 0xfeffc}, {kHvmParamConsolePfn, 0xfefff}, {12, 0xfeffd000},
               {kHvmParamIoreqPfn, 0xff000}, {kHvmParamBufioreqPfn, 0xff001}, {9, 1}};
  EXPECT_EQ(RingPfns(st), (std::vector<uint64_t>{0xfeffc, 0xfefff, 0xff000, 0xff001}));
  EXPECT_TRUE(RingPfns(SyntheticGuestState(1, 0)).empty());
}

TEST(XenGuestState, SyntheticContextIsWellFormedAndLabelled) {
  auto ctx = SyntheticHvmContext(3, 0x000806ea, 0);
  auto walk = WalkHvmContext(ctx);
  ASSERT_TRUE(walk.ok()) << walk.status().message();
  ASSERT_EQ(walk->size(), 5u);  // HEADER, 3 × CPU, END
  EXPECT_EQ((*walk)[0].typecode, kHvmSaveHeader);
  for (uint16_t i = 0; i < 3; ++i) {
    EXPECT_EQ((*walk)[1 + i].typecode, kHvmSaveCpu);
    EXPECT_EQ((*walk)[1 + i].instance, i);
    EXPECT_EQ((*walk)[1 + i].length, kHvmHwCpuSize);
  }
  EXPECT_EQ((*walk)[4].typecode, kHvmSaveEnd);
  EXPECT_TRUE(IsSyntheticHvmContext(ctx));
  EXPECT_FALSE(IsSyntheticHvmContext(testing::FixtureGuestState(1, 0).hvm_context));
  // The CPU record is the x86 reset state.
  const uint8_t* cpu = ctx.data() + (*walk)[1].offset;
  EXPECT_EQ(GetLe64(cpu + hvmcpu::kRip), 0xfff0u);
  EXPECT_EQ(GetLe64(cpu + hvmcpu::kBase + 8 * hvmcpu::kCs), 0xffff0000u);
  EXPECT_EQ(GetLe32(cpu + hvmcpu::kSel + 4 * hvmcpu::kCs), 0xf000u);
  EXPECT_EQ(GetLe64(cpu + hvmcpu::kRdx), 0x000806eau);
  EXPECT_EQ(GetLe64(cpu + hvmcpu::kCr0), 0x60000010u);
  EXPECT_EQ(GetLe32(cpu + hvmcpu::kFlags), 0u);  // FPU left for Xen to initialise
}

TEST(XenGuestState, WalkRejectsMalformedContexts) {
  auto ctx = SyntheticHvmContext(1, 0, 0);
  EXPECT_FALSE(WalkHvmContext({ctx.data(), ctx.size() - 8}).ok());  // no END
  auto extra = ctx;
  extra.push_back(0);
  EXPECT_FALSE(WalkHvmContext(extra).ok());  // bytes after END
  auto no_header = std::vector<uint8_t>(ctx.begin() + 8 + kHvmSaveHeaderSize, ctx.end());
  EXPECT_FALSE(WalkHvmContext(no_header).ok());
  auto long_entry = ctx;
  SetLe32(long_entry, 8 + kHvmSaveHeaderSize + 4, 1u << 30);  // CPU entry longer than the blob
  EXPECT_FALSE(WalkHvmContext(long_entry).ok());
}

}  // namespace
}  // namespace xm::xen
