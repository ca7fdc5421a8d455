// DupIndex: which page at the destination holds a given content (XXH3-128), so a
// duplicate can be sent as a reference. Direct-mapped and fixed-size (bounded
// memory, newest wins on collision). Read-only during a round; the pipeline adds
// the pages it sent after the round, which is what makes a reference safe
// (PROTOCOL.md DUP_REF).
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "migrate/common/page_codec.h"

namespace xm {

class DupIndex {
 public:
  // `entries` is rounded up to a power of two; 0 disables the index.
  explicit DupIndex(uint32_t entries);
  bool enabled() const { return !slots_.empty(); }
  std::optional<uint64_t> Find(const Hash128& h) const;
  // Callers check that the page found still holds that content (its last sent
  // hash), so entries for pages that changed since need no removal.
  void Insert(const Hash128& h, uint64_t pfn);
  uint64_t memory_bytes() const { return slots_.size() * sizeof(Slot); }

 private:
  struct Slot {
    Hash128 h;
    uint64_t pfn_plus_one = 0;  // 0 = empty
  };
  std::vector<Slot> slots_;
  uint64_t mask_ = 0;
};

}  // namespace xm
