// zstd (PROTOCOL.md §4 encoding 5). A page alone is one zstd frame without
// checksum (the page hash checks the result): slower than LZ4 but ~40% smaller
// on text-like pages, so it pays on links slower than the compressors; the
// governor picks the level by how much CPU time the link leaves spare. In a
// record stream the record's ZSTD pages are one frame, each page's payload the
// blocks one flush produced.
#include <zstd.h>

#include <memory>

#include "migrate/common/codecs/page_compressor.h"
#include "transport/messages.h"

namespace xm {
namespace {

constexpr int kLevels[] = {1, 3};
// A record stream's window and match tables, sized for memory: each source
// worker and destination lane holds a context for the whole migration. A 64 KiB
// window with 32 Ki-entry tables gives up ~1% of a page on text against 1 MiB
// and zstd's defaults (0.261 vs 0.253 at level 3) for a context of 0.73 MB
// instead of 2.6 MB (ZSTD_sizeof_CCtx, zstd 1.5.4).
constexpr int kWindowLog = 16, kTableLog = 15;
// What a destination accepts (PROTOCOL.md §4): up to 1 MiB, 1.5 MB per lane.
constexpr int kMaxWindowLog = 20;

// A context per thread: creating one costs more than compressing a page.
struct CCtxFree {
  void operator()(ZSTD_CCtx* c) const { ZSTD_freeCCtx(c); }
};
struct DCtxFree {
  void operator()(ZSTD_DCtx* c) const { ZSTD_freeDCtx(c); }
};
using CCtx = std::unique_ptr<ZSTD_CCtx, CCtxFree>;
using DCtx = std::unique_ptr<ZSTD_DCtx, DCtxFree>;

uint32_t Compress(const std::byte* src, uint8_t* dst, uint32_t cap, int level) {
  thread_local CCtx cctx{ZSTD_createCCtx()};
  if (!cctx) return 0;  // out of memory: the page goes raw
  size_t n = ZSTD_compressCCtx(cctx.get(), dst, cap, src, kPageSize, level);
  return ZSTD_isError(n) ? 0 : static_cast<uint32_t>(n);
}

int64_t Decompress(std::span<const uint8_t> payload, std::byte* dest) {
  thread_local DCtx dctx{ZSTD_createDCtx()};
  if (!dctx) return -1;
  // A frame claiming more than a page fails with "destination too small"
  // rather than writing past it.
  size_t n = ZSTD_decompressDCtx(dctx.get(), dest, kPageSize, payload.data(), payload.size());
  return ZSTD_isError(n) ? -1 : static_cast<int64_t>(n);
}

class ZstdCompressStream final : public CompressStream {
 public:
  void Begin(int level) override {
    ok_ = cctx_ && !ZSTD_isError(ZSTD_CCtx_reset(cctx_.get(), ZSTD_reset_session_only)) &&
          !ZSTD_isError(ZSTD_CCtx_setParameter(cctx_.get(), ZSTD_c_compressionLevel, level)) &&
          !ZSTD_isError(ZSTD_CCtx_setParameter(cctx_.get(), ZSTD_c_windowLog, kWindowLog)) &&
          !ZSTD_isError(ZSTD_CCtx_setParameter(cctx_.get(), ZSTD_c_hashLog, kTableLog)) &&
          !ZSTD_isError(ZSTD_CCtx_setParameter(cctx_.get(), ZSTD_c_chainLog, kTableLog));
  }
  uint32_t Compress(const std::byte* page, uint8_t* dst) override {
    if (!ok_) return 0;
    ZSTD_inBuffer in{page, kPageSize, 0};
    ZSTD_outBuffer out{dst, kMaxPayload, 0};
    // A flush ends the page on a block boundary, so the destination can decode
    // it whole from this payload; 0 left to flush means it all fit.
    size_t left = ZSTD_compressStream2(cctx_.get(), &out, &in, ZSTD_e_flush);
    if (ZSTD_isError(left) || left != 0 || in.pos != kPageSize) return ok_ = false, 0;
    return static_cast<uint32_t>(out.pos);
  }
  size_t memory_bytes() const override { return cctx_ ? ZSTD_sizeof_CCtx(cctx_.get()) : 0; }

 private:
  CCtx cctx_{ZSTD_createCCtx()};
  bool ok_ = false;
};

class ZstdDecompressStream final : public DecompressStream {
 public:
  ZstdDecompressStream() {
    if (dctx_ && ZSTD_isError(ZSTD_DCtx_setParameter(dctx_.get(), ZSTD_d_windowLogMax, kMaxWindowLog))) dctx_.reset();
  }
  void Begin() override {
    if (dctx_) ZSTD_DCtx_reset(dctx_.get(), ZSTD_reset_session_only);
  }
  int64_t Decompress(std::span<const uint8_t> payload, std::byte* dest) override {
    if (!dctx_) return -1;
    ZSTD_inBuffer in{payload.data(), payload.size(), 0};
    ZSTD_outBuffer out{dest, kPageSize, 0};
    while (in.pos < in.size && out.pos < out.size) {
      size_t pos = in.pos + out.pos;
      if (ZSTD_isError(ZSTD_decompressStream(dctx_.get(), &out, &in))) return -1;
      if (in.pos + out.pos == pos) break;  // no progress: the payload ends inside a block
    }
    if (out.pos < kPageSize || in.pos < in.size) return out.pos < kPageSize ? static_cast<int64_t>(out.pos) : kPageSize + 1;
    // The whole payload went in and a page came out; output the decoder still
    // holds would mean the payload decodes to more than a page.
    std::byte extra;
    ZSTD_inBuffer none{nullptr, 0, 0};
    ZSTD_outBuffer probe{&extra, 1, 0};
    if (ZSTD_isError(ZSTD_decompressStream(dctx_.get(), &probe, &none))) return -1;
    return probe.pos ? kPageSize + 1 : kPageSize;
  }

 private:
  DCtx dctx_{ZSTD_createDCtx()};
};

std::unique_ptr<CompressStream> NewCompressStream() { return std::make_unique<ZstdCompressStream>(); }
std::unique_ptr<DecompressStream> NewDecompressStream() { return std::make_unique<ZstdDecompressStream>(); }

}  // namespace

extern const PageCompressor kZstdCompressor{PageEncoding::kZstd, "ZSTD",     kFeatureZstd,      kLevels,
                                            Compress,            Decompress, NewCompressStream, NewDecompressStream};

}  // namespace xm
