// XenHandles: the toolstack handles one Xen backend needs — a logger, libxenctrl,
// libxenforeignmemory and a libxl context — opened together and closed in
// reverse order. Built only with libxen-dev; needs a Xen dom0 to open.
#pragma once

#include "dirtylog/xen/xen_c_headers.h"

#include <memory>
#include <span>
#include <string>

#include "base/status.h"
#include "dirtylog/backend.h"
#include "dirtylog/xen/stream/cpu_policy.h"

namespace xm::xen {

class XenHandles {
 public:
  static Result<std::unique_ptr<XenHandles>> Open();
  ~XenHandles();
  XenHandles(const XenHandles&) = delete;
  XenHandles& operator=(const XenHandles&) = delete;

  xc_interface* xch() const { return xch_; }
  xenforeignmemory_handle* fmem() const { return fmem_; }
  libxl_ctx* ctx() const { return ctx_; }

  // The domain's info; kInvalidArgument if it does not exist.
  Result<xc_domaininfo_t> DomainInfo(uint32_t domid) const;
  // A domain name or decimal id to a domid.
  Result<uint32_t> ResolveDomain(const std::string& name_or_id) const;
  // The domain as Xen sees it now; kGone when it no longer exists.
  GuestState DomainState(uint32_t domid) const;
  // The CPU policy Xen enforces for the domain, serialised (leaves and MSRs).
  Result<XenCpuPolicy> DomainCpuPolicy(uint32_t domid) const;

 private:
  XenHandles() = default;
  xentoollog_logger_stdiostream* logger_ = nullptr;
  xc_interface* xch_ = nullptr;
  xenforeignmemory_handle* fmem_ = nullptr;
  libxl_ctx* ctx_ = nullptr;
};

// A foreign mapping of `pages` guest frames, unmapped when the last MappedPages goes.
// Not copyable: a copy's destructor would unmap the pages under the original
// (the nested-Xen lab's first run crashed exactly so).
struct ForeignMap {
  ForeignMap(xenforeignmemory_handle* f, void* a, size_t n) : fmem(f), addr(a), pages(n) {}
  ForeignMap(const ForeignMap&) = delete;
  ForeignMap& operator=(const ForeignMap&) = delete;
  ~ForeignMap() {
    if (addr) xenforeignmemory_unmap(fmem, addr, pages);
  }
  xenforeignmemory_handle* fmem;
  void* addr;
  size_t pages;
};

// Maps `pfns` of domain `domid` (HVM/PVH: gfn = pfn) in one call, for reading
// or writing; the mapping lives as long as the returned pages' keepalive.
// `who` names the domain in errors; `hint` is added to a frame's failure.
Result<MappedPages> MapFrames(xenforeignmemory_handle* fmem, uint32_t domid, std::span<const uint64_t> pfns,
                              Access access, const std::string& who, const std::string& hint = "");

// Shutdown reason of a shut-down domain (SHUTDOWN_*), or -1 if it is not shut down.
int ShutdownReason(const xc_domaininfo_t& info);
// What a domain's info flags say about it (dying counts as gone: it will never run again).
GuestState DomainStateOf(const xc_domaininfo_t& info);
// Whether xmotion can take this domain as a source at all, from its info
// alone, so a refusal comes before anything is mapped or sent: a PV guest is
// refused (its page tables hold machine frame numbers, which xc_domain_save
// rewrites in flight and xmotion does not), as is a dying domain. HVM and PVH
// guests pass, whatever their run state (the engine judges that).
Status CheckSourceKind(uint32_t domid, const xc_domaininfo_t& info);

}  // namespace xm::xen
