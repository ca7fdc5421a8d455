#include "migrate/common/cancel.h"

namespace xm {

Canceller::Answer Canceller::Request(const std::string& by) {
  std::lock_guard lock(mu_);
  if (requested_.load()) return Answer::kAlreadyCancelled;
  if (door_closed_) return Answer::kRefused;
  by_ = by;
  phase_at_cancel_ = phase_;
  round_at_cancel_ = round_;
  requested_.store(true, std::memory_order_release);
  if (interrupt_) interrupt_();
  return Answer::kAccepted;
}

void Canceller::SetPhase(const std::string& phase, std::optional<uint32_t> round) {
  std::lock_guard lock(mu_);
  phase_ = phase;
  round_ = round;
}

bool Canceller::PassPointOfNoReturn(const std::string& why_refused) {
  std::lock_guard lock(mu_);
  if (requested_.load()) return false;
  door_closed_ = true;
  refusal_ = why_refused;
  return true;
}

void Canceller::SetInterrupt(std::function<void()> hook) {
  std::lock_guard lock(mu_);
  interrupt_ = std::move(hook);
  if (interrupt_ && requested_.load()) interrupt_();
}

Status Canceller::CancelledStatus() const {
  std::lock_guard lock(mu_);
  std::string where = phase_at_cancel_;
  if (round_at_cancel_) where += " (round " + std::to_string(*round_at_cancel_) + ")";
  return Status(Code::kCancelled, "cancelled by " + by_ + " during " + where);
}

std::string Canceller::phase_at_cancel() const {
  std::lock_guard lock(mu_);
  return phase_at_cancel_;
}

std::string Canceller::phase() const {
  std::lock_guard lock(mu_);
  return phase_;
}

std::optional<uint32_t> Canceller::round_at_cancel() const {
  std::lock_guard lock(mu_);
  return round_at_cancel_;
}

std::string Canceller::by() const {
  std::lock_guard lock(mu_);
  return by_;
}

std::string Canceller::refusal() const {
  std::lock_guard lock(mu_);
  return refusal_;
}

void RecordFailure(MigrationReport& report, const Status& st, const Canceller* own, const std::string& phase_now,
                   std::optional<uint32_t> round_now) {
  if (st.code() == Code::kCancelled && own && own->requested())
    report.SetFailure(st, own->phase_at_cancel(), own->round_at_cancel());
  else
    report.SetFailure(st, phase_now, round_now);
}

}  // namespace xm
