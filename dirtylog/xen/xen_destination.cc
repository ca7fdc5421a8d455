#include "dirtylog/xen/xen_destination.h"

#include <sys/ioctl.h>
#include <sys/mman.h>

#include "dirtylog/xen/xen_c_headers.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include <chrono>
#include <thread>

#include "base/log.h"
#include "dirtylog/xen/restore_config.h"
#include "dirtylog/xen/stream/byte_io.h"
#include "dirtylog/xen/stream/guest_state.h"

namespace xm::xen {
namespace {

// 2 MiB: the superpage Xen's p2m maps in one entry (faster to populate, and
// better TLB reach for the guest, as libxc's own restore does).
constexpr uint64_t kExtentPages = 512;
constexpr unsigned kExtentOrder = 9;
// How long the toolstack may take to create the domain and read the stream's
// headers: xl parses the config first; both build the domain before reading.
constexpr auto kDomainWait = std::chrono::seconds(120);

std::string Dom(uint32_t domid) { return "xen: new domain " + std::to_string(domid); }

}  // namespace

Result<std::unique_ptr<XenDestination>> XenDestination::Create(const GuestShape& shape, XenDestinationOptions opts) {
  if (shape.page_size != kXenPageSize)
    return Error(Code::kIncompatible, "xen: page size " + std::to_string(shape.page_size) + " (4 KiB only)");
  if (opts.into_domid != 0) return CreateInto(shape, std::move(opts));
  if (opts.config_path.empty())
    return Error(Code::kInvalidArgument,
                 "xen destination needs the domain's libxl config JSON (--xen-config FILE; `xl save` files and "
                 "`xl migrate` carry it, libxl_domain_config_to_json() writes it)");
  std::ifstream f(opts.config_path);
  if (!f) return ErrnoError("xen: read " + opts.config_path, errno);
  std::stringstream ss;
  ss << f.rdbuf();
  XM_ASSIGN_OR_RETURN(RestoreConfig cfg, PrepareRestoreConfig(ss.str(), opts.name));

  std::unique_ptr<XenDestination> d(new XenDestination());
  d->shape_ = shape;
  d->opts_ = std::move(opts);
  XM_ASSIGN_OR_RETURN(d->h_, XenHandles::Open());
  // Both toolstacks refuse a second domain of one name anyway; checking first
  // gives a clear error, and it is what lets the guard destroy by name.
  uint32_t existing = 0;
  if (libxl_name_to_domid(d->h_->ctx(), cfg.domain_name.c_str(), &existing) == 0)
    return Error(Code::kInvalidArgument, "xen: a domain named '" + cfg.domain_name + "' (domid " +
                                             std::to_string(existing) + ") already runs here: pick another with --xen-name");
  XM_ASSIGN_OR_RETURN(d->guard_, DomainGuard::Start(cfg.domain_name));
  d->domain_name_ = cfg.domain_name;
  d->populated_.Resize(shape.page_count);
  if (d->opts_.restore_via == "xl") {
    XM_ASSIGN_OR_RETURN(d->runner_, StartXlRestore(cfg));
  } else if (d->opts_.restore_via == "libxl") {
    XM_ASSIGN_OR_RETURN(d->runner_, StartLibxlRestore(cfg));
  } else {
    return Error(Code::kInvalidArgument, "xen: restore via '" + d->opts_.restore_via + "' (libxl or xl)");
  }
  XM_TRY(d->BeginStream(cfg.json));
  return d;
}

Result<std::unique_ptr<XenDestination>> XenDestination::CreateInto(const GuestShape& shape,
                                                                   XenDestinationOptions opts) {
  std::unique_ptr<XenDestination> d(new XenDestination());
  d->shape_ = shape;
  d->opts_ = std::move(opts);
  const uint32_t domid = d->opts_.into_domid;
  XM_ASSIGN_OR_RETURN(d->h_, XenHandles::Open());
  xc_domaininfo_t info{};
  if (xc_domain_getinfolist(d->h_->xch(), domid, 1, &info) != 1 || info.domain != domid)
    return Error(Code::kInvalidArgument, "xen: no domain " + std::to_string(domid) + " to restore into (-domid)");
  if (!(info.flags & XEN_DOMINF_hvm_guest))
    return Error(Code::kIncompatible, "xen: domain " + std::to_string(domid) +
                                          " is a PV domain; xmotion restores HVM and PVH guests only");
  if (info.tot_pages != 0)
    return Error(Code::kInvalidArgument, "xen: domain " + std::to_string(domid) + " already has " +
                                             std::to_string(info.tot_pages) + " pages: restore needs an empty domain");
  if (d->opts_.store_port == 0 || d->opts_.console_port == 0)
    return Error(Code::kInvalidArgument, "xen: restoring into domain " + std::to_string(domid) +
                                             " needs its xenstore and console event channels (-store_port, -console_port)");
  d->domain_name_ = "domain " + std::to_string(domid);
  d->populated_.Resize(shape.page_count);
  XM_ASSIGN_OR_RETURN(d->runner_, StartLibxcRestore(domid, d->opts_.store_port, d->opts_.console_port));
  d->building_domid_ = domid;  // it exists already: memory may go in at once
  XM_TRY(d->BeginStream(""));
  return d;
}

Status XenDestination::BeginStream(const std::string& config_json) {
  sink_ = std::make_unique<FdSink>(runner_->stream_fd(), "xen restore pipe");
  StreamOptions so;
  so.framing = runner_->framing();
  if (so.framing == Framing::kXl) so.xl_config_json = config_json;
  if (opts_.policy) {
    auto p = XenPolicyFor(*opts_.policy);
    if (!p.ok()) return std::move(p).With("xen: CPU policy").status();
    streamed_policy_ = std::move(p).value();
  }
  writer_ = std::make_unique<StreamWriter>(*sink_, std::move(so));
  XM_TRY_CTX(writer_->Begin(streamed_policy_ ? &*streamed_policy_ : nullptr), "xen stream");
  return {};
}

XenDestination::~XenDestination() {
  if (!built_ && runner_) runner_->Abort();
}

Result<MappedPages> XenDestination::MapPages(std::span<const uint64_t> pfns, Access access) {
  if (built_ && access == Access::kWrite)
    return Error(Code::kInternal, Dom(domid_) + ": pages written after the stream ended");
  for (uint64_t pfn : pfns)
    if (pfn >= shape_.page_count)
      return Error(Code::kInvalidArgument, "xen: pfn " + std::to_string(pfn) + " outside the guest");
  uint32_t domid = 0;
  {
    std::lock_guard lock(mu_);
    XM_TRY(WaitForDomain());
    XM_TRY(Populate(pfns));
    domid = building_domid_;
  }
  return MapFrames(h_->fmem(), domid, pfns, access, Dom(domid));
}

Status XenDestination::WaitForDomain() {
  if (building_domid_ != 0) return {};
  const auto deadline = std::chrono::steady_clock::now() + kDomainWait;
  for (;;) {
    // The toolstack has read all we wrote: libxc's restore runs, which it only
    // starts once the domain is built up to its memory limits.
    int unread = 0;
    const bool drained = ::ioctl(runner_->stream_fd(), FIONREAD, &unread) == 0 && unread == 0;
    uint32_t domid = 0;
    if (drained && libxl_name_to_domid(h_->ctx(), domain_name_.c_str(), &domid) == 0 && domid != 0) {
      building_domid_ = domid;
      return {};
    }
    if (!runner_->Running())
      return Error(Code::kIo, "xen: the toolstack's restore ended before domain '" + domain_name_ +
                                  "' was ready for memory (see its log above)");
    if (std::chrono::steady_clock::now() > deadline)
      return Error(Code::kTimeout, "xen: the toolstack did not create domain '" + domain_name_ + "' within " +
                                       std::to_string(kDomainWait.count()) + " s");
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

// A whole aligned extent inside one populated range goes in as one 2 MiB
// extent; anything else frame by frame. Only frames the source has populated
// are ever populated here, so the domain ends with the source's memory layout.
Status XenDestination::Populate(std::span<const uint64_t> pfns) {
  std::vector<xen_pfn_t> small;
  for (uint64_t pfn : pfns) {
    if (populated_.Test(pfn)) continue;
    const uint64_t first = pfn & ~(kExtentPages - 1);
    auto it = std::upper_bound(shape_.ranges.begin(), shape_.ranges.end(), pfn,
                               [](uint64_t p, const PfnRange& r) { return p < r.first; });
    if (it == shape_.ranges.begin() || pfn >= std::prev(it)->first + std::prev(it)->count)
      return Error(Code::kProtocol, Dom(building_domid_) + ": pfn " + std::to_string(pfn) +
                                        " is not in the guest's populated memory");
    const PfnRange& r = *std::prev(it);
    bool whole = first >= r.first && first + kExtentPages <= r.first + r.count;
    for (uint64_t p = first; whole && p < first + kExtentPages; ++p) whole = !populated_.Test(p);
    if (whole) {
      xen_pfn_t extent = first;
      if (xc_domain_populate_physmap_exact(h_->xch(), building_domid_, 1, kExtentOrder, 0, &extent) == 0) {
        for (uint64_t p = first; p < first + kExtentPages; ++p) populated_.Set(p);
        continue;
      }
      // No free 2 MiB run: this extent's frames go in one by one (below).
    }
    small.push_back(pfn);
    populated_.Set(pfn);
  }
  if (small.empty()) return {};
  if (xc_domain_populate_physmap_exact(h_->xch(), building_domid_, small.size(), 0, 0, small.data()) != 0) {
    // The migration fails on this: the bits set above no longer matter.
    return ErrnoError(Dom(building_domid_) + ": populate " + std::to_string(small.size()) +
                          " frames (is the host out of memory for the guest?)",
                      errno);
  }
  return {};
}

Status XenDestination::PopulateRest() {
  std::lock_guard lock(mu_);
  if (all_populated_) return {};
  XM_TRY(WaitForDomain());
  std::vector<uint64_t> batch;
  for (const PfnRange& r : shape_.ranges) {
    for (uint64_t p = r.first; p < r.first + r.count; ++p) {
      if (populated_.Test(p)) continue;
      batch.push_back(p);
      if (batch.size() == 4 * kExtentPages) {
        XM_TRY(Populate(batch));
        batch.clear();
      }
    }
  }
  XM_TRY(Populate(batch));
  all_populated_ = true;
  return {};
}

Status XenDestination::EnableDirtyLog() { return Error(Code::kInternal, "xen: a destination keeps no dirty log"); }
Status XenDestination::FetchDirty(DirtyBitmap&) { return Error(Code::kInternal, "xen: a destination keeps no dirty log"); }
Status XenDestination::Pause() { return {}; }  // it is paused until Resume()

// Pages a round never wrote (zero pages need no write: Xen hands out scrubbed
// frames) must still exist in the domain; after the first round every
// populated frame of the source has been sent or declared zero.
Status XenDestination::OnRoundEnd(uint32_t) { return PopulateRest(); }

Result<std::vector<uint8_t>> XenDestination::SaveVcpuState() {
  return Error(Code::kInternal, "xen: a destination does not save vCPU state");
}

Status XenDestination::LoadVcpuState(std::span<const uint8_t> blob) {
  if (!IsGuestStateBlob(blob)) return Error(Code::kIncompatible, "xen: the vCPU state is not from a Xen source");
  XM_ASSIGN_OR_RETURN(XenGuestState st, DecodeGuestStateBlob(blob));
  if (st.synthetic) return Error(Code::kIncompatible, "xen: refusing to restore a synthetic HVM context into a real domain");
  XM_TRY(PopulateRest());
  const auto t0 = std::chrono::steady_clock::now();
  XM_TRY_CTX(writer_->Finish(st), "xen stream");
  const auto t1 = std::chrono::steady_clock::now();
  XM_ASSIGN_OR_RETURN(domid_, runner_->Finish());
  built_ = true;
  const auto ms = [](auto a, auto b) { return std::chrono::duration<double, std::milli>(b - a).count(); };
  spdlog::debug("xen: stream tail written in {:.1f} ms; the toolstack finished the domain {:.1f} ms later", ms(t0, t1),
                ms(t1, std::chrono::steady_clock::now()));
  if (opts_.into_domid != 0) {
    if (opts_.rings) *opts_.rings = {runner_->store_mfn(), runner_->console_mfn()};
    return {};
  }
  XM_TRY(guard_.SetDomid(domid_));
  if (building_domid_ != domid_)
    return Error(Code::kIntegrity, Dom(domid_) + ": memory went into domain " + std::to_string(building_domid_) +
                                       " but the toolstack built " + std::to_string(domid_));
  return {};
}

Result<XenCpuPolicy> XenDestination::ReadDomainPolicy() {
  return h_->DomainCpuPolicy(domid_);
}

Result<CpuPolicy> XenDestination::GetCpuPolicy() {
  if (!built_) {
    if (opts_.policy) return *opts_.policy;
    return Error(Code::kInternal, "xen: the destination domain does not exist yet");
  }
  XM_ASSIGN_OR_RETURN(XenCpuPolicy p, ReadDomainPolicy());
  return ToCpuPolicy(p);
}

Result<CpuPolicy> XenDestination::ApplyCpuPolicy(const CpuPolicy& policy) {
  if (!built_) return Error(Code::kInternal, "xen: CPU policy applied before the domain was built");
  if (!streamed_policy_) {
    // The stream carried none: install it now, while the domain has never run.
    XM_ASSIGN_OR_RETURN(XenCpuPolicy want, XenPolicyFor(policy));
    std::vector<xen_cpuid_leaf_t> leaves;
    for (const auto& l : want.cpuid) leaves.push_back({l.leaf, l.subleaf, l.a, l.b, l.c, l.d});
    std::vector<xen_msr_entry_t> msrs;
    for (const auto& m : want.msrs) msrs.push_back({m.idx, m.flags, m.val});
    uint32_t err_leaf = 0, err_subleaf = 0, err_msr = 0;
    if (xc_set_domain_cpu_policy(h_->xch(), domid_, static_cast<uint32_t>(leaves.size()), leaves.data(),
                                 static_cast<uint32_t>(msrs.size()), msrs.data(), &err_leaf, &err_subleaf, &err_msr) < 0)
      return ErrnoError(Dom(domid_) + ": set CPU policy (leaf " + std::to_string(err_leaf) + "/" +
                            std::to_string(err_subleaf) + ", msr " + std::to_string(err_msr) + ")",
                        errno);
  }
  // What Xen actually enforces; the receiver's check compares it with `policy`.
  XM_ASSIGN_OR_RETURN(XenCpuPolicy installed, ReadDomainPolicy());
  return ToCpuPolicy(installed);
}

Status XenDestination::Resume() {
  if (!built_) return Error(Code::kInternal, "xen: resume before the domain was built");
  if (!opts_.keep_paused && opts_.into_domid != 0) {
    if (xc_domain_unpause(h_->xch(), domid_) != 0) return ErrnoError(Dom(domid_) + ": unpause", errno);
    running_ = true;
  } else if (!opts_.keep_paused) {  // else the control plane unpauses it
    int rc = libxl_domain_unpause(h_->ctx(), domid_, nullptr);
    if (rc != 0) return Error(Code::kIo, Dom(domid_) + ": unpause failed (libxl error " + std::to_string(rc) + ")");
    running_ = true;
  }
  if (opts_.into_domid != 0) return {};  // no guard: the domain is the control plane's
  // After GO the domain is the only copy of the guest: nothing may destroy it.
  return guard_.Keep();
}

GuestState XenDestination::State() const {
  if (!built_ || domid_ == 0) return GuestState::kGone;
  return h_->DomainState(domid_);
}

void XenDestination::Discard() {
  if (runner_) runner_->Abort();
  guard_.Close();  // destroys the domain if the runner left it behind
  built_ = false;
  running_ = false;
}

}  // namespace xm::xen
