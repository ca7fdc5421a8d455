// Page codec: turns guest pages into PAGES records (source) and back (destination).
//
// The source snapshots each page into the batch buffer before it hashes or
// compresses it, because a running guest may write the page meanwhile: what is
// hashed is exactly what is sent. The destination decodes straight into guest
// memory and checks every page's hash.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include <sys/uio.h>

#include "base/status.h"
#include "transport/pages.h"

namespace xm {

uint64_t PageHash(const std::byte* page);
uint64_t ZeroPageHash();
bool IsZeroPage(const std::byte* page);

struct EncodeCounts {
  uint64_t zero = 0, unchanged = 0, duplicate = 0, delta = 0, lz4 = 0, raw = 0;
  EncodeCounts& operator+=(const EncodeCounts& o);
  uint64_t sent() const { return zero + duplicate + delta + lz4 + raw; }
};

// Builds one PAGES record: header + descriptors in one buffer, payloads in another.
class BatchBuilder {
 public:
  BatchBuilder();
  void Reset(uint32_t round);
  uint32_t count() const { return count_; }
  bool full() const { return count_ == kMaxBatchPages; }

  // Snapshots, classifies and encodes `page`; returns its hash (what was sent).
  uint64_t Add(uint64_t pfn, const std::byte* page, bool try_lz4, EncodeCounts& counts);

  // The record body as two buffers (no copy); valid until the next Reset/Add.
  std::span<const iovec> Body();
  size_t body_bytes() const { return descs_.size() + payload_used_; }

  static constexpr uint32_t kMaxBatchPages = 512;

 private:
  uint32_t count_ = 0;
  std::vector<uint8_t> descs_;
  std::vector<uint8_t> payload_;
  size_t payload_used_ = 0;
  std::vector<uint8_t> lz4_scratch_;
  iovec iov_[2];
};

// Decodes one page into `dest` (a page of guest memory) and checks its hash.
Status DecodePage(const PageDesc& d, std::span<const uint8_t> payload, std::byte* dest);

}  // namespace xm
