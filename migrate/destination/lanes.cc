#include "migrate/destination/lanes.h"

#include <chrono>
#include <string>

#include "migrate/common/clock.h"
#include "migrate/common/control.h"

namespace xm {

ReceiveLanes::ReceiveLanes(Stream& control, PageApplier& applier, uint32_t streams, bool record_streams,
                           int io_timeout_ms)
    : control_(control), applier_(applier), record_streams_(record_streams), io_timeout_ms_(io_timeout_ms) {
  for (uint32_t i = 0; i < streams; ++i) lanes_.push_back(std::make_unique<Lane>());
}

ReceiveLanes::~ReceiveLanes() { Stop(); }

void ReceiveLanes::Add(uint32_t index, std::unique_ptr<Stream> stream) { lanes_[index]->stream = std::move(stream); }

void ReceiveLanes::Start() {
  for (uint32_t i = 1; i < lanes_.size(); ++i) readers_.emplace_back([this, i] { ReadLoop(i); });
}

Status ReceiveLanes::Apply(uint32_t lane, std::span<const uint8_t> body) {
  Lane& l = *lanes_[lane];
  std::shared_lock apply_lock(apply_mu_);
  l.codec.BeginRecord(record_streams_);
  return applier_.Apply(lane, body, l.view, l.counts, l.codec);
}

void ReceiveLanes::Delivered(Lane& l, size_t body_bytes) {
  std::lock_guard lock(mu_);
  l.batches.fetch_add(1);
  l.bytes.fetch_add(body_bytes + kRecordHeaderSize);
  cv_.notify_all();
}

Status ReceiveLanes::ApplyControlPages(std::span<const uint8_t> body) {
  XM_TRY(Apply(0, body));
  Delivered(*lanes_[0], body.size());
  return {};
}

void ReceiveLanes::ReadLoop(uint32_t lane) {
  Lane& l = *lanes_[lane];
  for (;;) {
    Status st = ReadRecord(*l.stream, l.rec);
    const bool link = !st.ok() && LinkFailed(st);
    if (st.ok() && l.rec.type != RecordType::kPages)
      st = Error(Code::kProtocol, "unexpected " + std::string(RecordName(l.rec.type)) + " on a data stream");
    if (st.ok()) st = Apply(lane, l.rec.body);
    if (st.ok()) {
      Delivered(l, l.rec.body.size());
      continue;
    }
    std::lock_guard lock(mu_);
    if (!stopping_.load() && error_.ok()) {
      error_ = std::move(st).With("stream " + std::to_string(lane));
      link_failed_ = link;
      control_.Shutdown();  // the session thread may be blocked reading: end the migration now
    }
    cv_.notify_all();
    return;
  }
}

Status ReceiveLanes::WaitForBatches(const std::vector<uint64_t>& want, std::string_view what) {
  if (want.size() != lanes_.size())
    return Error(Code::kProtocol, std::string(what) + " names " + std::to_string(want.size()) + " streams, session has " +
                                      std::to_string(lanes_.size()));
  std::unique_lock lock(mu_);
  auto deadline = Clock::now() + std::chrono::milliseconds(io_timeout_ms_ > 0 ? io_timeout_ms_ : 3600000);
  for (;;) {
    if (!error_.ok()) return error_;
    bool all = true;
    for (size_t i = 0; i < want.size(); ++i) all = all && lanes_[i]->batches.load() >= want[i];
    if (all) return {};
    if (cv_.wait_until(lock, deadline) == std::cv_status::timeout)
      return Error(Code::kTimeout, std::string(what) + ": data streams stalled");
  }
}

void ReceiveLanes::Stop() {
  stopping_.store(true);
  for (auto& l : lanes_)
    if (l->stream) l->stream->Shutdown();
  for (auto& t : readers_) t.join();
  readers_.clear();
}

Status ReceiveLanes::error() {
  std::lock_guard lock(mu_);
  return error_;
}

bool ReceiveLanes::link_failed() {
  std::lock_guard lock(mu_);
  return link_failed_;
}

Status ReceiveLanes::CheckFinal(const std::vector<uint64_t>& final_batches) const {
  for (size_t i = 0; i < lanes_.size(); ++i)
    if (i >= final_batches.size() || lanes_[i]->batches.load() != final_batches[i])
      return Error(Code::kProtocol, "COMMIT: stream " + std::to_string(i) + " carried " +
                                        std::to_string(lanes_[i]->batches.load()) + " batches, the last ROUND_END counted " +
                                        (i < final_batches.size() ? std::to_string(final_batches[i]) : "none"));
  return {};
}

uint64_t ReceiveLanes::bytes() const {
  uint64_t total = 0;
  for (const auto& l : lanes_) total += l->bytes.load();
  return total;
}

EncodeCounts ReceiveLanes::counts() const {
  EncodeCounts total;
  for (const auto& l : lanes_) total += l->counts;
  return total;
}

}  // namespace xm
