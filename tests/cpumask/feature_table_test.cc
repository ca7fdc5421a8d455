// The generated featureset table against two independent readings of the same
// facts: the header itself (re-parsed here with a regex, not by the generator)
// and libxenguest's compiled-in mask of known features.
#include <fstream>
#include <regex>
#include <string>

#include <gtest/gtest.h>

#include "cpumask/feature_table.h"
#include "cpumask/xen_host.h"

namespace xm::cpumask {
namespace {

TEST(FeatureTable, MatchesEveryLineOfTheHeader) {
  std::ifstream in{std::string(FeatureHeaderPath())};
  ASSERT_TRUE(in) << FeatureHeaderPath();
  std::regex line(R"(^XEN_CPUFEATURE\((\w+),\s*(\d+)\*32\+\s*(\d+)\))");
  std::string text;
  size_t lines = 0;
  while (std::getline(in, text)) {
    std::smatch m;
    if (!std::regex_search(text, m, line)) continue;
    ++lines;
    uint32_t bit = std::stoul(m[2]) * 32 + std::stoul(m[3]);
    const FeatureInfo* f = FindFeature(m[1].str());
    ASSERT_NE(f, nullptr) << m[1];
    EXPECT_EQ(f->bit, bit) << m[1];
    EXPECT_EQ(FeatureAt(bit), f) << m[1];
  }
  EXPECT_GT(lines, 100u);
  EXPECT_EQ(Features().size(), lines);
}

TEST(FeatureTable, WellKnownPositionsFromTheSdm) {
  // Positions every x86 manual agrees on; the table must put them there.
  struct {
    const char* name;
    uint32_t bit;
  } known[] = {{"fpu", 0}, {"sse2", 26}, {"sse3", 32}, {"cx16", 32 + 13}, {"popcnt", 32 + 23},
               {"avx", 32 + 28}, {"lm", 64 + 29}, {"avx2", 160 + 5}, {"avx512f", 160 + 16},
               {"avx512bw", 160 + 30}, {"avx512_vnni", 192 + 11}};
  for (const auto& k : known) {
    const FeatureInfo* f = FindFeature(k.name);
    ASSERT_NE(f, nullptr) << k.name;
    EXPECT_EQ(f->bit, k.bit) << k.name;
  }
}

TEST(FeatureTable, WordsFollowTheHeaderOrder) {
  auto words = Words();
  ASSERT_GE(words.size(), 16u);
  for (size_t i = 0; i < words.size(); ++i) EXPECT_EQ(words[i].index, i);
  // The order the brief and Xen's header give for the first words.
  EXPECT_EQ(words[0].leaf, 1u);
  EXPECT_EQ(words[0].reg, Reg::kEdx);
  EXPECT_EQ(words[1].reg, Reg::kEcx);
  EXPECT_EQ(words[2].leaf, 0x80000001u);
  EXPECT_EQ(words[4].leaf, 0xdu);
  EXPECT_EQ(words[4].subleaf, 1u);
  EXPECT_EQ(words[5].leaf, 7u);
  EXPECT_EQ(words[5].reg, Reg::kEbx);
  EXPECT_EQ(words[9].leaf, 7u);
  EXPECT_EQ(words[9].reg, Reg::kEdx);
  EXPECT_EQ(words[10].subleaf, 1u);
  EXPECT_EQ(words[11].leaf, 0x80000021u);
  EXPECT_EQ(words[13].subleaf, 2u);
  EXPECT_EQ(words[0].source, WordSource::kCpuid);
}

TEST(FeatureTable, NamesIgnoreCaseUnderscoreAndDash) {
  const FeatureInfo* f = FindFeature("avx512_vnni");
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(FindFeature("AVX512-VNNI"), f);
  EXPECT_EQ(FindFeature("avx512vnni"), f);
  EXPECT_EQ(FindFeature("avx513f"), nullptr);
  EXPECT_EQ(FindFeature(""), nullptr);
}

TEST(FeatureTable, UnnamedBitsGetPositionalNames) {
  EXPECT_EQ(BitName(FindFeature("avx2")->bit), "avx2");
  ASSERT_EQ(FeatureAt(10), nullptr);  // 1.edx bit 10 is reserved
  EXPECT_EQ(BitName(10), "word0.bit10");
  EXPECT_EQ(BitName(40 * 32 + 3), "word40.bit3");
  EXPECT_EQ(KnownMask(0) & (1u << 10), 0u);
  EXPECT_NE(KnownMask(0) & (1u << 26), 0u);
  EXPECT_EQ(KnownMask(1000), 0u);
}

TEST(FeatureTable, AgreesWithLibxenguestKnownMask) {
  if (!XenSupportBuilt()) GTEST_SKIP() << "built without libxen";
  auto mask = XenKnownFeatureMask();
  ASSERT_TRUE(mask.ok()) << mask.status().ToString();
  ASSERT_EQ(mask->size(), WordCount()) << "libxenguest and the header disagree on the number of words";
  for (uint32_t w = 0; w < WordCount(); ++w) EXPECT_EQ((*mask)[w], KnownMask(w)) << "word " << w;
}

}  // namespace
}  // namespace xm::cpumask
