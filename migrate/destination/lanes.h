// ReceiveLanes: the destination's mirror of the source's SendPipeline. One
// lane per stream of the session: lane 0 is the control stream, whose PAGES the
// session thread hands over itself (ApplyControlPages) between control records;
// every other lane has a reader thread that applies the PAGES its data stream
// carries as they arrive, through the PageApplier. ROUND_END says how many
// batches each stream carried; WaitForBatches blocks until all are applied.
//
// Thread-safety: every method is called from the session thread; the reader
// threads are the lanes' own. The first reader error shuts the control stream,
// so a session thread blocked reading it wakes up and sees error().
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <span>
#include <string_view>
#include <thread>
#include <vector>

#include "migrate/common/page_codec.h"
#include "migrate/destination/page_applier.h"
#include "transport/record.h"
#include "transport/stream.h"

namespace xm {

class ReceiveLanes {
 public:
  // REQUIRES: `control` and `applier` outlive the lanes; streams >= 1.
  // `record_streams`: the session has RECORD_STREAMS (PROTOCOL.md §4).
  ReceiveLanes(Stream& control, PageApplier& applier, uint32_t streams, bool record_streams, int io_timeout_ms);
  ~ReceiveLanes();  // Stop()

  uint32_t streams() const { return static_cast<uint32_t>(lanes_.size()); }
  // Whether data stream `index` has joined.
  bool Has(uint32_t index) const { return index < lanes_.size() && lanes_[index]->stream != nullptr; }
  // REQUIRES: 1 <= index < streams(), !Has(index), Start() not called yet.
  void Add(uint32_t index, std::unique_ptr<Stream> stream);
  // Starts one reader thread per data stream. REQUIRES: every data stream added.
  void Start();

  // Applies a PAGES body that arrived on the control stream.
  Status ApplyControlPages(std::span<const uint8_t> body);
  // Blocks until stream i has delivered at least want[i] batches (a data stream
  // may already carry the next round's), a reader fails, or the I/O timeout.
  Status WaitForBatches(const std::vector<uint64_t>& want, std::string_view what);
  // While the returned lock lives no page is being applied (the round-end hook
  // must not see half-written pages).
  std::unique_lock<std::shared_mutex> HoldApply() { return std::unique_lock(apply_mu_); }

  // Shuts the data streams and joins the readers; idempotent.
  void Stop();
  // The first reader's error, with its stream named; ok while none failed.
  Status error();
  // Whether that error was the data stream's connection failing (LinkFailed),
  // not a page the applier refused.
  bool link_failed();
  // COMMIT: every stream carried exactly the batches the last ROUND_END counted.
  // REQUIRES: Stop() was called.
  Status CheckFinal(const std::vector<uint64_t>& final_batches) const;

  uint64_t bytes() const;      // record bytes received on all streams
  EncodeCounts counts() const;  // pages applied, by encoding; REQUIRES: Stop() was called

 private:
  struct Lane {
    std::unique_ptr<Stream> stream;  // null for lane 0 (the session owns the control stream)
    Record rec;
    PagesView view;
    RecordCodec codec;
    EncodeCounts counts;
    std::atomic<uint64_t> batches{0};
    std::atomic<uint64_t> bytes{0};
  };

  Status Apply(uint32_t lane, std::span<const uint8_t> body);
  void Delivered(Lane& l, size_t body_bytes);
  void ReadLoop(uint32_t lane);

  Stream& control_;
  PageApplier& applier_;
  const bool record_streams_;
  const int io_timeout_ms_;
  std::vector<std::unique_ptr<Lane>> lanes_;
  std::vector<std::thread> readers_;
  std::atomic<bool> stopping_{false};
  std::mutex mu_;
  std::condition_variable cv_;
  Status error_;
  bool link_failed_ = false;
  std::shared_mutex apply_mu_;  // shared: applying pages; exclusive: HoldApply
};

}  // namespace xm
