// XenDestination: receives a Xen HVM/PVH guest straight into the domain Xen's
// own toolstack builds for it; dom0 never holds a copy of the guest.
//
// Create starts libxl's restore (or `xl restore -p`) on a pipe and writes the
// stream's headers and static data (the levelled CPU policy) into it. The
// toolstack creates the domain and its restore then waits for records. From
// the first page on, this backend populates the domain's frames itself
// (2 MiB extents where a populated range allows, 4 KiB otherwise) and the
// receiver writes pages into them through foreign mappings, one batch at a
// time; deltas and unchanged-page checks read the same frames back. The stream
// carries no PAGE_DATA at all: libxc's restore never touches guest memory
// (PROTOCOL of libxc: pages and the tail records are independent; the tail's
// HVM params clear the ring pages, which is what they would do after PAGE_DATA
// too). At the handoff:
//   LoadVcpuState   the source's TSC info, HVM params, HVM context and device
//                   model records end the stream; the toolstack finishes the
//                   domain (paused, devices attached); the receiver has already
//                   compared the domain's memory with the source's digest
//                   (with --verify full, page by page)
//   ApplyCpuPolicy  reads the policy Xen installed back (the stream carried
//                   the levelled policy as static data) and returns it, so the
//                   receiver's check refuses a policy that lost features; a
//                   stream without policy gets it applied here, still paused
//   Resume          unpauses (unless keep_paused: the control plane does it)
//   Discard         aborts the restore and destroys the half-built domain
// A DomainGuard child destroys it too if the receiver is killed before GO.
//
// Into an existing domain (into_domid: the domain xenopsd created and hands
// emu-manager as -domid): libxc's restore instead of libxl's, fed the bare
// libxc stream; no config, no devices, no guard (the domain, and destroying
// it on failure, stay the control plane's); after the handoff the ring frames
// libxc found go to `rings` for the control plane to introduce.
//
// Memory: a populated-frame bitmap (32 KiB per GiB of guest) and one batch's
// mapping at a time; guest memory is charged to the new domain, not to dom0.
// Thread-safety: MapPages may be called from several lanes at once (disjoint
// pfns), everything else from the receiver's control thread.
// Needs a Xen dom0: exercised only in the nested-Xen lab.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include <mutex>

#include "dirtylog/backend.h"
#include "dirtylog/registry.h"
#include "dirtylog/xen/stream/cpu_policy.h"
#include "dirtylog/xen/domain_guard.h"
#include "dirtylog/bitmap.h"
#include "dirtylog/xen/stream/writer.h"
#include "dirtylog/xen/xen_handles.h"
#include "dirtylog/xen/xen_restore.h"

namespace xm::xen {

struct XenDestinationOptions {
  std::string config_path;  // libxl domain config JSON
  std::string name;         // new domain name (empty: the config's)
  bool keep_paused = false;
  std::string restore_via = "libxl";  // "libxl" (in process) or "xl" (`xl restore -p`)
  std::optional<CpuPolicy> policy;    // the source's policy from the handshake
  uint32_t into_domid = 0;            // nonzero: restore into this existing domain
  uint32_t store_port = 0, console_port = 0;  // its unbound event channels (into_domid)
  std::shared_ptr<BackendOptions::XenRings> rings;  // filled at the handoff (into_domid)
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
  static Result<std::unique_ptr<XenDestination>> CreateInto(const GuestShape& shape, XenDestinationOptions opts);
  // REQUIRES: runner_. Starts Xen's stream into its pipe, in its framing (the xl
  // framing carries `config_json`): headers, the CPU policy as static data.
  Status BeginStream(const std::string& config_json);
  // Blocks until the toolstack has created the domain and its restore has read
  // everything written so far (so the domain's memory limits are set).
  Status WaitForDomain();
  // Populates the not yet populated frames of `pfns` (callers hold mu_).
  Status Populate(std::span<const uint64_t> pfns);
  // Populates every frame of the source's populated ranges still missing.
  Status PopulateRest();
  Result<XenCpuPolicy> ReadDomainPolicy();

  GuestShape shape_;
  XenDestinationOptions opts_;
  std::unique_ptr<XenHandles> h_;
  DomainGuard guard_;  // destroys the domain if this process dies before GO
  std::unique_ptr<RestoreRunner> runner_;
  std::unique_ptr<ByteSink> sink_;
  std::unique_ptr<StreamWriter> writer_;
  std::optional<XenCpuPolicy> streamed_policy_;
  std::string domain_name_;
  std::mutex mu_;  // guards populated_, all_populated_ and building_domid_ (lanes map concurrently)
  DirtyBitmap populated_;
  // Every frame the source populated is populated here (after the first
  // round): later rounds' PopulateRest need not walk the ranges again.
  bool all_populated_ = false;
  uint32_t building_domid_ = 0;  // the domain the toolstack is building, once found
  uint32_t domid_ = 0;
  bool built_ = false;
  bool running_ = false;
};

}  // namespace xm::xen
