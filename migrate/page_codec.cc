#include "migrate/page_codec.h"

#include <lz4.h>
#include <xxhash.h>

#include <cstring>
#include <string>

namespace xm {

uint64_t PageHash(const std::byte* page) { return XXH3_64bits(page, kPageSize); }

uint64_t ZeroPageHash() {
  static const uint64_t h = [] {
    static const std::byte zero[kPageSize] = {};
    return XXH3_64bits(zero, kPageSize);
  }();
  return h;
}

bool IsZeroPage(const std::byte* page) {
  // Word-wise OR in blocks lets the compiler vectorise; early exit per block since
  // non-zero pages usually differ from zero in their first bytes.
  const auto* w = reinterpret_cast<const uint64_t*>(page);
  for (size_t i = 0; i < kPageSize / 8; i += 32) {
    uint64_t acc = 0;
    for (size_t j = 0; j < 32; ++j) acc |= w[i + j];
    if (acc) return false;
  }
  return true;
}

EncodeCounts& EncodeCounts::operator+=(const EncodeCounts& o) {
  zero += o.zero;
  unchanged += o.unchanged;
  duplicate += o.duplicate;
  delta += o.delta;
  lz4 += o.lz4;
  raw += o.raw;
  return *this;
}

BatchBuilder::BatchBuilder() {
  descs_.reserve(sizeof(PagesHeader) + kMaxBatchPages * sizeof(PageDesc));
  payload_.resize(size_t{kMaxBatchPages} * kPageSize + kPageSize);
  lz4_scratch_.resize(MaxLz4Payload());
  Reset(0);
}

void BatchBuilder::Reset(uint32_t round) {
  count_ = 0;
  payload_used_ = 0;
  descs_.resize(sizeof(PagesHeader));
  PagesHeader h;
  h.round = round;
  std::memcpy(descs_.data(), &h, sizeof h);
}

uint64_t BatchBuilder::Add(uint64_t pfn, const std::byte* page, bool try_lz4, EncodeCounts& counts) {
  PageDesc d;
  d.pfn = pfn;
  auto* slot = reinterpret_cast<std::byte*>(payload_.data() + payload_used_);
  std::memcpy(slot, page, kPageSize);  // the snapshot: everything below reads only this copy
  if (IsZeroPage(slot)) {
    d.hash = ZeroPageHash();
    d.encoding = static_cast<uint8_t>(PageEncoding::kZero);
    ++counts.zero;
  } else {
    d.hash = PageHash(slot);
    d.encoding = static_cast<uint8_t>(PageEncoding::kRaw);
    d.payload_len = kPageSize;
    if (try_lz4) {
      int n = LZ4_compress_default(reinterpret_cast<const char*>(slot), reinterpret_cast<char*>(lz4_scratch_.data()),
                                   kPageSize, static_cast<int>(lz4_scratch_.size()));
      // Only when it saves at least 1/8: decompressing costs the receiver time too.
      if (n > 0 && static_cast<uint32_t>(n) <= kPageSize - kPageSize / 8) {
        std::memcpy(slot, lz4_scratch_.data(), static_cast<size_t>(n));
        d.encoding = static_cast<uint8_t>(PageEncoding::kLz4);
        d.payload_len = static_cast<uint32_t>(n);
      }
    }
    (d.encoding == static_cast<uint8_t>(PageEncoding::kLz4) ? counts.lz4 : counts.raw)++;
    payload_used_ += d.payload_len;
  }
  const auto* dp = reinterpret_cast<const uint8_t*>(&d);
  descs_.insert(descs_.end(), dp, dp + sizeof d);
  ++count_;
  PagesHeader h;
  std::memcpy(&h, descs_.data(), sizeof h);
  h.count = count_;
  std::memcpy(descs_.data(), &h, sizeof h);
  return d.hash;
}

std::span<const iovec> BatchBuilder::Body() {
  iov_[0] = {descs_.data(), descs_.size()};
  iov_[1] = {payload_.data(), payload_used_};
  return {iov_, payload_used_ ? 2u : 1u};
}

Status DecodePage(const PageDesc& d, std::span<const uint8_t> payload, std::byte* dest) {
  switch (static_cast<PageEncoding>(d.encoding)) {
    case PageEncoding::kZero:
      std::memset(dest, 0, kPageSize);
      break;
    case PageEncoding::kRaw:
      std::memcpy(dest, payload.data(), kPageSize);
      break;
    case PageEncoding::kLz4: {
      int n = LZ4_decompress_safe(reinterpret_cast<const char*>(payload.data()), reinterpret_cast<char*>(dest),
                                  static_cast<int>(payload.size()), kPageSize);
      if (n != static_cast<int>(kPageSize))
        return Error(Code::kProtocol, "pfn " + std::to_string(d.pfn) + ": LZ4 payload " +
                                          (n < 0 ? std::string("is corrupt") : "decodes to " + std::to_string(n) + " bytes, want 4096"));
      break;
    }
    default:
      return Error(Code::kUnsupported, "pfn " + std::to_string(d.pfn) + ": encoding " + std::to_string(d.encoding) +
                                           " not handled by this decoder");
  }
  uint64_t h = d.encoding == static_cast<uint8_t>(PageEncoding::kZero) ? ZeroPageHash() : PageHash(dest);
  if (h != d.hash) return Error(Code::kIntegrity, "pfn " + std::to_string(d.pfn) + ": page hash mismatch after decoding");
  return {};
}

}  // namespace xm
