// Policy: after each pre-copy round, decides whether to go on, slow the guest
// down, or stop it and copy the rest — from measured wire bandwidth and dirty
// rate against the downtime target (DESIGN.md §1.3). The target is a ceiling,
// not a goal: the rule aims for the smallest downtime the link and the guest
// allow. Once the rest fits the ceiling, pre-copy goes on while a round still
// cuts what is left by at least a quarter, the rest is predicted above a
// negligible downtime, and the extra rounds stay inside a time budget (half of
// the pre-copy it took to fit the ceiling, counted from round 1 on), so the
// total stays bounded. Pure
// arithmetic on what it is told: no clock, no I/O, so it is tested round by
// round. Not thread-safe.
#pragma once

#include <cstdint>
#include <string>

namespace xm {

struct PolicyConfig {
  double downtime_target_ms = 300;
  uint32_t max_rounds = 30;       // rounds before stop-and-copy regardless
  double max_precopy_s = 0;       // 0 = no limit; else stop-and-copy after this long
  bool auto_converge = true;      // throttle a guest that dirties faster than we send
  double min_run_fraction = 0.05; // never throttle the guest below this
};

struct RoundObservation {
  uint32_t round = 0;
  uint64_t pages_sent = 0;
  uint64_t bytes_wire = 0;
  double ms = 0;
  uint64_t dirty_next = 0;        // pages dirty when the round ended (next round's work)
  double elapsed_s = 0;           // since the migration started
  uint64_t dirty_pages = 0;       // the round's own work (0 = unknown: stop once the rest fits)
};

enum class Decision { kContinue, kStopAndCopy };

class Policy {
 public:
  // A rest predicted to take no longer than this is not worth another round:
  // pausing and handing over cost more than that already. The goal the rule
  // aims for under the ceiling.
  static constexpr double kNegligibleDowntimeMs = 1.0;
  // Under the ceiling a round must leave at most this share of its own work
  // dirty to earn another one: a guest that re-dirties most of what was sent
  // only makes the total longer.
  static constexpr double kWorthwhileRest = 0.75;
  // Rounds after the rest first fits the ceiling may take at most this share
  // of the time it took to get there (the bound on what they add to the total).
  static constexpr double kExtraTimeShare = 0.5;

  explicit Policy(PolicyConfig cfg) : cfg_(cfg) {}

  Decision Decide(const RoundObservation& obs);
  // Guest run fraction wanted for the next round (1.0 = unthrottled).
  double run_fraction() const { return run_fraction_; }
  // Bytes per millisecond the link delivered so far (all rounds).
  double bandwidth_bytes_per_ms() const;
  // Expected stop-and-copy time for `pages` dirty pages at the bandwidth seen so far
  // (Decide prefers the last round's cost per page when it has one).
  double PredictDowntimeMs(uint64_t pages) const;
  const std::string& reason() const { return reason_; }
  // The stop-and-copy time the last Decide() judged by (for reports and plots).
  double last_prediction_ms() const { return last_prediction_ms_; }

 private:
  PolicyConfig cfg_;
  uint64_t total_bytes_ = 0;
  uint64_t total_pages_ = 0;
  double total_ms_ = 0;
  uint32_t not_converging_ = 0;
  double run_fraction_ = 1.0;
  double last_prediction_ms_ = 0;
  double fit_at_s_ = -1;  // elapsed_s when the rest first fitted the ceiling (-1: not yet)
  std::string reason_;
};

}  // namespace xm
