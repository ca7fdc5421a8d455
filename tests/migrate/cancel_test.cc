// Operator cancel in every phase of a migration (common/cancel.h), in one
// process (tests/support/in_process_migration.h). Each test cancels at an exact
// point, chosen through FaultyBackend's before_call hook: the engine is then
// in a known phase, sometimes computing, sometimes blocked reading the peer.
// Before GO both ends must say "cancelled" with the phase, exit 6, the source
// guest must run on and the destination keep nothing; after GO (source) or
// READY (destination) the cancel is refused and the migration completes.
#include "tests/support/in_process_migration.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>

namespace xm::testing {
namespace {

InProcessOptions Small() {
  InProcessOptions o;
  o.memory_bytes = 16ull << 20;
  o.workload = "ws=12M,hot=2M,rate=40M/s";
  o.source.io_timeout_ms = 5000;
  o.source.handoff_timeout_ms = 5000;
  o.destination.io_timeout_ms = 5000;
  o.destination.go_timeout_ms = 5000;
  return o;
}

// A hook that cancels `who` on the n-th call named `call`.
std::function<void(std::string_view, uint64_t)> CancelAt(Canceller& who, std::string_view call, uint64_t nth) {
  return [&who, call, nth](std::string_view c, uint64_t n) {
    if (c == call && n == nth) {
      EXPECT_EQ(who.Request("test"), Canceller::Answer::kAccepted);
    }
  };
}

void ExpectCancelled(const InProcessResult& r, const std::string& source_phase, const std::string& dest_phase) {
  EXPECT_EQ(r.source.result, "cancelled") << r.source.error;
  EXPECT_EQ(r.source.exit_code, kExitCancelled);
  EXPECT_EQ(r.source.cancelled_phase, source_phase) << r.source.error;
  EXPECT_EQ(r.source.source_guest, "running") << r.source.error;
  EXPECT_TRUE(r.source_guest->Running());
  EXPECT_EQ(r.destination.result, "cancelled") << r.destination.error;
  EXPECT_EQ(r.destination.exit_code, kExitCancelled);
  EXPECT_EQ(r.destination.cancelled_phase, dest_phase) << r.destination.error;
  EXPECT_EQ(r.destination.destination_guest, "gone");
  EXPECT_EQ(r.destination_guest, nullptr);
  // The report says so too, for a control plane that reads only the file.
  auto j = r.source.ToJson();
  EXPECT_EQ(j["result"], "cancelled");
  EXPECT_EQ(j["cancelled_phase"], source_phase);
}

TEST(Cancel, InHandshake) {
  Canceller src;
  InProcessOptions o = Small();
  o.source.cancel = &src;
  o.source_backend.before_call = CancelAt(src, "GetCpuPolicy", 1);  // offering the guest: mid-handshake
  auto r = RunInProcessMigration(std::move(o));
  ExpectCancelled(r, "handshake", "handshake");
  EXPECT_NE(r.source.error.find("cancelled by test during handshake"), std::string::npos) << r.source.error;
}

TEST(Cancel, InRoundZeroWhileSending) {
  Canceller src;
  InProcessOptions o = Small();
  o.source.cancel = &src;
  o.source_backend.hide_direct_memory = true;  // pages go through MapPages, as on Xen
  o.source_backend.before_call = CancelAt(src, "MapPages", 2);  // workers are encoding round 0
  auto r = RunInProcessMigration(std::move(o));
  ExpectCancelled(r, "precopy", "precopy");
  ASSERT_TRUE(r.source.cancelled_round.has_value());
  EXPECT_EQ(*r.source.cancelled_round, 0u);
  EXPECT_TRUE(r.source.rounds.empty());
}

TEST(Cancel, InRoundZeroWhileWaitingForTheDestination) {
  // The destination applies round 0 while the source is blocked reading
  // ROUND_ACK: the cancel must wake that read and still reach the peer.
  Canceller src;
  InProcessOptions o = Small();
  o.source.cancel = &src;
  o.destination_backend.before_call = CancelAt(src, "OnRoundEnd", 1);
  auto r = RunInProcessMigration(std::move(o));
  ExpectCancelled(r, "precopy", "precopy");
  EXPECT_EQ(r.source.cancelled_round.value_or(99), 0u);
}

TEST(Cancel, InRoundTwo) {
  Canceller src;
  InProcessOptions o = Small();
  o.workload = "ws=12M,hot=4M,rate=2G/s";
  o.source.cancel = &src;
  o.source.policy.downtime_target_ms = 0.001;  // never good enough: rounds go on
  o.source.policy.auto_converge = false;
  o.source.policy.max_rounds = 20;
  // FetchDirty #2 closes round 1; the next MapPages is round 2's.
  // The destination applies round 2 while the source waits for its ROUND_ACK.
  o.destination_backend.before_call = CancelAt(src, "OnRoundEnd", 3);
  auto r = RunInProcessMigration(std::move(o));
  ExpectCancelled(r, "precopy", "precopy");
  EXPECT_EQ(r.source.cancelled_round.value_or(99), 2u) << r.source.ToJson()["rounds"].dump();
  EXPECT_EQ(r.source.rounds.size(), 2u);
  EXPECT_EQ(r.destination.rounds.size(), 3u);
}

TEST(Cancel, InTheFinalRoundResumesTheGuest) {
  Canceller src;
  InProcessOptions o = Small();
  o.source.cancel = &src;
  o.source_backend.before_call = CancelAt(src, "Pause", 1);  // lands as the guest is being paused
  auto r = RunInProcessMigration(std::move(o));
  ExpectCancelled(r, "final-round", "precopy");  // the destination cannot tell the last round from others
  EXPECT_GE(r.source.cancelled_round.value_or(0), 1u);
}

TEST(Cancel, WhileSavingState) {
  // The source reads the vCPU state while the destination applies the final
  // round, so a cancel then ends the final round (and the guest resumes here).
  Canceller src;
  InProcessOptions o = Small();
  o.source.cancel = &src;
  o.source_backend.before_call = CancelAt(src, "SaveVcpuState", 1);
  auto r = RunInProcessMigration(std::move(o));
  ExpectCancelled(r, "final-round", "precopy");
  EXPECT_TRUE(r.source.cancelled_round.has_value());
}

TEST(Cancel, WhileWaitingForReady) {
  // The destination is verifying (it loads the vCPU state just before READY);
  // the source is blocked reading READY.
  Canceller src;
  InProcessOptions o = Small();
  o.source.cancel = &src;
  o.destination_backend.before_call = [&src](std::string_view c, uint64_t n) {
    if (c != "LoadVcpuState" || n != 1) return;
    // COMMIT is out, but the source may not have named its next phase yet
    // (it lost that race under ASan on a loaded machine): wait until it has.
    for (int i = 0; i < 5000 && src.phase() != "ready"; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    EXPECT_EQ(src.Request("test"), Canceller::Answer::kAccepted);
  };
  auto r = RunInProcessMigration(std::move(o));
  // The destination has sent READY by the time the ABORT reaches it.
  ExpectCancelled(r, "ready", "ready");
}

// Runs `o` asking `who` to cancel when the destination resumes the guest,
// which it does only after GO arrived (so after both ends' point of no
// return): the cancel must be refused naming `why`, and the migration complete.
InProcessResult CancelRefusedAtDestinationResume(InProcessOptions o, Canceller& who, const std::string& why) {
  auto answer = std::make_shared<std::atomic<int>>(-1);
  o.destination_backend.before_call = [&who, answer](std::string_view c, uint64_t) {
    if (c == "Resume") answer->store(static_cast<int>(who.Request("test")));
  };
  auto r = RunInProcessMigration(std::move(o));
  EXPECT_EQ(answer->load(), static_cast<int>(Canceller::Answer::kRefused));
  EXPECT_NE(who.refusal().find(why), std::string::npos) << who.refusal();
  EXPECT_EQ(r.source.result, "completed") << r.source.error;
  EXPECT_EQ(r.destination.result, "completed") << r.destination.error;
  return r;
}

TEST(Cancel, AfterGoIsRefusedAndTheHandoffFinishes) {
  Canceller src;
  InProcessOptions o = Small();
  o.source.cancel = &src;
  auto r = CancelRefusedAtDestinationResume(std::move(o), src, "GO was sent");
  EXPECT_EQ(r.source.source_guest, "released");
  ASSERT_NE(r.destination_guest, nullptr);
  EXPECT_TRUE(r.destination_guest->Running());
}

TEST(Cancel, DestinationCancelInPrecopyReachesTheSource) {
  Canceller dst;
  InProcessOptions o = Small();
  o.destination.cancel = &dst;
  o.destination_backend.before_call = CancelAt(dst, "OnRoundEnd", 1);
  auto r = RunInProcessMigration(std::move(o));
  ExpectCancelled(r, "precopy", "precopy");
  EXPECT_NE(r.source.error.find("peer aborted"), std::string::npos) << r.source.error;
}

TEST(Cancel, DestinationCancelAfterReadyIsRefused) {
  Canceller dst;
  InProcessOptions o = Small();
  o.destination.cancel = &dst;
  CancelRefusedAtDestinationResume(std::move(o), dst, "READY was sent");
}

TEST(Cancel, ReceiverWaitingForASource) {
  auto l = Listener::Bind(HostPort{"127.0.0.1", 0});
  ASSERT_TRUE(l.ok()) << l.status().ToString();
  Canceller dst;
  ReceiverOptions ro;
  ro.cancel = &dst;
  ro.make_backend = [](const GuestShape&, std::string_view) -> Result<std::unique_ptr<Backend>> {
    return Error(Code::kInternal, "never created");
  };
  std::thread t([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    dst.Request("test");
  });
  Receiver receiver(ro);
  auto start = std::chrono::steady_clock::now();
  MigrationReport r = receiver.Run(*l);
  t.join();
  EXPECT_EQ(r.result, "cancelled") << r.error;
  EXPECT_EQ(r.cancelled_phase, "accept");
  EXPECT_EQ(r.exit_code, kExitCancelled);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(3));
}

TEST(Cancel, SecondRequestIsNotAcceptedTwice) {
  Canceller c;
  EXPECT_EQ(c.Request("a"), Canceller::Answer::kAccepted);
  EXPECT_EQ(c.Request("b"), Canceller::Answer::kAlreadyCancelled);
  EXPECT_FALSE(c.PassPointOfNoReturn("x"));  // the engine must stop instead
  EXPECT_EQ(c.by(), "a");
}

}  // namespace
}  // namespace xm::testing
