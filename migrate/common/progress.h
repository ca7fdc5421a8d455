// The progress sink both ends report through: one JSON object an event
// ({"event": "phase" | "round", ...}). The CLI prints them for humans or as JSON
// lines. Called on the engine's own thread; an empty function means nobody listens.
#pragma once

#include <functional>

#include <nlohmann/json.hpp>

namespace xm {

using ProgressFn = std::function<void(const nlohmann::json&)>;

}  // namespace xm
