// Page codec round trips: BatchBuilder -> record framing -> ParsePages ->
// DecodePage for zero, raw and LZ4 pages, including adversarial contents, and
// the decoder's refusal of corrupt payloads.
#include "migrate/common/page_codec.h"
#include "tests/support/stateless_batch.h"

#include <lz4.h>
#include <xxhash.h>
#include <sys/socket.h>

#include <gtest/gtest.h>

#include <cstring>
#include <thread>
#include <vector>

#include "dirtylog/workload.h"
#include "tests/codec/flip_check.h"
#include "transport/record.h"
#include "transport/socket_stream.h"

namespace xm {
namespace {

using PageBuf = std::vector<std::byte>;
using testing::Flatten;

PageBuf Filled(uint8_t v) { return PageBuf(kPageSize, std::byte{v}); }

PageBuf Random(uint64_t pfn) {
  PageBuf p(kPageSize);
  FillPage(Fill::kRandom, pfn, p.data(), kPageSize);
  return p;
}

PageBuf Text(uint64_t pfn) {
  PageBuf p(kPageSize);
  FillPage(Fill::kMixed, pfn * 3 + 1, p.data(), kPageSize);  // pfn%3 == 1 is the text page of the mixed fill
  return p;
}

PageBuf LastByteSet() {
  PageBuf p(kPageSize);
  p.back() = std::byte{1};
  return p;
}

PageBuf FirstByteSet() {
  PageBuf p(kPageSize);
  p.front() = std::byte{0x80};
  return p;
}

PageBuf Stripes() {
  PageBuf p(kPageSize);
  for (size_t i = 0; i < kPageSize; ++i) p[i] = std::byte(static_cast<uint8_t>(i / 64));
  return p;
}

struct Case {
  const char* name;
  PageBuf page;
  PageEncoding with_lz4;  // expected encoding when the builder may compress
};

std::vector<Case> AdversarialPages() {
  return {
      {"zero", PageBuf(kPageSize), PageEncoding::kZero},
      {"all 0xFF", Filled(0xFF), PageEncoding::kLz4},
      {"one non-zero byte at the end", LastByteSet(), PageEncoding::kLz4},
      {"one non-zero byte at the start", FirstByteSet(), PageEncoding::kLz4},
      {"incompressible", Random(7), PageEncoding::kRaw},
      {"highly compressible stripes", Stripes(), PageEncoding::kLz4},
      {"text", Text(5), PageEncoding::kLz4},
      {"all 0x01", Filled(0x01), PageEncoding::kLz4},
  };
}

TEST(PageHash, IsTheLow64BitsOfXxh3_128AsProtocolVersion2Says) {
  PageBuf page = LastByteSet();
  XXH128_hash_t want = XXH3_128bits(page.data(), kPageSize);
  EXPECT_EQ(PageHash(page.data()), want.low64);
  Hash128 full = PageHash128(page.data());
  EXPECT_EQ(full.lo, want.low64);
  EXPECT_EQ(full.hi, want.high64);
}

TEST(PageHash, ZeroPageHashIsTheHashOfAZeroPage) {
  PageBuf zero(kPageSize);
  EXPECT_EQ(ZeroPageHash(), PageHash(zero.data()));
  EXPECT_NE(PageHash(LastByteSet().data()), ZeroPageHash());
}

TEST(IsZeroPage, AnySingleNonZeroByteCounts) {
  PageBuf p(kPageSize);
  EXPECT_TRUE(IsZeroPage(p.data()));
  for (size_t i = 0; i < kPageSize; ++i) {
    p[i] = std::byte{0x40};
    ASSERT_FALSE(IsZeroPage(p.data())) << "byte " << i;
    p[i] = std::byte{0};
  }
}

class RoundTrip : public ::testing::TestWithParam<bool> {};

TEST_P(RoundTrip, AdversarialPagesDecodeToTheOriginal) {
  const bool try_lz4 = GetParam();
  std::vector<Case> cases = AdversarialPages();
  BatchBuilder b;
  b.Reset(3);
  EncodeCounts counts;
  std::vector<uint64_t> hashes;
  for (size_t i = 0; i < cases.size(); ++i) hashes.push_back(xm::testing::AddPage(b, 100 + i, cases[i].page.data(), try_lz4, counts));
  EXPECT_EQ(b.count(), cases.size());
  std::vector<uint8_t> body = Flatten(b.Body());
  EXPECT_EQ(body.size(), b.body_bytes());

  PagesView v;
  Status st = ParsePages(body, v);
  ASSERT_TRUE(st.ok()) << st.ToString();
  EXPECT_EQ(v.round, 3u);
  ASSERT_EQ(v.descs.size(), cases.size());
  uint64_t zero = 0, raw = 0, lz4 = 0;
  for (size_t i = 0; i < cases.size(); ++i) {
    const PageDesc& d = v.descs[i];
    SCOPED_TRACE(cases[i].name);
    EXPECT_EQ(d.pfn, 100 + i);
    EXPECT_EQ(d.hash, hashes[i]);
    EXPECT_EQ(d.hash, PageHash(cases[i].page.data()));
    PageEncoding want = cases[i].with_lz4;
    if (!try_lz4 && want == PageEncoding::kLz4) want = PageEncoding::kRaw;
    EXPECT_EQ(d.encoding, static_cast<uint8_t>(want));
    if (want == PageEncoding::kLz4) {
      EXPECT_LE(d.payload_len, kPageSize - kPageSize / 8) << "LZ4 is only used when it saves 1/8";
    }
    zero += want == PageEncoding::kZero;
    raw += want == PageEncoding::kRaw;
    lz4 += want == PageEncoding::kLz4;
    PageBuf out = Filled(0xCC);  // stale contents must be overwritten, zero pages included
    st = DecodePage(d, v.payloads[i], out.data());
    ASSERT_TRUE(st.ok()) << st.ToString();
    EXPECT_EQ(out, cases[i].page);
  }
  EXPECT_EQ(counts.zero, zero);
  EXPECT_EQ(counts.raw, raw);
  EXPECT_EQ(counts.lz4, lz4);
  EXPECT_EQ(counts.sent(), cases.size());
}

INSTANTIATE_TEST_SUITE_P(Lz4, RoundTrip, ::testing::Bool(),
                         [](const auto& info) { return info.param ? "WithLz4" : "RawOnly"; });

TEST(BatchBuilder, SnapshotsThePageWhenAdded) {
  // A running guest may write the page after Add: what was hashed must be what is sent.
  PageBuf page = Random(1), original = page;
  BatchBuilder b;
  EncodeCounts c;
  uint64_t h = xm::testing::AddPage(b, 9, page.data(), false, c);
  std::memset(page.data(), 0x77, kPageSize);
  std::vector<uint8_t> body = Flatten(b.Body());
  PagesView v;
  ASSERT_TRUE(ParsePages(body, v).ok());
  PageBuf out(kPageSize);
  ASSERT_TRUE(DecodePage(v.descs[0], v.payloads[0], out.data()).ok());
  EXPECT_EQ(out, original);
  EXPECT_EQ(h, PageHash(original.data()));
}

TEST(BatchBuilder, FullBatchAndReset) {
  BatchBuilder b;
  b.Reset(7);
  EncodeCounts c;
  std::vector<PageBuf> pages;
  for (uint32_t i = 0; i < BatchBuilder::kMaxBatchPages; ++i) {
    pages.push_back(i % 4 == 0 ? PageBuf(kPageSize) : i % 4 == 1 ? Text(i) : Random(i));
    EXPECT_FALSE(b.full());
    xm::testing::AddPage(b, i * 2, pages.back().data(), true, c);
  }
  EXPECT_TRUE(b.full());
  std::vector<uint8_t> body = Flatten(b.Body());
  PagesView v;
  ASSERT_TRUE(ParsePages(body, v).ok());
  ASSERT_EQ(v.descs.size(), BatchBuilder::kMaxBatchPages);
  PageBuf out(kPageSize);
  for (uint32_t i = 0; i < v.descs.size(); ++i) {
    ASSERT_TRUE(DecodePage(v.descs[i], v.payloads[i], out.data()).ok()) << i;
    ASSERT_EQ(out, pages[i]) << i;
  }
  b.Reset(8);
  EXPECT_EQ(b.count(), 0u);
  EXPECT_FALSE(b.full());
  xm::testing::AddPage(b, 1, pages[0].data(), true, c);
  body = Flatten(b.Body());
  ASSERT_TRUE(ParsePages(body, v).ok());
  EXPECT_EQ(v.round, 8u);
  EXPECT_EQ(v.descs.size(), 1u);
}

TEST(BatchBuilder, AllZeroBatchHasNoPayloadBuffer) {
  BatchBuilder b;
  EncodeCounts c;
  PageBuf zero(kPageSize);
  for (int i = 0; i < 3; ++i) xm::testing::AddPage(b, i, zero.data(), true, c);
  EXPECT_EQ(b.Body().size(), 1u);
  EXPECT_EQ(b.body_bytes(), sizeof(PagesHeader) + 3 * sizeof(PageDesc));
}

TEST(PageCodec, ThroughRecordFramingOverASocket) {
  int fds[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
  SocketStream tx{UniqueFd(fds[0])}, rx{UniqueFd(fds[1])};
  std::vector<Case> cases = AdversarialPages();
  BatchBuilder b;
  b.Reset(1);
  EncodeCounts c;
  for (size_t i = 0; i < cases.size(); ++i) xm::testing::AddPage(b, i, cases[i].page.data(), true, c);
  std::thread sender([&] { EXPECT_TRUE(WriteRecord(tx, RecordType::kPages, b.Body()).ok()); });
  Record rec;
  ASSERT_TRUE(ReadRecord(rx, rec).ok());
  sender.join();
  ASSERT_EQ(rec.type, RecordType::kPages);
  PagesView v;
  ASSERT_TRUE(ParsePages(rec.body, v).ok());
  PageBuf out(kPageSize);
  for (size_t i = 0; i < cases.size(); ++i) {
    ASSERT_TRUE(DecodePage(v.descs[i], v.payloads[i], out.data()).ok()) << cases[i].name;
    EXPECT_EQ(out, cases[i].page) << cases[i].name;
  }
}

// The PAGES record hash leaves payloads to the page hashes (PROTOCOL.md §2): a
// payload corrupted in transit passes framing and is caught when decoded.
TEST(PageCodec, PayloadCorruptedAfterFramingIsCaughtByThePageHash) {
  std::vector<Case> cases = AdversarialPages();
  BatchBuilder b;
  b.Reset(1);
  EncodeCounts c;
  for (size_t i = 0; i < cases.size(); ++i) xm::testing::AddPage(b, i, cases[i].page.data(), true, c);
  RecordHeader h = MakeHeader(RecordType::kPages, b.Body());
  const std::vector<uint8_t> body = Flatten(b.Body());
  PagesView v;
  ASSERT_TRUE(ParsePages(body, v).ok());
  for (size_t i = 0; i < cases.size(); ++i) {
    if (v.payloads[i].empty()) continue;
    std::vector<uint8_t> bad = body;
    size_t at = static_cast<size_t>(v.payloads[i].data() - body.data()) + v.payloads[i].size() / 2;
    bad[at] ^= 0x04;
    EXPECT_EQ(RecordBodyHash(h.type, bad), h.body_hash) << "payloads are not in the record hash";
    PagesView bv;
    ASSERT_TRUE(ParsePages(bad, bv).ok());
    PageBuf out(kPageSize);
    Status st = DecodePage(bv.descs[i], bv.payloads[i], out.data());
    EXPECT_TRUE(st.code() == Code::kIntegrity || st.code() == Code::kProtocol) << cases[i].name << ": " << st.ToString();
  }
}

// One page encoded alone; returns its descriptor and payload.
struct Encoded {
  PageDesc desc;
  std::vector<uint8_t> payload;
};
Encoded EncodeOne(const PageBuf& page, bool try_lz4) {
  BatchBuilder b;
  EncodeCounts c;
  xm::testing::AddPage(b, 5, page.data(), try_lz4, c);
  std::vector<uint8_t> body = Flatten(b.Body());
  PagesView v;
  EXPECT_TRUE(ParsePages(body, v).ok());
  return {v.descs[0], {v.payloads[0].begin(), v.payloads[0].end()}};
}

TEST(DecodePage, FlippedRawByteIsAnIntegrityError) {
  Encoded e = EncodeOne(Random(3), false);
  ASSERT_EQ(e.desc.encoding, static_cast<uint8_t>(PageEncoding::kRaw));
  for (size_t at : {size_t{0}, size_t{2048}, size_t{kPageSize - 1}}) {
    std::vector<uint8_t> bad = e.payload;
    bad[at] ^= 0x10;
    PageBuf out(kPageSize);
    Status st = DecodePage(e.desc, bad, out.data());
    EXPECT_EQ(st.code(), Code::kIntegrity) << at;
    EXPECT_NE(st.message().find("pfn 5: page hash mismatch"), std::string::npos) << st.message();
  }
}

TEST(DecodePage, FlippedLz4BitNeverYieldsAWrongPage) {
  const PageBuf page = Text(2);
  Encoded e = EncodeOne(page, true);
  ASSERT_EQ(e.desc.encoding, static_cast<uint8_t>(PageEncoding::kLz4));
  ExpectFlipsNeverYieldAWrongPage(e.desc, e.payload, page);
}

TEST(DecodePage, WrongHashInDescriptor) {
  for (const PageBuf& page : {PageBuf(kPageSize), Random(4), Text(4)}) {
    Encoded e = EncodeOne(page, true);
    e.desc.hash ^= 1;
    PageBuf out(kPageSize);
    EXPECT_EQ(DecodePage(e.desc, e.payload, out.data()).code(), Code::kIntegrity);
  }
}

PageDesc Lz4Desc(const std::vector<uint8_t>& payload) {
  PageDesc d;
  d.pfn = 0x1f2;
  d.encoding = static_cast<uint8_t>(PageEncoding::kLz4);
  d.payload_len = static_cast<uint32_t>(payload.size());
  return d;
}

std::vector<uint8_t> Compress(size_t n, uint8_t fill) {
  std::vector<char> src(n, static_cast<char>(fill));
  std::vector<uint8_t> out(LZ4_compressBound(static_cast<int>(n)));
  int len = LZ4_compress_default(src.data(), reinterpret_cast<char*>(out.data()), static_cast<int>(n),
                                 static_cast<int>(out.size()));
  out.resize(static_cast<size_t>(len));
  return out;
}

TEST(DecodePage, Lz4ThatDecodesShortIsAProtocolError) {
  std::vector<uint8_t> payload = Compress(4000, 'a');
  PageBuf out(kPageSize);
  Status st = DecodePage(Lz4Desc(payload), payload, out.data());
  EXPECT_EQ(st.code(), Code::kProtocol);
  EXPECT_NE(st.message().find("decodes to 4000 bytes, want 4096"), std::string::npos) << st.message();
}

TEST(DecodePage, Lz4ThatDecodesLongIsAProtocolError) {
  std::vector<uint8_t> payload = Compress(5000, 'a');
  PageBuf out(kPageSize + 64, std::byte{0x5A});  // guard bytes after the page
  Status st = DecodePage(Lz4Desc(payload), payload, out.data());
  EXPECT_EQ(st.code(), Code::kProtocol);
  for (size_t i = kPageSize; i < out.size(); ++i) ASSERT_EQ(out[i], std::byte{0x5A}) << "wrote past the page";
}

TEST(DecodePage, GarbageLz4IsAProtocolError) {
  std::vector<uint8_t> payload(100, 0xFF);
  PageBuf out(kPageSize);
  Status st = DecodePage(Lz4Desc(payload), payload, out.data());
  EXPECT_EQ(st.code(), Code::kProtocol);
  EXPECT_NE(st.message().find("pfn 498"), std::string::npos) << st.message();
}

}  // namespace
}  // namespace xm
