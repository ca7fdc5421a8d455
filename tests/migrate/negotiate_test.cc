// Negotiate: both ends of the handshake, in one process over a socketpair.
#include "migrate/common/negotiate.h"

#include <gtest/gtest.h>

#include <future>
#include <thread>

#include "tests/transport/stream_pair.h"

namespace xm {
namespace {

struct Ends {
  Result<Session> source = Status(Code::kInternal, "not run");
  Result<Session> destination = Status(Code::kInternal, "not run");
  bool admitted = false;
  Shape seen;
};

NegotiateOptions SourceOpts(std::vector<uint8_t> key = {}, uint32_t streams = 4) {
  NegotiateOptions o;
  o.role = Role::kSource;
  o.key = std::move(key);
  o.streams = streams;
  o.peer = "test";
  return o;
}

NegotiateOptions DestinationOpts(std::vector<uint8_t> key = {}, uint32_t max_streams = kMaxStreams) {
  NegotiateOptions o;
  o.role = Role::kDestination;
  o.key = std::move(key);
  o.streams = max_streams;
  return o;
}

Ends Handshake(const NegotiateOptions& src, const NegotiateOptions& dst, Status admit_answer = {}) {
  testing::StreamPair p;
  p.a->SetTimeoutMs(5000);
  p.b->SetTimeoutMs(5000);
  Ends e;
  GuestShape shape{4096, 64, {{0, 64}}, 2};
  CpuPolicy policy{"GenuineIntel", {1, 2, 3}, "none", {}};
  auto offer = [&]() -> Result<std::pair<Shape, CpuPolicy>> { return std::pair{Shape{shape, "sim"}, policy}; };
  auto admit = [&](const Shape& s, const CpuPolicy& pol) {
    e.admitted = true;
    e.seen = s;
    EXPECT_EQ(pol.featureset, policy.featureset);
    return admit_answer;
  };
  std::thread d([&] { e.destination = Negotiate(*p.b, dst, nullptr, admit); });
  e.source = Negotiate(*p.a, src, offer, nullptr);
  if (!e.source.ok()) p.a->Shutdown();
  d.join();
  return e;
}

TEST(Negotiate, BothEndsAgree) {
  Ends e = Handshake(SourceOpts({}, 4), DestinationOpts({}, 2));
  ASSERT_TRUE(e.source.ok()) << e.source.status().ToString();
  ASSERT_TRUE(e.destination.ok()) << e.destination.status().ToString();
  EXPECT_EQ(e.source->streams, 2u);  // the destination's limit
  EXPECT_EQ(e.destination->streams, 2u);
  EXPECT_EQ(e.source->id(), e.destination->id());
  EXPECT_EQ(e.source->features, kFeaturesKnown);
  EXPECT_FALSE(e.source->authenticated);
  EXPECT_TRUE(e.admitted);
  EXPECT_EQ(e.seen.backend, "sim");
  EXPECT_EQ(e.seen.shape.vcpus, 2u);
}

TEST(Negotiate, FeaturesAreTheAndOfBothEnds) {
  NegotiateOptions s = SourceOpts();
  s.features = kFeatureDelta | kFeatureDupRef;  // --no-compress
  Ends e = Handshake(s, DestinationOpts());
  ASSERT_TRUE(e.source.ok()) << e.source.status().ToString();
  EXPECT_EQ(e.source->features, kFeatureDelta | kFeatureDupRef);
  EXPECT_EQ(e.destination->features, kFeatureDelta | kFeatureDupRef);
}

// A destination that predates record streams (PROTOCOL.md §4) leaves bit 4
// clear: the session compresses pages alone.
TEST(Negotiate, ADestinationWithoutRecordStreamsGetsPagesAlone) {
  NegotiateOptions d = DestinationOpts();
  d.features = kFeaturesKnown & ~kFeatureRecordStreams;
  Ends e = Handshake(SourceOpts(), d);
  ASSERT_TRUE(e.source.ok()) << e.source.status().ToString();
  EXPECT_EQ(e.source->features & kFeatureRecordStreams, 0u);
  EXPECT_EQ(e.destination->features & kFeatureRecordStreams, 0u);
  EXPECT_NE(e.source->features & kFeatureZstd, 0u) << "the other features stay";
}

TEST(Negotiate, SameKeyAuthenticatesAndJoinMacsAgree) {
  std::vector<uint8_t> key(32, 7);
  Ends e = Handshake(SourceOpts(key), DestinationOpts(key));
  ASSERT_TRUE(e.source.ok()) << e.source.status().ToString();
  ASSERT_TRUE(e.destination.ok()) << e.destination.status().ToString();
  EXPECT_TRUE(e.source->authenticated);
  EXPECT_EQ(e.source->JoinMacFor(key, 1), e.destination->JoinMacFor(key, 1));
  EXPECT_NE(e.source->JoinMacFor(key, 1), e.source->JoinMacFor(key, 2));
}

TEST(Negotiate, DifferentKeysFailAuthOnBothEnds) {
  Ends e = Handshake(SourceOpts(std::vector<uint8_t>(32, 1)), DestinationOpts(std::vector<uint8_t>(32, 2)));
  EXPECT_EQ(e.source.status().code(), Code::kAuth) << e.source.status().ToString();
  EXPECT_EQ(e.destination.status().code(), Code::kAuth) << e.destination.status().ToString();
  EXPECT_FALSE(e.admitted);  // a stranger never learns the guest
}

TEST(Negotiate, KeyOnOneEndOnlyIsRefused) {
  Ends e = Handshake(SourceOpts(), DestinationOpts(std::vector<uint8_t>(32, 1)));
  EXPECT_EQ(e.source.status().code(), Code::kAuth) << e.source.status().ToString();
  EXPECT_EQ(e.destination.status().code(), Code::kAuth) << e.destination.status().ToString();
  Ends f = Handshake(SourceOpts(std::vector<uint8_t>(32, 1)), DestinationOpts());
  EXPECT_EQ(f.source.status().code(), Code::kAuth) << f.source.status().ToString();
  EXPECT_EQ(f.destination.status().code(), Code::kAuth) << f.destination.status().ToString();
}

TEST(Negotiate, RefusedGuestReachesTheSourceWithItsCode) {
  Ends e = Handshake(SourceOpts(), DestinationOpts(), Status(Code::kIncompatible, "no AVX512 here"));
  EXPECT_EQ(e.destination.status().code(), Code::kIncompatible);
  EXPECT_EQ(e.source.status().code(), Code::kIncompatible) << e.source.status().ToString();
  EXPECT_NE(e.source.status().message().find("no AVX512 here"), std::string::npos);
}

TEST(Negotiate, TwoSourcesRefuseEachOther) {
  NegotiateOptions d = SourceOpts();
  d.peer.clear();
  testing::StreamPair p;
  p.a->SetTimeoutMs(2000);
  p.b->SetTimeoutMs(2000);
  auto offer = []() -> Result<std::pair<Shape, CpuPolicy>> { return Status(Code::kInternal, "never asked"); };
  auto other = std::async(std::launch::async, [&] { return Negotiate(*p.b, d, offer, nullptr); });
  auto mine = Negotiate(*p.a, SourceOpts(), offer, nullptr);
  EXPECT_EQ(mine.status().code(), Code::kProtocol) << mine.status().ToString();
  EXPECT_NE(mine.status().message().find("not a receiver"), std::string::npos) << mine.status().ToString();
  EXPECT_FALSE(other.get().ok());
}

}  // namespace
}  // namespace xm
