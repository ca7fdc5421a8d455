#include "base/guest.h"

namespace xm {

uint64_t GuestShape::memory_bytes() const {
  uint64_t pages = 0;
  for (const auto& r : ranges) pages += r.count;
  return pages * page_size;
}

}  // namespace xm
