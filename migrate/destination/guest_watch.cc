#include "migrate/destination/guest_watch.h"

#include <thread>

namespace xm {

void WatchResumedGuest(Backend& guest, const GuestProgress& at_resume, Clock::time_point resumed_at,
                       int selfcheck_wait_ms, MigrationReport& report) {
  if (!at_resume.available) return;
  GuestProgress after = guest.Progress();
  // A guest that checks its own memory must finish one whole check here.
  auto deadline = Clock::now() + std::chrono::milliseconds(selfcheck_wait_ms);
  while (after.selfcheck && after.checks_passed + after.checks_failed == 0 && Clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    after = guest.Progress();
  }
  nlohmann::json g = report.guest.value_or(nlohmann::json::object());
  g["counter_at_resume"] = at_resume.counter;
  g["counter_after"] = after.counter;
  g["observed_ms"] = MsSince(resumed_at);
  g["running"] = guest.Running();
  if (!after.describe.empty()) g["says"] = after.describe;
  report.guest = g;
  if (after.selfcheck) {
    bool passed = after.checks_failed == 0 && after.checks_passed >= 1 && after.counter > at_resume.counter;
    report.guest_selfcheck = nlohmann::json{{"counter_at_pause", at_resume.counter},
                                            {"counter_after_resume", after.counter},
                                            {"checks_passed", after.checks_passed},
                                            {"checks_failed", after.checks_failed},
                                            {"status", passed ? "passed" : "failed"}};
  }
}

}  // namespace xm
