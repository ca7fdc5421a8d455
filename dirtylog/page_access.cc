#include "dirtylog/page_access.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <string>
#include <vector>

#include "base/unique_fd.h"

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

void PagesTouched(const std::byte* base, uint64_t page_count, DirtyBitmap& out) {
  constexpr uint64_t kPresent = uint64_t{1} << 63, kSwapped = uint64_t{1} << 62;
  const uint64_t host_page = static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
  UniqueFd fd(::open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC));
  if (!fd.valid() || host_page != kPageSize) {
    out.SetAll();
    return;
  }
  // 8 bytes per page: 2 MiB of entries per GiB of guest, read 16 MiB of guest at a time.
  constexpr uint64_t kChunk = 4096;
  std::vector<uint64_t> entries(kChunk);
  const uint64_t first = reinterpret_cast<uintptr_t>(base) / kPageSize;
  for (uint64_t p = 0; p < page_count; p += kChunk) {
    const uint64_t n = std::min(kChunk, page_count - p);
    const ssize_t want = static_cast<ssize_t>(n * sizeof(uint64_t));
    if (::pread(fd.get(), entries.data(), static_cast<size_t>(want), static_cast<off_t>((first + p) * 8)) != want) {
      out.SetAll();
      return;
    }
    uint64_t words[kChunk / 64] = {};
    for (uint64_t i = 0; i < n; ++i)
      if (entries[i] & (kPresent | kSwapped)) words[i / 64] |= uint64_t{1} << (i % 64);
    out.OrWords(p, words, (n + 63) / 64);
  }
}

}  // namespace xm
