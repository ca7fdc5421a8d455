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
  o.destination.resume_window_ms = 3000;
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

TEST(InProcessMigration, ControlStreamClosedMidPrecopyWithoutReconnect) {
  InProcessOptions o = Small();
  o.source.reconnect = 0;
  o.source_sends[0].close_after_bytes = 1 << 20;
  InProcessResult r = RunInProcessMigration(o);
  ExpectFailedBeforeGo(r);
  EXPECT_NE(r.source.error.find("fault injected"), std::string::npos) << r.source.error;
}

TEST(InProcessMigration, DataStreamClosedMidPrecopyWithoutReconnect) {
  InProcessOptions o = Small();
  o.source.reconnect = 0;
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
  o.source.reconnect = 0;
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

// A cut mid-round is survived: the source reconnects, both ends agree on what
// the destination applied, and only what it lacks is sent again.
void ExpectResumedOnce(const InProcessResult& r) {
  ExpectCompleted(r);
  EXPECT_EQ(r.source.reconnects, 1u);
  EXPECT_EQ(r.destination.reconnects, 1u);
  ASSERT_EQ(r.source.breaks.size(), 1u);
  EXPECT_EQ(r.source.breaks[0].phase, "round 0");
  ASSERT_EQ(r.destination.breaks.size(), 1u);
}

TEST(InProcessMigration, ControlStreamCutMidRoundIsResumed) {
  InProcessOptions o = Small();
  o.source.verify = VerifyMode::kFull;
  o.source_sends[0].close_after_bytes = 3 << 20;  // in round 0, after about 3 MiB of pages
  InProcessResult r = RunInProcessMigration(o);
  ExpectResumedOnce(r);
  // What was on the wire and lost is at most what one socket buffer and one
  // batch held, never the 3 MiB the destination applied.
  EXPECT_GT(r.source.bytes_resent, 0u);
  EXPECT_LT(r.source.bytes_resent, 2u << 20) << r.source.bytes_resent;
  EXPECT_EQ(r.source.dirty_log_misses.value_or(99), 0u);
}

TEST(InProcessMigration, DataStreamCutMidRoundIsResumedOnFourStreams) {
  InProcessOptions o = Small();
  o.source.streams = 4;
  o.source.key = std::vector<uint8_t>(32, 9);  // the reconnect authenticates again
  o.destination.key = o.source.key;
  o.source_sends[2].close_after_bytes = 512 << 10;
  InProcessResult r = RunInProcessMigration(o);
  ExpectResumedOnce(r);
  EXPECT_EQ(r.destination.streams, 4u);
}

TEST(InProcessMigration, ReceiverCutsTheLinkAndTheSourceResumes) {
  InProcessOptions o = Small();
  o.destination_sends[0].close_after_bytes = 100 + 24;  // HELLO and ACCEPT go; its first ROUND_ACK never leaves
  InProcessResult r = RunInProcessMigration(o);
  ExpectCompleted(r);
  EXPECT_GE(r.source.reconnects, 1u);
  // The destination had applied the whole round: nothing is sent again.
  EXPECT_EQ(r.source.bytes_resent, 0u);
}

TEST(InProcessMigration, NoSourceComesBackAndTheReceiverDiscards) {
  InProcessOptions o = Small();
  o.source.reconnect = 0;
  o.destination.resume_window_ms = 500;
  o.source_sends[0].close_after_bytes = 1 << 20;
  auto t = std::chrono::steady_clock::now();
  InProcessResult r = RunInProcessMigration(o);
  ExpectFailedBeforeGo(r);
  EXPECT_LT(std::chrono::steady_clock::now() - t, std::chrono::seconds(5));
  EXPECT_NE(r.destination.error.find("resume window"), std::string::npos) << r.destination.error;
  EXPECT_EQ(r.destination.destination_guest, "gone");
  EXPECT_EQ(r.destination.phase, "resume wait");
}

// --verify full audits the dirty log: a page the log forgot is counted.
TEST(InProcessMigration, DirtyLogAuditCountsAMissedPage) {
  InProcessOptions o = Small();
  o.workload = "ws=6M,hot=1M,rate=0";
  o.source.verify = VerifyMode::kFull;
  o.source_backend.drop_dirty_pfn = 0;  // pfn 0 changes, and the dirty log never says so
  InProcessResult r = RunInProcessMigration(o);
  ExpectFailedBeforeGo(r);
  ASSERT_TRUE(r.source.dirty_log_misses.has_value());
  EXPECT_GE(*r.source.dirty_log_misses, 1u);
  EXPECT_NE(r.source.error.find("dirty log did not report"), std::string::npos) << r.source.error;
}

TEST(InProcessMigration, DirtyLogAuditIsZeroForAnHonestLog) {
  InProcessOptions o = Small();
  o.workload = "ws=6M,hot=1M,rate=0";
  o.source.verify = VerifyMode::kFull;
  InProcessResult r = RunInProcessMigration(o);
  ExpectCompleted(r);
  ASSERT_TRUE(r.source.dirty_log_misses.has_value());
  EXPECT_EQ(*r.source.dirty_log_misses, 0u);
}

}  // namespace
}  // namespace xm::testing
