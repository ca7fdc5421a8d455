// Every page compression method in the table (PageCompressors), at every level
// the governor may pick: round trips through CompressInPlace and DecodePage,
// and the decoder's refusal of corrupt, short and long payloads. A method added
// to the table is covered here without touching this file. Plus what is
// particular to zstd's frames, and CodecChoices.
#include "migrate/common/codecs/page_compressor.h"

#include <gtest/gtest.h>
#include <zstd.h>

#include <algorithm>
#include <string>
#include <vector>

#include "dirtylog/workload.h"
#include "tests/codec/flip_check.h"
#include "migrate/common/page_codec.h"
#include "tests/support/stateless_batch.h"
#include "transport/messages.h"

namespace xm {
namespace {

using PageBuf = std::vector<std::byte>;

PageBuf FillOf(Fill f, uint64_t pfn) {
  PageBuf p(kPageSize);
  FillPage(f, pfn, p.data(), kPageSize);
  return p;
}
PageBuf Text() { return FillOf(Fill::kMixed, 4); }  // pfn%3 == 1: the mixed fill's text page

std::string Name(const CodecChoice& c) { return std::string(c.method->name) + "_level" + std::to_string(c.level); }

std::vector<CodecChoice> AllMethodsAllLevels() {
  std::vector<CodecChoice> all = CodecChoices(~0ull);
  all.erase(all.begin());  // "none"
  return all;
}

struct Encoded {
  PageDesc desc;
  std::vector<uint8_t> payload;
};

Encoded EncodeWith(const CodecChoice& c, const PageBuf& page) {
  PageBuf slot = page;
  std::vector<uint8_t> scratch(kPageSize);
  Encoded e;
  e.desc.pfn = 7;
  e.desc.hash = PageHash(page.data());
  e.desc.payload_len = CompressInPlace(c, slot.data(), scratch.data());
  e.desc.encoding = static_cast<uint8_t>(e.desc.payload_len < kPageSize ? c.method->encoding : PageEncoding::kRaw);
  const auto* b = reinterpret_cast<const uint8_t*>(slot.data());
  e.payload.assign(b, b + e.desc.payload_len);
  return e;
}

class Method : public ::testing::TestWithParam<CodecChoice> {};

TEST_P(Method, PagesDecodeToTheOriginalAndCompressOnlyWhenItSavesAnEighth) {
  std::vector<PageBuf> pages{Text(), FillOf(Fill::kRandom, 3), PageBuf(kPageSize, std::byte{0xFF})};
  PageBuf one(kPageSize);
  one.back() = std::byte{1};
  pages.push_back(one);
  PageBuf stripes(kPageSize);
  for (size_t i = 0; i < kPageSize; ++i) stripes[i] = std::byte(static_cast<uint8_t>(i / 64));
  pages.push_back(stripes);
  for (size_t i = 0; i < pages.size(); ++i) {
    SCOPED_TRACE(i);
    Encoded e = EncodeWith(GetParam(), pages[i]);
    EXPECT_LE(e.desc.payload_len == kPageSize ? 0 : e.desc.payload_len, kPageSize - kPageSize / 8);
    PageBuf out(kPageSize, std::byte{0xCC});
    Status st = DecodePage(e.desc, e.payload, out.data());
    ASSERT_TRUE(st.ok()) << st.ToString();
    EXPECT_EQ(out, pages[i]);
  }
  EXPECT_LT(EncodeWith(GetParam(), Text()).desc.payload_len, kPageSize * 3 / 4) << "text compresses";
  EXPECT_EQ(EncodeWith(GetParam(), FillOf(Fill::kRandom, 3)).desc.payload_len, kPageSize) << "random stays raw";
}

TEST_P(Method, FlippedBitNeverYieldsAWrongPage) {
  const PageBuf page = Text();
  Encoded e = EncodeWith(GetParam(), page);
  ASSERT_EQ(e.desc.encoding, static_cast<uint8_t>(GetParam().method->encoding));
  ExpectFlipsNeverYieldAWrongPage(e.desc, e.payload, page);
}

TEST_P(Method, GarbageAndTruncatedPayloadsAreProtocolErrors) {
  Encoded e = EncodeWith(GetParam(), Text());
  std::vector<std::vector<uint8_t>> bad{std::vector<uint8_t>(100, 0xFF), std::vector<uint8_t>(1, 0),
                                        std::vector<uint8_t>(e.payload.begin(), e.payload.end() - 1)};
  for (const auto& payload : bad) {
    PageDesc d = e.desc;
    d.payload_len = static_cast<uint32_t>(payload.size());
    PageBuf out(kPageSize + 64, std::byte{0x5A});
    Status st = DecodePage(d, payload, out.data());
    EXPECT_EQ(st.code(), Code::kProtocol) << st.ToString();
    EXPECT_NE(st.message().find(GetParam().method->name), std::string::npos) << st.message();
    for (size_t i = kPageSize; i < out.size(); ++i) ASSERT_EQ(out[i], std::byte{0x5A}) << "wrote past the page";
  }
}

// Record streams (PROTOCOL.md §4): one record's pages of a method, in order.
struct StreamRecord {
  std::vector<PageDesc> descs;
  std::vector<std::vector<uint8_t>> payloads;
};

StreamRecord EncodeRecord(const CodecChoice& c, const std::vector<PageBuf>& pages) {
  RecordCodec codec;
  codec.BeginRecord(true);
  StreamRecord r;
  std::vector<uint8_t> scratch(kMaxPayload);
  for (size_t i = 0; i < pages.size(); ++i) {
    std::vector<std::byte> slot(kMaxPayload);
    std::copy(pages[i].begin(), pages[i].end(), slot.begin());
    PageDesc d;
    d.pfn = i;
    d.hash = PageHash(pages[i].data());
    d.payload_len = codec.Compress(c, slot.data(), scratch.data());
    EXPECT_GT(d.payload_len, 0u) << "a stream sends every page it took, compressed or not";
    EXPECT_LE(d.payload_len, c.method->encoding == PageEncoding::kLz4 ? MaxLz4Payload() : MaxZstdPayload());
    d.encoding = static_cast<uint8_t>(c.method->encoding);
    const auto* b = reinterpret_cast<const uint8_t*>(slot.data());
    r.payloads.emplace_back(b, b + d.payload_len);
    r.descs.push_back(d);
  }
  return r;
}

size_t PayloadBytes(const StreamRecord& r) {
  size_t n = 0;
  for (const auto& p : r.payloads) n += p.size();
  return n;
}

using testing::OverlappingTextPages;

TEST_P(Method, ARecordStreamDecodesEveryPageInOrderAcrossManyPages) {
  // 600 pages: more than either end's history buffer holds, so both wrap; text,
  // random and zero-ish pages interleaved as in the mixed fill.
  std::vector<PageBuf> pages;
  for (uint64_t i = 0; i < 600; ++i) pages.push_back(FillOf(i % 2 ? Fill::kRandom : Fill::kMixed, i % 2 ? i : 3 * i + 1));
  StreamRecord r = EncodeRecord(GetParam(), pages);
  RecordCodec dec;
  for (int pass = 0; pass < 2; ++pass) {  // the same codec, begun afresh for a second record
    dec.BeginRecord(true);
    for (size_t i = 0; i < pages.size(); ++i) {
      PageBuf out(kPageSize + 64, std::byte{0x5A});
      Status st = DecodePage(r.descs[i], r.payloads[i], out.data(), nullptr, &dec);
      ASSERT_TRUE(st.ok()) << "page " << i << ": " << st.ToString();
      ASSERT_TRUE(std::equal(pages[i].begin(), pages[i].end(), out.begin())) << i;
      for (size_t j = kPageSize; j < out.size(); ++j) ASSERT_EQ(out[j], std::byte{0x5A}) << "wrote past the page";
    }
  }
}

TEST_P(Method, ARecordStreamUsesItsEarlierPages) {
  std::vector<PageBuf> pages = OverlappingTextPages(16);
  StreamRecord stream = EncodeRecord(GetParam(), pages);
  size_t alone = 0;
  for (const PageBuf& p : pages) alone += EncodeWith(GetParam(), p).desc.payload_len;
  EXPECT_LT(PayloadBytes(stream) * 2, alone) << "stream " << PayloadBytes(stream) << " bytes, alone " << alone;
}

TEST_P(Method, ARecordStreamPageIsRefusedOutOfOrderOrCorrupt) {
  std::vector<PageBuf> pages = OverlappingTextPages(8);
  StreamRecord r = EncodeRecord(GetParam(), pages);
  {  // the third page without the two before it: it refers to bytes this decoder never saw
    RecordCodec dec;
    dec.BeginRecord(true);
    PageBuf out(kPageSize);
    Status st = DecodePage(r.descs[2], r.payloads[2], out.data(), nullptr, &dec);
    EXPECT_FALSE(st.ok());
    EXPECT_TRUE(st.code() == Code::kProtocol || st.code() == Code::kIntegrity) << st.ToString();
  }
  for (size_t at : {size_t{0}, r.payloads[1].size() / 2, r.payloads[1].size() - 1}) {  // one flipped bit in page 1
    RecordCodec dec;
    dec.BeginRecord(true);
    PageBuf out(kPageSize + 64, std::byte{0x5A});
    ASSERT_TRUE(DecodePage(r.descs[0], r.payloads[0], out.data(), nullptr, &dec).ok());
    std::vector<uint8_t> bad = r.payloads[1];
    bad[at] ^= 0x10;
    Status st = DecodePage(r.descs[1], bad, out.data(), nullptr, &dec);
    EXPECT_FALSE(st.ok()) << "flipped byte " << at;
    EXPECT_TRUE(st.code() == Code::kProtocol || st.code() == Code::kIntegrity) << st.ToString();
    for (size_t j = kPageSize; j < out.size(); ++j) ASSERT_EQ(out[j], std::byte{0x5A}) << "wrote past the page";
  }
}

INSTANTIATE_TEST_SUITE_P(Table, Method, ::testing::ValuesIn(AllMethodsAllLevels()),
                         [](const auto& info) { return Name(info.param); });

PageDesc ZstdDesc(const std::vector<uint8_t>& payload) {
  PageDesc d;
  d.pfn = 0x1f2;
  d.encoding = static_cast<uint8_t>(PageEncoding::kZstd);
  d.payload_len = static_cast<uint32_t>(payload.size());
  return d;
}

std::vector<uint8_t> ZstdFrame(size_t n) {
  std::vector<char> src(n, 'z');
  std::vector<uint8_t> out(ZSTD_compressBound(n));
  size_t len = ZSTD_compress(out.data(), out.size(), src.data(), n, 1);
  EXPECT_FALSE(ZSTD_isError(len));
  out.resize(len);
  return out;
}

TEST(Zstd, FrameThatDecodesShortIsAProtocolError) {
  std::vector<uint8_t> payload = ZstdFrame(4000);
  PageBuf out(kPageSize);
  Status st = DecodePage(ZstdDesc(payload), payload, out.data());
  EXPECT_EQ(st.code(), Code::kProtocol);
  EXPECT_NE(st.message().find("ZSTD payload decodes to 4000 bytes, want 4096"), std::string::npos) << st.message();
}

TEST(Zstd, FrameThatDecodesLongIsRefusedWithoutWritingPastThePage) {
  std::vector<uint8_t> payload = ZstdFrame(1 << 20);
  PageBuf out(kPageSize + 64, std::byte{0x5A});
  Status st = DecodePage(ZstdDesc(payload), payload, out.data());
  EXPECT_EQ(st.code(), Code::kProtocol);
  EXPECT_NE(st.message().find("ZSTD payload is corrupt"), std::string::npos) << st.message();
  for (size_t i = kPageSize; i < out.size(); ++i) ASSERT_EQ(out[i], std::byte{0x5A}) << "wrote past the page";
}

TEST(Zstd, TwoFramesOfHalfAPageEachAreStillOnePageCheckedByItsHash) {
  // zstd decodes concatenated frames; the result must still be exactly the page the hash names.
  std::vector<uint8_t> payload = ZstdFrame(kPageSize / 2);
  std::vector<uint8_t> twice = payload;
  twice.insert(twice.end(), payload.begin(), payload.end());
  PageBuf want(kPageSize, std::byte{'z'});
  PageDesc d = ZstdDesc(twice);
  d.hash = PageHash(want.data());
  PageBuf out(kPageSize);
  Status st = DecodePage(d, twice, out.data());
  ASSERT_TRUE(st.ok()) << st.ToString();
  EXPECT_EQ(out, want);
}

TEST(Zstd, AStreamPageThatDecodesLongIsRefused) {
  // Two pages' worth of one stream sent as one page's payload.
  std::vector<PageBuf> pages = OverlappingTextPages(2);
  const std::vector<CodecChoice> zstd = CodecChoices(kFeatureZstd);
  ASSERT_GE(zstd.size(), 2u);
  StreamRecord r = EncodeRecord(zstd[1], pages);
  std::vector<uint8_t> both = r.payloads[0];
  both.insert(both.end(), r.payloads[1].begin(), r.payloads[1].end());
  PageDesc d = r.descs[0];
  d.payload_len = static_cast<uint32_t>(both.size());
  RecordCodec dec;
  dec.BeginRecord(true);
  PageBuf out(kPageSize + 64, std::byte{0x5A});
  Status st = DecodePage(d, both, out.data(), nullptr, &dec);
  EXPECT_EQ(st.code(), Code::kProtocol);
  EXPECT_NE(st.message().find("decodes to more than 4096 bytes"), std::string::npos) << st.message();
  for (size_t j = kPageSize; j < out.size(); ++j) ASSERT_EQ(out[j], std::byte{0x5A}) << "wrote past the page";
}

TEST(CodecChoices, NoneFirstThenOnlyTheNegotiatedMethodsLevelByLevel) {
  std::vector<CodecChoice> none = CodecChoices(0);
  ASSERT_EQ(none.size(), 1u);
  EXPECT_EQ(none[0].method, nullptr);
  // An older peer without the ZSTD bit (PROTOCOL.md §3): LZ4 only.
  std::vector<CodecChoice> lz4 = CodecChoices(kFeatureLz4 | kFeatureDelta | kFeatureDupRef);
  ASSERT_EQ(lz4.size(), 2u);
  EXPECT_EQ(lz4[1].method->encoding, PageEncoding::kLz4);
  std::vector<CodecChoice> both = CodecChoices(kFeatureLz4 | kFeatureZstd);
  ASSERT_GE(both.size(), 4u);
  EXPECT_EQ(both[1].method->encoding, PageEncoding::kLz4);
  int last = -100;
  for (size_t i = 2; i < both.size(); ++i) {
    EXPECT_EQ(both[i].method->encoding, PageEncoding::kZstd);
    EXPECT_GT(both[i].level, last) << "cheapest level first";
    last = both[i].level;
  }
}

TEST(CompressorFor, FindsEachTableEntryAndNothingElse) {
  for (const PageCompressor* c : PageCompressors()) EXPECT_EQ(CompressorFor(c->encoding), c);
  for (PageEncoding e : {PageEncoding::kZero, PageEncoding::kRaw, PageEncoding::kDelta, PageEncoding::kDupRef})
    EXPECT_EQ(CompressorFor(e), nullptr);
}

}  // namespace
}  // namespace xm
