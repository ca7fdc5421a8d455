#include <gtest/gtest.h>

#include "migrate/source/policy.h"

namespace xm {
namespace {

TEST(Policy, StopsWhenTheRestFitsTheDowntimeTarget) {
  Policy p(PolicyConfig{});
  // 4 KiB pages at 1 MiB/ms: 1000 dirty pages take ~4 ms.
  EXPECT_EQ(p.Decide({0, 262144, 1ull << 30, 1024, 1000, 1.0}), Decision::kStopAndCopy);
}

// The target is a ceiling: a rest that fits it is still not sent as downtime
// while another round halves it (here 200000 -> 60000 pages, predicted
// 270 ms: under 300 ms, but a round can do better).
TEST(Policy, KeepsGoingUnderTheTargetWhileARoundHalvesTheRest) {
  Policy p(PolicyConfig{});
  RoundObservation obs{1, 200000, 819200000, 600, 60000, 2.0, 200000};
  EXPECT_EQ(p.Decide(obs), Decision::kContinue) << p.reason();
  EXPECT_LE(p.last_prediction_ms(), 300.0);
  EXPECT_NE(p.reason().find("one more round"), std::string::npos) << p.reason();
}

TEST(Policy, StopsUnderTheTargetWhenARoundNoLongerHalvesTheRest) {
  Policy p(PolicyConfig{});
  // 1000 pages in 4 ms, 600 dirty again meanwhile: another round gains too little.
  EXPECT_EQ(p.Decide({2, 1000, 4096000, 4, 600, 2.0, 1000}), Decision::kStopAndCopy);
  EXPECT_NE(p.reason().find("would not halve"), std::string::npos) << p.reason();
}

TEST(Policy, StopsWhenTheRestIsNegligible) {
  Policy p(PolicyConfig{});
  // 100 pages at 4 us each: under a millisecond, not worth a round.
  EXPECT_EQ(p.Decide({2, 1000, 4096000, 4, 100, 2.0, 1000}), Decision::kStopAndCopy);
  EXPECT_LE(p.last_prediction_ms(), Policy::kNegligibleDowntimeMs);
}

TEST(Policy, RoundLimitStopsAHalvingGuestToo) {
  PolicyConfig cfg;
  cfg.max_rounds = 2;
  Policy p(cfg);
  EXPECT_EQ(p.Decide({0, 200000, 819200000, 600, 60000, 1.0, 200000}), Decision::kContinue);
  EXPECT_EQ(p.Decide({1, 60000, 245760000, 180, 20000, 1.3, 60000}), Decision::kStopAndCopy);
  EXPECT_NE(p.reason().find("limit reached"), std::string::npos) << p.reason();
}

TEST(Policy, ContinuesWhileTheRestIsTooBig) {
  Policy p(PolicyConfig{});
  EXPECT_EQ(p.Decide({0, 262144, 1ull << 30, 1024, 200000, 1.0}), Decision::kContinue);
  EXPECT_NEAR(p.bandwidth_bytes_per_ms(), (1ull << 30) / 1024.0, 1.0);
}

TEST(Policy, RoundLimitForcesStopAndCopy) {
  PolicyConfig cfg;
  cfg.max_rounds = 3;
  cfg.downtime_target_ms = 1;
  Policy p(cfg);
  EXPECT_EQ(p.Decide({0, 1000, 4096000, 10, 900, 0.1}), Decision::kContinue);
  EXPECT_EQ(p.Decide({1, 900, 3686400, 10, 900, 0.2}), Decision::kContinue);
  EXPECT_EQ(p.Decide({2, 900, 3686400, 10, 900, 0.3}), Decision::kStopAndCopy);
  EXPECT_NE(p.reason().find("round limit"), std::string::npos);
}

TEST(Policy, ThrottlesAGuestThatDirtiesFasterThanWeSend) {
  PolicyConfig cfg;
  cfg.downtime_target_ms = 1;
  Policy p(cfg);
  EXPECT_EQ(p.run_fraction(), 1.0);
  for (uint32_t r = 0; r < 6; ++r) p.Decide({r, 100000, 409600000, 400, 100000, 0.4 * r});
  EXPECT_LT(p.run_fraction(), 1.0);
  EXPECT_GE(p.run_fraction(), cfg.min_run_fraction);
}

TEST(Policy, NoAutoConvergeNeverThrottles) {
  PolicyConfig cfg;
  cfg.downtime_target_ms = 1;
  cfg.auto_converge = false;
  Policy p(cfg);
  for (uint32_t r = 0; r < 10; ++r) p.Decide({r, 100000, 409600000, 400, 100000, 0.4 * r});
  EXPECT_EQ(p.run_fraction(), 1.0);
}

}  // namespace
}  // namespace xm
