// SourceEngine: the source side of one live migration (DESIGN.md §1.1), the
// mirror of the destination's Receiver.
//
// Connects to a receiver, negotiates (common/negotiate.h), runs pre-copy rounds
// over the backend's dirty log through the SendPipeline, stop-and-copy and the
// two-phase handoff. Whatever fails before GO is written, the guest is resumed
// here; after GO it never runs here again (PROTOCOL.md §6).
//
// An accepted cancel (SourceOptions::cancel) stops the engine where it is,
// before GO: ABORT (code `cancelled`) to the receiver, the guest resumed here,
// result "cancelled" with the phase; after GO it is refused (common/cancel.h).
//
// One engine migrates one guest once. Run() drives the backend from the
// calling thread (and the pipeline's threads for MapPages); the caller must
// not touch the backend while Run() runs.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "dirtylog/backend.h"
#include "migrate/common/cancel.h"
#include "migrate/common/exit_code.h"
#include "migrate/common/progress.h"
#include "migrate/common/report.h"
#include "migrate/source/pipeline.h"
#include "migrate/source/policy.h"
#include "transport/endpoint.h"
#include "transport/messages.h"
#include "transport/secure.h"
#include "transport/socket_stream.h"
#include "transport/stream_factory.h"

namespace xm {

struct SourceOptions {
  HostPort to;
  int connect_timeout_ms = 10000;
  int io_timeout_ms = 60000;       // no progress for this long fails the migration
  int handoff_timeout_ms = 120000; // READY, DONE and a round's ROUND_ACK may take this long
  // Connections re-established after a break before VCPU_STATE (PROTOCOL.md
  // §5a); each break gets this many attempts within one io timeout.
  uint32_t reconnect = 3;
  std::vector<uint8_t> key;        // empty = no authentication
  // TLS certificates and --no-encrypt; its `psk` is ignored (`key` is the PSK).
  SecurityOptions security;
  bool compress = true;
  uint32_t streams = 1;            // parallel TCP connections (PROTOCOL.md §1)
  TransportKind transport = TransportKind::kAuto;
  PipelineOptions pipeline;        // workers, delta cache, dup index, adaptive LZ4
  PolicyConfig policy;
  VerifyMode verify = VerifyMode::kIncremental;
  std::string dump_at_pause;       // test hook: write guest memory here while paused
  Dialer* dialer = nullptr;        // test seam: streams from here instead of TCP to `to` (not owned)
  ProgressFn progress;
  // Operator cancel (signals, control lines); accepted until GO is written. Not owned.
  Canceller* cancel = nullptr;
};

class SourceEngine {
 public:
  // REQUIRES: `backend` is an opened source guest and outlives the engine.
  SourceEngine(Backend& backend, SourceOptions opts);
  ~SourceEngine();
  // Runs the whole migration; never throws. report.exit_code is the process's
  // (common/exit_code.h); report.source_guest says where the guest was left.
  // REQUIRES: called at most once.
  MigrationReport Run();

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};



}  // namespace xm
