#include "dirtylog/xen/xen_destination.h"

#include <sys/ioctl.h>
#include <sys/mman.h>

#include "dirtylog/xen/xen_c_headers.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "dirtylog/xen/stream/byte_io.h"
#include "dirtylog/xen/stream/guest_state.h"
#include "dirtylog/xen/restore_config.h"

namespace xm::xen {
namespace {

constexpr size_t kVerifyBatch = 1024;

std::string Dom(uint32_t domid) { return "xen: new domain " + std::to_string(domid); }

}  // namespace

Result<std::unique_ptr<XenDestination>> XenDestination::Create(const GuestShape& shape, XenDestinationOptions opts) {
  if (shape.page_size != kXenPageSize)
    return Error(Code::kIncompatible, "xen: page size " + std::to_string(shape.page_size) + " (4 KiB only)");
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
  d->plan_ = VerifyPlan(shape.page_count);
  XM_ASSIGN_OR_RETURN(d->staging_, Mapping::Anonymous(shape.page_count * kXenPageSize));
  if (d->opts_.restore_via == "xl") {
    XM_ASSIGN_OR_RETURN(d->runner_, StartXlRestore(cfg));
  } else if (d->opts_.restore_via == "libxl") {
    XM_ASSIGN_OR_RETURN(d->runner_, StartLibxlRestore(cfg));
  } else {
    return Error(Code::kInvalidArgument, "xen: restore via '" + d->opts_.restore_via + "' (libxl or xl)");
  }
  d->sink_ = std::make_unique<FdSink>(d->runner_->stream_fd(), "xen restore pipe");
  StreamOptions so;
  so.framing = d->runner_->framing();
  if (so.framing == Framing::kXl) so.xl_config_json = cfg.json;
  if (d->opts_.policy) {
    auto p = XenPolicyFor(*d->opts_.policy);
    if (!p.ok()) return std::move(p).With("xen: CPU policy").status();
    d->streamed_policy_ = std::move(p).value();
  }
  XM_ASSIGN_OR_RETURN(d->feeder_, StreamFeeder::Start(shape.page_count, *d->sink_, so,
                                                      d->streamed_policy_ ? &*d->streamed_policy_ : nullptr));
  return d;
}

XenDestination::~XenDestination() {
  if (!built_ && runner_) runner_->Abort();
}

Result<MappedPages> XenDestination::MapPages(std::span<const uint64_t> pfns, Access access) {
  if (built_ && access == Access::kWrite)
    return Error(Code::kInternal, Dom(domid_) + ": pages written after the stream ended");
  if (access == Access::kWrite) feeder_->Mark(pfns);
  MappedPages m;
  m.pages.reserve(pfns.size());
  for (uint64_t pfn : pfns) {
    if (pfn >= shape_.page_count)
      return Error(Code::kInvalidArgument, "xen: pfn " + std::to_string(pfn) + " outside the guest");
    m.pages.push_back(staging_.data() + pfn * kXenPageSize);
  }
  return m;
}

Status XenDestination::EnableDirtyLog() { return Error(Code::kInternal, "xen: a destination keeps no dirty log"); }
Status XenDestination::FetchDirty(DirtyBitmap&) { return Error(Code::kInternal, "xen: a destination keeps no dirty log"); }
Status XenDestination::Pause() { return {}; }  // it is paused until Resume()

Status XenDestination::OnRoundEnd(uint32_t round) {
  XM_TRY(feeder_->FlushRound(round, [this](std::span<const uint64_t> pfns) { return MapPages(pfns, Access::kRead); }));
  plan_.RoundFlushed(feeder_->bytes(), feeder_->last_round_pages());
  return VerifyConsumed();
}

// Compares the pages the toolstack has finished with now, so the downtime
// only pays for the last rounds (see VerifyPlan).
Status XenDestination::VerifyConsumed() {
  int unread = 0;
  if (::ioctl(runner_->stream_fd(), FIONREAD, &unread) != 0 || unread < 0) return {};  // all at the end then
  std::vector<uint64_t> pfns = plan_.Consumed(feeder_->bytes() - static_cast<uint64_t>(unread));
  if (pfns.empty()) return {};
  if (building_domid_ == 0) {
    // The toolstack names the domain as it creates it, before any page; no
    // domain had that name when we started (Create checked).
    uint32_t domid = 0;
    if (libxl_name_to_domid(h_->ctx(), domain_name_.c_str(), &domid) != 0 || domid == 0) {
      deferred_.insert(deferred_.end(), pfns.begin(), pfns.end());
      return {};
    }
    building_domid_ = domid;
  }
  if (!deferred_.empty()) {
    pfns.insert(pfns.end(), deferred_.begin(), deferred_.end());
    deferred_.clear();
  }
  return ComparePages(building_domid_, pfns, {});
}

Result<std::vector<uint8_t>> XenDestination::SaveVcpuState() {
  return Error(Code::kInternal, "xen: a destination does not save vCPU state");
}

Status XenDestination::LoadVcpuState(std::span<const uint8_t> blob) {
  if (!IsGuestStateBlob(blob)) return Error(Code::kIncompatible, "xen: the vCPU state is not from a Xen source");
  XM_ASSIGN_OR_RETURN(XenGuestState st, DecodeGuestStateBlob(blob));
  if (st.synthetic) return Error(Code::kIncompatible, "xen: refusing to restore a synthetic HVM context into a real domain");
  XM_TRY(feeder_->Finish(st));
  XM_ASSIGN_OR_RETURN(domid_, runner_->Finish());
  built_ = true;
  XM_TRY(guard_.SetDomid(domid_));
  if (building_domid_ != 0 && building_domid_ != domid_)
    return Error(Code::kIntegrity, Dom(domid_) + ": pages were verified in domain " + std::to_string(building_domid_) +
                                       " but the toolstack built " + std::to_string(domid_));
  std::vector<uint64_t> rest = plan_.Remaining(shape_.ranges);
  rest.insert(rest.end(), deferred_.begin(), deferred_.end());
  deferred_.clear();
  return ComparePages(domid_, rest, RingPfns(st));
}

// The toolstack built (or is building) the domain from our stream; check the
// pages it has finished hold what we sent.
Status XenDestination::ComparePages(uint32_t domid, std::span<const uint64_t> pfns,
                                    const std::vector<uint64_t>& ring_pfns) {
  std::vector<xen_pfn_t> gfns;
  std::vector<uint64_t> batch;
  std::vector<int> errs;
  for (size_t first = 0; first < pfns.size(); first += kVerifyBatch) {
    batch.clear();
    for (size_t i = first; i < std::min(pfns.size(), first + kVerifyBatch); ++i)
      // The ring pages (xenstore, console, ioreq) are cleared by the restore
      // and then written by xenstored/xenconsoled as soon as the domain is
      // introduced: their content is the backends', not the guest's.
      if (std::find(ring_pfns.begin(), ring_pfns.end(), pfns[i]) == ring_pfns.end()) batch.push_back(pfns[i]);
    if (batch.empty()) continue;
    gfns.assign(batch.begin(), batch.end());
    errs.assign(batch.size(), 0);
    void* m = xenforeignmemory_map(h_->fmem(), domid, PROT_READ, gfns.size(), gfns.data(), errs.data());
    if (!m) return ErrnoError(Dom(domid) + ": map for verification", errno);
    Status st;
    for (size_t i = 0; i < batch.size() && st.ok(); ++i) {
      const uint64_t pfn = batch[i];
      if (pfn >= shape_.page_count) {
        st = Error(Code::kInternal, Dom(domid) + ": pfn " + std::to_string(pfn) + " outside the guest");
      } else if (errs[i]) {
        st = Error(Code::kIntegrity, Dom(domid) + ": pfn " + std::to_string(pfn) + " is not populated");
      } else if (std::memcmp(static_cast<std::byte*>(m) + i * kXenPageSize, staging_.data() + pfn * kXenPageSize,
                             kXenPageSize) != 0) {
        st = Error(Code::kIntegrity, Dom(domid) + ": pfn " + std::to_string(pfn) + " differs from what xmotion streamed");
      }
    }
    xenforeignmemory_unmap(h_->fmem(), m, batch.size());
    XM_TRY(st);
  }
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
  if (!opts_.keep_paused) {  // else the control plane unpauses it
    int rc = libxl_domain_unpause(h_->ctx(), domid_, nullptr);
    if (rc != 0) return Error(Code::kIo, Dom(domid_) + ": unpause failed (libxl error " + std::to_string(rc) + ")");
    running_ = true;
  }
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
