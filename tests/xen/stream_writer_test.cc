// The stream writer's bytes, checked against the layouts in Xen's specs
// (docs/specs/libxc-migration-stream.pandoc, libxl-migration-stream.pandoc).
#include <gtest/gtest.h>

#include "dirtylog/xen/stream/le.h"
#include "dirtylog/xen/stream/writer.h"
#include "tests/xen/xen_test_util.h"

namespace xm::xen {
namespace {

using testing::FixtureGuestState;
using testing::FixturePolicy;
using testing::MakePages;
using testing::PagePointers;

// Walks records from `off`; returns {type, length, body offset} for each until END of that layer.
struct Rec {
  uint32_t type, length;
  size_t body;
};
std::vector<Rec> Records(const std::vector<uint8_t>& b, size_t off, size_t max) {
  std::vector<Rec> out;
  while (off + 8 <= b.size() && out.size() < max) {
    Rec r{GetLe32(&b[off]), GetLe32(&b[off + 4]), off + 8};
    out.push_back(r);
    off += 8 + ((r.length + 7) & ~7u);
  }
  return out;
}

TEST(XenStreamWriter, LibxlAndLibxcHeadersAreBitExact) {
  VectorSink sink;
  StreamWriter w(sink, StreamOptions{});
  ASSERT_TRUE(w.Begin(nullptr).ok());
  const auto& b = sink.bytes();
  // libxl header: "LibxlFmt", version 2, options 0 — big-endian.
  const uint8_t libxl[] = {'L', 'i', 'b', 'x', 'l', 'F', 'm', 't', 0, 0, 0, 2, 0, 0, 0, 0};
  ASSERT_GE(b.size(), 16u + 8 + 24 + 16);
  EXPECT_TRUE(std::equal(libxl, libxl + 16, b.begin()));
  // LIBXC_CONTEXT record: type 1, length 0.
  EXPECT_EQ(GetLe32(&b[16]), 1u);
  EXPECT_EQ(GetLe32(&b[20]), 0u);
  // libxc image header: marker all-ones, "XENF", version 3, options 0 (little-endian), reserved 0.
  const uint8_t image[] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 'X', 'E', 'N', 'F',
                           0,    0,    0,    3,    0,    0,    0,    0,    0,   0,   0,   0};
  EXPECT_TRUE(std::equal(image, image + 24, b.begin() + 24));
  // Domain header: x86 HVM (2), page shift 12, Xen 4.17 — little-endian.
  EXPECT_EQ(GetLe32(&b[48]), kDomainTypeX86Hvm);
  EXPECT_EQ(GetLe16(&b[52]), 12);
  EXPECT_EQ(GetLe16(&b[54]), 0);
  EXPECT_EQ(GetLe32(&b[56]), 4u);
  EXPECT_EQ(GetLe32(&b[60]), 17u);
  // No policy: just STATIC_DATA_END (0x10, empty).
  auto recs = Records(b, 64, 10);
  ASSERT_EQ(recs.size(), 1u);
  EXPECT_EQ(recs[0].type, 0x10u);
  EXPECT_EQ(recs[0].length, 0u);
}

TEST(XenStreamWriter, XlHeaderCarriesTheConfigJson) {
  VectorSink sink;
  StreamOptions o;
  o.framing = Framing::kXl;
  o.xl_config_json = R"({"c_info":{"type":"hvm","name":"vm1"}})";
  StreamWriter w(sink, o);
  ASSERT_TRUE(w.Begin(nullptr).ok());
  const auto& b = sink.bytes();
  EXPECT_EQ(std::string(b.begin(), b.begin() + 32), std::string(kXlMagic));
  EXPECT_EQ(GetLe32(&b[32]), 0x01020304u);
  EXPECT_EQ(GetLe32(&b[36]), kXlFlagStreamV2 | kXlFlagJson);
  EXPECT_EQ(GetLe32(&b[40]), 0u);
  uint32_t optlen = GetLe32(&b[44]);
  ASSERT_EQ(optlen, 4 + o.xl_config_json.size() + 1);
  EXPECT_EQ(GetLe32(&b[48]), o.xl_config_json.size() + 1);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(&b[52])), o.xl_config_json);  // NUL-terminated
  EXPECT_EQ(GetBe64(&b[48 + optlen]), kLibxlIdent);
}

TEST(XenStreamWriter, PolicyRecordsPrecedeStaticDataEnd) {
  VectorSink sink;
  StreamOptions o;
  o.framing = Framing::kLibxc;
  StreamWriter w(sink, o);
  XenCpuPolicy p = FixturePolicy();
  ASSERT_TRUE(w.Begin(&p).ok());
  auto recs = Records(sink.bytes(), 40, 10);
  ASSERT_EQ(recs.size(), 3u);
  EXPECT_EQ(recs[0].type, static_cast<uint32_t>(LibxcRec::kX86CpuidPolicy));
  EXPECT_EQ(recs[0].length, p.cpuid.size() * 24);
  EXPECT_EQ(recs[1].type, static_cast<uint32_t>(LibxcRec::kX86MsrPolicy));
  EXPECT_EQ(recs[1].length, p.msrs.size() * 16);
  EXPECT_EQ(recs[2].type, static_cast<uint32_t>(LibxcRec::kStaticDataEnd));
  // First leaf, field by field: leaf, subleaf, a, b, c, d.
  const auto& b = sink.bytes();
  EXPECT_EQ(GetLe32(&b[recs[0].body]), p.cpuid[0].leaf);
  EXPECT_EQ(GetLe32(&b[recs[0].body + 4]), p.cpuid[0].subleaf);
  EXPECT_EQ(GetLe32(&b[recs[0].body + 12]), p.cpuid[0].b);
}

TEST(XenStreamWriter, V2StreamsHaveNoStaticDataAndRefuseAPolicy) {
  VectorSink sink;
  StreamOptions o;
  o.framing = Framing::kLibxc;
  o.libxc_version = 2;
  StreamWriter w(sink, o);
  XenCpuPolicy p = FixturePolicy();
  EXPECT_EQ(w.Begin(&p).code(), Code::kInvalidArgument);
  StreamWriter w2(sink, o);
  ASSERT_TRUE(w2.Begin(nullptr).ok());
  EXPECT_EQ(sink.bytes().size(), 40u);  // image + domain headers only
  EXPECT_EQ(GetBe32(&sink.bytes()[12]), 2u);
}

TEST(XenStreamWriter, PagesAreBatchedAtMost1024PerRecord) {
  VectorSink sink;
  StreamOptions o;
  o.framing = Framing::kLibxc;
  StreamWriter w(sink, o);
  ASSERT_TRUE(w.Begin(nullptr).ok());
  size_t before = sink.bytes().size();
  auto pages = MakePages(2500, 1);
  std::vector<uint64_t> pfns;
  for (uint64_t i = 0; i < 2500; ++i) pfns.push_back(i * 3 + 7);
  std::vector<uint64_t> idx(2500);
  for (uint64_t i = 0; i < 2500; ++i) idx[i] = i;
  ASSERT_TRUE(w.AddPages(pfns, PagePointers(pages, idx)).ok());
  auto recs = Records(sink.bytes(), before, 10);
  ASSERT_EQ(recs.size(), 3u);
  const uint32_t counts[] = {1024, 1024, 452};
  size_t page = 0;
  for (int r = 0; r < 3; ++r) {
    const auto& b = sink.bytes();
    EXPECT_EQ(recs[r].type, 1u);
    EXPECT_EQ(recs[r].length, 8 + counts[r] * 8 + counts[r] * 4096);
    EXPECT_EQ(GetLe32(&b[recs[r].body]), counts[r]);
    EXPECT_EQ(GetLe32(&b[recs[r].body + 4]), 0u);
    for (uint32_t i = 0; i < counts[r]; ++i, ++page) {
      EXPECT_EQ(GetLe64(&b[recs[r].body + 8 + 8 * i]), pfns[page]);  // type NOTAB: top bits clear
    }
    // The first page's data follows the pfn array.
    size_t data = recs[r].body + 8 + counts[r] * 8;
    size_t first_page = page - counts[r];
    EXPECT_EQ(std::memcmp(&b[data], pages.data() + first_page * 4096, 4096), 0);
  }
  EXPECT_EQ(w.stats().pages, 2500u);
  EXPECT_EQ(w.stats().page_records, 3u);
}

TEST(XenStreamWriter, InvalidPfnsAreXtabWithoutData) {
  VectorSink sink;
  StreamOptions o;
  o.framing = Framing::kLibxc;
  StreamWriter w(sink, o);
  ASSERT_TRUE(w.Begin(nullptr).ok());
  size_t before = sink.bytes().size();
  const uint64_t holes[] = {0xa0, 0xa1};
  ASSERT_TRUE(w.AddInvalidPfns(holes).ok());
  auto recs = Records(sink.bytes(), before, 5);
  ASSERT_EQ(recs.size(), 1u);
  EXPECT_EQ(recs[0].length, 8u + 16);
  EXPECT_EQ(GetLe64(&sink.bytes()[recs[0].body + 8]), 0xa0 | (uint64_t{0xf} << 60));
}

TEST(XenStreamWriter, TailIsTscParamsContextThenEnds) {
  VectorSink sink;
  StreamWriter w(sink, StreamOptions{});
  ASSERT_TRUE(w.Begin(nullptr).ok());
  size_t before = sink.bytes().size();
  XenGuestState st = FixtureGuestState(2, 0);
  ASSERT_TRUE(w.Finish(st).ok());
  EXPECT_TRUE(w.finished());
  auto recs = Records(sink.bytes(), before, 10);
  ASSERT_EQ(recs.size(), 6u);
  EXPECT_EQ(recs[0].type, static_cast<uint32_t>(LibxcRec::kX86TscInfo));
  EXPECT_EQ(recs[0].length, 24u);
  EXPECT_EQ(recs[1].type, static_cast<uint32_t>(LibxcRec::kHvmParams));
  EXPECT_EQ(recs[1].length, 8 + 16 * st.params.size());
  EXPECT_EQ(recs[2].type, static_cast<uint32_t>(LibxcRec::kHvmContext));
  EXPECT_EQ(recs[2].length, st.hvm_context.size());
  EXPECT_EQ(recs[3].type, static_cast<uint32_t>(LibxcRec::kEnd));
  EXPECT_EQ(recs[4].type, static_cast<uint32_t>(LibxlRec::kEmulatorContext));
  EXPECT_EQ(recs[4].length, 8 + st.emulator_context[0].data.size());
  EXPECT_EQ(recs[5].type, static_cast<uint32_t>(LibxlRec::kEnd));
  // Padding after the odd-sized records is zero and keeps every record 8-aligned.
  const auto& b = sink.bytes();
  EXPECT_EQ(b.size() % 8, 0u);
  size_t ctx_end = recs[2].body + recs[2].length;
  for (size_t i = ctx_end; i < ((ctx_end + 7) & ~size_t{7}); ++i) EXPECT_EQ(b[i], 0);
}

TEST(XenStreamWriter, CalledOutOfOrderItSaysSo) {
  VectorSink sink;
  StreamWriter w(sink, StreamOptions{});
  auto pages = MakePages(1, 2);
  const uint64_t pfn = 0;
  auto ptrs = PagePointers(pages, {0});
  EXPECT_EQ(w.AddPages({&pfn, 1}, ptrs).code(), Code::kInternal);
  ASSERT_TRUE(w.Begin(nullptr).ok());
  EXPECT_EQ(w.Begin(nullptr).code(), Code::kInternal);
  EXPECT_EQ(w.Checkpoint(FixtureGuestState(1, 0)).code(), Code::kInternal);  // plain stream
  XenGuestState no_ctx;
  EXPECT_EQ(w.Finish(no_ctx).code(), Code::kInvalidArgument);  // an HVM stream needs a context
  ASSERT_TRUE(w.Finish(FixtureGuestState(1, 0)).ok());
  EXPECT_EQ(w.AddPages({&pfn, 1}, ptrs).code(), Code::kInternal);
}

TEST(XenStreamWriter, CheckpointedStreamMustEndOnACheckpoint) {
  VectorSink sink;
  StreamOptions o;
  o.checkpointed = true;
  StreamWriter w(sink, o);
  ASSERT_TRUE(w.Begin(nullptr).ok());
  auto pages = MakePages(1, 3);
  const uint64_t pfn = 5;
  ASSERT_TRUE(w.AddPages({&pfn, 1}, PagePointers(pages, {0})).ok());
  EXPECT_EQ(w.FinishCheckpointed().code(), Code::kInternal);  // pages after the last checkpoint
  EXPECT_EQ(w.Finish(FixtureGuestState(1, 0)).code(), Code::kInternal);
  ASSERT_TRUE(w.Checkpoint(FixtureGuestState(1, 0)).ok());
  ASSERT_TRUE(w.FinishCheckpointed().ok());
  EXPECT_EQ(w.stats().checkpoints, 1u);
}

TEST(XenStreamWriter, PfnsBeyond52BitsAreRefused) {
  VectorSink sink;
  StreamWriter w(sink, StreamOptions{});
  ASSERT_TRUE(w.Begin(nullptr).ok());
  auto pages = MakePages(1, 4);
  const uint64_t pfn = uint64_t{1} << 52;
  EXPECT_EQ(w.AddPages({&pfn, 1}, PagePointers(pages, {0})).code(), Code::kInvalidArgument);
}

}  // namespace
}  // namespace xm::xen
