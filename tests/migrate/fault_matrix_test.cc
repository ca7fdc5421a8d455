// The fault matrix (issue 17; the table with every cell's outcome is in
// tests/README.md): each phase of a migration {handshake, round 0, round k,
// final round, state, READY, GO, DONE} × each fault the in-process harness can
// inject exactly there {connection reset, silent path, backend failure}. A
// killed process is seen by its peer as a reset (the kernel closes its
// sockets) and a frozen one as a silent path; the real-process kills and
// freezes are in tests/integration/fault_test.cc.
//
// Every cell asserts the same three things: the guest runs in exactly one
// place (or, after GO, is paused on the source with exit 4 — never running
// twice, never lost unknowingly), both reports say what happened (result,
// phase, error), and nothing waits past its timeout.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <functional>
#include <memory>
#include <string>

#include "tests/support/in_process_migration.h"
#include "transport/record.h"

namespace xm::testing {
namespace {

enum class Outcome {
  kResumed,         // completed after a reconnect: runs on the destination only
  kFailedBeforeGo,  // exit 1: runs on the source, the destination discarded
  kPausedAfterGo,   // exit 4: paused on the source; the destination runs it or discarded it
  kNoResume,        // exit 1 and the source's Resume failed: paused on the source, said loudly
};

struct Cell {
  const char* phase;
  const char* fault;
  Outcome outcome;
  std::function<void(InProcessOptions&)> inject;
};

constexpr uint32_t T(RecordType t) { return static_cast<uint32_t>(t); }

// A small guest that dirties pages all the time, and a policy that always runs
// rounds 0 and 1 and then the final round 2, so "round k" and "final round"
// are records we can name: ROUND_END #2 and #3.
InProcessOptions Base() {
  InProcessOptions o;
  o.memory_bytes = 8ull << 20;
  o.workload = "ws=6M,hot=1M,rate=0";
  o.source.policy.max_rounds = 2;
  o.source.policy.downtime_target_ms = -1;  // never "fits": only the round limit stops pre-copy
  o.source.io_timeout_ms = 1000;
  o.source.handoff_timeout_ms = 1000;
  o.destination.io_timeout_ms = 1000;
  o.destination.go_timeout_ms = 1000;
  o.destination.resume_window_ms = 1500;
  o.destination.accept_timeout_ms = 5000;
  // Rounds of a few milliseconds would end before the guest wrote anything:
  // 2 ms per record gives it time to dirty pages for rounds 1 and 2.
  o.source_sends[0].delay_ms = 2;
  // On a loaded machine the writer thread may not run for a whole round: a
  // page the log always reports keeps every round non-empty.
  o.source_backend.always_dirty_pfn = 1000;
  return o;
}

auto CloseAt(RecordType t, uint32_t nth = 1, bool destination = false) {
  return [=](InProcessOptions& o) {
    StreamFaults& f = (destination ? o.destination_sends : o.source_sends)[0];
    f.close_at_record = T(t);
    f.record_nth = nth;
  };
}
auto DropAt(RecordType t, uint32_t nth = 1, bool destination = false) {
  return [=](InProcessOptions& o) {
    StreamFaults& f = (destination ? o.destination_sends : o.source_sends)[0];
    f.drop_at_record = T(t);
    f.record_nth = nth;
  };
}

// Every `call` fails once `after` has been called `nth` times: a backend that
// breaks from a point of the migration on (maps once the guest is paused, as a
// destination out of memory in the final round would).
void FailFrom(BackendFaults& f, std::string after, uint64_t nth, std::string call) {
  auto armed = std::make_shared<std::atomic<bool>>(false);
  f.before_call = [=](std::string_view c, uint64_t n) {
    if (c == after && n >= nth) armed->store(true);
  };
  f.fail_if = [=](std::string_view c, uint64_t) { return c == call && armed->load(); };
}

const Cell kCells[] = {
    // handshake: the source's SHAPE never arrives.
    {"handshake", "reset", Outcome::kFailedBeforeGo, CloseAt(RecordType::kShape)},
    {"handshake", "silent", Outcome::kFailedBeforeGo, DropAt(RecordType::kShape)},
    // round 0: from the second PAGES record on.
    {"round 0", "reset", Outcome::kResumed, CloseAt(RecordType::kPages, 2)},
    {"round 0", "silent", Outcome::kResumed, DropAt(RecordType::kPages, 2)},
    {"round 0", "source map fails", Outcome::kFailedBeforeGo,
     [](InProcessOptions& o) {
       o.source_backend.hide_direct_memory = true;
       o.source_backend.fail_map_at = 2;
     }},
    {"round 0", "destination map fails", Outcome::kFailedBeforeGo,
     [](InProcessOptions& o) {
       o.destination_backend.hide_direct_memory = true;
       o.destination_backend.fail_map_at = 2;
     }},
    // round k: round 1's ROUND_END.
    {"round k", "reset", Outcome::kResumed, CloseAt(RecordType::kRoundEnd, 2)},
    {"round k", "silent", Outcome::kResumed, DropAt(RecordType::kRoundEnd, 2)},
    {"round k", "destination's ROUND_ACK lost", Outcome::kResumed, CloseAt(RecordType::kRoundAck, 2, true)},
    {"round k", "source map fails", Outcome::kFailedBeforeGo,
     [](InProcessOptions& o) {
       o.source_backend.hide_direct_memory = true;
       o.source_backend.fail_map_at = 5;  // round 0 maps the 4 regions of 512 pages; then round 1's first
     }},
    // final round (the guest is paused on the source): round 2's ROUND_END.
    {"final round", "reset", Outcome::kResumed, CloseAt(RecordType::kRoundEnd, 3)},
    {"final round", "silent", Outcome::kResumed, DropAt(RecordType::kRoundEnd, 3)},
    {"final round", "source pause fails", Outcome::kFailedBeforeGo,
     [](InProcessOptions& o) { o.source_backend.fail_pause_at = 1; }},
    {"final round", "source map fails", Outcome::kFailedBeforeGo,
     [](InProcessOptions& o) {
       o.source_backend.hide_direct_memory = true;
       FailFrom(o.source_backend, "Pause", 1, "MapPages");  // resumed despite a half-sent final round
     }},
    // The destination's maps fail once round 1 was applied (round 2 is the
    // final one): what running out of memory mid-restore looks like to it.
    {"final round", "destination map fails (out of memory)", Outcome::kFailedBeforeGo,
     [](InProcessOptions& o) {
       o.destination_backend.hide_direct_memory = true;
       FailFrom(o.destination_backend, "OnRoundEnd", 2, "MapPages");
     }},
    // state: VCPU_STATE and COMMIT (not resumable: the round is over).
    {"state", "reset", Outcome::kFailedBeforeGo, CloseAt(RecordType::kVcpuState)},
    {"state", "silent", Outcome::kFailedBeforeGo, DropAt(RecordType::kVcpuState)},
    {"state", "reset, then the source's resume fails", Outcome::kNoResume,
     [](InProcessOptions& o) {
       CloseAt(RecordType::kVcpuState)(o);
       o.source_backend.fail_resume_at = 1;
     }},
    {"state", "source vCPU save fails", Outcome::kFailedBeforeGo,
     [](InProcessOptions& o) { FailFrom(o.source_backend, "SaveVcpuState", 1, "SaveVcpuState"); }},
    {"state", "destination vCPU load fails", Outcome::kFailedBeforeGo,
     [](InProcessOptions& o) { FailFrom(o.destination_backend, "LoadVcpuState", 1, "LoadVcpuState"); }},
    // READY: the destination's READY never arrives.
    {"READY", "reset", Outcome::kFailedBeforeGo, CloseAt(RecordType::kReady, 1, true)},
    {"READY", "silent", Outcome::kFailedBeforeGo, DropAt(RecordType::kReady, 1, true)},
    // GO: written, never arrives: the source must not resume.
    {"GO", "reset", Outcome::kPausedAfterGo, CloseAt(RecordType::kGo)},
    {"GO", "silent", Outcome::kPausedAfterGo, DropAt(RecordType::kGo)},
    // DONE: the guest runs on the destination; the source never hears it.
    {"DONE", "reset", Outcome::kPausedAfterGo, CloseAt(RecordType::kDone, 1, true)},
    {"DONE", "silent", Outcome::kPausedAfterGo, DropAt(RecordType::kDone, 1, true)},
    {"DONE", "destination resume fails", Outcome::kPausedAfterGo,
     [](InProcessOptions& o) { o.destination_backend.fail_resume_at = 1; }},
};

class FaultMatrix : public ::testing::TestWithParam<Cell> {};

TEST_P(FaultMatrix, GuestInExactlyOnePlaceReportsSayWhatHappenedNothingHangs) {
  const Cell& c = GetParam();
  InProcessOptions o = Base();
  c.inject(o);
  auto t0 = std::chrono::steady_clock::now();
  InProcessResult r = RunInProcessMigration(o);
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  SCOPED_TRACE(std::string(c.phase) + " × " + c.fault + ": source: " + r.source.error +
               " | destination: " + r.destination.error);

  // Nothing hangs: the slowest cell waits one io timeout to notice, one to
  // reconnect and the resume window; 10 s is far above that and far below a hang.
  EXPECT_LT(s, 10.0);

  const bool source_runs = r.source_guest && r.source_guest->Running();
  const bool destination_runs = r.destination_guest && r.destination_guest->Running();
  EXPECT_FALSE(source_runs && destination_runs) << "the guest runs twice";

  switch (c.outcome) {
    case Outcome::kResumed:
      EXPECT_EQ(r.source.exit_code, kExitCompleted);
      EXPECT_EQ(r.destination.exit_code, kExitCompleted);
      EXPECT_TRUE(r.source.digest_match);
      EXPECT_EQ(r.source.digest, r.destination.digest);
      EXPECT_TRUE(destination_runs);
      EXPECT_EQ(r.source.source_guest, "released");
      EXPECT_GE(r.source.reconnects, 1u);
      ASSERT_FALSE(r.source.breaks.empty());  // and the report says where it broke
      EXPECT_FALSE(r.source.breaks[0].phase.empty());
      break;
    case Outcome::kFailedBeforeGo:
      EXPECT_EQ(r.source.exit_code, kExitFailed);
      EXPECT_TRUE(source_runs);
      EXPECT_EQ(r.source.source_guest, "running");
      EXPECT_NE(r.destination.result, "completed");
      EXPECT_EQ(r.destination_guest, nullptr);
      break;
    case Outcome::kPausedAfterGo:
      EXPECT_EQ(r.source.exit_code, kExitOutcomeUnknown);
      EXPECT_FALSE(source_runs);
      EXPECT_EQ(r.source.source_guest, "paused");
      EXPECT_NE(r.source.error.find("GO was sent"), std::string::npos);
      // The destination either runs it (GO arrived) or discarded it (it did not).
      if (r.destination.result == "completed") EXPECT_TRUE(destination_runs);
      else EXPECT_EQ(r.destination_guest, nullptr);
      break;
    case Outcome::kNoResume:
      EXPECT_EQ(r.source.exit_code, kExitFailed);
      EXPECT_FALSE(source_runs);
      EXPECT_EQ(r.source.source_guest, "paused");
      EXPECT_NE(r.source.error.find("RESUMING THE SOURCE GUEST FAILED"), std::string::npos);
      EXPECT_EQ(r.destination_guest, nullptr);
      break;
  }
  // One line per cell, the source of tests/README.md's table.
  std::printf("cell | %s | %s | source exit %d, %s, phase %s%s | destination %s, phase %s | %.2f s\n", c.phase,
              c.fault, r.source.exit_code, r.source.source_guest.c_str(), r.source.phase.c_str(),
              r.source.breaks.empty() ? "" : (", break in " + r.source.breaks[0].phase).c_str(),
              r.destination.result.c_str(), r.destination.phase.c_str(), s);
  // The reports say what happened and where.
  for (const MigrationReport* rep : {&r.source, &r.destination}) {
    if (rep->result == "completed") continue;
    EXPECT_FALSE(rep->error.empty()) << rep->role;
    EXPECT_FALSE(rep->phase.empty()) << rep->role;
  }
}

std::string CellName(const ::testing::TestParamInfo<Cell>& info) {
  std::string n = std::to_string(info.index) + "_" + info.param.phase + "_" + info.param.fault;
  for (char& ch : n)
    if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
  return n;
}

INSTANTIATE_TEST_SUITE_P(Cells, FaultMatrix, ::testing::ValuesIn(kCells), CellName);

}  // namespace
}  // namespace xm::testing
