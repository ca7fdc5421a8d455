// When the Xen destination may compare a page of the new domain with what it
// streamed: only once the toolstack has read past the round that sent it, and
// only if no later, unread round sends it again.
#include "dirtylog/xen/verify_plan.h"

#include <gtest/gtest.h>

#include <vector>

namespace xm::xen {
namespace {

using Pfns = std::vector<uint64_t>;

DirtyBitmap Bits(uint64_t n, const Pfns& set) {
  DirtyBitmap b(n);
  for (uint64_t p : set) b.Set(p);
  return b;
}

TEST(VerifyPlan, NothingBeforeTheToolstackReadsPastTheRound) {
  VerifyPlan plan(64);
  plan.RoundFlushed(1000, Bits(64, {1, 2, 3}));
  EXPECT_EQ(plan.Consumed(999), Pfns{});
  // Everything read, but the last record may still be being processed.
  EXPECT_EQ(plan.Consumed(1000), Pfns{});
  plan.RoundFlushed(1500, Bits(64, {7}));
  EXPECT_EQ(plan.Consumed(1001), (Pfns{1, 2, 3}));
  EXPECT_EQ(plan.Consumed(1001), Pfns{});  // handed out once
}

TEST(VerifyPlan, APageSentAgainWaitsForItsLastSend) {
  VerifyPlan plan(64);
  plan.RoundFlushed(1000, Bits(64, {1, 2, 3}));
  plan.RoundFlushed(1400, Bits(64, {2}));
  plan.RoundFlushed(1600, Bits(64, {5}));
  // Round 0 is done, but page 2's newest copy (round 1) is not in yet.
  EXPECT_EQ(plan.Consumed(1200), (Pfns{1, 3}));
  EXPECT_EQ(plan.Consumed(1401), (Pfns{2}));
  // Round 2 is the last one: it stays for the end, with what was never sent.
  EXPECT_EQ(plan.Remaining(std::vector<PfnRange>{{0, 8}}), (Pfns{0, 4, 5, 6, 7}));
  EXPECT_EQ(plan.handed_out(), 8u);
}

TEST(VerifyPlan, RemainingCoversEveryUnverifiedPageOfTheRanges) {
  VerifyPlan plan(300);
  Pfns all;
  for (uint64_t p = 0; p < 256; ++p) all.push_back(p);
  plan.RoundFlushed(10, Bits(300, all));
  plan.RoundFlushed(20, Bits(300, {70}));
  EXPECT_EQ(plan.Consumed(11).size(), 255u);  // all of round 0 but 70
  // Whole words verified are skipped; 70 (pending) and 256..259 (never sent) are not.
  EXPECT_EQ(plan.Remaining(std::vector<PfnRange>{{0, 260}}), (Pfns{70, 256, 257, 258, 259}));
}

}  // namespace
}  // namespace xm::xen
