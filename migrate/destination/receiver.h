// Receiver: the destination side of one live migration (DESIGN.md §1.2), the
// mirror of the source's SourceEngine.
//
// Accepts one source, negotiates (common/negotiate.h) and checks the guest
// (size, CPU policy) before any page moves, builds it in a fresh backend from
// the registry, applies pages from every stream (PageApplier), verifies every
// page and the final digest, and resumes the guest only after the source's GO.
// Any failure discards the half-built guest (PROTOCOL.md §6).
//
// One receiver serves one migration. Run() blocks the calling thread and runs
// one reader thread per data stream; the callbacks in ReceiverOptions are
// called from the thread that called Run().
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "dirtylog/backend.h"
#include "migrate/common/cancel.h"
#include "migrate/common/exit_code.h"
#include "migrate/common/progress.h"
#include "migrate/common/report.h"
#include "transport/messages.h"
#include "transport/secure.h"
#include "transport/endpoint.h"
#include "transport/socket_stream.h"
#include "transport/stream_factory.h"

namespace xm {

// Creates the destination guest once the source has said what it looks like.
using BackendFactory = std::function<Result<std::unique_ptr<Backend>>(const GuestShape& shape, std::string_view source_backend)>;
// Decides whether this host can run a guest with `policy`; returns kIncompatible
// naming what is missing otherwise. Empty = accept any policy.
using CpuCheckFn = std::function<Status(const CpuPolicy& policy)>;
// After the policy is applied: `applied` is what the hypervisor installed.
// Returns an error if a feature the guest saw would disappear; may add warnings.
using CpuApplyCheckFn = std::function<Status(const CpuPolicy& wanted, const CpuPolicy& applied,
                                             std::vector<std::string>& warnings)>;

struct ReceiverOptions {
  int accept_timeout_ms = 0;       // 0 = wait for a source forever
  int io_timeout_ms = 60000;
  int go_timeout_ms = 60000;       // READY sent → GO must arrive within this
  // After a connection breaks before VCPU_STATE, hold the partial guest this
  // long for the source to reconnect and RESUME (PROTOCOL.md §5a); 0 = never.
  int resume_window_ms = 60000;
  // ... but when the source's end closed the connection (FIN: its process died,
  // or a proxy closed on purpose) rather than the path failing, only this long:
  // a live source reconnects within a second (its first attempt is 0.25 s after
  // the break), a dead one never does, and its guest need not be held 60 s.
  int resume_window_closed_ms = 10000;
  std::vector<uint8_t> key;
  // TLS certificates and --no-encrypt; its `psk` is ignored (`key` is the PSK).
  SecurityOptions security;
  uint32_t max_streams = kMaxStreams;
  uint64_t max_guest_bytes = 0;    // refuse larger guests (0 = this host's RAM)
  std::string max_guest_what = "this host can hold";  // what max_guest_bytes is, for the refusal
  std::string guest_memory;  // the report's guest_memory, once the guest exists
  TransportKind transport = TransportKind::kAuto;
  BackendFactory make_backend;
  CpuCheckFn check_cpu;
  CpuApplyCheckFn check_applied_cpu;
  std::string dump_memory;         // test hook: guest memory after verify, before resume
  int linger_ms = 0;               // keep the resumed guest running this long before returning
  int selfcheck_wait_ms = 0;       // then wait up to this long for the guest's first self-check
  ProgressFn progress;
  // Operator cancel; accepted until READY is written (after it the source may
  // already have sent GO, so the handoff finishes). Not owned.
  Canceller* cancel = nullptr;
};

class Receiver {
 public:
  // REQUIRES: opts.make_backend is set.
  explicit Receiver(ReceiverOptions opts);
  ~Receiver();
  // Serves exactly one migration on `listener`; never throws.
  // REQUIRES: called at most once (either overload).
  MigrationReport Run(Listener& listener);
  // The same, with streams from `acceptor` (the in-process harness's seam).
  MigrationReport Run(Acceptor& acceptor);
  // The guest, after a completed migration (owned by the receiver until then);
  // nullptr after a failed one, whose guest was discarded.
  std::unique_ptr<Backend> TakeGuest();

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace xm
