#include "cpumask/levelling.h"

#include "cpumask/featureset.h"

namespace xm::cpumask {
namespace {

std::string VendorText(std::string_view v) { return v.empty() ? "unspecified" : std::string(v); }

// The vendor of a group: the first one specified.
std::string GroupVendor(std::span<const CpuPolicy> policies) {
  for (const CpuPolicy& p : policies)
    if (!p.vendor.empty()) return p.vendor;
  return {};
}

}  // namespace

bool VendorsCompatible(std::string_view a, std::string_view b) { return a.empty() || b.empty() || a == b; }

CpuPolicy Level(const CpuPolicy& vm, const CpuPolicy& mask) {
  CpuPolicy out = vm;
  if (out.vendor.empty()) out.vendor = mask.vendor;
  out.featureset = Intersect(vm.featureset, mask.featureset);
  for (size_t i = 0; i < vm.featureset.size(); ++i)
    out.featureset[i] |= vm.featureset[i] & EnvironmentMask(static_cast<uint32_t>(i));
  // A mirrored bit follows its leaf-1 original (same bit number in word 0), so a
  // mask without the mirror (Xen's HVM featuresets) does not strip it.
  if (vm.featureset.size() > kMirroredWord) {
    const uint32_t word0 = out.featureset.empty() ? 0 : out.featureset[0];
    out.featureset[kMirroredWord] &= ~kMirroredBits;
    out.featureset[kMirroredWord] |= vm.featureset[kMirroredWord] & kMirroredBits & word0;
  }
  return out;
}

Result<PoolLevel> ComputePoolLevel(std::span<const CpuPolicy> hosts) {
  if (hosts.empty()) return Error(Code::kInvalidArgument, "pool level of no hosts");
  PoolLevel out;
  out.level.format = "none";
  size_t vendor_host = 0;
  for (size_t i = 0; i < hosts.size(); ++i) {
    const CpuPolicy& h = hosts[i];
    if (!VendorsCompatible(out.level.vendor, h.vendor))
      return Error(Code::kIncompatible, "host " + std::to_string(vendor_host + 1) + " is " + out.level.vendor +
                                            " but host " + std::to_string(i + 1) + " is " + h.vendor +
                                            ": different CPU vendors cannot share a pool");
    if (out.level.vendor.empty() && !h.vendor.empty()) {
      out.level.vendor = h.vendor;
      vendor_host = i;
    }
    out.level.featureset = i == 0 ? h.featureset : Intersect(out.level.featureset, h.featureset);
  }
  for (const CpuPolicy& h : hosts) out.losses.push_back(Missing(h.featureset, out.level.featureset));
  return out;
}

Status CheckVmFits(const CpuPolicy& vm, const CpuPolicy& host, const CpuPolicy* pool_level) {
  if (!VendorsCompatible(vm.vendor, host.vendor))
    return Error(Code::kIncompatible, "vendor mismatch: guest CPU is " + vm.vendor + ", destination is " + host.vendor);
  if (pool_level && !VendorsCompatible(vm.vendor, pool_level->vendor))
    return Error(Code::kIncompatible,
                 "vendor mismatch: guest CPU is " + vm.vendor + ", destination pool is " + pool_level->vendor);
  std::string msg;
  if (auto missing = Missing(vm.featureset, host.featureset); !missing.empty())
    msg = "destination lacks " + JoinNames(missing);
  if (pool_level) {
    if (auto missing = Missing(vm.featureset, pool_level->featureset); !missing.empty())
      msg += (msg.empty() ? "" : "; ") + std::string("destination pool level lacks ") + JoinNames(missing);
  }
  if (!msg.empty()) return Error(Code::kIncompatible, msg);
  return {};
}

Status CheckApplied(const CpuPolicy& wanted, const CpuPolicy& applied, std::vector<std::string>& warnings) {
  if (!VendorsCompatible(wanted.vendor, applied.vendor))
    return Error(Code::kIncompatible, "the hypervisor installed vendor " + applied.vendor + " but the guest's CPU is " +
                                          wanted.vendor);
  if (auto lost = Missing(wanted.featureset, applied.featureset); !lost.empty())
    return Error(Code::kIncompatible,
                 "the applied CPU policy lacks features the guest already uses: " + JoinNames(lost));
  if (auto forced = Missing(applied.featureset, wanted.featureset); !forced.empty())
    warnings.push_back("the hypervisor forced on CPU features the guest's policy hides: " + JoinNames(forced));
  return {};
}

bool JoinReport::ok() const {
  if (!can_join()) return false;
  for (const Vm& vm : vms)
    if (!vm.can_move()) return false;
  return true;
}

Result<JoinReport> CheckJoin(std::span<const CpuPolicy> pool, const CpuPolicy& host, std::span<const CpuPolicy> vms) {
  auto before = ComputePoolLevel(pool);
  if (!before.ok()) {
    if (before.status().code() == Code::kIncompatible)
      return Error(Code::kInvalidArgument, "the pool's own hosts disagree: " + before.status().message());
    return before.status();
  }
  JoinReport r;
  r.level_before = before->level;
  r.level_after = before->level;
  std::string pool_vendor = GroupVendor(pool);
  if (!VendorsCompatible(pool_vendor, host.vendor)) {
    r.vendor_problem = "the pool's CPUs are " + pool_vendor + " but the host's are " + host.vendor +
                       ": different CPU vendors cannot share a pool";
  } else {
    if (r.level_after.vendor.empty()) r.level_after.vendor = host.vendor;
    r.level_after.featureset = Intersect(before->level.featureset, host.featureset);
    r.pool_loses = Missing(r.level_before.featureset, r.level_after.featureset);
    r.host_loses = Missing(host.featureset, r.level_after.featureset);
  }
  for (const CpuPolicy& vm : vms) {
    JoinReport::Vm v;
    if (!VendorsCompatible(vm.vendor, host.vendor))
      v.vendor_problem = "VM's CPU is " + VendorText(vm.vendor) + ", the host's is " + host.vendor;
    else
      v.missing = Missing(vm.featureset, host.featureset);
    r.vms.push_back(std::move(v));
  }
  return r;
}

}  // namespace xm::cpumask
