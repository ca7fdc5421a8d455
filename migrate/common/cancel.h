// Canceller: an operator's "stop this migration" (SIGINT/SIGTERM, an `abort`
// control line) carried safely into an engine that may be blocked anywhere.
//
// A cancel is accepted only before the engine's point of no return (the source
// writing GO, the destination writing READY): the engine then stops where it
// is, tells the peer with ABORT (code `cancelled`), leaves the source guest
// running and discards the destination's copy; the report says `cancelled`
// and the phase. After the point of no return a cancel is refused with the
// reason and the handoff finishes, because only finishing it keeps the guest
// from being lost or running twice (PROTOCOL.md §6).
//
// Request() never blocks on the engine: it records the cancel and runs the
// engine's interrupt hook (which wakes a blocked read, never does the work).
//
// Thread-safety: every method may be called from any thread. The interrupt
// hook runs under an internal lock; after SetInterrupt({}) returns no hook runs.
#pragma once

#include <atomic>
#include <functional>
#include <mutex>
#include <optional>
#include <string>

#include "base/status.h"
#include "migrate/common/report.h"

namespace xm {

class Canceller {
 public:
  enum class Answer { kAccepted, kAlreadyCancelled, kRefused };

  // `by` names who asked ("SIGTERM", "control line", ...). kRefused after the
  // point of no return: refusal() says why.
  Answer Request(const std::string& by);
  bool requested() const { return requested_.load(std::memory_order_acquire); }

  // The engine's side. The phase is what the report names when a cancel lands.
  void SetPhase(const std::string& phase, std::optional<uint32_t> round = {});
  // Closes the door for good unless a cancel came first: false means the
  // engine must stop (cancelled) instead of passing its point of no return.
  bool PassPointOfNoReturn(const std::string& why_refused);
  // Called (under the lock) on an accepted cancel, and at once if one was
  // already accepted when it is set. Empty = none.
  void SetInterrupt(std::function<void()> hook);

  // The status an engine ends with once cancelled: kCancelled, who, phase.
  Status CancelledStatus() const;
  std::string phase_at_cancel() const;
  // The phase the engine is in now (what a cancel would land in).
  std::string phase() const;
  std::optional<uint32_t> round_at_cancel() const;
  std::string by() const;
  std::string refusal() const;

 private:
  mutable std::mutex mu_;
  std::atomic<bool> requested_{false};
  bool door_closed_ = false;
  std::string phase_ = "starting";
  std::optional<uint32_t> round_, round_at_cancel_;
  std::string phase_at_cancel_;
  std::string by_;
  std::string refusal_;
  std::function<void()> interrupt_;
};

// Fills the report of a migration that ended with `st` (report.h SetFailure):
// a cancel of our own is placed where it landed (`own`'s phase and round),
// anything else (the peer's cancel included) where this side stood:
// `phase_now`, `round_now`.
void RecordFailure(MigrationReport& report, const Status& st, const Canceller* own, const std::string& phase_now,
                   std::optional<uint32_t> round_now);

}  // namespace xm
