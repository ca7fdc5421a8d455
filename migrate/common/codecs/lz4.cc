// LZ4 (PROTOCOL.md §4 encoding 2): ~1-3 GB/s per core here, about half the size
// on text-like pages. No levels: its fast mode is the only one worth its CPU.
// In a record stream each page is an LZ4 block that may refer to the last 64 KiB
// of the record's earlier LZ4 pages (LZ4's own streaming format).
#include <lz4.h>

#include <cstring>
#include <vector>

#include "migrate/common/codecs/page_compressor.h"
#include "transport/messages.h"

namespace xm {
namespace {

constexpr int kLevels[] = {0};
constexpr size_t kDict = 64 << 10;  // how far back an LZ4 block may refer
// Both ends keep the stream in a buffer this large and move its last kDict
// bytes to the front when a page no longer fits: one 64 KiB move per 32 pages,
// which keeps the buffer small (each worker and lane holds one).
constexpr size_t kHistory = (128 << 10) + kDict;

uint32_t Compress(const std::byte* src, uint8_t* dst, uint32_t cap, int) {
  int n = LZ4_compress_default(reinterpret_cast<const char*>(src), reinterpret_cast<char*>(dst), kPageSize,
                               static_cast<int>(cap));
  return n > 0 ? static_cast<uint32_t>(n) : 0;
}

int64_t Decompress(std::span<const uint8_t> payload, std::byte* dest) {
  return LZ4_decompress_safe(reinterpret_cast<const char*>(payload.data()), reinterpret_cast<char*>(dest),
                             static_cast<int>(payload.size()), kPageSize);
}

// The encoder compresses from its copy of the stream: LZ4 refers back into the
// input itself, and the caller's page is overwritten by its payload.
class Lz4CompressStream final : public CompressStream {
 public:
  Lz4CompressStream() : history_(kHistory) { LZ4_initStream(&state_, sizeof state_); }
  void Begin(int) override {
    LZ4_resetStream_fast(&state_);
    used_ = 0;
  }
  uint32_t Compress(const std::byte* page, uint8_t* dst) override {
    if (used_ + kPageSize > history_.size()) used_ = static_cast<size_t>(LZ4_saveDict(&state_, history_.data(), kDict));
    char* in = history_.data() + used_;
    std::memcpy(in, page, kPageSize);
    used_ += kPageSize;
    int n = LZ4_compress_fast_continue(&state_, in, reinterpret_cast<char*>(dst), kPageSize,
                                       static_cast<int>(kMaxPayload), 1);
    return n > 0 ? static_cast<uint32_t>(n) : 0;
  }
  size_t memory_bytes() const override { return sizeof state_ + history_.size(); }

 private:
  LZ4_stream_t state_;
  std::vector<char> history_;
  size_t used_ = 0;
};

// The decoder decodes into its copy of the stream, right after the pages the
// next block may refer to, then copies the page out.
class Lz4DecompressStream final : public DecompressStream {
 public:
  Lz4DecompressStream() : history_(kHistory) {}
  void Begin() override { used_ = 0; }
  int64_t Decompress(std::span<const uint8_t> payload, std::byte* dest) override {
    if (used_ + kPageSize > history_.size()) {
      std::memmove(history_.data(), history_.data() + used_ - kDict, kDict);
      used_ = kDict;
    }
    const size_t dict = std::min(used_, kDict);
    char* out = history_.data() + used_;
    int n = LZ4_decompress_safe_usingDict(reinterpret_cast<const char*>(payload.data()), out,
                                          static_cast<int>(payload.size()), kPageSize, out - dict,
                                          static_cast<int>(dict));
    if (n != static_cast<int>(kPageSize)) return n < 0 ? -1 : n;
    std::memcpy(dest, out, kPageSize);
    used_ += kPageSize;
    return n;
  }

 private:
  std::vector<char> history_;
  size_t used_ = 0;
};

std::unique_ptr<CompressStream> NewCompressStream() { return std::make_unique<Lz4CompressStream>(); }
std::unique_ptr<DecompressStream> NewDecompressStream() { return std::make_unique<Lz4DecompressStream>(); }

}  // namespace

extern const PageCompressor kLz4Compressor{PageEncoding::kLz4, "LZ4",    kFeatureLz4,       kLevels,
                                           Compress,           Decompress, NewCompressStream, NewDecompressStream};

}  // namespace xm
