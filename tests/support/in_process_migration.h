// A whole migration in one process: a sim source and a sim destination, the
// SourceEngine on the calling thread and the Receiver on another, connected by
// socketpairs instead of TCP. Each stream and each backend can be wrapped in a
// fault (FaultyStream, FaultyBackend), so failure tests need no processes,
// ports or sleeps on a child's exit.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "dirtylog/faulty_backend.h"
#include "migrate/destination/receiver.h"
#include "migrate/source/engine.h"
#include "transport/faulty_stream.h"

namespace xm::testing {

struct InProcessOptions {
  uint64_t memory_bytes = 64ull << 20;
  std::string workload = "ws=48M";
  SourceOptions source;        // `to` and `dialer` are the harness's
  ReceiverOptions destination;  // `make_backend` is the harness's
  // Faults on what each end sends, by stream index (0 = control).
  std::map<uint32_t, StreamFaults> source_sends;
  std::map<uint32_t, StreamFaults> destination_sends;
  BackendFaults source_backend;
  BackendFaults destination_backend;
};

struct InProcessResult {
  MigrationReport source, destination;
  std::unique_ptr<FaultyBackend> source_guest;  // after the run (released, paused or running)
  std::unique_ptr<Backend> destination_guest;   // only after a completed migration
};

InProcessResult RunInProcessMigration(InProcessOptions opts);

}  // namespace xm::testing
