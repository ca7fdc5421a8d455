#include "dirtylog/xen/xen_handles.h"

#include <sys/mman.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <vector>

#include "dirtylog/xen/xen_c_headers.h"
#include "dirtylog/xen/stream/records.h"

namespace xm::xen {

Result<std::unique_ptr<XenHandles>> XenHandles::Open() {
  std::unique_ptr<XenHandles> h(new XenHandles());
  h->logger_ = xtl_createlogger_stdiostream(stderr, XTL_ERROR, 0);
  if (!h->logger_) return Error(Code::kIo, "xen: cannot create a toollog logger");
  auto* lg = reinterpret_cast<xentoollog_logger*>(h->logger_);
  h->xch_ = xc_interface_open(lg, lg, 0);
  if (!h->xch_) return ErrnoError("xen: xc_interface_open (is this a Xen dom0, running as root?)", errno);
  h->fmem_ = xenforeignmemory_open(lg, 0);
  if (!h->fmem_) return ErrnoError("xen: xenforeignmemory_open", errno);
  if (libxl_ctx_alloc(&h->ctx_, LIBXL_VERSION, 0, lg) != 0)
    return Error(Code::kIo, "xen: libxl_ctx_alloc failed (is xenstored running?)");
  // libxl spawns helpers (libxl-save-helper, QEMU); xmotion reaps its own
  // children with waitpid, so libxl must reap only its own.
  static const libxl_childproc_hooks hooks = {libxl_sigchld_owner_libxl_always_selective_reap, nullptr, nullptr};
  libxl_childproc_setmode(h->ctx_, &hooks, nullptr);
  return h;
}

XenHandles::~XenHandles() {
  if (ctx_) libxl_ctx_free(ctx_);
  if (fmem_) xenforeignmemory_close(fmem_);
  if (xch_) xc_interface_close(xch_);
  if (logger_) xtl_logger_destroy(reinterpret_cast<xentoollog_logger*>(logger_));
}

Result<xc_domaininfo_t> XenHandles::DomainInfo(uint32_t domid) const {
  // Xen 4.17 has no xc_domain_getinfo_single(): ask for one domain starting at
  // domid and check that it is the one we asked for.
  xc_domaininfo_t info{};
  int n = xc_domain_getinfolist(xch_, domid, 1, &info);
  if (n < 0) return ErrnoError("xen: getdomaininfo " + std::to_string(domid), errno);
  if (n == 0 || info.domain != domid)
    return Error(Code::kInvalidArgument, "xen: domain " + std::to_string(domid) + " does not exist");
  return info;
}

Result<uint32_t> XenHandles::ResolveDomain(const std::string& name_or_id) const {
  char* end = nullptr;
  unsigned long id = std::strtoul(name_or_id.c_str(), &end, 10);
  if (!name_or_id.empty() && *end == '\0') {
    XM_TRY(DomainInfo(static_cast<uint32_t>(id)).status());
    return static_cast<uint32_t>(id);
  }
  uint32_t domid = 0;
  if (libxl_name_to_domid(ctx_, name_or_id.c_str(), &domid) != 0)
    return Error(Code::kInvalidArgument, "xen: no domain named '" + name_or_id + "'");
  return domid;
}

int ShutdownReason(const xc_domaininfo_t& info) {
  if (!(info.flags & XEN_DOMINF_shutdown)) return -1;
  return static_cast<int>((info.flags >> XEN_DOMINF_shutdownshift) & XEN_DOMINF_shutdownmask);
}

GuestState DomainStateOf(const xc_domaininfo_t& info) {
  if (info.flags & XEN_DOMINF_dying) return GuestState::kGone;
  switch (ShutdownReason(info)) {
    case -1: break;
    case SHUTDOWN_crash: return GuestState::kCrashed;
    case SHUTDOWN_suspend: return GuestState::kSuspended;
    default: return GuestState::kShutdown;  // poweroff, reboot, watchdog, soft_reset
  }
  return (info.flags & XEN_DOMINF_paused) ? GuestState::kPaused : GuestState::kRunning;
}

Status CheckSourceKind(uint32_t domid, const xc_domaininfo_t& info) {
  const std::string dom = "xen: domain " + std::to_string(domid);
  if (!(info.flags & XEN_DOMINF_hvm_guest))
    return Error(Code::kUnsupported,
                 dom + " is a PV guest; xmotion migrates HVM and PVH guests only (PV needs MFN-addressed page "
                       "tables rewritten in flight, which xc_domain_save does). Use `xl migrate`.");
  if (info.flags & XEN_DOMINF_dying) return Error(Code::kUnsupported, dom + " is dying: nothing to migrate");
  return {};
}

GuestState XenHandles::DomainState(uint32_t domid) const {
  xc_domaininfo_t info{};
  int n = xc_domain_getinfolist(xch_, domid, 1, &info);
  if (n <= 0 || info.domain != domid) return GuestState::kGone;
  return DomainStateOf(info);
}

Result<XenCpuPolicy> XenHandles::DomainCpuPolicy(uint32_t domid) const {
  const std::string dom = "xen: domain " + std::to_string(domid);
  uint32_t nl = 0, nm = 0;
  if (xc_cpu_policy_get_size(xch_, &nl, &nm) < 0) return ErrnoError("xen: CPU policy size", errno);
  std::unique_ptr<xc_cpu_policy_t, void (*)(xc_cpu_policy_t*)> pol(xc_cpu_policy_init(), xc_cpu_policy_destroy);
  if (!pol) return Error(Code::kIo, "xen: xc_cpu_policy_init failed");
  if (xc_cpu_policy_get_domain(xch_, domid, pol.get()) < 0) return ErrnoError(dom + ": get CPU policy", errno);
  std::vector<xen_cpuid_leaf_t> leaves(nl);
  std::vector<xen_msr_entry_t> msrs(nm);
  if (xc_cpu_policy_serialise(xch_, pol.get(), leaves.data(), &nl, msrs.data(), &nm) < 0)
    return ErrnoError(dom + ": serialise CPU policy", errno);
  XenCpuPolicy p;
  for (uint32_t i = 0; i < nl; ++i)
    p.cpuid.push_back({leaves[i].leaf, leaves[i].subleaf, leaves[i].a, leaves[i].b, leaves[i].c, leaves[i].d});
  for (uint32_t i = 0; i < nm; ++i) p.msrs.push_back({msrs[i].idx, msrs[i].flags, msrs[i].val});
  return p;
}

Result<MappedPages> MapFrames(xenforeignmemory_handle* fmem, uint32_t domid, std::span<const uint64_t> pfns,
                              Access access, const std::string& who, const std::string& hint) {
  std::vector<xen_pfn_t> gfns(pfns.begin(), pfns.end());
  std::vector<int> errs(pfns.size(), 0);
  const int prot = access == Access::kWrite ? PROT_READ | PROT_WRITE : PROT_READ;
  void* addr = xenforeignmemory_map(fmem, domid, prot, gfns.size(), gfns.data(), errs.data());
  if (!addr) return ErrnoError(who + ": map " + std::to_string(pfns.size()) + " frames", errno);
  auto keep = std::make_shared<ForeignMap>(fmem, addr, gfns.size());
  for (size_t i = 0; i < errs.size(); ++i)
    if (errs[i])
      return Error(Code::kIo, who + ": gfn " + std::to_string(pfns[i]) + " cannot be mapped (" +
                                  std::strerror(-errs[i]) + hint + ")");
  MappedPages m;
  m.pages.reserve(pfns.size());
  for (size_t i = 0; i < pfns.size(); ++i) m.pages.push_back(static_cast<std::byte*>(addr) + i * kXenPageSize);
  m.keepalive = std::move(keep);
  return m;
}

}  // namespace xm::xen
