#include "dirtylog/factory.h"

#include "dirtylog/kvm/kvm_backend.h"
#include "cpumask/host.h"
#include "dirtylog/sim/sim_backend.h"
#include "dirtylog/workload.h"
#include "dirtylog/xen/xen_factory.h"

namespace xm {

std::vector<std::string> AvailableBackends() {
  std::vector<std::string> names{"sim", "kvm"};
  if (xen::BackendBuilt()) names.push_back("xen");
  return names;
}

Status BackendUsable(const std::string& name) {
  if (name == "sim") return {};
  if (name == "kvm") return KvmBackend::Usable();
  if (name == "xen") return xen::BackendUsable();
  return Error(Code::kInvalidArgument, "--backend " + name + ": unknown backend (sim, kvm or xen)");
}

Result<std::unique_ptr<Backend>> OpenSource(const BackendOptions& opts) {
  if (opts.backend == "sim") {
    auto spec = ParseWorkload(opts.workload, opts.memory_bytes);
    if (!spec.ok()) return spec.status();
    // A sim guest "sees" this host's CPU, so CPU checks on the way are real ones.
    auto policy = cpumask::HostCpuPolicy();
    if (!policy.ok()) return std::move(policy).With("sim guest CPU policy").status();
    auto b = SimBackend::CreateSource(opts.memory_bytes, *spec, *policy);
    if (!b.ok()) return b.status();
    return std::unique_ptr<Backend>(std::move(b).value());
  }
  if (opts.backend == "kvm") {
    KvmSourceOptions ko;
    ko.memory_bytes = opts.memory_bytes;
    XM_ASSIGN_OR_RETURN(ko.workload, ParseWorkload(opts.workload, opts.memory_bytes));
    ko.vcpus = opts.vcpus;
    auto b = KvmBackend::CreateSource(ko);
    if (!b.ok()) return b.status();
    return std::unique_ptr<Backend>(std::move(b).value());
  }
  if (opts.backend == "xen") return xen::OpenSource(opts);
  XM_TRY(BackendUsable(opts.backend));
  return Error(Code::kInternal, "unreachable");
}

Result<std::unique_ptr<Backend>> CreateDestination(const BackendOptions& opts, const GuestShape& shape,
                                                   std::string_view source_backend) {
  if (!opts.xen_stream_out.empty()) {
    BackendOptions inner = opts;
    inner.xen_stream_out.clear();
    auto dest = CreateDestination(inner, shape, source_backend);
    if (!dest.ok()) return dest;
    return xen::MaybeTeeXenStream(std::move(dest).value(), opts, source_backend);
  }
  if (source_backend != opts.backend)
    return Error(Code::kIncompatible, "source runs a '" + std::string(source_backend) + "' guest, this receiver hosts '" +
                                          opts.backend + "' guests");
  if (opts.backend == "sim") {
    auto b = SimBackend::CreateDestination(shape);
    if (!b.ok()) return b.status();
    return std::unique_ptr<Backend>(std::move(b).value());
  }
  if (opts.backend == "kvm") {
    auto b = KvmBackend::CreateDestination(shape);
    if (!b.ok()) return b.status();
    return std::unique_ptr<Backend>(std::move(b).value());
  }
  if (opts.backend == "xen") return xen::CreateDestination(opts, shape);
  XM_TRY(BackendUsable(opts.backend));
  return Error(Code::kInternal, "unreachable");
}

}  // namespace xm
