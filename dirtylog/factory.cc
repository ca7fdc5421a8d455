#include "dirtylog/factory.h"

#include "dirtylog/sim/sim_backend.h"
#include "dirtylog/workload.h"

namespace xm {

std::vector<std::string> AvailableBackends() { return {"sim"}; }

Status BackendUsable(const std::string& name) {
  if (name == "sim") return {};
  return Error(Code::kUnsupported, "backend '" + name + "' is not built into this xmotion");
}

Result<std::unique_ptr<Backend>> OpenSource(const BackendOptions& opts) {
  if (opts.backend == "sim") {
    auto spec = ParseWorkload(opts.workload, opts.memory_bytes);
    if (!spec.ok()) return spec.status();
    CpuPolicy policy;
    policy.format = "none";
    auto b = SimBackend::CreateSource(opts.memory_bytes, *spec, policy);
    if (!b.ok()) return b.status();
    return std::unique_ptr<Backend>(std::move(b).value());
  }
  XM_TRY(BackendUsable(opts.backend));
  return Error(Code::kInternal, "unreachable");
}

Result<std::unique_ptr<Backend>> CreateDestination(const BackendOptions& opts, const GuestShape& shape,
                                                   std::string_view source_backend) {
  if (source_backend != opts.backend)
    return Error(Code::kIncompatible, "source runs a '" + std::string(source_backend) + "' guest, this receiver hosts '" +
                                          opts.backend + "' guests");
  if (opts.backend == "sim") {
    auto b = SimBackend::CreateDestination(shape);
    if (!b.ok()) return b.status();
    return std::unique_ptr<Backend>(std::move(b).value());
  }
  XM_TRY(BackendUsable(opts.backend));
  return Error(Code::kInternal, "unreachable");
}

}  // namespace xm
