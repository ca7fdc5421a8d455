#include "migrate/source/transfer_meter.h"

#include <algorithm>

namespace xm {

TransferMeter::TransferMeter(ProgressEmitter& out, const SendPipeline& pipeline, uint64_t total_bytes,
                             double downtime_target_ms, int interval_ms)
    : out_(out), pipeline_(pipeline), total_bytes_(total_bytes), interval_ms_(interval_ms),
      downtime_target_ms_(downtime_target_ms) {}

TransferMeter::~TransferMeter() { Stop(); }

void TransferMeter::StartRound(uint32_t round, uint64_t todo_pages, bool final) {
  std::lock_guard lock(mu_);
  round_ = round;
  todo_ = todo_pages;
  final_ = final;
  done_at_round_start_ = pipeline_.pages_done();
  if (!running_ && !stop_ && out_.listening()) {
    running_ = true;
    start_ = last_at_ = Clock::now();
    last_bytes_ = pipeline_.bytes_wire();
    thread_ = std::thread([this] { Loop(); });
  }
}

void TransferMeter::EndRound(uint64_t dirty_next, double round_ms, double predicted_downtime_ms) {
  std::lock_guard lock(mu_);
  next_estimate_ = dirty_next;
  dirty_rate_ = round_ms > 0 ? static_cast<double>(dirty_next) * 1000.0 / round_ms : 0;
  predicted_ms_ = predicted_downtime_ms;
}

void TransferMeter::Complete() {
  Stop();
  std::lock_guard lock(mu_);
  if (out_.listening()) out_.Emit("transfer", Sample(true));
}

void TransferMeter::Stop() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
    cv_.notify_all();
  }
  if (thread_.joinable()) thread_.join();
}

void TransferMeter::Loop() {
  std::unique_lock lock(mu_);
  while (!cv_.wait_for(lock, std::chrono::milliseconds(interval_ms_), [this] { return stop_; }))
    out_.Emit("transfer", Sample(false));
}

nlohmann::json TransferMeter::Sample(bool complete) {
  const auto now = Clock::now();
  const uint64_t done = pipeline_.pages_done();
  const uint64_t bytes = pipeline_.bytes_wire();
  const uint64_t in_round = done - std::min(done, done_at_round_start_);
  uint64_t remaining = complete ? 0 : (todo_ - std::min(todo_, in_round)) + (final_ ? 0 : next_estimate_);
  const double elapsed_s = std::chrono::duration<double>(now - start_).count();
  const double dt_s = std::chrono::duration<double>(now - last_at_).count();
  const double mbps = dt_s > 0 ? static_cast<double>(bytes - last_bytes_) * 8 / 1e6 / dt_s : 0;
  last_at_ = now;
  last_bytes_ = bytes;
  // What a page costs on the wire so far (compression, zero pages), and how fast bytes go.
  const double bytes_per_page = done ? static_cast<double>(bytes) / static_cast<double>(done) : double(kPageSize);
  const double rate = elapsed_s > 0 ? static_cast<double>(bytes) / elapsed_s : 0;  // bytes/s
  const double remaining_bytes = static_cast<double>(remaining) * bytes_per_page;
  // Once a round ended the policy's prediction for stopping then; before, what
  // stopping now would cost at the rate seen (the target while no rate is known).
  double expected_ms = predicted_ms_ >= 0 ? predicted_ms_
                       : rate > 0        ? remaining_bytes / rate * 1000.0
                                         : downtime_target_ms_;
  if (final_ || complete) expected_ms = rate > 0 ? remaining_bytes / rate * 1000.0 : 0;
  const double raw = done + remaining ? static_cast<double>(done) / static_cast<double>(done + remaining) : 0;
  fraction_ = complete ? 1.0 : std::max(fraction_, std::min(raw, 0.999));
  nlohmann::json e{{"iteration", round_},
                   {"transferred", bytes},
                   {"remaining", remaining * kPageSize},
                   {"total", total_bytes_},
                   {"dirty-pages-rate", dirty_rate_},
                   {"mbps", mbps},
                   {"fraction", fraction_},
                   {"expected_downtime_ms", expected_ms}};
  if (complete)
    e["eta_s"] = 0.0;
  else if (rate > 0)
    e["eta_s"] = remaining_bytes / rate + expected_ms / 1000.0;
  else
    e["eta_s"] = nullptr;
  return e;
}

}  // namespace xm
