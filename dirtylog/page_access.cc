#include "dirtylog/page_access.h"

#include <string>

namespace xm {

Result<MappedPages> MapLinear(std::byte* base, const GuestShape& shape, std::span<const uint64_t> pfns,
                              std::string_view who) {
  MappedPages m;
  m.pages.reserve(pfns.size());
  for (uint64_t pfn : pfns) {
    if (pfn >= shape.page_count)
      return Error(Code::kInvalidArgument, std::string(who) + ": pfn " + std::to_string(pfn) + " outside the guest");
    m.pages.push_back(base + pfn * shape.page_size);
  }
  return m;
}

}  // namespace xm
