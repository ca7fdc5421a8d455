// The sim backend's registry entry (dirtylog/registry.h).
#include "cpumask/host.h"
#include "dirtylog/registry.h"
#include "dirtylog/sim/sim_backend.h"
#include "dirtylog/workload.h"

namespace xm {
namespace {

Result<std::unique_ptr<Backend>> OpenSimSource(const BackendOptions& opts) {
  XM_ASSIGN_OR_RETURN(WorkloadSpec spec, ParseWorkload(opts.workload, opts.memory_bytes));
  // A sim guest "sees" this host's CPU, so CPU checks on the way are real ones.
  auto policy = cpumask::HostCpuPolicy();
  if (!policy.ok()) return std::move(policy).With("sim guest CPU policy").status();
  XM_ASSIGN_OR_RETURN(auto b, SimBackend::CreateSource(opts.memory_bytes, spec, *policy));
  return std::unique_ptr<Backend>(std::move(b));
}

Result<std::unique_ptr<Backend>> CreateSimDestination(const BackendOptions& opts, const GuestShape& shape) {
  XM_ASSIGN_OR_RETURN(auto b, SimBackend::CreateDestination(shape, opts.hugepages));
  return std::unique_ptr<Backend>(std::move(b));
}

}  // namespace

extern const BackendInfo kSimBackend;
const BackendInfo kSimBackend = {
    .name = "sim",
    .summary = "a synthetic guest in this process (workload thread, exact dirty log); for tests and benchmarks",
    .caps = {.built = true, .starts_guest = true, .direct_memory = true, .guest_selfcheck = false, .demo_priority = 1},
    .usable = [] { return Status{}; },
    .host_policy = [] { return cpumask::HostCpuPolicy(); },
    .open_source = OpenSimSource,
    .create_destination = CreateSimDestination,
};

}  // namespace xm
