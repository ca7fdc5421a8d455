// Stateless page encoding for tests and benchmarks: zero, compressed (LZ4
// unless told another codec choice) when it saves 1/8 of the page, else raw. Production encodes through PageEncoder, which adds
// the stateful encodings (unchanged, delta, dup ref) on top of the same
// BatchBuilder::NextSlot/Commit calls; this builds batches without that state.
#pragma once

#include <cstring>
#include <vector>

#include "migrate/common/page_codec.h"

namespace xm::testing {

// Appends `page` as `pfn` to `batch`, compressed with `codec` (none: raw),
// and returns its page hash. With `record` (begun for the record being built)
// compressed pages go through its record streams (PROTOCOL.md §4).
inline uint64_t AddPage(BatchBuilder& batch, uint64_t pfn, const std::byte* page, const CodecChoice& codec,
                        EncodeCounts& counts, RecordCodec* record = nullptr) {
  thread_local std::vector<uint8_t> scratch(kMaxPayload);
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
    const uint32_t n = record ? record->Compress(codec, slot, scratch.data()) : CompressInPlace(codec, slot, scratch.data());
    const bool compressed = record ? n != 0 : n < kPageSize;
    d.payload_len = compressed ? n : kPageSize;
    d.encoding = static_cast<uint8_t>(compressed ? codec.method->encoding : PageEncoding::kRaw);
    ++*CountOf(counts, static_cast<PageEncoding>(d.encoding));
  }
  batch.Commit(d);
  return d.hash;
}

inline uint64_t AddPage(BatchBuilder& batch, uint64_t pfn, const std::byte* page, bool try_lz4,
                        EncodeCounts& counts) {
  return AddPage(batch, pfn, page, CodecChoice{try_lz4 ? CompressorFor(PageEncoding::kLz4) : nullptr}, counts);
}

}  // namespace xm::testing
