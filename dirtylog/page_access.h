// PageAccess: guest pages made addressable for one batch, through one path
// whether the backend's memory is a linear mapping in this process (sim, kvm:
// Backend::DirectMemory) or must be mapped per batch (Xen's foreign mapping:
// Backend::MapPages). Callers ask for pfns and get pointers; which of the two
// it was is this class's business alone.
//
// Thread-safety: one PageAccess per thread; any number may exist for one
// backend at once (MapPages is safe for disjoint pfns, backend.h).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

#include "dirtylog/backend.h"

namespace xm {

class PageAccess {
 public:
  explicit PageAccess(Backend& backend)
      : backend_(backend), direct_(backend.DirectMemory()), page_size_(backend.shape().page_size) {}

  // Makes `pfns` addressable for `access`, replacing the previous batch.
  // REQUIRES: `pfns` stays alive and unchanged while page() is used; every
  // pfn is populated (in shape().ranges).
  Status Map(std::span<const uint64_t> pfns, Access access) {
    pfns_ = pfns;
    if (direct_) return {};
    XM_ASSIGN_OR_RETURN(mapped_, backend_.MapPages(pfns, access));
    return {};
  }
  // The page of pfns[i] from the last Map.
  std::byte* page(size_t i) const { return direct_ ? direct_ + pfns_[i] * page_size_ : mapped_.pages[i]; }

  // One page on its own, valid until the next Map or One on this object.
  Result<std::byte*> One(uint64_t pfn, Access access) {
    one_ = pfn;
    XM_TRY(Map(std::span<const uint64_t>(&one_, 1), access));
    return page(0);
  }

 private:
  Backend& backend_;
  std::byte* const direct_;
  const uint32_t page_size_;
  std::span<const uint64_t> pfns_;
  MappedPages mapped_;
  uint64_t one_ = 0;
};

// MapPages for a backend whose memory is one linear mapping at `base`: what
// sim, kvm and wrappers around them return. `who` names the backend in errors.
Result<MappedPages> MapLinear(std::byte* base, const GuestShape& shape, std::span<const uint64_t> pfns,
                              std::string_view who);

// Backend::PagesMaybeWritten for guest memory that is private anonymous memory
// of this process at `base` (sim, kvm): ORs into `out` the pages the kernel
// has ever given a page frame, present or swapped (/proc/self/pagemap). A page
// that never had one was never written and reads as zero; one that only a
// read touched maps the shared zero page and counts as touched (it is read and
// found zero, as before). Where pagemap cannot be read, every page counts.
void PagesTouched(const std::byte* base, uint64_t page_count, DirtyBitmap& out);

}  // namespace xm
