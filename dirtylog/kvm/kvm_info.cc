// The KVM backend's registry entry (dirtylog/registry.h).
#include "dirtylog/kvm/kvm_backend.h"
#include "dirtylog/registry.h"
#include "dirtylog/workload.h"

namespace xm {
namespace {

Result<std::unique_ptr<Backend>> OpenKvmSource(const BackendOptions& opts) {
  KvmSourceOptions ko;
  ko.memory_bytes = opts.memory_bytes;
  XM_ASSIGN_OR_RETURN(ko.workload, ParseWorkload(opts.workload, opts.memory_bytes));
  ko.vcpus = opts.vcpus;
  XM_ASSIGN_OR_RETURN(auto b, KvmBackend::CreateSource(ko));
  return std::unique_ptr<Backend>(std::move(b));
}

Result<std::unique_ptr<Backend>> CreateKvmDestination(const BackendOptions& opts, const GuestShape& shape) {
  XM_ASSIGN_OR_RETURN(auto b, KvmBackend::CreateDestination(shape, opts.hugepages));
  return std::unique_ptr<Backend>(std::move(b));
}

}  // namespace

extern const BackendInfo kKvmBackend;
const BackendInfo kKvmBackend = {
    .name = "kvm",
    .summary = "a real VM in this process running xmotion's self-checking guest payload (/dev/kvm)",
    .caps = {.built = true, .starts_guest = true, .direct_memory = true, .guest_selfcheck = true, .demo_priority = 2},
    .usable = KvmBackend::Usable,
    .host_policy = KvmBackend::HostPolicy,
    .open_source = OpenKvmSource,
    .create_destination = CreateKvmDestination,
};

}  // namespace xm
