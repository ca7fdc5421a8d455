// Stateless page encoding for tests and benchmarks: zero, LZ4 when it saves
// 1/8 of the page, else raw. Production encodes through PageEncoder, which adds
// the stateful encodings (unchanged, delta, dup ref) on top of the same
// BatchBuilder::NextSlot/Commit calls; this builds batches without that state.
#pragma once

#include <cstring>
#include <vector>

#include "migrate/common/page_codec.h"

namespace xm::testing {

// Appends `page` as `pfn` to `batch` and returns its page hash.
inline uint64_t AddPage(BatchBuilder& batch, uint64_t pfn, const std::byte* page, bool try_lz4,
                        EncodeCounts& counts) {
  thread_local std::vector<uint8_t> scratch(MaxLz4Payload());
  PageDesc d;
  d.pfn = pfn;
  std::byte* slot = batch.NextSlot();
  std::memcpy(slot, page, kPageSize);
  if (IsZeroPage(slot)) {
    d.hash = ZeroPageHash();
    d.encoding = static_cast<uint8_t>(PageEncoding::kZero);
    ++counts.zero;
  } else {
    d.hash = PageHash(slot);
    d.payload_len = try_lz4 ? CompressInPlace(slot, scratch.data()) : kPageSize;
    bool lz4 = d.payload_len < kPageSize;
    d.encoding = static_cast<uint8_t>(lz4 ? PageEncoding::kLz4 : PageEncoding::kRaw);
    ++(lz4 ? counts.lz4 : counts.raw);
  }
  batch.Commit(d);
  return d.hash;
}

}  // namespace xm::testing
