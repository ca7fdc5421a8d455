// Stateless page encoding for tests and benchmarks: zero, compressed (LZ4
// unless told another codec choice) when it saves 1/8 of the page, else raw. Production encodes through PageEncoder, which adds
// the stateful encodings (unchanged, delta, dup ref) on top of the same
// BatchBuilder::NextSlot/Commit calls; this builds batches without that state.
#pragma once

#include <sys/uio.h>

#include <cstring>
#include <span>
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
    RecordCodec alone;  // each page compressed alone, when no record stream is given
    if (!record) {
      alone.BeginRecord(false);
      record = &alone;
    }
    const uint32_t n = record->Compress(codec, slot, scratch.data());
    d.payload_len = n ? n : kPageSize;
    d.encoding = static_cast<uint8_t>(n ? codec.method->encoding : PageEncoding::kRaw);
    ++*CountOf(counts, static_cast<PageEncoding>(d.encoding));
  }
  batch.Commit(d);
  return d.hash;
}

// A record body (BatchBuilder::Body) as one buffer, as it arrives.
inline std::vector<uint8_t> Flatten(std::span<const iovec> body) {
  std::vector<uint8_t> out;
  for (const iovec& v : body) {
    const auto* p = static_cast<const uint8_t*>(v.iov_base);
    out.insert(out.end(), p, p + v.iov_len);
  }
  return out;
}

// `n` pages cut from one random text (64 letters, drawn from `seed`) at
// offsets `step` bytes apart: alone a page hardly compresses (no repeats
// inside it), but each repeats a stretch of the pages before it, which only a
// record stream (PROTOCOL.md §4) can use.
inline std::vector<std::vector<std::byte>> OverlappingTextPages(size_t n, uint64_t seed = 99, size_t step = 1024) {
  std::vector<char> text(kPageSize * 4);
  uint64_t s = seed;
  for (char& ch : text) {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    ch = static_cast<char>('0' + (s >> 58));
  }
  std::vector<std::vector<std::byte>> pages;
  for (size_t i = 0; i < n; ++i) {
    std::vector<std::byte> p(kPageSize);
    std::memcpy(p.data(), text.data() + (i * step) % (text.size() - kPageSize), kPageSize);
    pages.push_back(std::move(p));
  }
  return pages;
}

inline uint64_t AddPage(BatchBuilder& batch, uint64_t pfn, const std::byte* page, bool try_lz4,
                        EncodeCounts& counts) {
  return AddPage(batch, pfn, page, CodecChoice{try_lz4 ? CompressorFor(PageEncoding::kLz4) : nullptr}, counts);
}

}  // namespace xm::testing
