// zstd (PROTOCOL.md §4 encoding 5): one zstd frame per page, without checksum
// (the page hash checks the result). Slower than LZ4 but ~25% smaller on
// text-like pages, so it pays on links slower than the compressors; the
// governor picks the level by how much CPU time the link leaves spare.
#include <zstd.h>

#include <memory>

#include "migrate/common/codecs/page_compressor.h"
#include "transport/messages.h"

namespace xm {
namespace {

constexpr int kLevels[] = {1, 3};

// A context per thread: creating one costs more than compressing a page.
struct CCtxFree {
  void operator()(ZSTD_CCtx* c) const { ZSTD_freeCCtx(c); }
};
struct DCtxFree {
  void operator()(ZSTD_DCtx* c) const { ZSTD_freeDCtx(c); }
};

uint32_t Compress(const std::byte* src, uint8_t* dst, uint32_t cap, int level) {
  thread_local std::unique_ptr<ZSTD_CCtx, CCtxFree> cctx{ZSTD_createCCtx()};
  if (!cctx) return 0;  // out of memory: the page goes raw
  size_t n = ZSTD_compressCCtx(cctx.get(), dst, cap, src, kPageSize, level);
  return ZSTD_isError(n) ? 0 : static_cast<uint32_t>(n);
}

int64_t Decompress(std::span<const uint8_t> payload, std::byte* dest) {
  thread_local std::unique_ptr<ZSTD_DCtx, DCtxFree> dctx{ZSTD_createDCtx()};
  if (!dctx) return -1;
  // A frame claiming more than a page fails with "destination too small"
  // rather than writing past it.
  size_t n = ZSTD_decompressDCtx(dctx.get(), dest, kPageSize, payload.data(), payload.size());
  return ZSTD_isError(n) ? -1 : static_cast<int64_t>(n);
}

}  // namespace

extern const PageCompressor kZstdCompressor{PageEncoding::kZstd, "ZSTD", kFeatureZstd, kLevels, Compress, Decompress};

}  // namespace xm
