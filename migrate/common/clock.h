// The one clock phases and rounds are timed with.
#pragma once

#include <chrono>

namespace xm {

using Clock = std::chrono::steady_clock;

inline double MsSince(Clock::time_point t) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t).count();
}

}  // namespace xm
