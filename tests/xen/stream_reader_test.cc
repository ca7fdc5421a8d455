// Round trips: a guest written by xmotion's Xen stream writer and read back by
// its reader is the same guest (memory, context, policy), for every framing,
// for multi-round and checkpointed streams; and the reader refuses broken or
// unsupported streams, saying where and why.
#include <gtest/gtest.h>

#include <cstring>
#include <map>

#include "dirtylog/xen/stream/le.h"
#include "dirtylog/xen/stream/reader.h"
#include "tests/xen/xen_test_util.h"

namespace xm::xen {
namespace {

using testing::FixtureGuestState;
using testing::FixturePolicy;
using testing::MakePages;

// A toy guest: `pages` pfns of memory, each round rewriting some of them, the
// expected final memory tracked alongside.
class Guest {
 public:
  explicit Guest(uint64_t pages) : pages_(pages) {}
  // Round 0: every pfn except the holes; later rounds: every `stride`-th pfn, new content.
  void Round(StreamWriter& w, uint32_t round, uint64_t stride) {
    std::vector<uint64_t> pfns;
    for (uint64_t p = 0; p < pages_; p += (round == 0 ? 1 : stride))
      if (!IsHole(p)) pfns.push_back(p);
    auto data = MakePages(pfns.size(), 1000 + round, round == 0 ? 5 : 0);
    std::vector<const std::byte*> ptrs;
    for (size_t i = 0; i < pfns.size(); ++i) {
      const std::byte* page = data.data() + i * kXenPageSize;
      ptrs.push_back(page);
      expected_[pfns[i]].assign(reinterpret_cast<const uint8_t*>(page), reinterpret_cast<const uint8_t*>(page) + kXenPageSize);
    }
    ASSERT_TRUE(w.AddPages(pfns, ptrs).ok());
  }
  bool IsHole(uint64_t p) const { return p >= 160 && p < 192; }  // like the VGA hole
  void ExpectSame(const XenImage& img) const {
    ASSERT_EQ(img.page_count(), expected_.size());
    for (const auto& [pfn, bytes] : expected_) {
      const uint8_t* got = img.Page(pfn);
      ASSERT_NE(got, nullptr) << "pfn " << pfn;
      ASSERT_EQ(std::memcmp(got, bytes.data(), kXenPageSize), 0) << "pfn " << pfn;
    }
  }

 private:
  uint64_t pages_;
  std::map<uint64_t, std::vector<uint8_t>> expected_;
};

Result<XenImage> Read(const std::vector<uint8_t>& bytes, Framing f, bool checkpointed = false) {
  SpanSource src(bytes);
  return ReadStream(src, ReadOptions{f, checkpointed});
}

class RoundTrip : public ::testing::TestWithParam<Framing> {};

TEST_P(RoundTrip, MultiRoundLiveStreamReadsBackIdentical) {
  VectorSink sink;
  StreamOptions o;
  o.framing = GetParam();
  o.xl_config_json = GetParam() == Framing::kXl ? R"({"c_info":{"type":"pvh","name":"g"}})" : "";
  StreamWriter w(sink, o);
  XenCpuPolicy policy = FixturePolicy();
  ASSERT_TRUE(w.Begin(&policy).ok());
  Guest g(1500);
  for (uint32_t r = 0; r < 4; ++r) g.Round(w, r, 7 + r);
  const uint64_t holes[] = {170, 171};
  ASSERT_TRUE(w.AddInvalidPfns(holes).ok());
  XenGuestState st = FixtureGuestState(3, 1);
  ASSERT_TRUE(w.Finish(st).ok());

  auto img = Read(sink.bytes(), GetParam());
  ASSERT_TRUE(img.ok()) << img.status().message();
  g.ExpectSame(*img);
  XenGuestState want = st;
  if (GetParam() == Framing::kLibxc) want.emulator_context.clear();  // no place for them in a bare libxc stream
  EXPECT_EQ(img->state, want);
  ASSERT_TRUE(img->policy.has_value());
  EXPECT_EQ(img->policy->cpuid, policy.cpuid);
  EXPECT_EQ(img->policy->msrs, policy.msrs);
  EXPECT_EQ(img->libxc_version, 3u);
  EXPECT_EQ(img->domain_type, kDomainTypeX86Hvm);
  EXPECT_EQ(img->xen_major, 4u);
  EXPECT_EQ(img->xen_minor, 17u);
  EXPECT_EQ(img->invalid_pfns(), (std::vector<uint64_t>{170, 171}));
  EXPECT_EQ(img->page_versions, w.stats().pages);
  EXPECT_EQ(img->bytes, sink.bytes().size());
  if (GetParam() == Framing::kXl) {
    EXPECT_EQ(img->xl_config_json, o.xl_config_json);
  }
}

TEST_P(RoundTrip, CheckpointedStreamKeepsEachCheckpointsState) {
  VectorSink sink;
  StreamOptions o;
  o.framing = GetParam();
  o.checkpointed = true;
  StreamWriter w(sink, o);
  ASSERT_TRUE(w.Begin(nullptr).ok());
  Guest g(600);
  for (uint32_t r = 0; r < 3; ++r) {
    g.Round(w, r, 5);
    ASSERT_TRUE(w.Checkpoint(FixtureGuestState(2, r)).ok());
  }
  ASSERT_TRUE(w.FinishCheckpointed().ok());
  auto img = Read(sink.bytes(), GetParam(), /*checkpointed=*/true);
  ASSERT_TRUE(img.ok()) << img.status().message();
  g.ExpectSame(*img);
  EXPECT_EQ(img->checkpoints, 3u);
  XenGuestState last = FixtureGuestState(2, 2);
  if (GetParam() == Framing::kLibxc) last.emulator_context.clear();
  EXPECT_EQ(img->state, last);
  EXPECT_FALSE(img->policy.has_value());
  // Told the stream is plain, the reader refuses the checkpoint, as Xen's restore does.
  auto plain = Read(sink.bytes(), GetParam(), /*checkpointed=*/false);
  ASSERT_FALSE(plain.ok());
  EXPECT_NE(plain.status().message().find("not checkpointed"), std::string::npos) << plain.status().message();
}

INSTANTIATE_TEST_SUITE_P(Framings, RoundTrip, ::testing::Values(Framing::kLibxc, Framing::kLibxl, Framing::kXl),
                         [](const auto& info) { return std::string(FramingName(info.param)); });

TEST(XenStreamReader, V2StreamInfersStaticDataEnd) {
  VectorSink sink;
  StreamOptions o;
  o.libxc_version = 2;
  StreamWriter w(sink, o);
  ASSERT_TRUE(w.Begin(nullptr).ok());
  Guest g(64);
  g.Round(w, 0, 1);
  ASSERT_TRUE(w.Finish(FixtureGuestState(1, 0)).ok());
  auto img = Read(sink.bytes(), Framing::kLibxl);
  ASSERT_TRUE(img.ok()) << img.status().message();
  EXPECT_EQ(img->libxc_version, 2u);
  g.ExpectSame(*img);
}

TEST(XenStreamReader, SyntheticContextIsRecognised) {
  VectorSink sink;
  StreamWriter w(sink, StreamOptions{});
  ASSERT_TRUE(w.Begin(nullptr).ok());
  ASSERT_TRUE(w.Finish(SyntheticGuestState(2, 0x806f8)).ok());
  auto img = Read(sink.bytes(), Framing::kLibxl);
  ASSERT_TRUE(img.ok()) << img.status().message();
  EXPECT_TRUE(img->state.synthetic);
  EXPECT_EQ(img->page_count(), 0u);
}

// A valid libxl stream to break in the tests below, with the offsets of its records.
struct Sample {
  std::vector<uint8_t> bytes;
  size_t page_record = 0;  // header offset of the first PAGE_DATA
  size_t context_record = 0;
};
Sample MakeSample() {
  Sample s;
  VectorSink sink;
  StreamWriter w(sink, StreamOptions{});
  EXPECT_TRUE(w.Begin(nullptr).ok());
  s.page_record = sink.bytes().size();
  auto pages = MakePages(3, 9);
  const uint64_t pfns[] = {1, 2, 3};
  EXPECT_TRUE(w.AddPages(pfns, testing::PagePointers(pages, {0, 1, 2})).ok());
  XenGuestState st = FixtureGuestState(1, 0);
  st.tsc.reset();
  st.params.clear();
  st.emulator_context.clear();
  s.context_record = sink.bytes().size();
  EXPECT_TRUE(w.Finish(st).ok());
  s.bytes = sink.bytes();
  return s;
}

void ExpectRejected(const std::vector<uint8_t>& bytes, const std::string& what) {
  auto img = Read(bytes, Framing::kLibxl);
  ASSERT_FALSE(img.ok()) << "accepted a stream with " << what;
  EXPECT_NE(img.status().message().find(what), std::string::npos) << img.status().message();
}

TEST(XenStreamReader, RejectsBrokenStreams) {
  Sample s = MakeSample();
  ASSERT_TRUE(Read(s.bytes, Framing::kLibxl).ok());
  {
    auto b = s.bytes;
    b[0] ^= 1;
    ExpectRejected(b, "bad ident");
  }
  {
    auto b = s.bytes;
    b[24] = 0;  // image marker
    ExpectRejected(b, "bad marker");
  }
  {
    auto b = s.bytes;
    SetLe32(b, 48, kDomainTypeX86Pv);
    ExpectRejected(b, "PV guest");
  }
  {
    auto b = s.bytes;
    SetLe32(b, s.page_record + 8, 0);  // PAGE_DATA count
    ExpectRejected(b, "count is 0");
  }
  {
    auto b = s.bytes;
    SetLe64(b, s.page_record + 16, 1 | (uint64_t{1} << 60));  // pfn[0] becomes an L1 page table
    ExpectRejected(b, "page-table page");
  }
  {
    auto b = s.bytes;
    SetLe64(b, s.page_record + 16, 1 | (uint64_t{1} << 55));  // reserved pfn bits
    ExpectRejected(b, "reserved bits");
  }
  {
    auto b = s.bytes;
    SetLe32(b, s.page_record + 4, GetLe32(&b[s.page_record + 4]) - 8);  // record shorter than its pages
    ExpectRejected(b, "PAGE_DATA");
  }
  {
    auto b = s.bytes;
    size_t len = GetLe32(&b[s.context_record + 4]);
    ASSERT_NE(len % 8, 0u);
    b[s.context_record + 8 + len] = 0xee;  // padding after HVM_CONTEXT
    ExpectRejected(b, "non-zero padding");
  }
  {
    auto b = s.bytes;
    SetLe32(b, s.context_record, 0x13);  // unknown mandatory libxc record
    ExpectRejected(b, "unknown and mandatory");
  }
  {
    auto b = s.bytes;
    b[s.context_record + 16] ^= 0xff;  // HVM context: record header, HEADER descriptor, then the magic
    ExpectRejected(b, "bad header magic");
  }
  {
    auto b = s.bytes;
    b.resize(b.size() - 8);  // no libxl END
    ExpectRejected(b, "truncated");
  }
  {
    auto b = s.bytes;
    SetLe32(b, s.context_record, static_cast<uint32_t>(LibxcRec::kCheckpoint));
    SetLe32(b, s.context_record + 4, 0);
    // the old context body now reads as garbage records; the checkpoint comes first
    ExpectRejected(b, "not checkpointed");
  }
}

TEST(XenStreamReader, RefusesAStreamWithoutHvmContext) {
  // Build the stream by hand: headers, STATIC_DATA_END, END — no HVM_CONTEXT.
  VectorSink sink;
  StreamOptions o;
  o.framing = Framing::kLibxc;
  StreamWriter w(sink, o);
  ASSERT_TRUE(w.Begin(nullptr).ok());
  auto b = sink.bytes();
  PutLe32(b, 0);
  PutLe32(b, 0);
  auto img = Read(b, Framing::kLibxc);
  ASSERT_FALSE(img.ok());
  EXPECT_NE(img.status().message().find("no HVM_CONTEXT"), std::string::npos) << img.status().message();
}

TEST(XenStreamReader, OptionalUnknownRecordsAreSkipped) {
  Sample s = MakeSample();
  // Insert an optional (bit 31) record of 3 bytes before HVM_CONTEXT.
  std::vector<uint8_t> rec;
  PutLe32(rec, 0x80000123u);
  PutLe32(rec, 3);
  rec.insert(rec.end(), {1, 2, 3, 0, 0, 0, 0, 0});
  auto b = s.bytes;
  b.insert(b.begin() + static_cast<long>(s.context_record), rec.begin(), rec.end());
  auto img = Read(b, Framing::kLibxl);
  ASSERT_TRUE(img.ok()) << img.status().message();
  EXPECT_EQ(img->page_count(), 3u);
}

}  // namespace
}  // namespace xm::xen
