#include "dirtylog/registry.h"

#include <array>

#include "dirtylog/xen/xen_factory.h"

namespace xm {

// One line a backend: X(Name) stands for `const BackendInfo kNameBackend`,
// which dirtylog/<name>/ defines. The order is the order the CLI lists them in.
#define XM_BACKENDS(X) \
  X(Sim)               \
  X(Kvm)               \
  X(Xen)

#define XM_DECLARE_BACKEND(Name) extern const BackendInfo k##Name##Backend;
#define XM_BACKEND_ENTRY(Name) &k##Name##Backend,
XM_BACKENDS(XM_DECLARE_BACKEND)

namespace {
const BackendInfo* const kTable[] = {XM_BACKENDS(XM_BACKEND_ENTRY)};
}  // namespace

std::span<const BackendInfo* const> Backends() { return kTable; }

std::string BackendNamesText() {
  std::vector<std::string> names = AvailableBackends();
  std::string out;
  for (size_t i = 0; i < names.size(); ++i) {
    if (i > 0) out += i + 1 == names.size() ? " or " : ", ";
    out += names[i];
  }
  return out;
}

Result<const BackendInfo*> FindBackend(std::string_view name) {
  for (const BackendInfo* b : kTable)
    if (b->name == name) return b;
  return Error(Code::kInvalidArgument, "--backend " + std::string(name) + ": unknown backend (" + BackendNamesText() + ")");
}

std::vector<std::string> AvailableBackends() {
  std::vector<std::string> names;
  for (const BackendInfo* b : kTable)
    if (b->caps.built) names.emplace_back(b->name);
  return names;
}

Status BackendUsable(const std::string& name) {
  XM_ASSIGN_OR_RETURN(const BackendInfo* b, FindBackend(name));
  return b->usable();
}

Result<std::unique_ptr<Backend>> OpenSource(const BackendOptions& opts) {
  XM_ASSIGN_OR_RETURN(const BackendInfo* b, FindBackend(opts.backend));
  return b->open_source(opts);
}

Result<std::unique_ptr<Backend>> CreateDestination(const BackendOptions& opts, const GuestShape& shape,
                                                   std::string_view source_backend) {
  if (source_backend != opts.backend)
    return Error(Code::kIncompatible, "source runs a '" + std::string(source_backend) + "' guest, this receiver hosts '" +
                                          opts.backend + "' guests");
  XM_ASSIGN_OR_RETURN(const BackendInfo* b, FindBackend(opts.backend));
  auto dest = b->create_destination(opts, shape);
  if (!dest.ok()) return dest;
  return xen::MaybeTeeXenStream(std::move(dest).value(), opts, source_backend);
}

}  // namespace xm
