// XenSource: the source side of a Xen HVM/PVH guest, through libxenctrl,
// libxenforeignmemory and libxl (Debian libxen-dev 4.17).
//
// Compiled wherever libxen-dev is installed; it runs only in a Xen dom0. On
// this project's build machines there is no hypervisor, so none of the calls
// below has been exercised here: the nested-Xen lab issue runs them. Nothing in
// this file pretends to work without Xen — every call reports the hypervisor's
// own error.
//
//   shape       xc_domain_maximum_gpfn; populated ranges from Xen's page types
//               (XEN_DOMCTL_getpageframeinfo3 through xc_domctl, nothing
//               mapped): XTAB, XALLOC and BROKEN gfns are holes
//   memory      xenforeignmemory_map of gfns in batches (HVM/PVH: gfn = pfn,
//               no p2m walk); once paused, the final round's dirty frames in
//               one mapping
//   dirty log   xc_shadow_control(ENABLE_LOGDIRTY), then each round
//               xc_logdirty_control(CLEAN) into a hypercall buffer; the device
//               model is told to report its own writes (QMP
//               xen-set-global-dirty-log), as libxl does
//   pause       the toolstack's cooperative suspend (libxl_domain_suspend_only:
//               the guest's suspend event channel if it advertised one, else
//               "suspend" in xenstore control/shutdown for PV-driver guests,
//               else xc_domain_shutdown(SHUTDOWN_suspend) for HVM guests
//               without PV drivers), then the domain must report
//               shutdown(suspend); libxl also saves QEMU's device state then
//   resume      libxl_domain_resume(suspend_cancel=1): the guest sees its
//               suspend hypercall return "cancelled" and carries on
//   throttle    scheduler cap (libxl_domain_sched_params_set), restored after
//   vCPU state  XenGuestState: TSC info, the HVM params Xen migrates, the HVM
//               context, QEMU's saved device state (EMULATOR_CONTEXT)
//   CPU policy  xc_cpu_policy_get_domain + xc_cpu_policy_serialise
//   release     libxl_domain_destroy once the destination runs the guest
// PV guests (MFN-addressed page tables, p2m walk, page normalisation) are
// refused with a clear message.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "dirtylog/backend.h"
#include "dirtylog/xen/xen_handles.h"

namespace xm::xen {

class XenSource final : public Backend {
 public:
  static Result<std::unique_ptr<XenSource>> Open(const std::string& domain);
  ~XenSource() override;

  std::string_view name() const override { return "xen"; }
  const GuestShape& shape() const override { return shape_; }
  Result<MappedPages> MapPages(std::span<const uint64_t> pfns, Access access) override;

  Status EnableDirtyLog() override;
  Status FetchDirty(DirtyBitmap& out) override;
  Status DisableDirtyLog() override;

  Status Pause() override;
  Status Resume() override;
  Status SetThrottle(double run_fraction) override;
  bool Running() const override { return !paused_; }
  // Asks Xen. Open() accepts a crashed or shut-down domain (and probes nothing)
  // so that the engine refuses it with the hypervisor's view in the report.
  GuestState State() const override;

  Result<std::vector<uint8_t>> SaveVcpuState() override;
  Status LoadVcpuState(std::span<const uint8_t>) override;

  Result<CpuPolicy> GetCpuPolicy() override;
  Result<CpuPolicy> ApplyCpuPolicy(const CpuPolicy&) override;

  Status Release() override;

  uint32_t domid() const { return domid_; }
  std::string guest_id() const override { return std::to_string(domid_); }

 private:
  XenSource() = default;
  Status ProbeShape();
  Status SwitchQemuLogdirty(bool enable);
  Status PrefetchDirty(const DirtyBitmap& dirty);
  std::optional<MappedPages> FromPrefetch(std::span<const uint64_t> pfns) const;
  void DropPrefetch();
  bool IsPopulated(uint64_t pfn) const;  // in shape_.ranges (ascending)

  std::unique_ptr<XenHandles> h_;
  uint32_t domid_ = 0;
  GuestShape shape_;
  bool has_device_model_ = false;
  bool paused_ = false;
  bool suspended_ = false;    // cooperative suspend (vs plain pause)
  bool logdirty_ = false;
  bool released_ = false;
  xc_hypercall_buffer_t bitmap_hbuf_{};
  void* bitmap_ = nullptr;
  int bitmap_pages_ = 0;
  bool throttled_ = false;
  int original_cap_ = 0;
  // The final round's dirty frames, mapped at once while the guest is paused.
  std::shared_ptr<ForeignMap> prefetch_;
  std::vector<uint64_t> prefetch_pfns_;  // ascending; slot i is page i of the mapping
  std::vector<int> prefetch_errs_;
};

}  // namespace xm::xen
