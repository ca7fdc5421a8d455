#include "migrate/common/page_codec.h"

#include <xxh_x86dispatch.h>
#include <xxhash.h>

#include <cstring>
#include <string>

#include "migrate/common/delta.h"

namespace xm {

Hash128 PageHash128(const std::byte* page) {
  // Every page is hashed once on each side: the dispatching entry point picks
  // the widest vector unit this CPU has at run time (SSE2 / AVX2 / AVX-512),
  // where the plain one is built for baseline x86-64 (same result, ~1.6x here).
  XXH128_hash_t h = XXH3_128bits_dispatch(page, kPageSize);
  return {h.low64, h.high64};
}

uint64_t ZeroPageHash() {
  static const uint64_t h = [] {
    static const std::byte zero[kPageSize] = {};
    return PageHash(zero);
  }();
  return h;
}

bool IsZeroPage(const std::byte* page) {
  // Word-wise OR in blocks lets the compiler vectorise; early exit per block since
  // non-zero pages usually differ from zero in their first bytes. Pages in a batch
  // buffer follow variable-length payloads, so words are loaded with memcpy
  // (unaligned-safe, still a plain load).
  for (size_t off = 0; off < kPageSize; off += 256) {
    uint64_t acc = 0;
    for (size_t j = 0; j < 256; j += 8) {
      uint64_t w;
      std::memcpy(&w, page + off + j, sizeof w);
      acc |= w;
    }
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
  zstd += o.zstd;
  raw += o.raw;
  return *this;
}

BatchBuilder::BatchBuilder() {
  descs_.reserve(sizeof(PagesHeader) + kMaxBatchPages * sizeof(PageDesc));
  // A compressed page may outgrow its page in a record stream (kMaxPayload).
  payload_.resize(size_t{kMaxBatchPages} * kMaxPayload + kPageSize);
  Reset(0);
}

void BatchBuilder::Reset(uint32_t round) {
  round_ = round;
  count_ = 0;
  payload_used_ = 0;
  descs_.resize(sizeof(PagesHeader));
  PagesHeader h;
  h.round = round;
  std::memcpy(descs_.data(), &h, sizeof h);
}

uint32_t CompressInPlace(const CodecChoice& choice, std::byte* slot, uint8_t* scratch) {
  if (!choice.method) return kPageSize;
  // A bound that small also lets the method give up early on incompressible pages.
  uint32_t n = choice.method->compress(slot, scratch, kMaxWorthwhilePayload, choice.level);
  if (n == 0) return kPageSize;
  std::memcpy(slot, scratch, n);
  return n;
}

void RecordCodec::BeginRecord(bool streams) {
  streams_ = streams;
  ++record_;
}

size_t RecordCodec::memory_bytes() const {
  size_t n = 0;
  for (const auto& [m, per] : methods_)
    if (per.enc) n += per.enc->memory_bytes();
  return n;
}

RecordCodec::PerMethod& RecordCodec::Of(const PageCompressor& method) {
  for (auto& [m, per] : methods_)
    if (m == &method) return per;
  return methods_.emplace_back(&method, PerMethod{}).second;
}

uint32_t RecordCodec::Compress(const CodecChoice& choice, std::byte* slot, uint8_t* scratch) {
  if (!choice.method) return 0;
  if (!streams_) {
    uint32_t n = CompressInPlace(choice, slot, scratch);
    return n < kPageSize ? n : 0;
  }
  PerMethod& m = Of(*choice.method);
  if (m.enc_record != record_) {
    if (!m.enc) m.enc = choice.method->new_compress_stream();
    m.enc->Begin(choice.level);
    m.enc_record = record_;
    m.enc_failed = false;
  }
  if (m.enc_failed) return 0;
  uint32_t n = m.enc->Compress(slot, scratch);
  if (n == 0) {
    m.enc_failed = true;  // the stream holds a page the destination never sees
    return 0;
  }
  std::memcpy(slot, scratch, n);
  return n;
}

int64_t RecordCodec::Decompress(const PageCompressor& method, std::span<const uint8_t> payload, std::byte* dest) {
  if (!streams_) return method.decompress(payload, dest);
  PerMethod& m = Of(method);
  if (m.dec_record != record_) {
    if (!m.dec) m.dec = method.new_decompress_stream();
    m.dec->Begin();
    m.dec_record = record_;
  }
  return m.dec->Decompress(payload, dest);
}

bool InRecordStream(const PageDesc& d) { return CompressorFor(static_cast<PageEncoding>(d.encoding)) != nullptr; }

uint64_t* CountOf(EncodeCounts& c, PageEncoding encoding) {
  switch (encoding) {
    case PageEncoding::kZero: return &c.zero;
    case PageEncoding::kRaw: return &c.raw;
    case PageEncoding::kLz4: return &c.lz4;
    case PageEncoding::kZstd: return &c.zstd;
    case PageEncoding::kDelta: return &c.delta;
    case PageEncoding::kDupRef: return &c.duplicate;
  }
  return nullptr;
}

void BatchBuilder::Commit(const PageDesc& d) {
  const auto* dp = reinterpret_cast<const uint8_t*>(&d);
  descs_.insert(descs_.end(), dp, dp + sizeof d);
  payload_used_ += d.payload_len;
  ++count_;
  std::memcpy(descs_.data() + offsetof(PagesHeader, count), &count_, sizeof count_);
}

std::span<const iovec> BatchBuilder::Body() {
  iov_[0] = {descs_.data(), descs_.size()};
  iov_[1] = {payload_.data(), payload_used_};
  return {iov_, payload_used_ ? 2u : 1u};
}

uint64_t DupRefPfn(std::span<const uint8_t> payload) {
  uint64_t pfn = 0;
  std::memcpy(&pfn, payload.data(), std::min(payload.size(), sizeof pfn));
  return pfn;
}

Status DecodePage(const PageDesc& d, std::span<const uint8_t> payload, std::byte* dest, const std::byte* dup_source,
                  RecordCodec* codec) {
  switch (static_cast<PageEncoding>(d.encoding)) {
    case PageEncoding::kZero:
      std::memset(dest, 0, kPageSize);
      break;
    case PageEncoding::kRaw:
      std::memcpy(dest, payload.data(), kPageSize);
      break;
    case PageEncoding::kDelta: {
      Status st = ApplyDelta(payload, dest);
      if (!st.ok()) return std::move(st).With("pfn " + std::to_string(d.pfn));
      break;
    }
    case PageEncoding::kDupRef:
      if (!dup_source) return Error(Code::kProtocol, "pfn " + std::to_string(d.pfn) + ": DUP_REF to an unusable page");
      if (dup_source != dest) std::memcpy(dest, dup_source, kPageSize);
      break;
    default: {
      const PageCompressor* c = CompressorFor(static_cast<PageEncoding>(d.encoding));
      if (!c)
        return Error(Code::kProtocol, "pfn " + std::to_string(d.pfn) + ": unknown encoding " + std::to_string(d.encoding));
      int64_t n = codec ? codec->Decompress(*c, payload, dest) : c->decompress(payload, dest);
      if (n != kPageSize)
        return Error(Code::kProtocol, "pfn " + std::to_string(d.pfn) + ": " + c->name + " payload " +
                                          (n < 0                ? std::string("is corrupt")
                                           : n > kPageSize ? std::string("decodes to more than 4096 bytes")
                                                           : "decodes to " + std::to_string(n) + " bytes, want 4096"));
      break;
    }
  }
  uint64_t h = d.encoding == static_cast<uint8_t>(PageEncoding::kZero) ? ZeroPageHash() : PageHash(dest);
  if (h != d.hash) return Error(Code::kIntegrity, "pfn " + std::to_string(d.pfn) + ": page hash mismatch after decoding");
  return {};
}

}  // namespace xm
