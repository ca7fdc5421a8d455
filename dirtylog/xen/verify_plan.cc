#include "dirtylog/xen/verify_plan.h"

#include <algorithm>

namespace xm::xen {

void VerifyPlan::RoundFlushed(uint64_t end_offset, const DirtyBitmap& pages) {
  Round r{end_offset, {}};
  pages.ForEach([&](uint64_t pfn) { r.pfns.push_back(pfn); });
  pending_.push_back(std::move(r));
}

std::vector<uint64_t> VerifyPlan::Consumed(uint64_t consumed) {
  std::vector<uint64_t> out;
  // Strictly past the end: reading the next record's first byte is what proves
  // the last record of the round was processed.
  while (!pending_.empty() && consumed > pending_.front().end_offset) {
    Round done = std::move(pending_.front());
    pending_.pop_front();
    for (uint64_t pfn : done.pfns) {
      bool sent_again = std::any_of(pending_.begin(), pending_.end(), [&](const Round& later) {
        return std::binary_search(later.pfns.begin(), later.pfns.end(), pfn);
      });
      if (!sent_again) out.push_back(pfn);
    }
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  for (uint64_t pfn : out) verified_.Set(pfn);
  handed_out_ += out.size();
  return out;
}

std::vector<uint64_t> VerifyPlan::Remaining(std::span<const PfnRange> ranges) {
  std::vector<uint64_t> out;
  for (const Round& r : pending_) out.insert(out.end(), r.pfns.begin(), r.pfns.end());
  pending_.clear();
  // This runs in the downtime: skip whole verified words (normally all of them).
  for (const PfnRange& r : ranges) {
    const uint64_t end = r.first + r.count;
    for (uint64_t pfn = r.first; pfn < end;) {
      if (pfn % 64 == 0 && pfn + 64 <= end && pfn + 64 <= verified_.size() && verified_.Word(pfn / 64) == ~uint64_t{0}) {
        pfn += 64;
        continue;
      }
      if (pfn >= verified_.size() || !verified_.Test(pfn)) out.push_back(pfn);
      ++pfn;
    }
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  handed_out_ += out.size();
  return out;
}

}  // namespace xm::xen
