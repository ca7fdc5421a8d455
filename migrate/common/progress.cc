#include "migrate/common/progress.h"

#include <chrono>

namespace xm {

nlohmann::json StampEvent(const std::string& event, const std::string& side, const std::string& phase,
                          nlohmann::json fields) {
  nlohmann::json e = fields.is_object() ? std::move(fields) : nlohmann::json::object();
  e["schema"] = kProgressSchema;
  e["event"] = event;
  e["time"] = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  e["phase"] = phase;
  e["side"] = side;
  return e;
}

void ProgressEmitter::Phase(const std::string& phase, nlohmann::json fields) {
  std::lock_guard lock(mu_);
  phase_ = phase;
  if (sink_) sink_(StampEvent("phase", side_, phase_, std::move(fields)));
}

void ProgressEmitter::Emit(const std::string& event, nlohmann::json fields) {
  std::lock_guard lock(mu_);
  if (sink_) sink_(StampEvent(event, side_, phase_, std::move(fields)));
}

std::string ProgressEmitter::phase() const {
  std::lock_guard lock(mu_);
  return phase_;
}

}  // namespace xm
