// Whole migrations in one process (tests/support/in_process_migration.h): the
// happy path at full size, and failures injected at exact points, each checked
// for what both ends report and where the guest is left running.
#include "tests/support/in_process_migration.h"

#include <gtest/gtest.h>

#include <chrono>

namespace xm::testing {
namespace {

#if defined(__SANITIZE_ADDRESS__)
constexpr bool kSanitized = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
constexpr bool kSanitized = true;
#else
constexpr bool kSanitized = false;
#endif
#else
constexpr bool kSanitized = false;
#endif

InProcessOptions Small() {
  InProcessOptions o;
  o.memory_bytes = 8ull << 20;
  o.workload = "ws=6M,hot=1M,rate=20M/s";
  o.source.io_timeout_ms = 5000;
  o.source.handoff_timeout_ms = 5000;
  o.destination.io_timeout_ms = 5000;
  o.destination.go_timeout_ms = 5000;
  return o;
}

void ExpectCompleted(const InProcessResult& r) {
  EXPECT_EQ(r.source.result, "completed") << r.source.error;
  EXPECT_EQ(r.destination.result, "completed") << r.destination.error;
  EXPECT_EQ(r.source.exit_code, kExitCompleted);
  EXPECT_EQ(r.destination.exit_code, kExitCompleted);
  EXPECT_TRUE(r.source.digest_match);
  EXPECT_TRUE(r.destination.digest_match);
  EXPECT_EQ(r.source.digest, r.destination.digest);
  EXPECT_EQ(r.source.source_guest, "released");
  ASSERT_NE(r.destination_guest, nullptr);
  EXPECT_TRUE(r.destination_guest->Running());
}

// Failed before GO: the source guest runs on, the destination kept nothing.
void ExpectFailedBeforeGo(const InProcessResult& r) {
  EXPECT_EQ(r.source.exit_code, kExitFailed) << r.source.error;
  EXPECT_NE(r.destination.result, "completed");
  EXPECT_EQ(r.source.source_guest, "running") << r.source.error;
  EXPECT_TRUE(r.source_guest->Running());
  EXPECT_EQ(r.destination_guest, nullptr);
}

TEST(InProcessMigration, SixtyFourMiBGuestInUnderASecond) {
  InProcessOptions o;  // 64 MiB, 48 MiB written
  o.source.verify = VerifyMode::kFull;  // both ends rehash all memory: the copy is exact
  auto t = std::chrono::steady_clock::now();
  InProcessResult r = RunInProcessMigration(o);
  double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t).count();
  ExpectCompleted(r);
  EXPECT_EQ(r.source.memory_bytes, 64ull << 20);
  if (!kSanitized) {
    EXPECT_LT(ms, 1000) << "whole in-process migration of 64 MiB took " << ms << " ms";
  }
}

TEST(InProcessMigration, FourStreamsAndAKey) {
  InProcessOptions o = Small();
  o.source.streams = 4;
  o.source.key = std::vector<uint8_t>(32, 3);
  o.destination.key = o.source.key;
  InProcessResult r = RunInProcessMigration(o);
  ExpectCompleted(r);
  EXPECT_EQ(r.source.streams, 4u);
  EXPECT_EQ(r.destination.streams, 4u);
}

TEST(InProcessMigration, ForeignMappedPathsOnBothEnds) {
  InProcessOptions o = Small();
  o.source.verify = VerifyMode::kFull;
  o.source_backend.hide_direct_memory = true;
  o.destination_backend.hide_direct_memory = true;
  InProcessResult r = RunInProcessMigration(o);
  ExpectCompleted(r);
  EXPECT_GT(r.source_guest->map_calls(), 0u);
}

TEST(InProcessMigration, ControlStreamClosedMidPrecopy) {
  InProcessOptions o = Small();
  o.source_sends[0].close_after_bytes = 1 << 20;
  InProcessResult r = RunInProcessMigration(o);
  ExpectFailedBeforeGo(r);
  EXPECT_NE(r.source.error.find("fault injected"), std::string::npos) << r.source.error;
}

TEST(InProcessMigration, DataStreamClosedMidPrecopy) {
  InProcessOptions o = Small();
  o.source.streams = 2;
  o.source_sends[1].close_after_bytes = 256 << 10;
  InProcessResult r = RunInProcessMigration(o);
  ExpectFailedBeforeGo(r);
}

TEST(InProcessMigration, CorruptedPageIsCaughtByTheDestination) {
  InProcessOptions o = Small();
  o.source_sends[0].corrupt_byte = 600 << 10;  // inside round 0's pages
  InProcessResult r = RunInProcessMigration(o);
  ExpectFailedBeforeGo(r);
  EXPECT_EQ(r.destination.exit_code, kExitFailed) << r.destination.error;
}

TEST(InProcessMigration, SilentPeerTimesOut) {
  InProcessOptions o = Small();
  o.source.io_timeout_ms = 300;
  o.source.handoff_timeout_ms = 300;
  o.destination.io_timeout_ms = 300;
  o.source_sends[0].drop_after_bytes = 512 << 10;
  InProcessResult r = RunInProcessMigration(o);
  ExpectFailedBeforeGo(r);
}

TEST(InProcessMigration, SourcePauseFailsAndTheGuestRunsOn) {
  InProcessOptions o = Small();
  o.source_backend.fail_pause_at = 1;
  InProcessResult r = RunInProcessMigration(o);
  ExpectFailedBeforeGo(r);
  EXPECT_NE(r.source.error.find("pause guest"), std::string::npos) << r.source.error;
}

TEST(InProcessMigration, SourceMapFailsInRoundZero) {
  InProcessOptions o = Small();
  o.source_backend.hide_direct_memory = true;
  o.source_backend.fail_map_at = 3;
  InProcessResult r = RunInProcessMigration(o);
  ExpectFailedBeforeGo(r);
}

TEST(InProcessMigration, DestinationMapFails) {
  InProcessOptions o = Small();
  o.destination_backend.hide_direct_memory = true;
  o.destination_backend.fail_map_at = 2;
  InProcessResult r = RunInProcessMigration(o);
  ExpectFailedBeforeGo(r);
}

TEST(InProcessMigration, DestinationResumeFailsAfterGo) {
  InProcessOptions o = Small();
  o.destination_backend.fail_resume_at = 1;
  InProcessResult r = RunInProcessMigration(o);
  // GO was written: the source must not resume, and says the outcome is unknown.
  EXPECT_EQ(r.source.exit_code, kExitOutcomeUnknown) << r.source.error;
  EXPECT_EQ(r.source.source_guest, "paused");
  EXPECT_FALSE(r.source_guest->Running());
  EXPECT_EQ(r.destination.exit_code, kExitFailed) << r.destination.error;
  EXPECT_EQ(r.destination_guest, nullptr);
}

TEST(InProcessMigration, DirtyLogFailureEndsPrecopy) {
  InProcessOptions o = Small();
  o.source_backend.fail_fetch_dirty_at = 1;
  InProcessResult r = RunInProcessMigration(o);
  ExpectFailedBeforeGo(r);
  EXPECT_NE(r.source.error.find("dirty log"), std::string::npos) << r.source.error;
}

}  // namespace
}  // namespace xm::testing
