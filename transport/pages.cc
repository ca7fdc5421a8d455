#include "transport/pages.h"

#include <lz4.h>
#include <zstd.h>

#include <cstring>
#include <string>

namespace xm {

static_assert(LZ4_COMPRESSBOUND(kPageSize) <= kMaxPayload && ZSTD_COMPRESSBOUND(kPageSize) <= kMaxPayload);
uint32_t MaxLz4Payload() { return static_cast<uint32_t>(LZ4_COMPRESSBOUND(kPageSize)); }
uint32_t MaxZstdPayload() { return static_cast<uint32_t>(ZSTD_COMPRESSBOUND(kPageSize)); }

static Status Bad(uint32_t index, const std::string& why) {
  return Error(Code::kProtocol, "PAGES descriptor " + std::to_string(index) + ": " + why);
}

Status ParsePages(std::span<const uint8_t> body, PagesView& out) {
  PagesHeader h;
  if (body.size() < sizeof h) return Error(Code::kProtocol, "PAGES record shorter than its header");
  std::memcpy(&h, body.data(), sizeof h);
  if (h.count == 0 || h.count > kMaxPagesPerRecord)
    return Error(Code::kProtocol, "PAGES record with " + std::to_string(h.count) + " pages (1.." +
                                      std::to_string(kMaxPagesPerRecord) + " allowed)");
  if (h.reserved != 0) return Error(Code::kProtocol, "PAGES reserved field is not zero");
  size_t desc_bytes = size_t{h.count} * sizeof(PageDesc);
  if (body.size() - sizeof h < desc_bytes) return Error(Code::kProtocol, "PAGES record too short for its descriptors");
  out.round = h.round;
  out.descs.resize(h.count);
  std::memcpy(out.descs.data(), body.data() + sizeof h, desc_bytes);
  out.payloads.resize(h.count);
  size_t off = sizeof h + desc_bytes;
  const uint32_t max_lz4 = MaxLz4Payload(), max_zstd = MaxZstdPayload();
  for (uint32_t i = 0; i < h.count; ++i) {
    const PageDesc& d = out.descs[i];
    if (d.reserved != 0 || d.flags != 0) return Bad(i, "reserved bits set");
    switch (static_cast<PageEncoding>(d.encoding)) {
      case PageEncoding::kZero:
        if (d.payload_len != 0) return Bad(i, "ZERO page with a payload");
        break;
      case PageEncoding::kRaw:
        if (d.payload_len != kPageSize) return Bad(i, "RAW payload of " + std::to_string(d.payload_len) + " bytes");
        break;
      case PageEncoding::kLz4:
        if (d.payload_len == 0 || d.payload_len > max_lz4)
          return Bad(i, "LZ4 payload of " + std::to_string(d.payload_len) + " bytes");
        break;
      case PageEncoding::kZstd:
        if (d.payload_len == 0 || d.payload_len > max_zstd)
          return Bad(i, "ZSTD payload of " + std::to_string(d.payload_len) + " bytes");
        break;
      case PageEncoding::kDelta:
        if (d.payload_len < 4 || d.payload_len > kMaxDeltaPayload)
          return Bad(i, "DELTA payload of " + std::to_string(d.payload_len) + " bytes");
        break;
      case PageEncoding::kDupRef:
        if (d.payload_len != 8) return Bad(i, "DUP_REF payload of " + std::to_string(d.payload_len) + " bytes");
        break;
      default:
        return Bad(i, "unknown encoding " + std::to_string(d.encoding));
    }
    if (body.size() - off < d.payload_len) return Bad(i, "payload runs past the end of the record");
    out.payloads[i] = body.subspan(off, d.payload_len);
    off += d.payload_len;
  }
  if (off != body.size())
    return Error(Code::kProtocol, "PAGES record has " + std::to_string(body.size() - off) + " trailing bytes");
  return {};
}

}  // namespace xm
