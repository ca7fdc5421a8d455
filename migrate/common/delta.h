// XOR-delta pages (PROTOCOL.md DELTA): a page that was sent before and is dirty
// again often differs in a few bytes (counters, list heads). The delta is the
// list of byte runs where it changed, each XORed with the old contents.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "base/status.h"

namespace xm {

// Writes the delta from `base` to `page` into `out` (capacity `max_len`) and
// returns its length, or 0 when the delta would not fit (send the page instead).
// `page == base` yields a 0-length result too (the caller sees "unchanged" first).
size_t EncodeDelta(const std::byte* base, const std::byte* page, uint8_t* out, size_t max_len);

// XORs the runs of `delta` into `page` in place. Rejects runs that are out of
// order, overlapping, empty or outside the page.
Status ApplyDelta(std::span<const uint8_t> delta, std::byte* page);

}  // namespace xm
