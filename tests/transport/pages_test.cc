// PAGES layout (PROTOCOL.md §4): ParsePages accepts exactly the bodies the spec
// allows and refuses each malformation with a protocol error.
#include "transport/pages.h"

#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

namespace xm {
namespace {

struct Page {
  PageDesc desc;
  std::vector<uint8_t> payload;
};

Page MakePage(uint64_t pfn, PageEncoding enc, uint32_t len, uint8_t fill = 0x5A) {
  Page p;
  p.desc.pfn = pfn;
  p.desc.hash = pfn * 0x9E3779B97F4A7C15ull;
  p.desc.encoding = static_cast<uint8_t>(enc);
  p.desc.payload_len = len;
  p.payload.assign(len, fill);
  return p;
}

std::vector<uint8_t> Body(uint32_t round, const std::vector<Page>& pages, uint64_t reserved = 0) {
  PagesHeader h;
  h.round = round;
  h.count = static_cast<uint32_t>(pages.size());
  h.reserved = reserved;
  std::vector<uint8_t> b(sizeof h);
  std::memcpy(b.data(), &h, sizeof h);
  for (const Page& p : pages) {
    const auto* d = reinterpret_cast<const uint8_t*>(&p.desc);
    b.insert(b.end(), d, d + sizeof p.desc);
  }
  for (const Page& p : pages) b.insert(b.end(), p.payload.begin(), p.payload.end());
  return b;
}

void ExpectRejected(const std::vector<uint8_t>& body, std::string_view what) {
  PagesView v;
  Status st = ParsePages(body, v);
  ASSERT_FALSE(st.ok()) << "accepted; wanted: " << what;
  EXPECT_EQ(st.code(), Code::kProtocol);
  EXPECT_NE(st.message().find(what), std::string::npos) << st.message();
}

std::vector<Page> EveryEncoding() {
  return {MakePage(1, PageEncoding::kZero, 0), MakePage(2, PageEncoding::kRaw, kPageSize, 1),
          MakePage(3, PageEncoding::kLz4, 100, 2), MakePage(4, PageEncoding::kDelta, 12, 3),
          MakePage(5, PageEncoding::kDupRef, 8, 4), MakePage(6, PageEncoding::kLz4, MaxLz4Payload(), 5),
          MakePage(7, PageEncoding::kZstd, MaxZstdPayload(), 6)};
}

TEST(ParsePages, AcceptsEveryEncodingAndPointsIntoTheBody) {
  std::vector<Page> pages = EveryEncoding();
  std::vector<uint8_t> body = Body(42, pages);
  PagesView v;
  Status st = ParsePages(body, v);
  ASSERT_TRUE(st.ok()) << st.ToString();
  EXPECT_EQ(v.round, 42u);
  ASSERT_EQ(v.descs.size(), pages.size());
  ASSERT_EQ(v.payloads.size(), pages.size());
  const uint8_t* expect_at = body.data() + sizeof(PagesHeader) + pages.size() * sizeof(PageDesc);
  for (size_t i = 0; i < pages.size(); ++i) {
    EXPECT_EQ(v.descs[i].pfn, pages[i].desc.pfn);
    EXPECT_EQ(v.descs[i].hash, pages[i].desc.hash);
    EXPECT_EQ(v.descs[i].flags, pages[i].desc.flags);
    ASSERT_EQ(v.payloads[i].size(), pages[i].payload.size());
    if (!v.payloads[i].empty()) {
      EXPECT_EQ(v.payloads[i].data(), expect_at) << i;
    }
    EXPECT_TRUE(std::equal(v.payloads[i].begin(), v.payloads[i].end(), pages[i].payload.begin()));
    expect_at += pages[i].payload.size();
  }
}

TEST(ParsePages, ReusedViewShrinks) {
  PagesView v;
  ASSERT_TRUE(ParsePages(Body(0, EveryEncoding()), v).ok());
  ASSERT_TRUE(ParsePages(Body(1, {MakePage(9, PageEncoding::kZero, 0)}), v).ok());
  EXPECT_EQ(v.round, 1u);
  ASSERT_EQ(v.descs.size(), 1u);
  ASSERT_EQ(v.payloads.size(), 1u);
  EXPECT_EQ(v.descs[0].pfn, 9u);
}

TEST(ParsePages, MaximumCount) {
  std::vector<Page> pages;
  for (uint32_t i = 0; i < kMaxPagesPerRecord; ++i) pages.push_back(MakePage(i, PageEncoding::kZero, 0));
  PagesView v;
  EXPECT_TRUE(ParsePages(Body(0, pages), v).ok());
  EXPECT_EQ(v.descs.size(), kMaxPagesPerRecord);
}

TEST(ParsePages, ShorterThanHeader) {
  std::vector<uint8_t> body = Body(0, {MakePage(1, PageEncoding::kZero, 0)});
  for (size_t n : {0, 1, 15}) {
    PagesView v;
    Status st = ParsePages(std::span(body).first(n), v);
    EXPECT_EQ(st.code(), Code::kProtocol);
    EXPECT_NE(st.message().find("shorter than its header"), std::string::npos) << st.message();
  }
}

TEST(ParsePages, CountZeroOrTooMany) {
  ExpectRejected(Body(0, {}), "with 0 pages");
  PagesHeader h;
  h.count = kMaxPagesPerRecord + 1;
  std::vector<uint8_t> body(sizeof h);
  std::memcpy(body.data(), &h, sizeof h);
  body.resize(body.size() + size_t{h.count} * sizeof(PageDesc));  // zero pages, otherwise well formed
  ExpectRejected(body, "with 4097 pages");
  h.count = UINT32_MAX;
  std::memcpy(body.data(), &h, sizeof h);
  ExpectRejected(body, "with 4294967295 pages");
}

TEST(ParsePages, ReservedHeaderField) {
  ExpectRejected(Body(0, {MakePage(1, PageEncoding::kZero, 0)}, 1), "reserved field");
}

TEST(ParsePages, TooShortForDescriptors) {
  std::vector<uint8_t> body = Body(0, {MakePage(1, PageEncoding::kZero, 0), MakePage(2, PageEncoding::kZero, 0)});
  body.pop_back();
  ExpectRejected(body, "too short for its descriptors");
}

TEST(ParsePages, DescriptorReservedBits) {
  Page p = MakePage(1, PageEncoding::kZero, 0);
  p.desc.reserved = 1;
  ExpectRejected(Body(0, {p}), "descriptor 0: reserved bits");
  for (uint8_t flags : {1, 2, 0x80}) {
    p = MakePage(1, PageEncoding::kZero, 0);
    p.desc.flags = flags;
    ExpectRejected(Body(0, {MakePage(0, PageEncoding::kZero, 0), p}), "descriptor 1: reserved bits");
  }
}

TEST(ParsePages, PayloadLengthMustFitTheEncoding) {
  ExpectRejected(Body(0, {MakePage(1, PageEncoding::kZero, 1)}), "ZERO page with a payload");
  ExpectRejected(Body(0, {MakePage(1, PageEncoding::kRaw, kPageSize - 1)}), "RAW payload of 4095");
  ExpectRejected(Body(0, {MakePage(1, PageEncoding::kRaw, kPageSize + 1)}), "RAW payload of 4097");
  ExpectRejected(Body(0, {MakePage(1, PageEncoding::kRaw, 0)}), "RAW payload of 0");
  ExpectRejected(Body(0, {MakePage(1, PageEncoding::kLz4, 0)}), "LZ4 payload of 0");
  ExpectRejected(Body(0, {MakePage(1, PageEncoding::kLz4, MaxLz4Payload() + 1)}), "LZ4 payload");
  ExpectRejected(Body(0, {MakePage(1, PageEncoding::kZstd, 0)}), "ZSTD payload of 0");
  ExpectRejected(Body(0, {MakePage(1, PageEncoding::kZstd, MaxZstdPayload() + 1)}), "ZSTD payload of 4175");
  ExpectRejected(Body(0, {MakePage(1, PageEncoding::kDelta, 3)}), "DELTA payload of 3");
  ExpectRejected(Body(0, {MakePage(1, PageEncoding::kDelta, kMaxDeltaPayload + 1)}), "DELTA payload");
  ExpectRejected(Body(0, {MakePage(1, PageEncoding::kDupRef, 4)}), "DUP_REF payload of 4");
  ExpectRejected(Body(0, {MakePage(1, PageEncoding::kDupRef, 9)}), "DUP_REF payload of 9");
  ExpectRejected(Body(0, {MakePage(1, PageEncoding::kDupRef, 0)}), "DUP_REF payload of 0");
}

TEST(ParsePages, UnknownEncoding) {
  Page p = MakePage(1, PageEncoding::kZero, 0);
  p.desc.encoding = 6;
  ExpectRejected(Body(0, {p}), "unknown encoding 6");
  p.desc.encoding = 255;
  ExpectRejected(Body(0, {p}), "unknown encoding 255");
}

TEST(ParsePages, PayloadRunsPastTheEnd) {
  std::vector<uint8_t> body = Body(0, {MakePage(1, PageEncoding::kZero, 0), MakePage(2, PageEncoding::kRaw, kPageSize)});
  body.pop_back();
  ExpectRejected(body, "descriptor 1: payload runs past the end");
  // A huge claimed length must not wrap any offset arithmetic.
  Page p = MakePage(1, PageEncoding::kLz4, 10);
  p.desc.payload_len = UINT32_MAX;
  std::vector<uint8_t> b2 = Body(0, {p});
  ExpectRejected(b2, "LZ4 payload");
}

TEST(ParsePages, TrailingBytes) {
  std::vector<uint8_t> body = Body(0, {MakePage(1, PageEncoding::kDupRef, 8)});
  body.push_back(0);
  body.push_back(0);
  ExpectRejected(body, "2 trailing bytes");
}

TEST(ParsePages, MaxLz4PayloadIsLz4sBoundForOnePage) {
  EXPECT_GT(MaxLz4Payload(), kPageSize);
  EXPECT_LT(MaxLz4Payload(), kPageSize + kPageSize / 8);
}

}  // namespace
}  // namespace xm
