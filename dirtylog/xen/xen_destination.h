// XenDestination: receives a Xen HVM/PVH guest and has Xen's own toolstack
// build it, from Xen's own stream, while the migration runs.
//
// The receiver writes each page into a staging copy of guest memory held here;
// at every ROUND_END the round's pages go down a pipe as PAGE_DATA into
// libxl's restore (or `xl restore -p`), which populates the new domain as
// they arrive. At the handoff:
//   LoadVcpuState   the source's TSC info, HVM params, HVM context and device
//                   model records end the stream; the toolstack finishes the
//                   domain (paused, devices attached); xmotion maps the new
//                   domain's memory and compares the pages not yet compared
//                   with what it streamed (kIntegrity on any difference);
//                   pages of earlier rounds were compared during pre-copy as
//                   soon as the toolstack had finished with them (VerifyPlan);
//                   the ring pages, which xenstored/xenconsoled own, are not
//   ApplyCpuPolicy  reads the policy Xen installed back (the stream carried
//                   the levelled policy as static data) and returns it, so the
//                   receiver's check refuses a policy that lost features; a
//                   stream without policy gets it applied here, still paused
//   Resume          unpauses (unless keep_paused: the control plane does it)
//   Discard         aborts the restore and destroys the half-built domain
// A DomainGuard child destroys it too if the receiver is killed before GO.
//
// Costs: the staging copy holds the whole guest once more on this host while
// the migration runs (pages must be complete when a round ends, before they
// are streamed). Needs a Xen dom0: exercised only in the nested-Xen lab.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "base/mapping.h"
#include "dirtylog/backend.h"
#include "dirtylog/xen/stream/cpu_policy.h"
#include "dirtylog/xen/domain_guard.h"
#include "dirtylog/xen/stream/feeder.h"
#include "dirtylog/xen/verify_plan.h"
#include "dirtylog/xen/xen_handles.h"
#include "dirtylog/xen/xen_restore.h"

namespace xm::xen {

struct XenDestinationOptions {
  std::string config_path;  // libxl domain config JSON
  std::string name;         // new domain name (empty: the config's)
  bool keep_paused = false;
  std::string restore_via = "libxl";  // "libxl" (in process) or "xl" (`xl restore -p`)
  std::optional<CpuPolicy> policy;    // the source's policy from the handshake
};

class XenDestination final : public Backend {
 public:
  static Result<std::unique_ptr<XenDestination>> Create(const GuestShape& shape, XenDestinationOptions opts);
  ~XenDestination() override;

  std::string_view name() const override { return "xen"; }
  const GuestShape& shape() const override { return shape_; }
  Result<MappedPages> MapPages(std::span<const uint64_t> pfns, Access access) override;

  Status EnableDirtyLog() override;
  Status FetchDirty(DirtyBitmap&) override;
  Status DisableDirtyLog() override { return {}; }

  Status Pause() override;
  Status Resume() override;
  Status SetThrottle(double) override { return {}; }
  bool Running() const override { return running_; }
  // Xen's view of the domain once it is built; kGone before or after it existed.
  GuestState State() const override;

  Result<std::vector<uint8_t>> SaveVcpuState() override;
  Status LoadVcpuState(std::span<const uint8_t> blob) override;
  Result<CpuPolicy> GetCpuPolicy() override;
  Result<CpuPolicy> ApplyCpuPolicy(const CpuPolicy& policy) override;

  Status OnRoundEnd(uint32_t round) override;
  void Discard() override;

 private:
  XenDestination() = default;
  Status VerifyConsumed();
  Status ComparePages(uint32_t domid, std::span<const uint64_t> pfns, const std::vector<uint64_t>& ring_pfns);
  Result<XenCpuPolicy> ReadDomainPolicy();

  GuestShape shape_;
  XenDestinationOptions opts_;
  std::unique_ptr<XenHandles> h_;
  DomainGuard guard_;  // destroys the domain if this process dies before GO
  Mapping staging_;
  std::unique_ptr<RestoreRunner> runner_;
  std::unique_ptr<ByteSink> sink_;
  std::unique_ptr<StreamFeeder> feeder_;
  std::optional<XenCpuPolicy> streamed_policy_;
  std::string domain_name_;
  VerifyPlan plan_{0};
  uint32_t building_domid_ = 0;     // the domain being restored, once found by name
  std::vector<uint64_t> deferred_;  // final pages seen before that domain was found
  uint32_t domid_ = 0;
  bool built_ = false;
  bool running_ = false;
};

}  // namespace xm::xen
