#include "base/guest.h"

namespace xm {

uint64_t GuestShape::populated_pages() const {
  uint64_t pages = 0;
  for (const auto& r : ranges) pages += r.count;
  return pages;
}

std::string_view GuestStateName(GuestState s) {
  switch (s) {
    case GuestState::kRunning: return "running";
    case GuestState::kPaused: return "paused";
    case GuestState::kSuspended: return "suspended";
    case GuestState::kCrashed: return "crashed";
    case GuestState::kShutdown: return "shutdown";
    case GuestState::kGone: return "gone";
  }
  return "unknown";
}

}  // namespace xm
