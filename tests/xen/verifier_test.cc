// Xen's own judge: every stream xmotion writes must pass verify-stream-v2 from
// Debian's xen-utils-4.17 (unpacked by scripts/setup.d/xen-verifier), and
// streams broken on purpose must fail it — proof the check can fail.
// Skips, saying why, when the verifier has not been fetched.
#include <gtest/gtest.h>

#include "dirtylog/xen/stream/le.h"
#include "dirtylog/xen/stream/reader.h"
#include "tests/xen/xen_test_util.h"

namespace xm::xen {
namespace {

using testing::FixtureGuestState;
using testing::FixturePolicy;
using testing::MakePages;
using testing::PagePointers;
using testing::RunVerifier;

// Writes a guest of `npages` over `rounds` rounds (round r > 0 rewrites every
// (r+2)-th page), with checkpoints after every round when `checkpointed`.
std::vector<uint8_t> WriteGuest(StreamOptions o, uint64_t npages, uint32_t rounds, bool with_policy = true) {
  VectorSink sink;
  StreamWriter w(sink, o);
  XenCpuPolicy p = FixturePolicy();
  EXPECT_TRUE(w.Begin(with_policy ? &p : nullptr).ok());
  for (uint32_t r = 0; r < rounds; ++r) {
    std::vector<uint64_t> pfns, idx;
    for (uint64_t i = 0; i < npages; i += (r == 0 ? 1 : r + 2)) {
      pfns.push_back(i);
      idx.push_back(pfns.size() - 1);
    }
    auto data = MakePages(pfns.size(), r, 4);
    EXPECT_TRUE(w.AddPages(pfns, PagePointers(data, idx)).ok());
    if (o.checkpointed) {
      EXPECT_TRUE(w.Checkpoint(FixtureGuestState(2, r)).ok());
    }
  }
  if (o.checkpointed) {
    EXPECT_TRUE(w.FinishCheckpointed().ok());
  } else {
    const uint64_t holes[] = {npages + 10};
    EXPECT_TRUE(w.AddInvalidPfns(holes).ok());
    EXPECT_TRUE(w.Finish(FixtureGuestState(2, rounds)).ok());
  }
  return sink.bytes();
}

void ExpectAccepted(const testing::Verifier& v, const std::vector<uint8_t>& bytes, const std::string& format) {
  auto r = RunVerifier(v, bytes, format);
  EXPECT_EQ(r.exit_code, 0) << "verify-stream-v2 -f " << format << " rejected xmotion's stream:\n" << r.output;
}

void ExpectRejected(const testing::Verifier& v, const std::vector<uint8_t>& bytes, const std::string& format,
                    const std::string& why) {
  auto r = RunVerifier(v, bytes, format);
  EXPECT_EQ(r.exit_code, 1) << "verify-stream-v2 accepted a stream with " << why << ":\n" << r.output;
  EXPECT_NE(r.output.find("Stream Error"), std::string::npos) << r.output;
}

TEST(XenVerifier, AcceptsALiveMultiRoundLibxlStream) {
  XM_REQUIRE_VERIFIER(v);
  ExpectAccepted(*v, WriteGuest(StreamOptions{}, 3000, 5), "libxl");
}

TEST(XenVerifier, AcceptsTheXlFraming) {
  XM_REQUIRE_VERIFIER(v);
  StreamOptions o;
  o.framing = Framing::kXl;
  o.xl_config_json = R"({"c_info":{"type":"hvm","name":"vm"},"b_info":{"max_memkb":4096}})";
  ExpectAccepted(*v, WriteGuest(o, 700, 3), "xl");
  o.xl_config_json.clear();  // no embedded config: the restorer passes one
  ExpectAccepted(*v, WriteGuest(o, 10, 1), "xl");
}

TEST(XenVerifier, AcceptsBareLibxcStreamsV2AndV3) {
  XM_REQUIRE_VERIFIER(v);
  StreamOptions o;
  o.framing = Framing::kLibxc;
  ExpectAccepted(*v, WriteGuest(o, 500, 2), "libxc");
  o.libxc_version = 2;
  ExpectAccepted(*v, WriteGuest(o, 500, 2, /*with_policy=*/false), "libxc");
}

TEST(XenVerifier, AcceptsCheckpointedLibxcStreams) {
  XM_REQUIRE_VERIFIER(v);
  StreamOptions o;
  o.framing = Framing::kLibxc;
  o.checkpointed = true;
  auto bytes = WriteGuest(o, 800, 4);
  ExpectAccepted(*v, bytes, "libxc");
  SpanSource src(bytes);
  auto img = ReadStream(src, ReadOptions{Framing::kLibxc, true});
  ASSERT_TRUE(img.ok()) << img.status().message();
  EXPECT_EQ(img->checkpoints, 4u);
}

// In a checkpointed libxl stream libxc hands the stream back to libxl at each
// CHECKPOINT and libxl's CHECKPOINT_END comes before libxc resumes
// (libxl_stream_read.c, xg_sr_restore.c). verify-stream-v2 4.17 reads the
// libxc part straight through to its END and so reads libxl's CHECKPOINT_END
// as a libxc record: it cannot follow this layout. The libxc part is checked
// by the test above; the interleaving by xmotion's reader here.
TEST(XenVerifier, CheckpointedLibxlStreamIsBeyondIt) {
  XM_REQUIRE_VERIFIER(v);
  StreamOptions o;
  o.checkpointed = true;
  auto bytes = WriteGuest(o, 300, 2);
  SpanSource src(bytes);
  auto img = ReadStream(src, ReadOptions{Framing::kLibxl, true});
  ASSERT_TRUE(img.ok()) << img.status().message();
  EXPECT_EQ(img->checkpoints, 2u);
  auto r = RunVerifier(*v, bytes, "libxl");
  EXPECT_NE(r.exit_code, 0) << "verify-stream-v2 now follows checkpointed libxl streams; turn this into an "
                               "acceptance test:\n"
                            << r.output;
  // It fails reading a libxl record (EMULATOR_CONTEXT = 3, CHECKPOINT_END = 4) as a libxc PV record.
  EXPECT_NE(r.output.find("verify_record_x86_pv"), std::string::npos) << r.output;
}

// Debian's verify-stream-v2 runs on python3, where its EMULATOR_XENSTORE_DATA
// check compares a byte (an int) with the string '\x00' and so calls any
// non-empty xenstore data "not NUL terminated". Real HVM streams carry QEMU's
// physmap keys there; xmotion's reader checks those records instead.
TEST(XenVerifier, EmulatorXenstoreDataTripsItsPython3Bug) {
  XM_REQUIRE_VERIFIER(v);
  VectorSink sink;
  StreamWriter w(sink, StreamOptions{});
  ASSERT_TRUE(w.Begin(nullptr).ok());
  XenGuestState st = FixtureGuestState(1, 0);
  const std::string kv = std::string("physmap/f0000000/size") + '\0' + "800000" + '\0';
  st.emulator_xenstore.push_back({2, 0, std::vector<uint8_t>(kv.begin(), kv.end())});
  ASSERT_TRUE(w.Finish(st).ok());
  SpanSource src(sink.bytes());
  auto img = ReadStream(src, ReadOptions{});
  ASSERT_TRUE(img.ok()) << img.status().message();
  EXPECT_EQ(img->state.emulator_xenstore, st.emulator_xenstore);
  auto r = RunVerifier(*v, sink.bytes(), "libxl");
  EXPECT_NE(r.exit_code, 0) << "verify-stream-v2 now accepts xenstore data; make this an acceptance test";
  EXPECT_NE(r.output.find("Data not NUL terminated"), std::string::npos) << r.output;
}

TEST(XenVerifier, AcceptsASyntheticGuestState) {
  XM_REQUIRE_VERIFIER(v);
  VectorSink sink;
  StreamWriter w(sink, StreamOptions{});
  XenCpuPolicy p = SynthesisePolicy("GenuineIntel", {0x1, 0x2, 0x0, 0x0, 0x0, 0x209});
  ASSERT_TRUE(w.Begin(&p).ok());
  auto data = MakePages(16, 1);
  std::vector<uint64_t> pfns, idx;
  for (uint64_t i = 0; i < 16; ++i) {
    pfns.push_back(i);
    idx.push_back(i);
  }
  ASSERT_TRUE(w.AddPages(pfns, PagePointers(data, idx)).ok());
  ASSERT_TRUE(w.Finish(SyntheticGuestState(4, 0x806f8)).ok());
  ExpectAccepted(*v, sink.bytes(), "libxl");
}

// Offsets of the records of a small libxc stream, to break it precisely.
struct Layout {
  std::vector<uint8_t> bytes;
  size_t cpuid = 0, page = 0, context = 0;
};
Layout SmallLibxc(uint32_t version = 3) {
  Layout l;
  VectorSink sink;
  StreamOptions o;
  o.framing = Framing::kLibxc;
  o.libxc_version = version;
  StreamWriter w(sink, o);
  XenCpuPolicy p = FixturePolicy();
  EXPECT_TRUE(w.Begin(version >= 3 ? &p : nullptr).ok());
  l.cpuid = 40;
  l.page = sink.bytes().size();
  auto data = MakePages(2, 5);
  const uint64_t pfns[] = {0, 1};
  EXPECT_TRUE(w.AddPages(pfns, PagePointers(data, {0, 1})).ok());
  XenGuestState st = FixtureGuestState(1, 0);
  st.tsc.reset();
  st.params.clear();
  l.context = sink.bytes().size();
  EXPECT_TRUE(w.Finish(st).ok());
  l.bytes = sink.bytes();
  return l;
}

TEST(XenVerifier, RejectsBrokenStreams) {
  XM_REQUIRE_VERIFIER(v);
  Layout l = SmallLibxc();
  ExpectAccepted(*v, l.bytes, "libxc");  // the baseline passes, so each failure below is the break
  {
    auto b = l.bytes;
    size_t len = GetLe32(&b[l.context + 4]);
    b[l.context + 8 + len] = 1;
    ExpectRejected(*v, b, "libxc", "non-zero padding");
  }
  {
    auto b = l.bytes;
    SetLe32(b, l.page + 4, GetLe32(&b[l.page + 4]) - 8);
    ExpectRejected(*v, b, "libxc", "a PAGE_DATA record shorter than its pages");
  }
  {
    auto b = l.bytes;
    SetLe32(b, l.context, 0x13);
    ExpectRejected(*v, b, "libxc", "an unknown record type");
  }
  {
    auto b = l.bytes;
    b.resize(b.size() - 8);
    ExpectRejected(*v, b, "libxc", "no END record");
  }
  {
    auto b = l.bytes;
    b[19] = 1;  // reserved bits of the image header
    ExpectRejected(*v, b, "libxc", "reserved header bits");
  }
  {
    auto b = l.bytes;
    SetLe32(b, l.cpuid + 4, 20);  // CPUID policy not a multiple of 24 bytes (padding keeps the framing)
    ExpectRejected(*v, b, "libxc", "a truncated CPUID policy");
  }
  {
    auto b = l.bytes;
    SetLe64(b, l.page + 16, uint64_t{6} << 60);  // page type 6 is reserved
    ExpectRejected(*v, b, "libxc", "a reserved page type");
  }
  {
    Layout v2 = SmallLibxc(2);
    ExpectAccepted(*v, v2.bytes, "libxc");
    auto b = v2.bytes;
    std::vector<uint8_t> sde;
    PutLe32(sde, static_cast<uint32_t>(LibxcRec::kStaticDataEnd));
    PutLe32(sde, 0);
    b.insert(b.begin() + static_cast<long>(v2.page), sde.begin(), sde.end());
    ExpectRejected(*v, b, "libxc", "STATIC_DATA_END in a v2 stream");
  }
  {
    auto b = WriteGuest(StreamOptions{}, 10, 1);
    b[0] = 'X';
    ExpectRejected(*v, b, "libxl", "a bad libxl ident");
  }
}

}  // namespace
}  // namespace xm::xen
