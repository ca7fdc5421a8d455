#include "migrate/common/delta.h"

#include <cstring>
#include <string>

#include "transport/pages.h"

namespace xm {
namespace {

constexpr size_t kRunHeader = 4;  // u16 offset, u16 length
// Two changed words closer than this are sent as one run: a run header costs 4 bytes.
constexpr size_t kMergeGap = 8;

uint64_t Word(const std::byte* p, size_t off) {
  uint64_t v;
  std::memcpy(&v, p + off, 8);
  return v;
}

}  // namespace

size_t EncodeDelta(const std::byte* base, const std::byte* page, uint8_t* out, size_t max_len) {
  size_t len = 0;
  size_t off = 0;
  while (off < kPageSize) {
    // Find the next differing 8-byte word.
    while (off < kPageSize && Word(base, off) == Word(page, off)) off += 8;
    if (off >= kPageSize) break;
    size_t start = off;
    size_t end = off + 8;
    // Extend while words differ or the gap to the next difference is small;
    // give up as soon as the run alone overflows `max_len` (a page rewritten
    // throughout fails after a quarter of it, not after the whole page).
    while (end < kPageSize) {
      if (len + kRunHeader + (end - start) > max_len) return 0;
      if (Word(base, end) != Word(page, end)) {
        end += 8;
        continue;
      }
      size_t probe = end;
      while (probe < kPageSize && probe - end < kMergeGap && Word(base, probe) == Word(page, probe)) probe += 8;
      if (probe < kPageSize && probe - end < kMergeGap) {
        end = probe;
        continue;
      }
      break;
    }
    size_t n = end - start;
    if (len + kRunHeader + n > max_len) return 0;
    uint16_t o16 = static_cast<uint16_t>(start), n16 = static_cast<uint16_t>(n);
    std::memcpy(out + len, &o16, 2);
    std::memcpy(out + len + 2, &n16, 2);
    len += kRunHeader;
    for (size_t i = 0; i < n; ++i)
      out[len + i] = static_cast<uint8_t>(page[start + i]) ^ static_cast<uint8_t>(base[start + i]);
    len += n;
    off = end;
  }
  return len;
}

Status ApplyDelta(std::span<const uint8_t> delta, std::byte* page) {
  size_t pos = 0;
  size_t next_free = 0;
  while (pos < delta.size()) {
    if (delta.size() - pos < kRunHeader) return Error(Code::kProtocol, "DELTA run header truncated");
    uint16_t off, n;
    std::memcpy(&off, delta.data() + pos, 2);
    std::memcpy(&n, delta.data() + pos + 2, 2);
    pos += kRunHeader;
    if (n == 0 || off < next_free || size_t{off} + n > kPageSize)
      return Error(Code::kProtocol, "DELTA run at offset " + std::to_string(off) + " length " + std::to_string(n) +
                                        " is empty, out of order or outside the page");
    if (delta.size() - pos < n) return Error(Code::kProtocol, "DELTA run data truncated");
    for (size_t i = 0; i < n; ++i) page[off + i] ^= static_cast<std::byte>(delta[pos + i]);
    pos += n;
    next_free = size_t{off} + n;
  }
  return {};
}

}  // namespace xm
