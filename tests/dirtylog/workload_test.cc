// WorkloadSpec parsing and the page contents each fill produces.
#include "dirtylog/workload.h"

#include <lz4.h>

#include <gtest/gtest.h>

#include <cctype>
#include <cstring>
#include <vector>

namespace xm {
namespace {

constexpr uint64_t kGiB = 1ull << 30, kMiB = 1ull << 20;
constexpr uint32_t kPage = 4096;

WorkloadSpec Parse(std::string_view text, uint64_t mem = kGiB) {
  auto r = ParseWorkload(text, mem);
  EXPECT_TRUE(r.ok()) << text << ": " << r.status().ToString();
  return r.ok() ? *r : WorkloadSpec{};
}

void ExpectBad(std::string_view text, std::string_view what, uint64_t mem = kGiB) {
  auto r = ParseWorkload(text, mem);
  ASSERT_FALSE(r.ok()) << text;
  EXPECT_EQ(r.status().code(), Code::kInvalidArgument);
  EXPECT_NE(r.status().message().find(what), std::string::npos) << r.status().message();
}

TEST(ParseWorkload, AllKeys) {
  WorkloadSpec s = Parse("ws=768M,hot=512M,rate=100M/s,fill=mixed");
  EXPECT_EQ(s.ws_bytes, 768 * kMiB);
  EXPECT_EQ(s.hot_bytes, 512 * kMiB);
  EXPECT_EQ(s.rate_bytes_per_s, 100 * kMiB);
  EXPECT_EQ(s.fill, Fill::kMixed);
  EXPECT_EQ(Parse("fill=random").fill, Fill::kRandom);
  EXPECT_EQ(Parse("rate=64K").rate_bytes_per_s, 64u << 10);
}

TEST(ParseWorkload, EmptyMeansIdle) {
  WorkloadSpec s = Parse("");
  EXPECT_EQ(s, WorkloadSpec{});
  EXPECT_EQ(s.fill, Fill::kRandom);
  EXPECT_EQ(Parse(",,"), WorkloadSpec{});
}

TEST(ParseWorkload, PercentOfGuestMemory) {
  WorkloadSpec s = Parse("ws=75%,hot=100%", 2 * kGiB);
  EXPECT_EQ(s.ws_bytes, 1536 * kMiB);
  EXPECT_EQ(s.hot_bytes, 2 * kGiB);
  EXPECT_EQ(Parse("ws=0%").ws_bytes, 0u);
}

TEST(ParseWorkload, OmittedPartsAndRepeats) {
  WorkloadSpec s = Parse("hot=1M");
  EXPECT_EQ(s.ws_bytes, 0u);
  EXPECT_EQ(s.hot_bytes, kMiB);
  EXPECT_EQ(s.rate_bytes_per_s, 0u);
  EXPECT_EQ(Parse("ws=1M,ws=2M").ws_bytes, 2 * kMiB);  // the last one wins
  EXPECT_EQ(Parse(",ws=1M,").ws_bytes, kMiB);
}

TEST(ParseWorkload, Errors) {
  ExpectBad("ws=2G", "larger than guest memory");
  ExpectBad("hot=1025M", "larger than guest memory");
  ExpectBad("ws=101%", "workload ws");
  ExpectBad("ws=abc", "workload ws");
  ExpectBad("hot=", "workload hot");
  ExpectBad("rate=fast", "workload rate");
  ExpectBad("fill=zero", "fill must be random or mixed");
  ExpectBad("size=1G", "unknown key 'size'");
  ExpectBad("ws", "is not key=value");
  ExpectBad("ws=1M,oops", "'oops' is not key=value");
  ExpectBad("ws=1M", "larger than guest memory", 512 << 10);
}

TEST(ParseWorkload, ToStringParsesBack) {
  for (std::string_view text : {"", "ws=768M,hot=512M,rate=100M/s,fill=mixed", "hot=4K,rate=1", "ws=75%"}) {
    WorkloadSpec s = Parse(text);
    EXPECT_EQ(Parse(s.ToString()), s) << s.ToString();
  }
  EXPECT_EQ(Parse("ws=1K,fill=mixed").ToString(), "ws=1024,hot=0,rate=0/s,fill=mixed");
}

std::vector<std::byte> Fill1(Fill f, uint64_t pfn) {
  std::vector<std::byte> page(kPage, std::byte{0xEE});
  FillPage(f, pfn, page.data(), kPage);
  return page;
}

int Lz4Size(const std::vector<std::byte>& page) {
  std::vector<char> out(LZ4_compressBound(kPage));
  return LZ4_compress_default(reinterpret_cast<const char*>(page.data()), out.data(), kPage,
                              static_cast<int>(out.size()));
}

TEST(FillPage, RandomHasNoZeroWord) {
  // xorshift64 from a non-zero state never yields 0, so no page (not even an
  // aligned 8-byte word of one) is zero: the engine cannot skip any of it.
  for (uint64_t pfn : {0ull, 1ull, 2ull, 511ull, 512ull, 1ull << 20, 0x2545F4914F6CDD1Dull, ~0ull}) {
    std::vector<std::byte> p = Fill1(Fill::kRandom, pfn);
    for (uint32_t off = 0; off < kPage; off += 8) {
      uint64_t w;
      std::memcpy(&w, p.data() + off, 8);
      ASSERT_NE(w, 0u) << "pfn " << pfn << " offset " << off;
    }
  }
}

TEST(FillPage, RandomIsIncompressible) {
  for (uint64_t pfn = 0; pfn < 16; ++pfn) EXPECT_GE(Lz4Size(Fill1(Fill::kRandom, pfn)), static_cast<int>(kPage));
}

TEST(FillPage, DeterministicAndDistinctPerPfn) {
  for (Fill f : {Fill::kRandom, Fill::kMixed}) {
    for (uint64_t pfn = 0; pfn < 32; ++pfn) EXPECT_EQ(Fill1(f, pfn), Fill1(f, pfn)) << pfn;
  }
  for (uint64_t pfn = 0; pfn < 64; ++pfn)
    for (uint64_t other = pfn + 1; other < 64; ++other)
      ASSERT_NE(Fill1(Fill::kRandom, pfn), Fill1(Fill::kRandom, other)) << pfn << " vs " << other;
}

TEST(FillPage, MixedInterleavesZeroTextRandom) {
  const std::vector<std::byte> zero(kPage);
  for (uint64_t pfn = 0; pfn < 300; ++pfn) {
    std::vector<std::byte> p = Fill1(Fill::kMixed, pfn);
    switch (pfn % 3) {
      case 0:
        ASSERT_EQ(p, zero) << pfn;
        break;
      case 1: {
        for (uint32_t i = 0; i < kPage; ++i) {
          auto c = static_cast<unsigned char>(p[i]);
          ASSERT_TRUE(std::islower(c) || c == ' ' || c == '\n') << "pfn " << pfn << " byte " << i << " = " << int(c);
        }
        // Text-like: compresses well, but is not trivially repetitive.
        int n = Lz4Size(p);
        EXPECT_LT(n, static_cast<int>(kPage) * 6 / 10) << pfn;
        EXPECT_GT(n, static_cast<int>(kPage) / 20) << pfn;
        break;
      }
      default:
        ASSERT_EQ(p, Fill1(Fill::kRandom, pfn)) << pfn;
    }
  }
}

}  // namespace
}  // namespace xm
