// PageCompressor: one way of compressing a single guest page (PROTOCOL.md §4,
// the LZ4 and ZSTD encodings), in the style of QEMU's multifd compression
// methods: each method lives in its own file and is listed once in the table
// (compressors.cc); the encoder, the governor, the decoder and the handshake
// find it there. Adding a method is its file, its line in the table, and its
// wire id and feature bit (transport/pages.h, transport/messages.h, PROTOCOL.md).
// Each method compresses a page either alone or as part of its record's stream
// (below); the session's RECORD_STREAMS bit says which.
//
// Thread-safety: the functions may be called from any number of threads at
// once; a method that needs a context keeps one per thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "transport/pages.h"

namespace xm {

// Record streams (feature RECORD_STREAMS, PROTOCOL.md §4): a method's pages in
// one PAGES record form one stream, so a page may refer back to the record's
// earlier pages of that method; on text-like memory that takes zstd from ~31%
// to ~25% of the page and makes it 1.3-1.6x faster (no per-page frame set-up).
// Both ends begin a method's stream with each record and feed it every page of
// that method in descriptor order: the destination decodes even a page it then
// discards. A page that did not compress still went through the stream, so it
// is sent in the method's encoding, up to kMaxPayload bytes.
//
// Thread-safety: a stream belongs to one thread.
class CompressStream {
 public:
  virtual ~CompressStream() = default;
  // Starts the stream of a new record, at `level` (one of the method's levels).
  virtual void Begin(int level) = 0;
  // Appends the page to the stream and writes its payload to `dst` (room for
  // kMaxPayload bytes); returns the length, or 0 when the stream failed (its
  // library context could not be created, or the library reported an error),
  // after which it must not be used again until the next Begin.
  virtual uint32_t Compress(const std::byte* page, uint8_t* dst) = 0;
  // Memory the stream holds (for the source's overhead accounting).
  virtual size_t memory_bytes() const = 0;
};
class DecompressStream {
 public:
  virtual ~DecompressStream() = default;
  // Starts the stream of a new record.
  virtual void Begin() = 0;
  // Decodes the stream's next page into `dest`; returns kPageSize when good, the
  // decoded length when it is not a page (longer counts as kPageSize + 1), or -1
  // when the payload is corrupt. Never writes past the page.
  virtual int64_t Decompress(std::span<const uint8_t> payload, std::byte* dest) = 0;
};

struct PageCompressor {
  PageEncoding encoding;
  const char* name;  // as in error messages, counts and reports: "LZ4", "ZSTD"
  uint64_t feature;  // the HELLO feature bit both ends must set to use it
  // Levels the governor may choose between, cheapest first (one entry, 0, for
  // a method without levels).
  std::span<const int> levels;
  // Compresses the page at `src` into `dst`, at most `cap` bytes; returns the
  // length, or 0 when the result would not fit in `cap`.
  uint32_t (*compress)(const std::byte* src, uint8_t* dst, uint32_t cap, int level);
  // Decompresses `payload` into the page at `dest`; returns the decoded length
  // (kPageSize when good) or -1 when the payload is corrupt. Never writes past
  // the page.
  int64_t (*decompress)(std::span<const uint8_t> payload, std::byte* dest);
  // A new record stream of each end (see above). Never null: like any other
  // allocation here, running out of memory throws. A stream whose library
  // context could not be created fails its pages instead (Compress 0, Decompress -1).
  std::unique_ptr<CompressStream> (*new_compress_stream)();
  std::unique_ptr<DecompressStream> (*new_decompress_stream)();
};

// Every method this build has, in the order the wire ids were assigned.
std::span<const PageCompressor* const> PageCompressors();
// The method sent as `encoding`, or null (not a compressed encoding).
const PageCompressor* CompressorFor(PageEncoding encoding);

// One choice the governor makes per batch: no compression (`method` null), or
// a method at one of its levels.
struct CodecChoice {
  const PageCompressor* method = nullptr;
  int level = 0;
};
// The choices a session may use: "none" first, then every method whose feature
// bit is in `features`, level by level.
std::vector<CodecChoice> CodecChoices(uint64_t features);

}  // namespace xm
