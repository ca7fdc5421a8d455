// Progress events both ends report while they work (schema in
// migrate/common/PROGRESS.md): JSON objects that always carry `schema`,
// `event`, `time` (unix seconds), `phase` and `side`. The CLI prints them as
// JSON lines, a progress bar or log lines; an empty ProgressFn means nobody
// listens.
//
// Thread-safety: ProgressEmitter may be used from several threads (an engine
// and its transfer meter); events reach the sink one at a time, in order.
#pragma once

#include <functional>
#include <mutex>
#include <string>

#include <nlohmann/json.hpp>

namespace xm {

// Bumped when a field changes meaning or goes; new fields may appear within a version.
inline constexpr const char* kProgressSchema = "xmotion-progress/1";

using ProgressFn = std::function<void(const nlohmann::json&)>;

// `fields` plus the members every event carries.
nlohmann::json StampEvent(const std::string& event, const std::string& side, const std::string& phase,
                          nlohmann::json fields);

class ProgressEmitter {
 public:
  // `side`: "source" or "destination".
  ProgressEmitter(ProgressFn sink, std::string side) : sink_(std::move(sink)), side_(std::move(side)) {}

  // Enters `phase` and emits a "phase" event with `fields`.
  void Phase(const std::string& phase, nlohmann::json fields = nlohmann::json::object());
  void Emit(const std::string& event, nlohmann::json fields);
  std::string phase() const;
  bool listening() const { return static_cast<bool>(sink_); }

 private:
  ProgressFn sink_;
  const std::string side_;
  mutable std::mutex mu_;
  std::string phase_ = "starting";
};

}  // namespace xm
