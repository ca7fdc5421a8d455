// LZ4 (PROTOCOL.md §4 encoding 2): ~1-3 GB/s per core here, about half the size
// on text-like pages. No levels: its fast mode is the only one worth its CPU.
#include <lz4.h>

#include "migrate/common/codecs/page_compressor.h"
#include "transport/messages.h"

namespace xm {
namespace {

constexpr int kLevels[] = {0};

uint32_t Compress(const std::byte* src, uint8_t* dst, uint32_t cap, int) {
  int n = LZ4_compress_default(reinterpret_cast<const char*>(src), reinterpret_cast<char*>(dst), kPageSize,
                               static_cast<int>(cap));
  return n > 0 ? static_cast<uint32_t>(n) : 0;
}

int64_t Decompress(std::span<const uint8_t> payload, std::byte* dest) {
  return LZ4_decompress_safe(reinterpret_cast<const char*>(payload.data()), reinterpret_cast<char*>(dest),
                             static_cast<int>(payload.size()), kPageSize);
}

}  // namespace

extern const PageCompressor kLz4Compressor{PageEncoding::kLz4, "LZ4", kFeatureLz4, kLevels, Compress, Decompress};

}  // namespace xm
