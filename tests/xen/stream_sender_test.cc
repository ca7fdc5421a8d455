// SendXenStream (migrate/source/xen_stream_sender.h) on a sim guest that keeps
// writing: the libxc stream it produces must pass xmotion's strict reader and
// hold, as its last copy of every page, exactly the guest's memory at the
// pause — what Xen's restore would build. The guest's state is a synthetic
// Xen one here (a sim guest has no HVM context); on real Xen the lab's
// emu-xenopsd step feeds the same code's stream to xc_domain_restore.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>

#include "dirtylog/forwarding_backend.h"
#include "dirtylog/sim/sim_backend.h"
#include "dirtylog/workload.h"
#include "dirtylog/xen/stream/byte_io.h"
#include "dirtylog/xen/stream/guest_state.h"
#include "dirtylog/xen/stream/reader.h"
#include "migrate/common/cancel.h"
#include "migrate/source/xen_stream_sender.h"

namespace xm {
namespace {

// A sim guest whose vCPU state is a Xen guest-state blob, as a Xen source's is;
// it counts pauses and resumes.
class XenLikeSim final : public ForwardingBackend {
 public:
  using ForwardingBackend::ForwardingBackend;
  Result<std::vector<uint8_t>> SaveVcpuState() override {
    if (fail_state) return Error(Code::kIo, "injected: vCPU state");
    return xen::EncodeGuestStateBlob(xen::SyntheticGuestState(1, 0x000806f8));
  }
  Status Pause() override {
    ++pauses;
    return ForwardingBackend::Pause();
  }
  Status Resume() override {
    ++resumes;
    return ForwardingBackend::Resume();
  }
  bool fail_state = false;
  int pauses = 0, resumes = 0;
};

// A bare libxc stream (what a stock restore reads), its headers written.
struct LibxcStream {
  LibxcStream() : writer(sink, Options()) { EXPECT_TRUE(writer.Begin(nullptr).ok()); }
  static xen::StreamOptions Options() {
    xen::StreamOptions so;
    so.framing = xen::Framing::kLibxc;
    return so;
  }
  xen::VectorSink sink;
  xen::StreamWriter writer;
};

std::unique_ptr<XenLikeSim> Guest(uint64_t bytes, const std::string& workload) {
  auto spec = ParseWorkload(workload, bytes);
  EXPECT_TRUE(spec.ok()) << spec.status().message();
  auto sim = SimBackend::CreateSource(bytes, *spec, CpuPolicy{});
  EXPECT_TRUE(sim.ok()) << sim.status().message();
  return std::make_unique<XenLikeSim>(std::move(sim).value());
}

TEST(XenStreamSender, StreamHoldsTheGuestAsPausedWhileItKeptWriting) {
  auto guest = Guest(64ull << 20, "ws=32M,hot=4M,rate=200M/s");
  LibxcStream out;
  xen::StreamWriter& w = out.writer;
  std::vector<XenStreamRound> rounds;
  XenStreamSendOptions o;
  o.max_rounds = 6;
  o.on_round = [&](const XenStreamRound& r) { rounds.push_back(r); };
  auto res = SendXenStream(*guest, w, o);
  ASSERT_TRUE(res.ok()) << res.status().message();
  EXPECT_EQ(guest->pauses, 1);
  EXPECT_EQ(guest->resumes, 0);  // the destination would run it now
  ASSERT_GE(rounds.size(), 2u);
  EXPECT_EQ(rounds.front().pages, guest->shape().page_count);  // every page, zero or not
  EXPECT_TRUE(rounds.back().final);
  EXPECT_EQ(res->rounds, rounds.size());
  ASSERT_TRUE(w.finished());

  xen::SpanSource src(out.sink.bytes());
  auto img = xen::ReadStream(src, xen::ReadOptions{xen::Framing::kLibxc, false});
  ASSERT_TRUE(img.ok()) << img.status().message();
  ASSERT_EQ(img->page_count(), guest->shape().page_count);
  EXPECT_GT(img->page_versions, img->page_count());  // later rounds resent what the guest wrote
  std::vector<uint64_t> all(guest->shape().page_count);
  for (uint64_t p = 0; p < all.size(); ++p) all[p] = p;
  auto mem = guest->MapPages(all, Access::kRead);  // still paused: its memory as the stream ended
  ASSERT_TRUE(mem.ok());
  uint64_t differ = 0;
  for (uint64_t p = 0; p < all.size(); ++p)
    if (std::memcmp(img->Page(p), mem->pages[p], 4096) != 0) ++differ;
  EXPECT_EQ(differ, 0u);
  EXPECT_TRUE(img->state.synthetic);
}

// A Xen guest's dirty log also reports gfns its shape calls holes: Xen's own
// shared_info and grant frames, which the guest writes all the time. They are
// not guest memory (the guest maps them again on resume) and stay out of the stream.
class SimWithAHole final : public ForwardingBackend {
 public:
  SimWithAHole(std::unique_ptr<Backend> inner, uint64_t hole) : ForwardingBackend(std::move(inner)), hole_(hole) {
    shape_ = ForwardingBackend::shape();
    shape_.ranges = {{0, hole}, {hole + 1, shape_.page_count - hole - 1}};
  }
  const GuestShape& shape() const override { return shape_; }
  Status FetchDirty(DirtyBitmap& out) override {
    XM_TRY(ForwardingBackend::FetchDirty(out));
    out.Set(hole_);  // written every round, as shared_info is
    return {};
  }
  Result<std::vector<uint8_t>> SaveVcpuState() override {
    return xen::EncodeGuestStateBlob(xen::SyntheticGuestState(1, 0x000806f8));
  }

 private:
  GuestShape shape_;
  uint64_t hole_;
};

TEST(XenStreamSender, DirtyHolesStayOutOfTheStream) {
  constexpr uint64_t kHole = 100;
  SimWithAHole guest(Guest(16ull << 20, "ws=8M,hot=1M,rate=50M/s"), kHole);
  LibxcStream out;
  XenStreamSendOptions o;
  o.max_rounds = 3;
  auto res = SendXenStream(guest, out.writer, o);
  ASSERT_TRUE(res.ok()) << res.status().message();
  xen::SpanSource src(out.sink.bytes());
  auto img = xen::ReadStream(src, xen::ReadOptions{xen::Framing::kLibxc, false});
  ASSERT_TRUE(img.ok()) << img.status().message();
  const std::vector<uint64_t> pfns = img->Pfns();
  EXPECT_EQ(pfns.size(), guest.shape().page_count - 1);
  EXPECT_FALSE(std::binary_search(pfns.begin(), pfns.end(), kHole));
}

TEST(XenStreamSender, FailureAfterThePauseResumesTheGuest) {
  auto guest = Guest(16ull << 20, "ws=8M,hot=1M,rate=50M/s");
  guest->fail_state = true;
  LibxcStream out;
  xen::StreamWriter& w = out.writer;
  auto res = SendXenStream(*guest, w, XenStreamSendOptions{});
  ASSERT_FALSE(res.ok());
  EXPECT_NE(res.status().message().find("vCPU state"), std::string::npos) << res.status().message();
  EXPECT_EQ(guest->pauses, 1);
  EXPECT_EQ(guest->resumes, 1);
  EXPECT_TRUE(guest->Running());
  EXPECT_FALSE(w.finished());  // no END: Xen's restore fails on the stream, never builds the guest
}

TEST(XenStreamSender, CancelBeforeThePauseLeavesTheGuestRunning) {
  auto guest = Guest(16ull << 20, "ws=8M,hot=1M,rate=50M/s");
  LibxcStream out;
  xen::StreamWriter& w = out.writer;
  Canceller cancel;
  ASSERT_EQ(cancel.Request("test"), Canceller::Answer::kAccepted);
  XenStreamSendOptions o;
  o.cancel = &cancel;
  auto res = SendXenStream(*guest, w, o);
  ASSERT_FALSE(res.ok());
  EXPECT_EQ(res.status().code(), Code::kCancelled);
  EXPECT_EQ(guest->pauses, 0);
  EXPECT_TRUE(guest->Running());
}

}  // namespace
}  // namespace xm
