// Pool levelling and XAPI's compatibility rules.
//
// A pool's level is the AND of its hosts' featuresets; Intel and AMD (any two
// different vendors) never share a pool. A VM may move to a host only if its
// featureset is a subset of the host's (in-pool) or of the pool level
// (cross-pool), so no CPU feature the guest saw can disappear under it.
//
// The environment bits (featureset.h: hypervisor, osxsave, ospke) are ignored
// by every check and passed through unchanged by Level(); AMD's mirrored copies
// of leaf-1 bits in word 2 are judged through their originals in word 0.
#pragma once

#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/guest.h"
#include "base/status.h"

namespace xm::cpumask {

// Unspecified ("") matches any vendor; two known vendors must be equal.
bool VendorsCompatible(std::string_view a, std::string_view b);

// The guest's policy with `mask` applied: featureset AND mask, environment bits
// as the guest had them. Vendor, format and blob are the guest's (the vendor is
// the mask's when the guest's is unspecified); a backend applying the result
// hides the features the featureset clears from its blob's leaves.
CpuPolicy Level(const CpuPolicy& vm, const CpuPolicy& mask);

struct PoolLevel {
  CpuPolicy level;                            // vendor + AND of all featuresets
  std::vector<std::vector<uint32_t>> losses;  // per host: its bits the level lacks
};
// kInvalidArgument for no hosts; kIncompatible naming the first two hosts
// (1-based) whose vendors differ.
Result<PoolLevel> ComputePoolLevel(std::span<const CpuPolicy> hosts);

// XAPI's rule: ok, or kIncompatible with one line naming a vendor mismatch or
// the missing features ("destination lacks avx512f, avx512bw"). With
// `pool_level` (cross-pool), the VM must also fit the destination pool's level.
Status CheckVmFits(const CpuPolicy& vm, const CpuPolicy& host, const CpuPolicy* pool_level);

// After a hypervisor installed `wanted` and reported `applied`: kIncompatible if
// a feature of `wanted` is missing from `applied` (the guest would see it
// disappear) or the vendor changed; one warning line when `applied` has
// features `wanted` hid (the hypervisor forced them on).
Status CheckApplied(const CpuPolicy& wanted, const CpuPolicy& applied, std::vector<std::string>& warnings);

// What joining `host` to the pool would do.
struct JoinReport {
  struct Vm {
    std::string vendor_problem;     // non-empty: vendor differs from the host's
    std::vector<uint32_t> missing;  // the VM's features the joining host lacks
    bool can_move() const { return vendor_problem.empty() && missing.empty(); }
  };
  std::string vendor_problem;       // non-empty: the host cannot join at all
  CpuPolicy level_before;           // the pool's level now
  CpuPolicy level_after;            // with the host (== before if it cannot join)
  std::vector<uint32_t> pool_loses; // in level_before, not in level_after
  std::vector<uint32_t> host_loses; // the host's features the new level hides
  std::vector<Vm> vms;              // one per VM given, in order

  bool can_join() const { return vendor_problem.empty(); }
  // Joinable and every VM given could still move to the new host.
  bool ok() const;
};
// kInvalidArgument if the pool is empty or its members disagree on the vendor.
Result<JoinReport> CheckJoin(std::span<const CpuPolicy> pool, const CpuPolicy& host,
                             std::span<const CpuPolicy> vms);

}  // namespace xm::cpumask
