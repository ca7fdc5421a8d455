// MigrationReport: what one side of a migration did, as the JSON that control
// planes and benchmarks read (field names are a stable interface; see README),
// and as a human summary table. A plain value: filled by one engine thread.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/status.h"
#include "migrate/common/page_codec.h"
#include "transport/secure.h"

namespace xm {

// The report's schema (migrate/common/REPORT.md): bumped when a field changes
// meaning or goes; new fields may appear within a version.
inline constexpr const char* kReportSchema = "xmotion-report/1";

struct RoundReport {
  uint32_t round = 0;
  uint64_t dirty_pages = 0;  // pages the dirty log handed this round
  uint64_t pages_sent = 0;   // pages that went on the wire (not unchanged)
  uint64_t bytes_wire = 0;
  double ms = 0;
  bool compression = true;
  double throttle = 1.0;     // guest run fraction during the round
  double fetch_ms = 0;       // reading (and clearing) the dirty log after the round; in `ms` for the final round
  // Pre-copy rounds only: pages dirty when the round ended, and the downtime the
  // policy predicted for stopping then (what `xmotion plot` draws against the target).
  uint64_t dirty_next = 0;
  std::optional<double> predicted_downtime_ms;
};

struct DowntimeParts {
  double pause_ms = 0;        // asking the guest to stop until it stopped
  double final_round_ms = 0;  // last dirty pages
  double state_ms = 0;        // vCPU state + COMMIT + destination verify + restore + READY
  double restore_ms = 0;      // destination: vCPU state and CPU policy into the new guest (the
                              // toolstack finishing the domain on Xen); part of state_ms
  double unpause_ms = 0;      // destination: starting the new guest's vCPUs; part of handoff_ms
  double handoff_ms = 0;      // source: GO until DONE; destination: READY until the guest runs
  double go_to_running_ms = 0;  // destination: GO read until the guest runs (source: the destination's)
  double cpu_ms = 0;  // this process's CPU time (all threads) over its downtime window
};

// One broken connection the migration survived (or tried to): when, where, why.
struct BreakReport {
  std::string phase;   // "round 3", "final round 7", ...
  double at_ms = 0;    // since the migration started
  std::string error;   // what the break looked like from this end
};

struct MigrationReport {
  std::string role = "source";  // "source" | "destination"
  std::string result = "failed";  // "completed" | "cancelled" | "aborted" | "failed"
  std::string error;
  int exit_code = 1;
  std::string backend;
  double total_ms = 0;
  double downtime_ms = 0;
  DowntimeParts downtime;
  double downtime_target_ms = 0;  // source: the policy's target (0 = not a source report)
  uint64_t memory_bytes = 0;
  uint64_t bytes_wire = 0;
  std::vector<RoundReport> rounds;
  EncodeCounts pages;
  bool digest_match = false;
  std::string digest;
  std::string transport = "sockets";
  std::string transport_note;  // why io_uring was not used, when it was wanted
  EncryptionInfo encryption;   // what protected the streams (mode "none" until one was secured)
  uint32_t streams = 1;
  bool record_streams = false;  // compressed pages went as record streams (PROTOCOL.md §4), not alone
  std::string verify = "incremental";
  uint64_t source_overhead_bytes = 0;  // pipeline memory beyond the guest (hashes, buffers, caches)
  // Measured: the process's peak resident memory during the migration beyond
  // its start and beyond guest memory it holds itself (base/process_memory.h).
  uint64_t source_peak_overhead_bytes = 0;
  uint64_t destination_overhead_bytes = 0;
  // Destination: what holds the guest's memory here (REPORT.md); empty: not said.
  std::string guest_memory;
  // The guest as the hypervisor sees it when the report is written (GuestStateName),
  // or "released" once the destination owns it. Never guessed from the engine's flags.
  std::string source_guest;       // source side
  std::string destination_guest;  // destination side; "gone" after a failure discarded it
  std::optional<nlohmann::json> guest;  // guest's own progress/self-check, when it reports any
  std::optional<nlohmann::json> guest_selfcheck;  // destination: the self-checking guest's verdict
  std::optional<nlohmann::json> peer;   // the other side's report, when received
  // result "cancelled": the phase it landed in (progress phase names) and, in
  // precopy or the final round, the round in flight.
  std::string cancelled_phase;
  std::optional<uint32_t> cancelled_round;

  // Records why the migration did not complete: error, result, and for a cancel
  // (ours, or the peer's ABORT `cancelled`) where it landed (`round`: the
  // round in flight, in precopy and the final round).
  void SetFailure(const Status& st, const std::string& phase, std::optional<uint32_t> round);
  // Where the migration was when it ended (the phase names of PROTOCOL.md §6:
  // handshake, round N, final round N, state, READY, GO, DONE, ...) and the last
  // record this end read from its peer: a timeout's report says what it waited for.
  std::string phase;
  std::string last_record;
  uint32_t reconnects = 0;       // connections re-established after a break
  uint64_t bytes_resent = 0;     // page bytes sent again because a break lost them
  std::vector<BreakReport> breaks;
  std::optional<uint64_t> dirty_log_misses;  // --verify full: pages changed at pause but never reported dirty

  nlohmann::json ToJson() const;
  // A few lines for a terminal.
  std::string Summary() const;
};

// Writes JSON atomically (temp file + rename), so a reader never sees half a report.
Status WriteReportFile(const std::string& path, const nlohmann::json& j);

}  // namespace xm
