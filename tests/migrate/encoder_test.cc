// PageEncoder: every encoding it picks must decode, at the destination, to the
// page it snapshot — including the stateful ones (unchanged, delta, duplicate).
#include <cstring>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "migrate/source/page_encoder.h"

namespace xm {
namespace {

constexpr uint64_t kPages = 64;

// Source guest memory plus a destination that decodes exactly as the receiver does.
struct Fixture {
  std::vector<std::byte> src = std::vector<std::byte>(kPages * kPageSize);
  std::vector<std::byte> dst = std::vector<std::byte>(kPages * kPageSize);
  std::vector<uint64_t> last_hash = std::vector<uint64_t>(kPages, 0);
  std::vector<uint64_t> dst_hash = std::vector<uint64_t>(kPages, 0);
  DeltaCache delta{1 << 20};
  DupIndex dup{1024};
  CodecStats stats;
  PageEncoder enc;
  BatchBuilder batch;
  std::vector<CodecChoice> choices = CodecChoices(kFeatureLz4);
  bool record_streams = true;
  RecordCodec dst_codec;
  size_t batch_pages = kPages;  // pages per batch (record)

  std::byte* page(uint64_t pfn) { return src.data() + pfn * kPageSize; }

  // Sends `pfns` as round `round` in batches of `batch_pages`, compressed with
  // `choices[choice]`, and decodes each at the destination.
  EncodeCounts Round(uint32_t round, const std::vector<uint64_t>& pfns, uint32_t choice = 1, bool last = false) {
    DirtyBitmap sending(kPages);
    for (uint64_t p : pfns) sending.Set(p);
    RoundContext ctx;
    ctx.round = round;
    ctx.last = last;
    ctx.sending = &sending;
    ctx.last_hash = last_hash;
    ctx.delta = &delta;
    ctx.dup = &dup;
    ctx.choices = choices;
    ctx.choice = choice;
    ctx.record_streams = record_streams;
    EncodeCounts counts;
    for (size_t at = 0; at < pfns.size(); at += batch_pages) {
      batch.Reset(round);
      enc.StartBatch(ctx);
      for (size_t i = at; i < std::min(pfns.size(), at + batch_pages); ++i)
        enc.Encode(ctx, pfns[i], page(pfns[i]), batch, counts, stats);
      if (batch.count() > 0) Decode();
    }
    for (const auto& [h, p] : enc.sent_contents()) dup.Insert(h, p);
    enc.sent_contents().clear();
    return counts;
  }

  void Decode() {
    std::vector<uint8_t> body;
    for (const iovec& v : batch.Body())
      body.insert(body.end(), static_cast<uint8_t*>(v.iov_base), static_cast<uint8_t*>(v.iov_base) + v.iov_len);
    PagesView view;
    ASSERT_TRUE(ParsePages(body, view).ok());
    dst_codec.BeginRecord(record_streams);
    for (size_t i = 0; i < view.descs.size(); ++i) {
      const PageDesc& d = view.descs[i];
      const std::byte* dup_src = nullptr;
      if (d.encoding == static_cast<uint8_t>(PageEncoding::kDupRef)) {
        uint64_t ref = DupRefPfn(view.payloads[i]);
        ASSERT_LT(ref, kPages);
        ASSERT_EQ(dst_hash[ref], d.hash) << "DUP_REF to a page the destination holds differently";
        dup_src = dst.data() + ref * kPageSize;
      }
      Status st = DecodePage(d, view.payloads[i], dst.data() + d.pfn * kPageSize, dup_src, &dst_codec);
      ASSERT_TRUE(st.ok()) << st.ToString();
      dst_hash[d.pfn] = d.hash;
    }
  }

  void ExpectSame() { EXPECT_EQ(0, std::memcmp(src.data(), dst.data(), src.size())); }
};

std::vector<uint64_t> All() {
  std::vector<uint64_t> v;
  for (uint64_t p = 0; p < kPages; ++p) v.push_back(p);
  return v;
}

void FillRandom(std::byte* p, uint32_t seed) {
  std::mt19937_64 rng(seed);
  for (size_t i = 0; i < kPageSize; i += 8) {
    uint64_t v = rng();
    std::memcpy(p + i, &v, 8);
  }
}

void FillText(std::byte* p) {
  static const char kText[] = "the quick brown fox jumps over the lazy dog ";
  for (size_t i = 0; i < kPageSize; ++i) p[i] = static_cast<std::byte>(kText[i % (sizeof kText - 1)]);
}

TEST(PageEncoder, FirstRoundPicksZeroLz4AndRawAndDecodesExactly) {
  for (bool streams : {false, true}) {
    SCOPED_TRACE(streams);
    Fixture f;
    f.record_streams = streams;
    for (uint64_t p = 0; p < kPages; ++p) {
      if (p % 3 == 1) FillText(f.page(p));
      if (p % 3 == 2) FillRandom(f.page(p), static_cast<uint32_t>(p));
    }
    f.page(0)[kPageSize - 1] = std::byte{1};  // adversarial: one byte at the very end is not zero
    EncodeCounts c = f.Round(0, All());
    f.ExpectSame();
    EXPECT_GT(c.zero, 0u);
    EXPECT_GT(c.lz4, 0u);
    // Alone, a random page goes RAW; in a stream it went through LZ4, so it is
    // sent as LZ4 (PROTOCOL.md §4, record streams).
    if (streams)
      EXPECT_EQ(c.raw, 0u);
    else
      EXPECT_GT(c.raw, 0u);
    EXPECT_EQ(c.sent(), kPages);
  }
}

TEST(PageEncoder, RewrittenButIdenticalPagesAreNotSentAgain) {
  Fixture f;
  for (uint64_t p = 0; p < kPages; ++p) FillRandom(f.page(p), static_cast<uint32_t>(p));
  f.Round(0, All());
  EncodeCounts c = f.Round(1, All());  // all "dirty", none changed
  EXPECT_EQ(c.unchanged, kPages);
  EXPECT_EQ(c.sent(), 0u);
  f.ExpectSame();
}

TEST(PageEncoder, HotPagesGoAsDeltasFromTheirSecondResend) {
  Fixture f;
  for (uint64_t p = 0; p < kPages; ++p) FillRandom(f.page(p), static_cast<uint32_t>(p + 100));
  f.Round(0, All());
  for (uint32_t round = 1; round <= 3; ++round) {
    for (uint64_t p = 0; p < 8; ++p) {
      uint64_t counter = round * 1000 + p;
      std::memcpy(f.page(p) + 64, &counter, 8);
    }
    EncodeCounts c = f.Round(round, {0, 1, 2, 3, 4, 5, 6, 7});
    f.ExpectSame();
    if (round == 1) {
      EXPECT_EQ(c.delta, 0u);  // no base cached yet
    } else if (round >= 2) {
      EXPECT_EQ(c.delta, 8u);
    }
  }
}

TEST(PageEncoder, TheLastRoundRefreshesDeltaBasesButCachesNoNewPage) {
  // Pages 0-3 were resent before (their bases are cached), 4-7 never were.
  Fixture f;
  for (uint64_t p = 0; p < kPages; ++p) FillRandom(f.page(p), static_cast<uint32_t>(p + 300));
  f.Round(0, All());
  auto touch = [&](uint64_t p, uint64_t v) { std::memcpy(f.page(p) + 128, &v, 8); };
  for (uint64_t p = 0; p < 4; ++p) touch(p, 1);
  f.Round(1, {0, 1, 2, 3});
  EXPECT_EQ(f.delta.pages(), 4u);
  for (uint64_t p = 0; p < 8; ++p) touch(p, 2);
  EncodeCounts c = f.Round(2, {0, 1, 2, 3, 4, 5, 6, 7}, 1, /*last=*/true);
  f.ExpectSame();
  EXPECT_EQ(c.delta, 4u);
  EXPECT_EQ(f.delta.pages(), 4u);  // 4-7 did not enter the cache
  // The bases it has are the versions just sent: a further delta is exact.
  for (uint64_t p = 0; p < 4; ++p) touch(p, 3);
  c = f.Round(3, {0, 1, 2, 3});
  f.ExpectSame();
  EXPECT_EQ(c.delta, 4u);
}

TEST(PageEncoder, DuplicatesReferToPagesTheDestinationHolds) {
  Fixture f;
  // Pages 0..7 identical (non-zero) content: in one batch, 1..7 refer to 0.
  for (uint64_t p = 0; p < 8; ++p) FillRandom(f.page(p), 4242);
  for (uint64_t p = 8; p < kPages; ++p) FillRandom(f.page(p), static_cast<uint32_t>(p));
  EncodeCounts c0 = f.Round(0, All());
  EXPECT_EQ(c0.duplicate, 7u);
  f.ExpectSame();
  // Next round, page 20 becomes a copy of page 30 (not resent): a cross-round reference.
  std::memcpy(f.page(20), f.page(30), kPageSize);
  EncodeCounts c1 = f.Round(1, {20});
  EXPECT_EQ(c1.duplicate, 1u);
  f.ExpectSame();
}

TEST(PageEncoder, NeverRefersToAPageBeingResentThisRound) {
  Fixture f;
  for (uint64_t p = 0; p < kPages; ++p) FillRandom(f.page(p), static_cast<uint32_t>(p));
  f.Round(0, All());
  // Page 5 takes page 6's old content while page 6 changes in the same round:
  // the destination's page 6 may already be new when page 5 is decoded.
  std::memcpy(f.page(5), f.page(6), kPageSize);
  FillRandom(f.page(6), 999);
  EncodeCounts c = f.Round(1, {6, 5});
  EXPECT_EQ(c.duplicate, 0u);
  f.ExpectSame();
}

TEST(PageEncoder, TheFinalRoundNeverProbes) {
  // The governor's choice is "none"; 64 batches of one page, two of which would
  // be probes in a pre-copy round.
  auto round = [](bool last) {
    Fixture f;
    f.batch_pages = 1;
    f.choices = CodecChoices(kFeatureLz4 | kFeatureZstd);
    for (uint64_t p = 0; p < kPages; ++p) FillText(f.page(p));
    for (uint64_t p = 0; p < kPages; ++p) f.page(p)[p] = std::byte{0x7f};
    EncodeCounts c = f.Round(1, All(), /*choice=*/0, last);
    f.ExpectSame();
    return c;
  };
  EncodeCounts final_round = round(true), precopy = round(false);
  EXPECT_EQ(final_round.lz4 + final_round.zstd, 0u) << "the guest is paused: no batch is spent measuring";
  EXPECT_EQ(final_round.raw, kPages);
  EXPECT_GT(precopy.lz4 + precopy.zstd, 0u) << "the same pages are probed in a pre-copy round";
}

TEST(PageEncoder, CompressionOffStillProbesAndStaysCorrect) {
  Fixture f;
  f.batch_pages = 1;  // one batch in 32 is a probe
  for (uint64_t p = 0; p < kPages; ++p) FillText(f.page(p));
  for (uint64_t p = 0; p < kPages; ++p) f.page(p)[p] = std::byte{0x7f};  // distinct pages, no dups
  EncodeCounts c = f.Round(0, All(), /*compress=*/false);
  f.ExpectSame();
  EXPECT_GT(c.raw, c.lz4);
  EXPECT_GE(c.lz4, 1u);  // one probe batch in 32
  EXPECT_GT(f.stats.by_choice[1].in.load(), 0u);
}

// Memory without duplicates stops paying for dup lookups; duplicates turn them
// back on. Pages are encoded from one buffer with a distinct first word each.
TEST(PageEncoder, TheBatchsChoiceCompressesAndOtherChoicesAreProbed) {
  for (uint32_t choice : {1u, 2u}) {  // LZ4; zstd at its cheapest level
    SCOPED_TRACE(choice);
    Fixture f;
    f.batch_pages = 1;  // one batch in 32 is a probe
    f.choices = CodecChoices(kFeatureLz4 | kFeatureZstd);
    ASSERT_GE(f.choices.size(), 3u);
    for (uint64_t p = 0; p < kPages; ++p) FillText(f.page(p));
    for (uint64_t p = 0; p < kPages; ++p) f.page(p)[p] = std::byte{0x7f};  // distinct pages, no dups
    EncodeCounts c = f.Round(0, All(), choice);
    f.ExpectSame();
    EXPECT_EQ(c.zstd + c.lz4, kPages);
    if (choice == 1) {
      EXPECT_GT(c.lz4, c.zstd);
      EXPECT_GE(c.zstd, 1u);  // probes: one batch in 32 tries another choice
    } else {
      EXPECT_EQ(c.zstd, kPages);  // the probes of this short run are zstd levels too
    }
    EXPECT_GT(f.stats.by_choice[choice].in.load(), 0u);
    EXPECT_GT(f.stats.by_choice[choice == 1 ? 2 : 3].in.load(), 0u) << "the probed choice is measured";
  }
}

// The governor's rule on made-up estimates: none, LZ4, zstd levels 1 and 3.
TEST(ChooseCodec, FollowsTheLinkRateAndTheSpareCpu) {
  std::vector<CodecEstimate> est{{}, {0.3, 0.55, true}, {1.2, 0.32, true}, {2.5, 0.30, true}};
  EXPECT_EQ(ChooseCodec(est, 10.0), 0u) << "a link faster than every compressor: raw";
  EXPECT_EQ(ChooseCodec(est, 1.2), 1u) << "10 Gbit/s: LZ4 keeps up, zstd would not";
  EXPECT_EQ(ChooseCodec(est, 0.125), 3u) << "1 Gbit/s: level 3's CPU hides behind the link";
  est[3].ns_per_byte = 4.0;  // less spare CPU (more load, fewer workers)
  EXPECT_EQ(ChooseCodec(est, 0.125), 2u) << "1 Gbit/s, busy CPU: level 1";
  est[2].known = est[3].known = false;
  EXPECT_EQ(ChooseCodec(est, 0.125), 1u) << "unmeasured choices are never picked";
  est[1].ratio = 1.0;
  EXPECT_EQ(ChooseCodec(est, 0.125), 0u) << "a method that saves nothing costs CPU for no gain";
}

TEST(PageEncoder, DupLookupsGoQuietOnMemoryWithoutDuplicatesAndWakeOnThem) {
  constexpr uint64_t kDistinct = PageEncoder::kDupIdleAfter + 32 * 100;
  constexpr uint64_t kTotal = kDistinct + 256;
  std::vector<uint64_t> last_hash(kTotal, 0);
  DirtyBitmap sending(kTotal);
  DupIndex dup{1024};
  RoundContext ctx;
  ctx.sending = &sending;
  ctx.last_hash = last_hash;
  ctx.dup = &dup;
  ctx.choices = CodecChoices(0);
  CodecStats stats;
  PageEncoder enc;
  BatchBuilder batch;
  EncodeCounts counts;
  std::vector<std::byte> page(kPageSize);
  FillRandom(page.data(), 7);
  auto send = [&](uint64_t pfn) {
    if (batch.count() == 0 || batch.full()) {
      batch.Reset(0);
      enc.StartBatch(ctx);
    }
    enc.Encode(ctx, pfn, page.data(), batch, counts, stats);
  };
  for (uint64_t pfn = 0; pfn < PageEncoder::kDupIdleAfter; ++pfn) {
    std::memcpy(page.data(), &pfn, sizeof pfn);
    send(pfn);
  }
  EXPECT_FALSE(enc.dup_active());
  EXPECT_EQ(enc.sent_contents().size(), PageEncoder::kDupIdleAfter);
  // Quiet: only one page in kDupProbeEvery is looked up and remembered.
  for (uint64_t pfn = PageEncoder::kDupIdleAfter; pfn < kDistinct; ++pfn) {
    std::memcpy(page.data(), &pfn, sizeof pfn);
    send(pfn);
  }
  EXPECT_EQ(enc.sent_contents().size(), PageEncoder::kDupIdleAfter + 100);
  EXPECT_EQ(counts.duplicate, 0u);
  // A batch of identical pages: the second probe finds the first, lookups resume,
  // and the rest of the batch goes as references.
  batch.Reset(0);
  enc.StartBatch(ctx);
  std::memset(page.data(), 0x5c, 8);
  for (uint64_t pfn = kDistinct; pfn < kTotal; ++pfn) send(pfn);
  EXPECT_TRUE(enc.dup_active());
  EXPECT_GE(counts.duplicate, 256u - 2 * PageEncoder::kDupProbeEvery);
  EXPECT_EQ(counts.raw + counts.duplicate, kTotal);
}

}  // namespace
}  // namespace xm
