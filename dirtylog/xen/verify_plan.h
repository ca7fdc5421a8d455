// VerifyPlan: decides when a page of the new domain can be compared with what
// the Xen destination streamed, so the comparison happens during pre-copy
// instead of in the downtime.
//
// libxc's restore is one loop: read a record, process it (PAGE_DATA: populate
// the frames and copy the pages in), read the next. So once it has read even
// one byte past the end of round k's records, every page of round k is in the
// domain. The destination tells the plan where each round ended in the
// stream and how much of the stream the toolstack has read (bytes written to
// the pipe minus what still sits in it); the plan hands out the pages that
// are final in the domain: those of consumed rounds that no later, unconsumed
// round sends again. What is left at the end (the last rounds, and any page
// never streamed) is checked after the restore finished.
#pragma once

#include <cstdint>
#include <deque>
#include <span>
#include <vector>

#include "dirtylog/backend.h"
#include "dirtylog/bitmap.h"

namespace xm::xen {

class VerifyPlan {
 public:
  explicit VerifyPlan(uint64_t page_count) : verified_(page_count) {}

  // A round put `pages` into the stream, which now ends at `end_offset`.
  void RoundFlushed(uint64_t end_offset, const DirtyBitmap& pages);
  // The toolstack has read `consumed` bytes of the stream: the pages now final
  // in the domain, ascending, each handed out once per round that sent it.
  std::vector<uint64_t> Consumed(uint64_t consumed);
  // The stream is complete and the domain built: every page of `ranges` not
  // yet handed out since its last send, ascending.
  std::vector<uint64_t> Remaining(std::span<const PfnRange> ranges);

  uint64_t handed_out() const { return handed_out_; }

 private:
  struct Round {
    uint64_t end_offset;
    std::vector<uint64_t> pfns;  // ascending
  };
  std::deque<Round> pending_;
  DirtyBitmap verified_;  // handed out since last sent
  uint64_t handed_out_ = 0;
};

}  // namespace xm::xen
