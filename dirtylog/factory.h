// Picks and builds the backend for one side of a migration from CLI options.
// This is the only place that knows every backend by name.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "dirtylog/backend.h"

namespace xm {

struct BackendOptions {
  std::string backend = "sim";  // sim | kvm | xen
  uint64_t memory_bytes = 256ull << 20;
  std::string workload;         // WorkloadSpec text (sim, kvm)
  uint32_t vcpus = 1;           // kvm
  std::string domain;           // xen: name or id
  // Destination: the source's CPU policy from the handshake (a Xen stream
  // carries it before any page), and where to also write the guest as Xen's
  // libxl stream (any backend; dirtylog/xen/stream_tee.h).
  std::optional<CpuPolicy> incoming_policy;
  std::string xen_stream_out;
  // Xen destination (dirtylog/xen/README.md): libxl domain config (JSON, as
  // `xl`/libxl write it) to restore with, a new name, leave the domain paused,
  // which toolstack builds it.
  std::string xen_config;
  std::string xen_name;
  bool xen_keep_paused = false;
  std::string xen_restore_via = "libxl";  // "libxl" (in process) or "xl" (`xl restore -p`)
};

// The names of the backends built into this binary.
std::vector<std::string> AvailableBackends();
// Whether `name` can run on this host right now (e.g. /dev/kvm opens); why not otherwise.
Status BackendUsable(const std::string& name);

// Opens (or, for sim/kvm, starts) the guest to migrate away.
Result<std::unique_ptr<Backend>> OpenSource(const BackendOptions& opts);
// Creates an empty destination guest of `shape` sent by a source running `source_backend`.
Result<std::unique_ptr<Backend>> CreateDestination(const BackendOptions& opts, const GuestShape& shape,
                                                   std::string_view source_backend);

}  // namespace xm
