// PAGES record layout (PROTOCOL.md §4): a batch header, fixed 24-byte page
// descriptors, then payloads. This file only lays bytes out and checks them;
// what a payload means (LZ4, delta, ...) is the page codec's business (migrate/).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "base/guest.h"
#include "base/status.h"

namespace xm {

enum class PageEncoding : uint8_t { kZero = 0, kRaw = 1, kLz4 = 2, kDelta = 3, kDupRef = 4, kZstd = 5 };
constexpr uint32_t kMaxPagesPerRecord = 4096;

struct PageDesc {
  uint64_t pfn = 0;
  uint64_t hash = 0;
  uint32_t payload_len = 0;
  uint8_t encoding = 0;
  uint8_t flags = 0;
  uint16_t reserved = 0;
};
static_assert(sizeof(PageDesc) == 24);

struct PagesHeader {
  uint32_t round = 0;
  uint32_t count = 0;
  uint64_t reserved = 0;
};
static_assert(sizeof(PagesHeader) == 16);

// A parsed PAGES body. Spans point into the record body it was parsed from.
struct PagesView {
  uint32_t round = 0;
  std::vector<PageDesc> descs;
  std::vector<std::span<const uint8_t>> payloads;
};

// Checks the layout: counts, reserved fields, known encodings, payload lengths
// that fit their encoding, and that payloads exactly fill the body. Reuses `out`.
Status ParsePages(std::span<const uint8_t> body, PagesView& out);

// Largest payload of any page: a compressed page that did not compress, with
// its method's framing (LZ4's and zstd's bounds for one page fit; pages.cc checks).
constexpr uint32_t kMaxPayload = kPageSize + 128;
// Largest payload an LZ4 page may have (LZ4's bound for one page).
uint32_t MaxLz4Payload();
// Largest ZSTD payload (zstd's bound for one page): a page alone is sent only
// when it shrank, but in a record stream (PROTOCOL.md §4) every page is.
uint32_t MaxZstdPayload();
// Largest DELTA payload: worse than RAW is never sent, so bounded by a page.
constexpr uint32_t kMaxDeltaPayload = kPageSize;

}  // namespace xm
