// StreamFeeder: turns what a destination receives, round by round, into a Xen
// stream — the part shared by the stream tee (any guest → a file) and the Xen
// destination (→ libxl's restore).
//
// Page-pipeline workers Mark() the pfns they write (concurrently, disjoint
// pfns); at the end of each round FlushRound() appends those pages, read back
// from the guest memory that now holds them, as PAGE_DATA records in pfn
// order. A page received twice in a round goes out once, with its final
// content; a page received again in a later round goes out again, and Xen's
// receiver keeps the last copy, exactly as with xc_domain_save's own rounds.
#pragma once

#include <functional>
#include <memory>
#include <span>
#include <string>

#include "dirtylog/backend.h"
#include "dirtylog/bitmap.h"
#include "dirtylog/xen/stream/writer.h"

namespace xm::xen {

// Maps guest pages for reading (the inner backend's memory).
using PageReader = std::function<Result<MappedPages>(std::span<const uint64_t> pfns)>;

struct RoundStreamStats {
  uint32_t round = 0;
  uint64_t pages = 0;
  uint64_t bytes = 0;
};

class StreamFeeder {
 public:
  // Writes the stream's headers and static data at once.
  static Result<std::unique_ptr<StreamFeeder>> Start(uint64_t page_count, ByteSink& sink, StreamOptions opts,
                                                     const XenCpuPolicy* policy);

  // Thread-safe: the pfns were (or are about to be) written this round.
  void Mark(std::span<const uint64_t> pfns);
  // Appends the round's marked pages to the stream and forgets them.
  Status FlushRound(uint32_t round, const PageReader& read);
  Status Finish(const XenGuestState& state);
  bool finished() const { return writer_.finished(); }

  const StreamStats& stats() const { return writer_.stats(); }
  const std::vector<RoundStreamStats>& rounds() const { return rounds_; }
  // The pages the last FlushRound() streamed (valid until the next one).
  const DirtyBitmap& last_round_pages() const { return drained_; }
  uint64_t bytes() const { return sink_.written(); }

 private:
  StreamFeeder(uint64_t page_count, ByteSink& sink, StreamOptions opts);

  ByteSink& sink_;
  StreamWriter writer_;
  DirtyBitmap marked_;
  DirtyBitmap drained_;
  std::vector<RoundStreamStats> rounds_;
};

}  // namespace xm::xen
