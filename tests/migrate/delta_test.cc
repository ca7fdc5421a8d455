#include <cstring>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "migrate/common/delta.h"
#include "migrate/source/delta_cache.h"
#include "migrate/source/dup_index.h"
#include "transport/pages.h"

namespace xm {
namespace {

std::vector<std::byte> RandomPage(uint32_t seed) {
  std::vector<std::byte> p(kPageSize);
  std::mt19937 rng(seed);
  for (auto& b : p) b = static_cast<std::byte>(rng());
  return p;
}

std::vector<std::byte> RoundTrip(const std::vector<std::byte>& base, const std::vector<std::byte>& page, size_t max,
                                 size_t* len) {
  std::vector<uint8_t> delta(kPageSize + 64);
  *len = EncodeDelta(base.data(), page.data(), delta.data(), max);
  std::vector<std::byte> out = base;
  if (*len) {
    EXPECT_TRUE(ApplyDelta(std::span(delta.data(), *len), out.data()).ok());
  }
  return out;
}

TEST(Delta, CounterChangeIsTiny) {
  auto base = RandomPage(1), page = base;
  uint64_t counter = 0x1122334455667788ull;
  std::memcpy(page.data(), &counter, 8);
  size_t len = 0;
  EXPECT_EQ(RoundTrip(base, page, 1024, &len), page);
  EXPECT_EQ(len, 12u);  // one run: 4-byte header + 8 bytes
}

TEST(Delta, ChangesAtBothEndsAndScattered) {
  auto base = RandomPage(2);
  for (size_t pos : {size_t{0}, size_t{7}, size_t{8}, size_t{100}, size_t{2048}, size_t{4088}, size_t{4095}}) {
    auto page = base;
    page[pos] ^= std::byte{0x5a};
    size_t len = 0;
    EXPECT_EQ(RoundTrip(base, page, 1024, &len), page) << pos;
    EXPECT_GT(len, 0u);
    EXPECT_LE(len, 12u);
  }
  auto page = base;
  for (size_t pos = 0; pos < kPageSize; pos += 97) page[pos] ^= std::byte{1};
  size_t len = 0;
  EXPECT_EQ(RoundTrip(base, page, kPageSize, &len), page);
}

TEST(Delta, TooDifferentPagesAreRefused) {
  auto base = RandomPage(3), page = RandomPage(4);
  std::vector<uint8_t> delta(kPageSize);
  EXPECT_EQ(EncodeDelta(base.data(), page.data(), delta.data(), 1024), 0u);
}

TEST(Delta, ARunIsKeptUpToTheLimitExactly) {
  // One run of 127 changed words (1016 bytes) after a 4-byte header: 1020 bytes.
  auto base = RandomPage(8), page = base;
  for (size_t i = 512; i < 512 + 1016; ++i) page[i] ^= std::byte{0xff};
  size_t len = 0;
  EXPECT_EQ(RoundTrip(base, page, 1020, &len), page);
  EXPECT_EQ(len, 1020u);
  EXPECT_EQ(RoundTrip(base, page, 1019, &len), base);  // refused: the caller sends the page
  EXPECT_EQ(len, 0u);
  // The same run at the very end of the page (no word after it to compare).
  page = base;
  for (size_t i = kPageSize - 1016; i < kPageSize; ++i) page[i] ^= std::byte{0xff};
  EXPECT_EQ(RoundTrip(base, page, 1020, &len), page);
  EXPECT_EQ(RoundTrip(base, page, 1019, &len), base);
}

TEST(Delta, IdenticalPagesGiveAnEmptyDelta) {
  auto base = RandomPage(5);
  std::vector<uint8_t> delta(64);
  EXPECT_EQ(EncodeDelta(base.data(), base.data(), delta.data(), 64), 0u);
}

TEST(Delta, MalformedDeltasAreRejected) {
  auto page = RandomPage(6);
  auto apply = [&](std::vector<uint8_t> d) { return ApplyDelta(d, page.data()); };
  EXPECT_FALSE(apply({1, 0}).ok());                           // truncated header
  EXPECT_FALSE(apply({0, 0, 0, 0}).ok());                     // empty run
  EXPECT_FALSE(apply({0xff, 0x0f, 2, 0, 1, 2}).ok());         // runs past the page (4095 + 2)
  EXPECT_FALSE(apply({0, 0, 4, 0, 1, 2}).ok());               // data truncated
  EXPECT_FALSE(apply({8, 0, 1, 0, 1, 4, 0, 1, 0, 1}).ok());   // out of order
  EXPECT_FALSE(apply({8, 0, 2, 0, 1, 1, 9, 0, 1, 0, 1}).ok()); // overlapping
  EXPECT_TRUE(apply({8, 0, 1, 0, 1, 9, 0, 1, 0, 1}).ok());    // adjacent is fine
}

TEST(DeltaCache, HoldsWhatWasPutAndStaysBounded) {
  DeltaCache cache(64 * DeltaCache::kBytesPerPage, 1);  // 64 pages, one shard
  std::vector<std::byte> page(kPageSize), out(kPageSize);
  for (uint64_t pfn = 0; pfn < 1000; ++pfn) {
    std::memcpy(page.data(), &pfn, 8);
    cache.Put(pfn, page.data());
  }
  EXPECT_EQ(cache.pages(), 64u);
  uint64_t hits = 0;
  for (uint64_t pfn = 0; pfn < 1000; ++pfn) {
    if (cache.Get(pfn, out.data())) {
      ++hits;
      uint64_t v;
      std::memcpy(&v, out.data(), 8);
      EXPECT_EQ(v, pfn);
    }
  }
  EXPECT_EQ(hits, 64u);
}

TEST(DeltaCache, ACycleLargerThanTheCacheStillHits) {
  // Plain LRU would miss every time on a cyclic scan of 4x its size.
  DeltaCache cache(64 * DeltaCache::kBytesPerPage, 1);
  std::vector<std::byte> page(kPageSize, std::byte{1}), out(kPageSize);
  uint64_t hits = 0;
  for (int round = 0; round < 4; ++round)
    for (uint64_t pfn = 0; pfn < 256; ++pfn) {
      if (cache.Get(pfn, out.data())) ++hits;
      cache.Put(pfn, page.data());
    }
  EXPECT_GE(hits, 3u * 60u);
}

TEST(DeltaCache, DropForgetsAndZeroCapacityDisables) {
  DeltaCache cache(16 * 16 * DeltaCache::kBytesPerPage);  // 16 pages in each of 16 shards
  std::vector<std::byte> page(kPageSize), out(kPageSize);
  cache.Put(5, page.data());
  EXPECT_TRUE(cache.Get(5, out.data()));
  cache.Drop(5);
  EXPECT_FALSE(cache.Get(5, out.data()));
  DeltaCache off(0);
  EXPECT_FALSE(off.enabled());
  off.Put(1, page.data());
  EXPECT_FALSE(off.Get(1, out.data()));
}

TEST(DupIndex, FindsWhatWasInsertedNewestWins) {
  DupIndex idx(1000);
  EXPECT_TRUE(idx.enabled());
  Hash128 a{1, 2}, b{1 + 1024, 3};  // same low bits in a 1024-entry table: they collide
  EXPECT_FALSE(idx.Find(a));
  idx.Insert(a, 7);
  EXPECT_EQ(idx.Find(a), 7u);
  idx.Insert(b, 9);
  EXPECT_EQ(idx.Find(b), 9u);
  EXPECT_FALSE(idx.Find(a));  // evicted, never a wrong answer
  // The low 64 bits are the page hash: equal page hashes with different high
  // halves are different contents, never a match.
  EXPECT_FALSE(idx.Find(Hash128{b.lo, b.hi + 1}));
  EXPECT_FALSE(DupIndex(0).enabled());
}

}  // namespace
}  // namespace xm
