#include "migrate/source/xen_stream_sender.h"

#include <chrono>
#include <vector>

#include "dirtylog/bitmap.h"
#include "dirtylog/xen/stream/guest_state.h"
#include "migrate/common/cancel.h"

namespace xm {
namespace {

using Clock = std::chrono::steady_clock;

double MsSince(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

// Writes `pfns` as PAGE_DATA, one mapping and one record per batch.
Status WritePages(Backend& guest, xen::StreamWriter& w, const std::vector<uint64_t>& pfns,
                  const XenStreamSendOptions& o, bool cancellable) {
  for (size_t first = 0; first < pfns.size(); first += o.pages_per_batch) {
    if (cancellable && o.cancel && o.cancel->requested()) return o.cancel->CancelledStatus();
    const size_t n = std::min<size_t>(o.pages_per_batch, pfns.size() - first);
    std::span<const uint64_t> batch(pfns.data() + first, n);
    XM_ASSIGN_OR_RETURN(MappedPages m, guest.MapPages(batch, Access::kRead));
    std::vector<const std::byte*> pages(m.pages.begin(), m.pages.end());
    XM_TRY_CTX(w.AddPages(batch, pages), "xen stream");
  }
  return {};
}

// The dirty pfns that hold guest memory. The dirty log also reports gfns the
// shape calls holes (Xen's own shared_info and grant frames, which the guest
// writes all the time): those are not guest memory, and the guest maps them
// again on resume.
std::vector<uint64_t> SetBits(const DirtyBitmap& b, const DirtyBitmap& populated) {
  std::vector<uint64_t> out;
  b.ForEach([&](uint64_t pfn) {
    if (populated.Test(pfn)) out.push_back(pfn);
  });
  return out;
}

}  // namespace

Result<XenStreamResult> SendXenStream(Backend& guest, xen::StreamWriter& w, const XenStreamSendOptions& o) {
  const GuestShape& shape = guest.shape();
  XenStreamResult res;
  XM_TRY(guest.EnableDirtyLog());
  DirtyBitmap dirty(shape.page_count);
  DirtyBitmap populated(shape.page_count);
  populated.SetRanges(shape.ranges);
  std::vector<uint64_t> todo = SetBits(populated, populated);  // round 0: every populated pfn

  // Pre-copy, the guest running: a failure here leaves it as it was.
  for (uint32_t round = 0;; ++round) {
    const auto t0 = Clock::now();
    if (Status st = WritePages(guest, w, todo, o, /*cancellable=*/true); !st.ok()) {
      (void)guest.DisableDirtyLog();
      return st;
    }
    res.pages += todo.size();
    dirty.ClearAll();
    if (Status st = guest.FetchDirty(dirty); !st.ok()) {
      (void)guest.DisableDirtyLog();
      return st;
    }
    const uint64_t sent = todo.size();
    todo = SetBits(dirty, populated);
    ++res.rounds;
    if (o.on_round) o.on_round({round, sent, todo.size(), false, MsSince(t0)});
    if (todo.size() <= o.stop_pages || res.rounds >= o.max_rounds) break;
  }

  // Stop and copy: what the last round left dirty plus what changed since.
  // From here the stream ends with the whole guest: a cancel comes too late.
  if (o.cancel && !o.cancel->PassPointOfNoReturn("the guest is being stopped for its last pages")) {
    (void)guest.DisableDirtyLog();
    return o.cancel->CancelledStatus();
  }
  const auto paused_at = Clock::now();
  if (Status st = guest.Pause(); !st.ok()) {
    (void)guest.DisableDirtyLog();
    return st;
  }
  auto finish = [&]() -> Status {
    DirtyBitmap last(shape.page_count);
    XM_TRY(guest.FetchDirty(last));
    for (uint64_t p : todo) last.Set(p);
    std::vector<uint64_t> rest = SetBits(last, populated);
    XM_TRY(WritePages(guest, w, rest, o, /*cancellable=*/false));
    res.pages += rest.size();
    ++res.rounds;
    XM_ASSIGN_OR_RETURN(std::vector<uint8_t> blob, guest.SaveVcpuState());
    if (!xen::IsGuestStateBlob(blob))
      return Error(Code::kIncompatible, "xen stream: the guest's vCPU state is not a Xen guest's (backend " +
                                            std::string(guest.name()) + ")");
    XM_ASSIGN_OR_RETURN(xen::XenGuestState state, xen::DecodeGuestStateBlob(blob));
    XM_TRY_CTX(w.Finish(state), "xen stream");
    if (o.on_round) o.on_round({res.rounds - 1, rest.size(), 0, true, MsSince(paused_at)});
    return {};
  };
  if (Status st = finish(); !st.ok()) {
    (void)guest.DisableDirtyLog();
    (void)guest.Resume();  // the stream is broken: the destination cannot start it, the source runs on
    return st;
  }
  (void)guest.DisableDirtyLog();
  res.downtime_ms = MsSince(paused_at);
  return res;
}

}  // namespace xm
