#include <gtest/gtest.h>

#include "migrate/source/policy.h"

namespace xm {
namespace {

TEST(Policy, StopsWhenTheRestFitsTheDowntimeTarget) {
  Policy p(PolicyConfig{});
  // 4 KiB pages at 1 MiB/ms: 1000 dirty pages take ~4 ms.
  EXPECT_EQ(p.Decide({0, 262144, 1ull << 30, 1024, 1000, 1.0}), Decision::kStopAndCopy);
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
