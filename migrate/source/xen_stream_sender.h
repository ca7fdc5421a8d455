// SendXenStream: a live migration written as Xen's own libxc stream, for a
// destination that reads nothing else — a stock emu-manager (xenguest, i.e.
// xc_domain_restore) in a pool halfway through a rolling upgrade.
//
// What Xen's own save does, with xmotion's backend: every populated page in
// round 0, then the pages dirtied since, round after round, until a round
// leaves at most `stop_pages` dirty or `max_rounds` have run; then the guest is
// paused (for emu-manager: xenopsd suspends it), the rest and the guest's state
// (TSC, HVM params, HVM context) are written and the stream ends. No
// compression, no deltas, no page hashes: the reader is Xen's. Every page of
// the guest's populated ranges goes out in round 0, zero or not, because
// Xen's restore populates exactly the pages the stream names.
//
// REQUIRES: `w` has had Begin() (headers, CPU policy); `guest` is a source
// whose SaveVcpuState() is a Xen guest-state blob (dirtylog/xen). A failure
// before the pause leaves the guest running; after it, the guest is resumed
// (best effort) before the error returns. Not thread-safe; blocks.
#pragma once

#include <cstdint>
#include <functional>

#include "base/status.h"
#include "dirtylog/backend.h"
#include "dirtylog/xen/stream/writer.h"

namespace xm {

class Canceller;

struct XenStreamRound {
  uint32_t round = 0;
  uint64_t pages = 0;       // pages written this round
  uint64_t dirty_next = 0;  // dirty when it ended (the next round's work)
  bool final = false;       // written with the guest paused
  double ms = 0;
};

struct XenStreamSendOptions {
  uint32_t max_rounds = 10;  // pre-copy rounds at most (Xen's own save stops after 5 by default)
  uint64_t stop_pages = 256;
  uint32_t pages_per_batch = 1024;  // one MapPages + one PAGE_DATA record
  Canceller* cancel = nullptr;      // checked between batches; the pause passes its point of no return
  std::function<void(const XenStreamRound&)> on_round;
};

struct XenStreamResult {
  uint32_t rounds = 0;  // including the final one
  uint64_t pages = 0;   // page copies written, every round
  double downtime_ms = 0;  // pause to the stream's end
};

Result<XenStreamResult> SendXenStream(Backend& guest, xen::StreamWriter& w, const XenStreamSendOptions& o);

}  // namespace xm
