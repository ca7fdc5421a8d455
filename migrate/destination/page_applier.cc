#include "migrate/destination/page_applier.h"

#include <algorithm>
#include <string>

#include "dirtylog/page_access.h"
#include "migrate/common/guest_memory.h"

namespace xm {

PageApplier::PageApplier(Backend& guest, uint32_t streams)
    : guest_(guest),
      streams_(streams),
      zero_fresh_(guest.DirectMemory() != nullptr && guest.ZeroInitialized()) {
  const GuestShape& gs = guest_.shape();
  hash_ = ZeroedArray<uint64_t>(gs.page_count);
  round_ = ZeroedArray<uint32_t>(gs.page_count);
  populated_ = ZeroedArray<uint8_t>(gs.page_count);
  for (const auto& r : gs.ranges) std::fill_n(populated_.data() + r.first, r.count, uint8_t{1});
}

Status PageApplier::Apply(uint32_t lane, std::span<const uint8_t> body, PagesView& view, EncodeCounts& c,
                          RecordCodec& codec) {
  XM_TRY(ParsePages(body, view));
  const uint32_t round = view.round;
  for (const auto& d : view.descs) {
    if (!Populated(d.pfn))
      return Error(Code::kProtocol, "PAGES: pfn " + std::to_string(d.pfn) + " is outside the guest");
    if (StreamOfPfn(d.pfn, streams_) != lane)
      return Error(Code::kProtocol, "PAGES: pfn " + std::to_string(d.pfn) + " arrived on the wrong stream");
  }
  // One mapping for the batch and the pages its DUP_REFs copy from: a
  // backend that maps per call (Xen) pays once per batch, not per duplicate.
  std::vector<uint64_t> pfns;
  pfns.reserve(view.descs.size());
  for (const auto& d : view.descs) pfns.push_back(d.pfn);
  std::vector<size_t> dup_slot(view.descs.size(), 0);
  for (size_t i = 0; i < view.descs.size(); ++i)
    if (static_cast<PageEncoding>(view.descs[i].encoding) == PageEncoding::kDupRef) {
      const uint64_t src = DupRefPfn(view.payloads[i]);
      if (!Populated(src))
        return Error(Code::kProtocol, "pfn " + std::to_string(view.descs[i].pfn) + ": DUP_REF to pfn " +
                                          std::to_string(src) + ", which is outside the guest");
      dup_slot[i] = pfns.size();
      pfns.push_back(src);
    }
  PageAccess pages(guest_);
  XM_TRY(pages.Map(pfns, Access::kWrite));
  std::vector<std::byte> discard;  // rare: a page the destination has a newer version of
  for (size_t i = 0; i < view.descs.size(); ++i) {
    const PageDesc& d = view.descs[i];
    if (RoundOf(d.pfn) != kNoRound && RoundOf(d.pfn) > round) {  // a newer version is already here
      // Its record stream still needs it: later pages may refer back to it.
      if (codec.streams() && InRecordStream(d)) {
        if (discard.empty()) discard.resize(kPageSize);
        XM_TRY_CTX(DecodePage(d, view.payloads[i], discard.data(), nullptr, &codec), "round " + std::to_string(round));
      }
      continue;
    }
    std::byte* dest = pages.page(i);
    const std::byte* dup = nullptr;
    auto enc = static_cast<PageEncoding>(d.encoding);
    if (enc == PageEncoding::kDelta && RoundOf(d.pfn) == kNoRound)
      return Error(Code::kProtocol, "pfn " + std::to_string(d.pfn) + ": DELTA for a page never received");
    if (enc == PageEncoding::kDupRef) {
      uint64_t src = DupRefPfn(view.payloads[i]);
      if (!Populated(src) || StreamOfPfn(src, streams_) != lane || RoundOf(src) == kNoRound || hash_[src] != d.hash)
        return Error(Code::kProtocol, "pfn " + std::to_string(d.pfn) + ": DUP_REF to pfn " + std::to_string(src) +
                                          ", which this destination does not hold with that content");
      dup = pages.page(dup_slot[i]);
    }
    if (enc == PageEncoding::kZero && zero_fresh_ && RoundOf(d.pfn) == kNoRound) {
      // Never written: already zero, and not touching it keeps it unallocated.
      if (d.hash != ZeroPageHash())
        return Error(Code::kIntegrity, "pfn " + std::to_string(d.pfn) + ": page hash mismatch after decoding");
    } else {
      XM_TRY_CTX(DecodePage(d, view.payloads[i], dest, dup, &codec), "round " + std::to_string(round));
    }
    hash_[d.pfn] = d.hash;
    SetRound(d.pfn, round);
    if (uint64_t* n = CountOf(c, enc)) ++*n;
  }
  return {};
}

Status PageApplier::CheckComplete() const {
  for (const auto& r : guest_.shape().ranges)
    for (uint64_t p = r.first; p < r.first + r.count; ++p)
      if (RoundOf(p) == kNoRound) return Error(Code::kProtocol, "COMMIT: pfn " + std::to_string(p) + " was never sent");
  return {};
}

std::vector<uint64_t> PageApplier::AppliedAfter(uint32_t acked) const {
  std::vector<uint64_t> words((round_.size() + 63) / 64, 0);
  for (const auto& r : guest_.shape().ranges)  // only populated pfns are ever applied
    for (uint64_t p = r.first; p < r.first + r.count; ++p)
      if (RoundOf(p) != kNoRound && (acked == kNoRound || RoundOf(p) > acked)) words[p / 64] |= uint64_t{1} << (p % 64);
  return words;
}

Digest128 PageApplier::Digest() const { return MemoryDigest(guest_.shape(), hash_.span()); }

}  // namespace xm
