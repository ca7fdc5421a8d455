// PageApplier with record streams (PROTOCOL.md §4): a page the destination
// discards because it holds a newer version is still decoded through its
// record's stream, so the pages after it decode; and if it does not decode, the
// record fails like any other.
#include "migrate/destination/page_applier.h"

#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "dirtylog/sim/sim_backend.h"
#include "migrate/common/page_codec.h"
#include "tests/support/stateless_batch.h"

namespace xm {
namespace {

using Page = std::vector<std::byte>;

using testing::Flatten;
using testing::OverlappingTextPages;

struct Destination {
  std::unique_ptr<SimBackend> guest;
  std::unique_ptr<PageApplier> applier;
  RecordCodec lane;  // the lane's codec: begun for every record, as ReceiveLanes does
  PagesView view;
  EncodeCounts counts;

  Destination() {
    auto g = SimBackend::CreateDestination(GuestShape{kPageSize, 64, {{0, 64}}, 1});
    EXPECT_TRUE(g.ok()) << g.status().ToString();
    guest = std::move(g).value();
    applier = std::make_unique<PageApplier>(*guest, 1);
  }
  Status Apply(std::vector<uint8_t> body) {
    lane.BeginRecord(true);
    return applier->Apply(0, body, view, counts, lane);
  }
  const std::byte* page(uint64_t pfn) const { return guest->DirectMemory() + pfn * kPageSize; }
};

// A record of `round` that carries `page` raw at each of `pfns`.
std::vector<uint8_t> RawPages(uint32_t round, const std::vector<uint64_t>& pfns, const Page& page) {
  BatchBuilder b;
  b.Reset(round);
  EncodeCounts c;
  for (uint64_t p : pfns) testing::AddPage(b, p, page.data(), CodecChoice{}, c);
  return Flatten(b.Body());
}
// Round 1's record, pfns 0-2 as one stream; the tests apply it after round 2
// has already brought pfn 0 (a resent record, say).
std::vector<uint8_t> OlderStream(const std::vector<Page>& pages, const CodecChoice& choice) {
  BatchBuilder b;
  b.Reset(1);
  RecordCodec src;
  src.BeginRecord(true);
  EncodeCounts c;
  for (uint64_t p = 0; p < pages.size(); ++p) testing::AddPage(b, p, pages[p].data(), choice, c, &src);
  return Flatten(b.Body());
}

TEST(PageApplier, AStreamPageItDiscardsIsStillDecodedSoTheNextOnesDecode) {
  const std::vector<CodecChoice> choices = CodecChoices(kFeatureLz4 | kFeatureZstd);
  for (size_t i = 1; i < choices.size(); ++i) {  // every method and level ("none" is index 0)
    const CodecChoice& choice = choices[i];
    SCOPED_TRACE(std::string(choice.method->name) + " level " + std::to_string(choice.level));
    Destination d;
    const Page newer(kPageSize, std::byte{7});
    const std::vector<Page> pages = OverlappingTextPages(3);
    ASSERT_TRUE(d.Apply(RawPages(2, {0}, newer)).ok());
    Status st = d.Apply(OlderStream(pages, choice));
    ASSERT_TRUE(st.ok()) << st.ToString();
    EXPECT_EQ(std::memcmp(d.page(0), newer.data(), kPageSize), 0) << "the newer version stays";
    EXPECT_EQ(std::memcmp(d.page(1), pages[1].data(), kPageSize), 0);
    EXPECT_EQ(std::memcmp(d.page(2), pages[2].data(), kPageSize), 0);
  }
}

TEST(PageApplier, ADiscardedStreamPageThatDoesNotDecodeFailsTheRecord) {
  Destination d;
  const Page newer(kPageSize, std::byte{7});
  ASSERT_TRUE(d.Apply(RawPages(2, {0}, newer)).ok());
  std::vector<uint8_t> body = OlderStream(OverlappingTextPages(2), {CompressorFor(PageEncoding::kLz4)});
  body[sizeof(PagesHeader) + 2 * sizeof(PageDesc) + 3] ^= 0x40;  // inside pfn 0's payload
  Status st = d.Apply(body);
  EXPECT_FALSE(st.ok());
  EXPECT_TRUE(st.code() == Code::kProtocol || st.code() == Code::kIntegrity) << st.ToString();
  EXPECT_EQ(std::memcmp(d.page(0), newer.data(), kPageSize), 0) << "the newer version is untouched";
}


// Per-pfn rounds start from zeroed memory (ZeroedArray): "never received" must
// stay distinct from round 0, and an older version must never overwrite a newer one.
TEST(PageApplier, RoundZeroIsAReceivedRoundAndOlderVersionsNeverWin) {
  Destination d;
  ASSERT_TRUE(d.Apply(RawPages(0, {0, 1, 2}, Page(kPageSize, std::byte{1}))).ok());
  Status st = d.applier->CheckComplete();
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("pfn 3 was never sent"), std::string::npos) << st.message();
  std::vector<uint64_t> any = d.applier->AppliedAfter(UINT32_MAX);
  ASSERT_EQ(any.size(), 1u);  // 64 pfns
  EXPECT_EQ(any[0], 0b111u);
  EXPECT_EQ(d.applier->AppliedAfter(0)[0], 0u);  // round 0 is not after round 0

  ASSERT_TRUE(d.Apply(RawPages(1, {1}, Page(kPageSize, std::byte{2}))).ok());
  EXPECT_EQ(d.applier->AppliedAfter(0)[0], 0b10u);
  ASSERT_TRUE(d.Apply(RawPages(0, {1}, Page(kPageSize, std::byte{3}))).ok());  // round 0's copy, resent late
  EXPECT_EQ(d.page(1)[0], std::byte{2}) << "the newer version stays";

  std::vector<uint64_t> rest;
  for (uint64_t p = 3; p < 64; ++p) rest.push_back(p);
  ASSERT_TRUE(d.Apply(RawPages(1, rest, Page(kPageSize, std::byte{4}))).ok());
  EXPECT_TRUE(d.applier->CheckComplete().ok());
}

}  // namespace
}  // namespace xm
