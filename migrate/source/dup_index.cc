#include "migrate/source/dup_index.h"

namespace xm {

DupIndex::DupIndex(uint32_t entries) {
  if (entries == 0) return;
  uint64_t n = 1;
  while (n < entries) n <<= 1;
  slots_.resize(n);
  mask_ = n - 1;
}

std::optional<uint64_t> DupIndex::Find(const Hash128& h) const {
  if (slots_.empty()) return std::nullopt;
  const Slot& s = slots_[h.lo & mask_];
  if (s.pfn_plus_one == 0 || !(s.h == h)) return std::nullopt;
  return s.pfn_plus_one - 1;
}

void DupIndex::Insert(const Hash128& h, uint64_t pfn) {
  if (slots_.empty()) return;
  slots_[h.lo & mask_] = {h, pfn + 1};
}

}  // namespace xm
