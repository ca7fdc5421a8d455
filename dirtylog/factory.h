// Picks and builds the backend for one side of a migration from CLI options.
// This is the only place that knows every backend by name.
#pragma once

#include <memory>
#include <string>

#include "dirtylog/backend.h"

namespace xm {

struct BackendOptions {
  std::string backend = "sim";  // sim | kvm | xen
  uint64_t memory_bytes = 256ull << 20;
  std::string workload;         // WorkloadSpec text (sim, kvm)
  uint32_t vcpus = 1;           // kvm
  std::string domain;           // xen: name or id
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
