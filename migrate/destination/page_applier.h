// PageApplier: the destination's mirror of the source's PageEncoder. Decodes
// PAGES records into the new guest's memory and keeps, per pfn, the hash and
// round of the version it holds: that is what makes a DELTA or DUP_REF safe to
// apply, an older copy of a page never overwrite a newer one, and the COMMIT
// digest computable without reading memory again.
//
// Thread-safety: Apply may run concurrently for different lanes; stream
// affinity (PROTOCOL.md §1) gives each lane its own pfns, and Apply refuses a
// pfn (or a DUP_REF source) that belongs to another lane, so per-pfn state
// needs no lock. Everything else only while no Apply runs.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "base/zeroed_array.h"
#include "dirtylog/backend.h"
#include "migrate/common/page_codec.h"
#include "transport/messages.h"
#include "transport/pages.h"

namespace xm {

class PageApplier {
 public:
  // `guest` must outlive the applier; `streams` is the session's stream count.
  PageApplier(Backend& guest, uint32_t streams);

  // Parses `body` (a PAGES record that arrived on stream `lane`) into `view`
  // and applies every page in it, adding what it did to `counts`. Compressed
  // pages decode through `codec`, begun for this record by the caller (one per lane).
  Status Apply(uint32_t lane, std::span<const uint8_t> body, PagesView& view, EncodeCounts& counts,
               RecordCodec& codec);

  // kProtocol naming the first populated pfn that never arrived.
  Status CheckComplete() const;
  // Bitmap words (one bit per pfn) of the pfns whose version came from a round
  // after `acked` (UINT32_MAX: any round): what RESUME_STATE reports.
  std::vector<uint64_t> AppliedAfter(uint32_t acked) const;
  // The COMMIT digest over the page hashes held.
  Digest128 Digest() const;
  // The hash of every pfn's version held (0 where none), for --verify full.
  std::span<const uint64_t> hashes() const { return hash_.span(); }

 private:
  static constexpr uint32_t kNoRound = UINT32_MAX;

  bool Populated(uint64_t pfn) const { return pfn < populated_.size() && populated_[pfn]; }
  // round_ holds round + 1, so that its zero pages mean "never received" (kNoRound).
  uint32_t RoundOf(uint64_t pfn) const { return round_[pfn] - 1; }
  void SetRound(uint64_t pfn, uint32_t round) { round_[pfn] = round + 1; }

  Backend& guest_;
  const uint32_t streams_;
  const bool zero_fresh_;          // untouched guest memory reads as zero
  // Per pfn over the whole gfn space; only the populated frames are ever faulted in.
  ZeroedArray<uint64_t> hash_;     // hash of the page version held
  ZeroedArray<uint32_t> round_;    // round of that version + 1 (RoundOf)
  ZeroedArray<uint8_t> populated_;
};

}  // namespace xm
