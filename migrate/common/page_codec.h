// Page codec: turns guest pages into PAGES records (source) and back (destination).
//
// The source snapshots each page into the batch buffer before it hashes or
// compresses it, because a running guest may write the page meanwhile: what is
// hashed is exactly what is sent. The destination decodes straight into guest
// memory and checks every page's hash.
#pragma once

#include <sys/uio.h>

#include <cstdint>
#include <cstring>
#include <memory>
#include <span>
#include <utility>
#include <vector>

#include "base/status.h"
#include "migrate/common/codecs/page_compressor.h"
#include "transport/pages.h"

namespace xm {

// A page's full XXH3-128: the source's dup index is keyed by it.
struct Hash128 {
  uint64_t lo = 0, hi = 0;
  bool operator==(const Hash128&) const = default;
};

// Stream affinity (PROTOCOL.md §1): every pfn of a 2 MiB region travels on one
// stream, so each end touches a pfn from one thread only.
inline uint32_t StreamOfPfn(uint64_t pfn, uint32_t streams) { return static_cast<uint32_t>((pfn >> 9) % streams); }

// The page hash (PROTOCOL.md §4) is the low 64 bits of the page's XXH3-128, so
// one pass over a page gives both it and the dup index's 128-bit key.
Hash128 PageHash128(const std::byte* page);
inline uint64_t PageHash(const std::byte* page) { return PageHash128(page).lo; }
uint64_t ZeroPageHash();
bool IsZeroPage(const std::byte* page);

struct EncodeCounts {
  uint64_t zero = 0, unchanged = 0, duplicate = 0, delta = 0, lz4 = 0, zstd = 0, raw = 0;
  EncodeCounts& operator+=(const EncodeCounts& o);
  uint64_t sent() const { return zero + duplicate + delta + lz4 + zstd + raw; }
};

// One PAGES record being built: header + descriptors in one buffer, payloads in
// another, both sized for a full batch up front so nothing reallocates.
class BatchBuilder {
 public:
  // 1 MiB of payload: small enough that a few in flight stay well under 1% of a
  // guest's memory, large enough to amortise per-record costs.
  static constexpr uint32_t kMaxBatchPages = 256;

  BatchBuilder();
  void Reset(uint32_t round);
  uint32_t count() const { return count_; }
  bool full() const { return count_ == kMaxBatchPages; }
  uint32_t round() const { return round_; }

  // Where the next page's payload goes: the caller snapshots the page here,
  // then overwrites it with the encoded payload (at most kMaxPayload bytes).
  std::byte* NextSlot() { return reinterpret_cast<std::byte*>(payload_.data() + payload_used_); }
  // Appends `d`, whose payload_len bytes are at NextSlot().
  void Commit(const PageDesc& d);

  // The record body as two buffers (no copy); valid until the next Reset/Commit.
  std::span<const iovec> Body();
  size_t body_bytes() const { return descs_.size() + payload_used_; }
  size_t payload_bytes() const { return payload_used_; }
  // Descriptor i (0 <= i < count()).
  PageDesc desc(uint32_t i) const {
    PageDesc d;
    std::memcpy(&d, descs_.data() + sizeof(PagesHeader) + size_t{i} * sizeof d, sizeof d);
    return d;
  }

  // Tags for the pipeline.
  uint32_t stream = 0;

 private:
  uint32_t round_ = 0;
  uint32_t count_ = 0;
  std::vector<uint8_t> descs_;
  std::vector<uint8_t> payload_;
  size_t payload_used_ = 0;
  iovec iov_[2];
};

// One end's compression state for the PAGES record it is building or applying.
// Without record streams (the session lacks RECORD_STREAMS) each page is
// compressed alone; with them, each method's pages in the record form one
// stream (PageCompressor, PROTOCOL.md §4), created on first use and begun
// afresh with every record.
//
// Thread-safety: one per thread (a source worker, a destination lane).
class RecordCodec {
 public:
  // Call before the first page of every record, on both ends.
  void BeginRecord(bool streams);
  bool streams() const { return streams_; }
  // Compresses the page at `slot` (kMaxPayload bytes of room) in place with
  // `choice`. Returns the payload length, to be sent in the method's encoding,
  // or 0: send the page RAW. Alone, a page is compressed only when that saves at
  // least 1/8 of it; in a stream every page but a failed one is, because the
  // stream already holds it. A stream's level is its first page's in the record.
  // `scratch` holds kMaxPayload bytes.
  uint32_t Compress(const CodecChoice& choice, std::byte* slot, uint8_t* scratch);
  // Decodes a compressed page of `method` into `dest` (PageCompressor::decompress's result).
  int64_t Decompress(const PageCompressor& method, std::span<const uint8_t> payload, std::byte* dest);
  // Memory the compression streams hold.
  size_t memory_bytes() const;

 private:
  struct PerMethod {
    std::unique_ptr<CompressStream> enc;
    std::unique_ptr<DecompressStream> dec;
    uint64_t enc_record = 0, dec_record = 0;  // the record each was last begun for
    bool enc_failed = false;
  };
  PerMethod& Of(const PageCompressor& method);
  bool streams_ = false;
  uint64_t record_ = 0;  // counts BeginRecord; 0 = none yet
  std::vector<std::pair<const PageCompressor*, PerMethod>> methods_;
};

// The most a page compressed alone may take: it must save at least 1/8, since
// decompressing costs the receiver time too. The source's encoder also counts a
// stream page as "compressing" by it.
constexpr uint32_t kMaxWorthwhilePayload = kPageSize - kPageSize / 8;

// Compresses the page at `slot` alone with `choice` when that saves at least
// 1/8 of it (kMaxWorthwhilePayload); returns the payload length (kPageSize = left raw, as with no method).
// `scratch` holds kPageSize bytes.
uint32_t CompressInPlace(const CodecChoice& choice, std::byte* slot, uint8_t* scratch);
// The count a page sent with `encoding` adds to (null: not a counted encoding).
uint64_t* CountOf(EncodeCounts& c, PageEncoding encoding);

// Decodes one page into `dest` (a page of guest memory) and checks its hash.
// DELTA applies to what `dest` holds; DUP_REF copies from `dup_source`, which the
// caller resolved (and checked) from DupRefPfn(). Compressed pages go through
// `codec` when given (REQUIRES: BeginRecord called for this page's record, and
// every earlier compressed page of the record decoded through it), else alone.
Status DecodePage(const PageDesc& d, std::span<const uint8_t> payload, std::byte* dest,
                  const std::byte* dup_source = nullptr, RecordCodec* codec = nullptr);
// Whether a page with this encoding belongs to its record's stream when the
// session uses record streams: it must then be decoded even if discarded.
bool InRecordStream(const PageDesc& d);
uint64_t DupRefPfn(std::span<const uint8_t> payload);

}  // namespace xm
