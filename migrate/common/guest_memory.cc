#include "migrate/common/guest_memory.h"

#include <fcntl.h>
#include <unistd.h>
#include <xxhash.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "base/unique_fd.h"
#include "dirtylog/page_access.h"
#include "migrate/common/page_codec.h"

namespace xm {

Status ForEachPage(Backend& backend, const std::function<Status(uint64_t, const std::byte*)>& fn) {
  const GuestShape& shape = backend.shape();
  PageAccess pages(backend);
  std::vector<uint64_t> pfns;
  for (const auto& r : shape.ranges) {
    for (uint64_t first = r.first; first < r.first + r.count; first += 512) {
      pfns.clear();
      for (uint64_t p = first; p < std::min(r.first + r.count, first + 512); ++p) pfns.push_back(p);
      XM_TRY(pages.Map(pfns, Access::kRead));
      for (size_t i = 0; i < pfns.size(); ++i) XM_TRY(fn(pfns[i], pages.page(i)));
    }
  }
  return {};
}

Digest128 MemoryDigest(const GuestShape& shape, std::span<const uint64_t> page_hashes) {
  XXH3_state_t st;
  XXH3_128bits_reset(&st);
  for (const auto& r : shape.ranges)
    XXH3_128bits_update(&st, page_hashes.data() + r.first, r.count * sizeof(uint64_t));
  XXH128_canonical_t c;
  XXH128_canonicalFromHash(&c, XXH3_128bits_digest(&st));
  Digest128 d;
  std::memcpy(d.data(), c.digest, d.size());
  return d;
}

Status CheckMemory(Backend& backend, std::span<const uint64_t> page_hashes, std::string_view why,
                   uint64_t* differing) {
  // Every page is walked, not only up to the first difference: how many pages
  // differ is the audit's figure (the report's dirty_log_misses).
  uint64_t count = 0, first = 0;
  XM_TRY(ForEachPage(backend, [&](uint64_t pfn, const std::byte* page) -> Status {
    uint64_t h = IsZeroPage(page) ? ZeroPageHash() : PageHash(page);
    if (h != page_hashes[pfn] && count++ == 0) first = pfn;
    return {};
  }));
  if (differing) *differing = count;
  if (count == 0) return {};
  return Error(Code::kIntegrity, "pfn " + std::to_string(first) + " " + std::string(why) +
                                     (count > 1 ? " (" + std::to_string(count) + " pages in all)" : ""));
}

Status DumpMemory(Backend& backend, const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  if (!fd.valid()) return ErrnoError("dump memory to " + path, errno);
  const uint32_t page_size = backend.shape().page_size;
  return ForEachPage(backend, [&](uint64_t pfn, const std::byte* page) -> Status {
    if (::pwrite(fd.get(), page, page_size, static_cast<off_t>(pfn * page_size)) != static_cast<ssize_t>(page_size))
      return ErrnoError("dump memory to " + path, errno);
    return {};
  });
}

}  // namespace xm
