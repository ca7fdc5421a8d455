// SetUpDestination (commands.h): what `receive` and `emu-manager` restore share.
#include <memory>
#include <optional>
#include <string>

#include "cpumask/host.h"
#include "cpumask/levelling.h"
#include "cpumask/policy_text.h"
#include "migrate/cli/commands.h"

namespace xm::cli {
namespace {

// What this host can offer a guest of `backend`: the hypervisor's view where it
// has one (KVM's supported CPUID, Xen's HVM max featureset), else CPUID.
Result<CpuPolicy> HostPolicyFor(const std::string& backend) {
  auto info = FindBackend(backend);
  if (!info.ok()) return cpumask::HostCpuPolicy();
  return (*info)->host_policy();
}

}  // namespace

Status SetUpDestination(ReceiverOptions& o, const BackendOptions& bo, const std::string& host_featureset,
                        const std::string& pool_level) {
  auto host = host_featureset.empty() ? HostPolicyFor(bo.backend) : cpumask::ParsePolicy(host_featureset);
  if (!host.ok()) return std::move(host).With("host CPU featureset").status();
  std::optional<CpuPolicy> pool;
  if (!pool_level.empty()) {
    auto p = cpumask::ParsePolicy(pool_level);
    if (!p.ok()) return Status(Code::kInvalidArgument, "--pool-level: " + p.status().message());
    pool = *p;
  }
  // The source's CPU policy arrives in the handshake, before the destination is
  // created; a Xen stream needs it before any page, so it is kept for the factory.
  auto incoming_policy = std::make_shared<std::optional<CpuPolicy>>();
  o.check_cpu = [host = *host, pool, incoming_policy](const CpuPolicy& vm) {
    *incoming_policy = vm;
    return cpumask::CheckVmFits(vm, host, pool ? &*pool : nullptr);
  };
  o.check_applied_cpu = [](const CpuPolicy& wanted, const CpuPolicy& applied, std::vector<std::string>& warnings) {
    return cpumask::CheckApplied(wanted, applied, warnings);
  };
  o.make_backend = [bo, incoming_policy](const GuestShape& shape, std::string_view src) {
    BackendOptions with_policy = bo;
    with_policy.incoming_policy = *incoming_policy;
    return CreateDestination(with_policy, shape, src);
  };
  auto info = FindBackend(bo.backend);
  if (!info.ok()) return {};  // no such backend: creating the guest says so
  // What the report says holds the guest: this process's own mapping where the
  // backend's memory is its (the rule --hugepages is checked by), else the
  // hypervisor's domain.
  o.guest_memory = !(*info)->caps.direct_memory ? bo.backend + "-domain" : bo.hugepages ? "hugetlb" : "anonymous";
  // Where guests live outside this process (Xen domains), the hypervisor's
  // free memory bounds the guest, not this host's (dom0's) RAM.
  if ((*info)->guest_capacity) {
    auto cap = (*info)->guest_capacity();
    if (cap.ok()) {
      o.max_guest_bytes = *cap;
      o.max_guest_what = "the hypervisor has free";
    }
  }
  return {};
}

}  // namespace xm::cli
