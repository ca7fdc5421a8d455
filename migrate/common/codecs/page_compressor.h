// PageCompressor: one way of compressing a single guest page (PROTOCOL.md §4,
// the LZ4 and ZSTD encodings), in the style of QEMU's multifd compression
// methods: each method lives in its own file and is listed once in the table
// (compressors.cc); the encoder, the governor, the decoder and the handshake
// find it there. Adding a method is its file, its line in the table, and its
// wire id and feature bit (transport/pages.h, transport/messages.h, PROTOCOL.md).
//
// Thread-safety: the functions may be called from any number of threads at
// once; a method that needs a context keeps one per thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "transport/pages.h"

namespace xm {

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
