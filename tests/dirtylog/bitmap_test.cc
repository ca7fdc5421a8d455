// DirtyBitmap: sizes that are not multiples of 64, word-level operations, and the
// promise that matters for migration: under a concurrent writer no set bit is lost.
#include "dirtylog/bitmap.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

namespace xm {
namespace {

std::vector<uint64_t> Bits(const DirtyBitmap& b) {
  std::vector<uint64_t> v;
  b.ForEach([&](uint64_t bit) { v.push_back(bit); });
  return v;
}

TEST(DirtyBitmap, SetAllRespectsSize) {
  for (uint64_t n : {0ull, 1ull, 2ull, 63ull, 64ull, 65ull, 127ull, 128ull, 129ull, 1000ull, 4097ull}) {
    DirtyBitmap b(n);
    EXPECT_EQ(b.size(), n);
    EXPECT_EQ(b.words(), (n + 63) / 64);
    EXPECT_EQ(b.Count(), 0u);
    b.SetAll();
    EXPECT_EQ(b.Count(), n) << n;
    std::vector<uint64_t> bits = Bits(b);
    ASSERT_EQ(bits.size(), n);
    for (uint64_t i = 0; i < n; ++i) ASSERT_EQ(bits[i], i) << "size " << n;
    b.ClearAll();
    EXPECT_EQ(b.Count(), 0u);
  }
}

TEST(DirtyBitmap, SetTestAndForEachOrder) {
  DirtyBitmap b(300);
  for (uint64_t bit : {299ull, 0ull, 64ull, 63ull, 128ull, 65ull, 64ull}) b.Set(bit);
  EXPECT_EQ(Bits(b), (std::vector<uint64_t>{0, 63, 64, 65, 128, 299}));
  EXPECT_EQ(b.Count(), 6u);
  EXPECT_TRUE(b.Test(299));
  EXPECT_FALSE(b.Test(298));
}

TEST(DirtyBitmap, FetchAndClearIntoMovesAndOrs) {
  DirtyBitmap log(200), out(200);
  log.Set(3);
  log.Set(150);
  out.Set(7);
  out.Set(150);
  log.FetchAndClearInto(out);
  EXPECT_EQ(log.Count(), 0u);
  EXPECT_EQ(Bits(out), (std::vector<uint64_t>{3, 7, 150}));
  log.FetchAndClearInto(out);  // nothing new
  EXPECT_EQ(out.Count(), 3u);
}

TEST(DirtyBitmap, FetchIntoSmallerBitmapKeepsTheRest) {
  // Bits that do not fit `out` stay in the log rather than vanish.
  DirtyBitmap log(256), out(64);
  log.Set(5);
  log.Set(200);
  log.FetchAndClearInto(out);
  EXPECT_EQ(Bits(out), (std::vector<uint64_t>{5}));
  EXPECT_EQ(Bits(log), (std::vector<uint64_t>{200}));
}

TEST(DirtyBitmap, OrWordsAtOffsetAndClipped) {
  DirtyBitmap b(130);  // 3 words
  const uint64_t src[3] = {0x1, 0x8000000000000000ull, 0x3};
  b.OrWords(64, src, 3);  // the third word lies past the end and is ignored
  EXPECT_EQ(Bits(b), (std::vector<uint64_t>{64, 191}));
  b.OrWords(0, src, 1);
  EXPECT_EQ(Bits(b), (std::vector<uint64_t>{0, 64, 191}));
}

TEST(DirtyBitmap, WordExposesRawBits) {
  DirtyBitmap b(130);
  b.Set(1);
  b.Set(65);
  b.Set(129);
  EXPECT_EQ(b.Word(0), 0x2u);
  EXPECT_EQ(b.Word(1), 0x2u);
  EXPECT_EQ(b.Word(2), 0x2u);
}

TEST(DirtyBitmap, ResizeClears) {
  DirtyBitmap b(10);
  b.SetAll();
  b.Resize(100);
  EXPECT_EQ(b.size(), 100u);
  EXPECT_EQ(b.Count(), 0u);
}

TEST(DirtyBitmap, MoveKeepsBits) {
  DirtyBitmap a(100);
  a.Set(42);
  DirtyBitmap b = std::move(a);
  EXPECT_TRUE(b.Test(42));
  EXPECT_EQ(b.Count(), 1u);
}

// Writers set pseudo-random bits (recording each) while a reader keeps fetching
// into an accumulator; afterwards the accumulator must hold exactly the bits set.
// Each writer also stamps a payload before Set(): a fetched bit must find its stamp.
// Writers keep going until the reader has fetched many times, so the two overlap
// however the threads are scheduled.
TEST(DirtyBitmap, ConcurrentWritersLoseNoBit) {
  constexpr uint64_t kBits = 1 << 14;
  constexpr int kWriters = 2, kMinSetsPerWriter = 100000;
  constexpr uint64_t kMinFetches = 500;
  DirtyBitmap log(kBits), acc(kBits), scratch(kBits);
  std::vector<std::atomic<uint32_t>> stamp(kBits);
  std::vector<std::vector<uint64_t>> written(kWriters);
  std::atomic<int> done{0};
  std::atomic<uint64_t> fetches{0}, missing_stamps{0};

  std::vector<std::thread> writers;
  for (int w = 0; w < kWriters; ++w) {
    writers.emplace_back([&, w] {
      uint64_t s = 0x9E3779B97F4A7C15ull * static_cast<uint64_t>(w + 1);
      for (int i = 0; i < kMinSetsPerWriter || fetches.load(std::memory_order_relaxed) < kMinFetches; ++i) {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        uint64_t bit = s % kBits;
        stamp[bit].store(1, std::memory_order_relaxed);
        log.Set(bit);
        written[w].push_back(bit);
      }
      done.fetch_add(1);
    });
  }
  auto fetch = [&] {
    scratch.ClearAll();
    log.FetchAndClearInto(scratch);
    scratch.ForEach([&](uint64_t bit) {
      if (stamp[bit].load(std::memory_order_relaxed) == 0) missing_stamps.fetch_add(1);
      acc.Set(bit);
    });
    fetches.fetch_add(1, std::memory_order_relaxed);
  };
  while (done.load() < kWriters) fetch();
  for (auto& t : writers) t.join();
  fetch();  // whatever was set after the last concurrent fetch

  DirtyBitmap expect(kBits);
  for (const auto& v : written)
    for (uint64_t bit : v) expect.Set(bit);
  EXPECT_EQ(log.Count(), 0u);
  EXPECT_EQ(Bits(acc), Bits(expect));
  EXPECT_EQ(missing_stamps.load(), 0u);
  EXPECT_GT(fetches.load(), kMinFetches);
}

}  // namespace
}  // namespace xm
