#include "dirtylog/xen/xen_source.h"

#include <sys/mman.h>
#include <unistd.h>

#include "dirtylog/xen/xen_c_headers.h"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <thread>

#include "base/log.h"
#include "dirtylog/xen/stream/cpu_policy.h"
#include "dirtylog/xen/stream/guest_state.h"
#include "dirtylog/xen/qmp_client.h"
#include "dirtylog/xen/stream/records.h"

namespace xm::xen {

namespace {

// Gfns per XEN_DOMCTL_getpageframeinfo3: Xen refuses more (E2BIG).
constexpr size_t kTypeBatch = 1024;
constexpr int kQmpTimeoutMs = 10000;

// The HVM params xc_domain_save migrates (xg_sr_save_x86_hvm.c); Xen sends the non-zero ones.
constexpr uint32_t kMigratedParams[] = {
    HVM_PARAM_STORE_PFN,         HVM_PARAM_IOREQ_PFN,          HVM_PARAM_BUFIOREQ_PFN,
    HVM_PARAM_PAGING_RING_PFN,   HVM_PARAM_MONITOR_RING_PFN,   HVM_PARAM_SHARING_RING_PFN,
    HVM_PARAM_VM86_TSS_SIZED,    HVM_PARAM_CONSOLE_PFN,        HVM_PARAM_ACPI_IOPORTS_LOCATION,
    HVM_PARAM_VIRIDIAN,          HVM_PARAM_IDENT_PT,           HVM_PARAM_VM_GENERATION_ID_ADDR,
    HVM_PARAM_IOREQ_SERVER_PFN,  HVM_PARAM_NR_IOREQ_SERVER_PAGES, HVM_PARAM_X87_FIP_WIDTH,
    HVM_PARAM_MCA_CAP,
};

std::string Dom(uint32_t domid) { return "xen: domain " + std::to_string(domid); }

// QEMU's physmap keys (VRAM and ROM placement) in xenstore, as libxl saves them
// into EMULATOR_XENSTORE_DATA: "physmap/<id>/<key>\0<value>\0" pairs.
std::vector<uint8_t> EmulatorXenstorePhysmap(uint32_t domid) {
  std::vector<uint8_t> out;
  xs_handle* xs = xs_open(0);
  if (!xs) return out;
  std::string root = "/local/domain/0/device-model/" + std::to_string(domid) + "/physmap";
  unsigned int n = 0;
  char** entries = xs_directory(xs, XBT_NULL, root.c_str(), &n);
  for (unsigned int i = 0; entries && i < n; ++i) {
    for (const char* sub : {"start_addr", "size", "name"}) {
      std::string key = "physmap/" + std::string(entries[i]) + "/" + sub;
      unsigned int len = 0;
      void* v = xs_read(xs, XBT_NULL, (root + "/" + entries[i] + "/" + sub).c_str(), &len);
      if (!v) continue;
      out.insert(out.end(), key.begin(), key.end());
      out.push_back(0);
      const auto* p = static_cast<const uint8_t*>(v);
      out.insert(out.end(), p, p + len);
      out.push_back(0);
      free(v);
    }
  }
  free(entries);
  xs_close(xs);
  return out;
}

}  // namespace

Result<std::unique_ptr<XenSource>> XenSource::Open(const std::string& domain) {
  std::unique_ptr<XenSource> s(new XenSource());
  XM_ASSIGN_OR_RETURN(s->h_, XenHandles::Open());
  XM_ASSIGN_OR_RETURN(s->domid_, s->h_->ResolveDomain(domain));
  if (s->domid_ == 0) return Error(Code::kInvalidArgument, "xen: domain 0 cannot be migrated");
  XM_ASSIGN_OR_RETURN(xc_domaininfo_t info, s->h_->DomainInfo(s->domid_));
  XM_TRY(CheckSourceKind(s->domid_, info));
  s->shape_.page_size = kXenPageSize;
  s->shape_.vcpus = info.max_vcpu_id == XEN_INVALID_MAX_VCPU_ID ? 0 : info.max_vcpu_id + 1;
  s->paused_ = info.flags & XEN_DOMINF_paused;
  if (!Migratable(DomainStateOf(info))) {
    // Nothing to migrate, but the engine reports the domain's state: no shape probe
    // (a crashed domain's memory is kept for inspection, not for a new host).
    s->paused_ = true;
    return s;
  }
  // An HVM guest with upstream QEMU has libxl's QMP socket; a PVH guest has none.
  s->has_device_model_ = ::access(QmpSocketPath(s->domid_).c_str(), F_OK) == 0;
  const auto t0 = std::chrono::steady_clock::now();
  XM_TRY(s->ProbeShape());
  spdlog::debug("xen: domain {}: {} of {} gfns hold memory, in {} ranges (page types read in {:.1f} ms)", s->domid_,
                s->shape_.populated_pages(), s->shape_.page_count, s->shape_.ranges.size(),
                std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  return s;
}

GuestState XenSource::State() const {
  if (released_) return GuestState::kGone;
  return h_->DomainState(domid_);
}

XenSource::~XenSource() {
  DropPrefetch();
  if (logdirty_) (void)DisableDirtyLog();
  if (throttled_) (void)SetThrottle(1.0);
  if (bitmap_) xc__hypercall_buffer_free_pages(h_->xch(), &bitmap_hbuf_, bitmap_pages_);
}

// Which gfns hold guest memory, from Xen's page-frame types, 1024 gfns per
// hypercall (XEN_DOMCTL_getpageframeinfo3: what libxenguest's save asks of
// every batch). XTAB (no page: MMIO, unpopulated, ballooned out, Xen's own
// pages such as shared_info and grant frames, which the guest maps again on
// resume), XALLOC and BROKEN are holes; nothing is mapped. The first version
// mapped every gfn read-only and called the failures holes: a 128 MiB PVH
// guest's gfn space reaches 4 GiB (its special pages sit below 0xff000), so
// that was ~1M failed foreign mappings, ~2.4 s before the first connection in
// the nested-Xen lab.
Status XenSource::ProbeShape() {
  xen_pfn_t max_gpfn = 0;
  if (xc_domain_maximum_gpfn(h_->xch(), domid_, &max_gpfn) < 0)
    return ErrnoError(Dom(domid_) + ": maximum gpfn", errno);
  shape_.page_count = static_cast<uint64_t>(max_gpfn) + 1;
  const int pages = static_cast<int>((kTypeBatch * sizeof(xen_pfn_t) + XC_PAGE_SIZE - 1) / XC_PAGE_SIZE);
  xc_hypercall_buffer_t hbuf{};
  hbuf.ubuf = reinterpret_cast<void*>(-1);
  auto* types = static_cast<xen_pfn_t*>(xc__hypercall_buffer_alloc_pages(h_->xch(), &hbuf, pages));
  if (!types) return ErrnoError(Dom(domid_) + ": page-type hypercall buffer", errno);
  struct Free {
    xc_interface* xch;
    xc_hypercall_buffer_t* b;
    int pages;
    ~Free() { xc__hypercall_buffer_free_pages(xch, b, pages); }
  } free_types{h_->xch(), &hbuf, pages};
  PfnRange cur;
  for (uint64_t first = 0; first < shape_.page_count; first += kTypeBatch) {
    const size_t n = static_cast<size_t>(std::min<uint64_t>(kTypeBatch, shape_.page_count - first));
    for (size_t i = 0; i < n; ++i) types[i] = first + i;
    xen_domctl d{};
    d.cmd = XEN_DOMCTL_getpageframeinfo3;
    d.domain = static_cast<domid_t>(domid_);
    d.u.getpageframeinfo3.num = n;
    set_xen_guest_handle_raw(d.u.getpageframeinfo3.array, types);
    if (xc_domctl(h_->xch(), &d) < 0)
      return ErrnoError(Dom(domid_) + ": page types of gfns " + std::to_string(first) + "..", errno);
    for (size_t i = 0; i < n; ++i) {
      const uint32_t type = static_cast<uint32_t>(types[i]) & XEN_DOMCTL_PFINFO_LTAB_MASK;
      if (type == XEN_DOMCTL_PFINFO_XTAB || type == XEN_DOMCTL_PFINFO_XALLOC || type == XEN_DOMCTL_PFINFO_BROKEN)
        continue;
      const uint64_t pfn = first + i;
      if (cur.count && cur.first + cur.count == pfn) {
        ++cur.count;
      } else {
        if (cur.count) shape_.ranges.push_back(cur);
        cur = {pfn, 1};
      }
    }
  }
  if (cur.count) shape_.ranges.push_back(cur);
  if (shape_.ranges.empty()) return Error(Code::kIo, Dom(domid_) + ": Xen lists no page of guest memory");
  return {};
}

Result<MappedPages> XenSource::MapPages(std::span<const uint64_t> pfns, Access access) {
  if (access == Access::kRead && prefetch_) {
    if (auto m = FromPrefetch(pfns)) return std::move(*m);
  }
  return MapFrames(h_->fmem(), domid_, pfns, access, Dom(domid_), "; ballooned out since the migration started, or another domain's grant mapped into this "
                   "guest's physmap (which xl migrate cannot move either)?");
}

std::optional<MappedPages> XenSource::FromPrefetch(std::span<const uint64_t> pfns) const {
  MappedPages m;
  m.pages.reserve(pfns.size());
  for (uint64_t pfn : pfns) {
    auto it = std::lower_bound(prefetch_pfns_.begin(), prefetch_pfns_.end(), pfn);
    if (it == prefetch_pfns_.end() || *it != pfn) return std::nullopt;
    const size_t slot = static_cast<size_t>(it - prefetch_pfns_.begin());
    if (prefetch_errs_[slot]) return std::nullopt;  // let a fresh map report it
    m.pages.push_back(static_cast<std::byte*>(prefetch_->addr) + slot * kXenPageSize);
  }
  m.keepalive = prefetch_;
  return m;
}

// Under a paused guest the p2m cannot change, so one foreign mapping of every
// dirty frame serves the whole final round. Per-region maps cost a hypercall,
// a page-table update and an munmap each; the nested-Xen lab measured ~1 s of
// downtime in them for ~1500 scattered frames (TCG makes every call slow, real
// hardware less so, but the count of calls is what the downtime pays for).
// While the guest runs, a mapping made at FetchDirty would keep frames it
// balloons out alive and read them stale, so this is for the paused guest only.
Status XenSource::PrefetchDirty(const DirtyBitmap& dirty) {
  prefetch_.reset();
  prefetch_pfns_.clear();
  dirty.ForEach([&](uint64_t pfn) {
    if (IsPopulated(pfn)) prefetch_pfns_.push_back(pfn);
  });
  if (prefetch_pfns_.empty()) return {};
  std::vector<xen_pfn_t> gfns(prefetch_pfns_.begin(), prefetch_pfns_.end());
  prefetch_errs_.assign(gfns.size(), 0);
  void* addr = xenforeignmemory_map(h_->fmem(), domid_, PROT_READ, gfns.size(), gfns.data(), prefetch_errs_.data());
  if (!addr) {
    prefetch_pfns_.clear();
    return ErrnoError(Dom(domid_) + ": map the " + std::to_string(gfns.size()) + " dirty frames of the final round",
                      errno);
  }
  prefetch_ = std::make_shared<ForeignMap>(h_->fmem(), addr, gfns.size());
  return {};
}

bool XenSource::IsPopulated(uint64_t pfn) const {
  auto it = std::upper_bound(shape_.ranges.begin(), shape_.ranges.end(), pfn,
                             [](uint64_t p, const PfnRange& r) { return p < r.first; });
  return it != shape_.ranges.begin() && pfn < std::prev(it)->first + std::prev(it)->count;
}

void XenSource::DropPrefetch() {
  prefetch_.reset();  // mappings still handed out stay valid until their MappedPages go
  prefetch_pfns_.clear();
  prefetch_errs_.clear();
}

Status XenSource::SwitchQemuLogdirty(bool enable) {
  if (!has_device_model_) return {};
  auto qmp = QmpClient::Connect(QmpSocketPath(domid_), kQmpTimeoutMs);
  if (!qmp.ok()) return std::move(qmp).With(Dom(domid_) + ": device model").status();
  auto r = qmp->Execute("xen-set-global-dirty-log", {{"enable", enable}});
  return r.ok() ? Status{} : std::move(r).With(Dom(domid_) + ": device model log-dirty").status();
}

Status XenSource::EnableDirtyLog() {
  uint64_t bytes = (shape_.page_count + 7) / 8;
  int pages = static_cast<int>((bytes + XC_PAGE_SIZE - 1) / XC_PAGE_SIZE);
  if (!bitmap_) {
    bitmap_hbuf_ = xc_hypercall_buffer_t{};
    bitmap_hbuf_.ubuf = reinterpret_cast<void*>(-1);
    bitmap_ = xc__hypercall_buffer_alloc_pages(h_->xch(), &bitmap_hbuf_, pages);
    if (!bitmap_) return ErrnoError(Dom(domid_) + ": dirty bitmap hypercall buffer", errno);
    bitmap_pages_ = pages;
  }
  XM_TRY(SwitchQemuLogdirty(true));
  // Log-dirty may already be on for VRAM tracking: turn shadow off and retry, as libxc does.
  if (xc_shadow_control(h_->xch(), domid_, XEN_DOMCTL_SHADOW_OP_ENABLE_LOGDIRTY, nullptr, 0) < 0) {
    int first = errno;
    if (xc_shadow_control(h_->xch(), domid_, XEN_DOMCTL_SHADOW_OP_OFF, nullptr, 0) < 0 ||
        xc_shadow_control(h_->xch(), domid_, XEN_DOMCTL_SHADOW_OP_ENABLE_LOGDIRTY, nullptr, 0) < 0)
      return ErrnoError(Dom(domid_) + ": enable log-dirty (first attempt: " + std::strerror(first) + ")", errno);
  }
  logdirty_ = true;
  return {};
}

Status XenSource::FetchDirty(DirtyBitmap& out) {
  if (!logdirty_) return Error(Code::kInternal, Dom(domid_) + ": log-dirty is not enabled");
  xc_shadow_op_stats_t stats{};
  // Read and clear in one hypercall (4.17 API: the bitmap travels in a hypercall buffer).
  long long r = xc_logdirty_control(h_->xch(), domid_, XEN_DOMCTL_SHADOW_OP_CLEAN, &bitmap_hbuf_,
                                    shape_.page_count, 0, &stats);
  if (r < 0) return ErrnoError(Dom(domid_) + ": read log-dirty bitmap", errno);
  if (static_cast<uint64_t>(r) != shape_.page_count)
    return Error(Code::kIo, Dom(domid_) + ": log-dirty bitmap covers " + std::to_string(r) + " of " +
                                std::to_string(shape_.page_count) + " frames (guest grew?)");
  out.OrWords(0, static_cast<const uint64_t*>(bitmap_), (shape_.page_count + 63) / 64);
  if (paused_) return PrefetchDirty(out);
  return {};
}

Status XenSource::DisableDirtyLog() {
  if (!logdirty_) return {};
  logdirty_ = false;
  Status st;
  if (xc_shadow_control(h_->xch(), domid_, XEN_DOMCTL_SHADOW_OP_OFF, nullptr, 0) < 0)
    st = ErrnoError(Dom(domid_) + ": disable log-dirty", errno);
  Status q = SwitchQemuLogdirty(false);
  return st.ok() ? q : st;
}

Status XenSource::Pause() {
  if (suspended_) return {};
  // A control plane that suspends the guest itself (xenopsd on emu-manager's
  // `suspend:`) hands over a domain already shut down for suspend: adopt it
  // (asking again would wait for an ack the suspended guest cannot give).
  XM_ASSIGN_OR_RETURN(xc_domaininfo_t before, h_->DomainInfo(domid_));
  if (ShutdownReason(before) == SHUTDOWN_suspend) {
    suspended_ = true;
    paused_ = true;
    return {};
  }
  // The toolstack's suspend protocol; for HVM guests libxl also saves QEMU's
  // state to /var/lib/xen/qemu-save.<domid> (picked up by SaveVcpuState).
  int rc = libxl_domain_suspend_only(h_->ctx(), domid_, nullptr);
  if (rc != 0) return Error(Code::kIo, Dom(domid_) + ": cooperative suspend failed (libxl error " + std::to_string(rc) + ")");
  XM_ASSIGN_OR_RETURN(xc_domaininfo_t info, h_->DomainInfo(domid_));
  if (ShutdownReason(info) != SHUTDOWN_suspend)
    return Error(Code::kIo, Dom(domid_) + ": suspend returned but the domain is not suspended");
  suspended_ = true;
  paused_ = true;
  return {};
}

Status XenSource::Resume() {
  if (released_) return Error(Code::kInternal, Dom(domid_) + ": resumed after release");
  if (suspended_) {
    // suspend_cancel: the guest's SCHEDOP_shutdown(suspend) returns 1 and it carries on.
    int rc = libxl_domain_resume(h_->ctx(), domid_, 1, nullptr);
    if (rc != 0) return Error(Code::kIo, Dom(domid_) + ": resume after suspend failed (libxl error " + std::to_string(rc) + ")");
    suspended_ = false;
  } else if (xc_domain_unpause(h_->xch(), domid_) < 0) {
    return ErrnoError(Dom(domid_) + ": unpause", errno);
  }
  paused_ = false;
  DropPrefetch();
  return {};
}

Status XenSource::SetThrottle(double run_fraction) {
  libxl_domain_sched_params p;
  libxl_domain_sched_params_init(&p);
  if (libxl_domain_sched_params_get(h_->ctx(), domid_, &p) != 0)
    return Error(Code::kIo, Dom(domid_) + ": read scheduler parameters");
  if (!throttled_) original_cap_ = p.cap;
  if (run_fraction >= 1.0) {
    if (!throttled_) return {};
    p.cap = original_cap_;
    throttled_ = false;
  } else {
    // The cap is in percent of one pCPU for the whole domain.
    int cap = static_cast<int>(run_fraction * 100.0 * std::max<uint32_t>(shape_.vcpus, 1));
    p.cap = std::max(cap, 1);
    throttled_ = true;
  }
  int rc = libxl_domain_sched_params_set(h_->ctx(), domid_, &p);
  libxl_domain_sched_params_dispose(&p);
  if (rc != 0) return Error(Code::kIo, Dom(domid_) + ": set scheduler cap (scheduler without caps?)");
  return {};
}

Result<std::vector<uint8_t>> XenSource::SaveVcpuState() {
  if (!paused_) return Error(Code::kInternal, Dom(domid_) + ": vCPU state saved while running");
  XenGuestState st;
  TscInfo t;
  if (xc_domain_get_tsc_info(h_->xch(), domid_, &t.mode, &t.nsec, &t.khz, &t.incarnation) < 0)
    return ErrnoError(Dom(domid_) + ": TSC info", errno);
  st.tsc = t;
  for (uint32_t idx : kMigratedParams) {
    uint64_t v = 0;
    if (xc_hvm_param_get(h_->xch(), domid_, idx, &v) < 0)
      return ErrnoError(Dom(domid_) + ": HVM param " + std::to_string(idx), errno);
    if (v) st.params.push_back({idx, v});
  }
  int size = xc_domain_hvm_getcontext(h_->xch(), domid_, nullptr, 0);
  if (size <= 0) return ErrnoError(Dom(domid_) + ": HVM context size", errno);
  st.hvm_context.resize(static_cast<size_t>(size));
  size = xc_domain_hvm_getcontext(h_->xch(), domid_, st.hvm_context.data(), static_cast<uint32_t>(size));
  if (size <= 0) return ErrnoError(Dom(domid_) + ": HVM context", errno);
  st.hvm_context.resize(static_cast<size_t>(size));
  XM_TRY_CTX(WalkHvmContext(st.hvm_context).status(), Dom(domid_));
  if (has_device_model_) {
    std::string path = "/var/lib/xen/qemu-save." + std::to_string(domid_);
    std::ifstream f(path, std::ios::binary);
    if (!f) return Error(Code::kIo, Dom(domid_) + ": device model state " + path + " missing after suspend");
    EmulatorRecord ctx{static_cast<uint32_t>(EmulatorId::kQemuUpstream), 0,
                       std::vector<uint8_t>(std::istreambuf_iterator<char>(f), {})};
    st.emulator_context.push_back(std::move(ctx));
    std::vector<uint8_t> physmap = EmulatorXenstorePhysmap(domid_);
    if (!physmap.empty())
      st.emulator_xenstore.push_back({static_cast<uint32_t>(EmulatorId::kQemuUpstream), 0, std::move(physmap)});
  }
  return EncodeGuestStateBlob(st);
}

Status XenSource::LoadVcpuState(std::span<const uint8_t>) {
  return Error(Code::kInternal, "xen: a source guest does not load vCPU state");
}

Result<CpuPolicy> XenSource::GetCpuPolicy() {
  XM_ASSIGN_OR_RETURN(XenCpuPolicy p, h_->DomainCpuPolicy(domid_));
  return ToCpuPolicy(p);
}

Result<CpuPolicy> XenSource::ApplyCpuPolicy(const CpuPolicy&) {
  return Error(Code::kInternal, "xen: a source guest's CPU policy is not changed");
}

Status XenSource::Release() {
  if (released_) return {};
  DropPrefetch();
  // The destination runs the guest now; this copy must never run again.
  int rc = libxl_domain_destroy(h_->ctx(), domid_, nullptr);
  if (rc != 0) return Error(Code::kIo, Dom(domid_) + ": destroy after migration (libxl error " + std::to_string(rc) + ")");
  released_ = true;
  logdirty_ = false;
  throttled_ = false;  // its cap went with it: nothing to give back
  return {};
}

}  // namespace xm::xen
