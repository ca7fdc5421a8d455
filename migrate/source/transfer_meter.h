// TransferMeter: the source's live "transfer" progress events (PROGRESS.md),
// several a second while pages move, from the pipeline's counters and what the
// engine says about each round. The names follow QEMU's query-migrate
// (`transferred`, `remaining`, `total`, `dirty-pages-rate`, `mbps`,
// `iteration`, `expected_downtime_ms`); `fraction` (0..1) never decreases and
// `eta_s` counts the predicted downtime in.
//
// Thread-safety: the engine thread calls StartRound/EndRound/Complete; the
// meter's own thread reads the pipeline's atomic counters and emits. The
// pipeline and the emitter must outlive the meter.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>

#include <nlohmann/json.hpp>

#include "migrate/common/clock.h"
#include "migrate/common/progress.h"
#include "migrate/source/pipeline.h"

namespace xm {

class TransferMeter {
 public:
  TransferMeter(ProgressEmitter& out, const SendPipeline& pipeline, uint64_t total_bytes, double downtime_target_ms,
                int interval_ms = 250);
  ~TransferMeter();

  // A round of `todo_pages` dirty pages starts (`final`: the guest is paused).
  void StartRound(uint32_t round, uint64_t todo_pages, bool final);
  // It ended: `dirty_next` pages were dirty meanwhile, in `round_ms`; the policy
  // predicted `predicted_downtime_ms` for stopping then.
  void EndRound(uint64_t dirty_next, double round_ms, double predicted_downtime_ms);
  // Every page is across: stops ticking and emits the last event at fraction 1.
  void Complete();
  // Stops ticking without a last event (failure, cancel).
  void Stop();

 private:
  void Loop();
  nlohmann::json Sample(bool complete);  // REQUIRES: mu_ held

  ProgressEmitter& out_;
  const SendPipeline& pipeline_;
  const uint64_t total_bytes_;
  const int interval_ms_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool running_ = false, stop_ = false;
  std::thread thread_;
  Clock::time_point start_ = Clock::now(), last_at_ = start_;
  uint64_t last_bytes_ = 0;
  uint32_t round_ = 0;
  bool final_ = false;
  uint64_t todo_ = 0, done_at_round_start_ = 0, next_estimate_ = 0;
  double dirty_rate_ = 0;       // pages/s in the last round
  double predicted_ms_ = -1;    // the policy's, once a round ended
  double downtime_target_ms_;
  double fraction_ = 0;
};

}  // namespace xm
