// WorkloadSpec: how a synthetic guest dirties its memory (sim backend, KVM payload).
//
// "ws=768M,hot=512M,rate=100M/s,fill=mixed": fill a working set of `ws` bytes,
// then forever write an incrementing 8-byte counter into each page of the first
// `hot` bytes, paced to `rate` bytes/s (a page counts as page_size bytes; 0 = as
// fast as possible). Sizes accept K/M/G or a percentage of guest memory.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "base/status.h"

namespace xm {

enum class Fill : uint8_t {
  kRandom = 0,  // xorshift64 bytes: incompressible and never a zero page
  kMixed = 1,   // fixed interleave of zero, text-like and random pages
};

struct WorkloadSpec {
  uint64_t ws_bytes = 0;
  uint64_t hot_bytes = 0;
  uint64_t rate_bytes_per_s = 0;  // 0 = unpaced
  Fill fill = Fill::kRandom;

  std::string ToString() const;
  bool operator==(const WorkloadSpec&) const = default;
};

// Parses the spec; percentages are of `memory_bytes`, and ws/hot are clamped-checked
// against it. Omitted parts default to 0 (idle).
Result<WorkloadSpec> ParseWorkload(std::string_view text, uint64_t memory_bytes);

// The content the fill gives page `pfn` of the working set. `out` is one page.
// Shared so tests can predict guest memory.
void FillPage(Fill fill, uint64_t pfn, std::byte* out, uint32_t page_size);

}  // namespace xm
