#include "migrate/source/policy.h"

#include <algorithm>
#include <cstdio>

namespace xm {

double Policy::bandwidth_bytes_per_ms() const {
  return total_ms_ > 0 ? static_cast<double>(total_bytes_) / total_ms_ : 0.0;
}

double Policy::PredictDowntimeMs(uint64_t pages) const {
  if (pages == 0) return 0.0;
  double bw = bandwidth_bytes_per_ms();
  if (bw <= 0) return 1e18;
  // Wire bytes per page as measured (compression, zero pages); at least a descriptor.
  double per_page = total_pages_ ? std::max(24.0, static_cast<double>(total_bytes_) / static_cast<double>(total_pages_))
                                 : 4096.0;
  return static_cast<double>(pages) * per_page / bw;
}

Decision Policy::Decide(const RoundObservation& obs) {
  total_bytes_ += obs.bytes_wire;
  total_pages_ += obs.pages_sent;
  total_ms_ += obs.ms;
  double predicted = PredictDowntimeMs(obs.dirty_next);
  // The final round looks like the last one (same hot pages, same encodings), and
  // may be bound by the CPU rather than the link: its cost per page is the better
  // predictor once it moved enough pages to be measured. Round 0 also moved
  // cheap pages nothing had written (ZERO descriptors, unchanged pages), so its
  // cost per page gets a margin; later rounds moved only written pages, like the
  // final round, which runs without the guest competing for the CPU and so is
  // not slower per page (measured: 2.85 us per page paused against 4.9 in the
  // round before, bench/README.md).
  double round_ms_per_page = 0;
  if (obs.pages_sent >= 256 && obs.ms > 0) {
    round_ms_per_page = obs.ms / static_cast<double>(obs.pages_sent);
    predicted = (obs.round == 0 ? 1.5 : 1.0) * static_cast<double>(obs.dirty_next) * round_ms_per_page;
  }
  last_prediction_ms_ = predicted;
  char buf[240];
  const bool last_round_allowed = obs.round + 1 >= cfg_.max_rounds ||
                                  (cfg_.max_precopy_s > 0 && obs.elapsed_s >= cfg_.max_precopy_s);
  if (predicted <= cfg_.downtime_target_ms) {
    // Under the ceiling: aim lower while rounds still pay, within a time budget.
    // The budget starts after round 1: round 0 moved the whole memory, most of
    // it cheap, so its time says nothing about what the hot pages cost.
    if (fit_at_s_ < 0 && obs.round >= 1) fit_at_s_ = obs.elapsed_s;
    const bool shrank = obs.dirty_pages > 0 && static_cast<double>(obs.dirty_next) <=
                                                   kWorthwhileRest * static_cast<double>(obs.dirty_pages);
    // The next round costs what this one did per page (the guest running again).
    const double next_round_s =
        (round_ms_per_page > 0 ? static_cast<double>(obs.dirty_next) * round_ms_per_page : predicted) / 1000.0;
    const bool in_budget = fit_at_s_ < 0 || obs.elapsed_s - fit_at_s_ + next_round_s <= kExtraTimeShare * fit_at_s_;
    if (shrank && in_budget && predicted > kNegligibleDowntimeMs && !last_round_allowed) {
      std::snprintf(buf, sizeof buf,
                    "predicted downtime %.1f ms fits the %.0f ms target; the round cut the dirty pages from %llu to "
                    "%llu: one more round",
                    predicted, cfg_.downtime_target_ms, static_cast<unsigned long long>(obs.dirty_pages),
                    static_cast<unsigned long long>(obs.dirty_next));
      reason_ = buf;
      return Decision::kContinue;
    }
    const char* why = predicted <= kNegligibleDowntimeMs ? ""
                      : !shrank   ? " and another round would not cut them by a quarter"
                      : !in_budget ? "; another round would overrun the time budget"
                                   : "; limit reached";
    std::snprintf(buf, sizeof buf, "%llu dirty pages fit the %.0f ms downtime target (predicted %.1f ms)%s",
                  static_cast<unsigned long long>(obs.dirty_next), cfg_.downtime_target_ms, predicted, why);
    reason_ = buf;
    return Decision::kStopAndCopy;
  }
  if (obs.round + 1 >= cfg_.max_rounds) {
    std::snprintf(buf, sizeof buf, "round limit %u reached (predicted downtime %.1f ms)", cfg_.max_rounds, predicted);
    reason_ = buf;
    return Decision::kStopAndCopy;
  }
  if (cfg_.max_precopy_s > 0 && obs.elapsed_s >= cfg_.max_precopy_s) {
    std::snprintf(buf, sizeof buf, "pre-copy time limit %.0f s reached (predicted downtime %.1f ms)",
                  cfg_.max_precopy_s, predicted);
    reason_ = buf;
    return Decision::kStopAndCopy;
  }
  // Not converging: the guest dirtied at least 80% of what we just sent. After two
  // such rounds, halve the guest's run time per round (auto-converge).
  if (obs.round >= 1 && static_cast<double>(obs.dirty_next) >= 0.8 * static_cast<double>(obs.pages_sent)) {
    ++not_converging_;
  } else {
    not_converging_ = 0;
  }
  if (cfg_.auto_converge && not_converging_ >= 2) {
    run_fraction_ = std::max(cfg_.min_run_fraction, run_fraction_ * 0.5);
    not_converging_ = 0;
  }
  std::snprintf(buf, sizeof buf, "predicted downtime %.1f ms > target %.0f ms; guest run fraction %.2f", predicted,
                cfg_.downtime_target_ms, run_fraction_);
  reason_ = buf;
  return Decision::kContinue;
}

}  // namespace xm
