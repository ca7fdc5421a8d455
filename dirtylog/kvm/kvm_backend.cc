#include "dirtylog/kvm/kvm_backend.h"

#include <algorithm>
#include <cstdio>
#include <cstring>

#include "base/units.h"
#include "dirtylog/kvm/cpu_policy.h"
#include "dirtylog/kvm/guest_abi.h"
#include "dirtylog/page_access.h"

namespace xm {
namespace {

using kvm::kGuestPage;

// Long mode, paging on, the payload's identity map (guest_abi.h). These are
// the values measured to work on this PVM-based KVM.
constexpr uint64_t kCr0 = 0x80050033;  // PG WP NE ET MP PE
constexpr uint64_t kCr4 = 0x40620;     // OSXSAVE OSXMMEXCPT OSFXSR PAE
constexpr uint64_t kEfer = 0x500;      // LMA LME

kvm_segment FlatSegment(uint16_t selector, uint8_t type, bool code) {
  kvm_segment s{};
  s.base = 0;
  s.limit = 0xffffffff;
  s.selector = selector;
  s.type = type;
  s.present = 1;
  s.dpl = 0;
  s.db = code ? 0 : 1;
  s.s = 1;
  s.l = code ? 1 : 0;
  s.g = 1;
  return s;
}

}  // namespace

Status KvmBackend::Usable() {
  auto sys = kvm::KvmSystem::Open();
  if (!sys.ok()) return std::move(sys).With("kvm backend unusable").status();
  auto vm = kvm::KvmVm::Create(*sys);
  if (!vm.ok()) return std::move(vm).With("kvm backend unusable").status();
  return {};
}

Result<CpuPolicy> KvmBackend::HostPolicy() {
  XM_ASSIGN_OR_RETURN(auto sys, kvm::KvmSystem::Open());
  XM_ASSIGN_OR_RETURN(auto vm, kvm::KvmVm::Create(sys));
  XM_ASSIGN_OR_RETURN(auto vcpu, kvm::KvmVcpu::Create(sys, vm, 0));
  XM_ASSIGN_OR_RETURN(auto supported, sys.SupportedCpuid());
  XM_TRY_CTX(vcpu.SetCpuid(supported), "kvm host policy");
  XM_ASSIGN_OR_RETURN(auto effective, vcpu.GetCpuid());
  return kvm::PolicyFromCpuid(effective);
}

Result<std::unique_ptr<KvmBackend>> KvmBackend::CreateVm(const GuestShape& shape, bool hugepages) {
  if (shape.page_size != kGuestPage)
    return Error(Code::kIncompatible, "kvm: page size " + std::to_string(shape.page_size) + " not supported (4096 only)");
  if (shape.ranges.size() != 1 || shape.ranges[0].first != 0 || shape.ranges[0].count != shape.page_count)
    return Error(Code::kIncompatible, "kvm: guests with holes in their memory are not supported");
  if (shape.page_count == 0 || shape.page_count * kGuestPage > kvm::kMaxGuestMemory)
    return Error(Code::kIncompatible, "kvm: guest of " + FormatBytes(shape.page_count * kGuestPage) +
                                          " not supported (1 page to " + FormatBytes(kvm::kMaxGuestMemory) + ")");
  if (shape.vcpus == 0 || shape.vcpus > XMG_MAX_VCPUS)
    return Error(Code::kIncompatible, "kvm: " + std::to_string(shape.vcpus) + " vCPUs not supported (1 to " +
                                          std::to_string(XMG_MAX_VCPUS) + ")");
  std::unique_ptr<KvmBackend> b(new KvmBackend());
  b->shape_ = shape;
  const uint64_t bytes = shape.page_count * kGuestPage;
  auto mem = hugepages ? Mapping::HugeTlb(bytes) : Mapping::Anonymous(bytes);
  if (!mem.ok()) return std::move(mem).With("kvm: guest memory").status();
  b->mem_ = std::move(mem).value();

  XM_ASSIGN_OR_RETURN(auto sys, kvm::KvmSystem::Open());
  b->sys_.emplace(std::move(sys));
  XM_ASSIGN_OR_RETURN(auto vm, kvm::KvmVm::Create(*b->sys_));
  b->vm_.emplace(std::move(vm));
  kvm::KvmVm& v = *b->vm_;
  if (b->sys_->Check(KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2) & KVM_DIRTY_LOG_MANUAL_PROTECT_ENABLE) {
    XM_TRY_CTX(v.EnableManualDirtyProtect(), "kvm");
    b->manual_protect_ = true;
  }
  XM_TRY_CTX(v.CreateIrqchip(), "kvm");
  XM_TRY_CTX(v.SetMemory(0, 0, bytes, b->mem_.data(), false), "kvm");

  XM_ASSIGN_OR_RETURN(auto supported, b->sys_->SupportedCpuid());
  for (uint32_t i = 0; i < shape.vcpus; ++i) {
    XM_ASSIGN_OR_RETURN(auto vcpu, kvm::KvmVcpu::Create(*b->sys_, v, i));
    // KVM requires CPUID before the first KVM_RUN; a destination replaces it
    // with the source's (LoadVcpuState, ApplyCpuPolicy) before then.
    XM_TRY_CTX(vcpu.SetCpuid(kvm::CpuidForVcpu(supported, i)), "kvm");
    b->vcpus_.push_back(std::move(vcpu));
  }

  // Only the MSRs that read back here: some in KVM's list depend on CPU
  // features this host (or PVM) lacks, and a save must get every one it asks for.
  XM_ASSIGN_OR_RETURN(auto msr_list, b->sys_->MsrIndexList());
  for (uint32_t index : msr_list) {
    std::vector<kvm_msr_entry> one(1);
    one[0].index = index;
    if (b->vcpus_[0].GetMsrs(one).ok()) b->state_ctx_.msr_indices.push_back(index);
  }
  b->state_ctx_.vm = &*b->vm_;
  b->state_ctx_.vcpus = &b->vcpus_;
  b->state_ctx_.sregs2 = v.Check(KVM_CAP_SREGS2) > 0;
  b->state_ctx_.irqchip = true;
  int xsave2 = v.Check(KVM_CAP_XSAVE2);
  b->state_ctx_.xsave2 = xsave2 > 0;
  b->state_ctx_.xsave_size = std::max<size_t>(4096, xsave2 > 0 ? static_cast<size_t>(xsave2) : 0);

  XM_ASSIGN_OR_RETURN(b->tsc_khz_, b->vcpus_[0].GetTscKhz());
  b->dirty_words_.assign((shape.page_count + 63) / 64, 0);
  b->seen_.resize(shape.vcpus);
  KvmBackend* self = b.get();
  b->runner_ = std::make_unique<kvm::VcpuRunner>(
      b->vcpus_, b->tsc_khz_, [self](uint32_t i) { return kvm::ReadSleepTicks(self->mem_.data(), i); },
      [self](uint32_t i, uint8_t ev) { self->OnGuestEvent(i, ev); });
  return b;
}

Status KvmBackend::BootVcpu(uint32_t index) {
  kvm::KvmVcpu& v = vcpus_[index];
  XM_ASSIGN_OR_RETURN(auto s, v.Get<kvm_sregs>(KVM_GET_SREGS, "KVM_GET_SREGS"));
  s.cr0 = kCr0;
  s.cr3 = XMG_PML4_GPA;
  s.cr4 = kCr4;
  s.efer = kEfer;
  s.cs = FlatSegment(0x08, 0xb, true);
  s.ds = s.es = s.fs = s.gs = s.ss = FlatSegment(0x10, 0x3, false);
  XM_TRY(v.Set(KVM_SET_SREGS, s, "KVM_SET_SREGS"));
  kvm_regs r{};
  r.rip = kvm::GuestEntry();
  r.rsp = kvm::GuestStackTop(index);
  r.rdi = index;
  r.rflags = 0x2;
  XM_TRY(v.Set(KVM_SET_REGS, r, "KVM_SET_REGS"));
  // With the in-kernel LAPIC, vCPUs other than 0 wait for INIT/SIPI otherwise.
  kvm_mp_state mp{KVM_MP_STATE_RUNNABLE};
  XM_TRY(v.Set(KVM_SET_MP_STATE, mp, "KVM_SET_MP_STATE"));
  return {};
}

Result<std::unique_ptr<KvmBackend>> KvmBackend::CreateSource(const KvmSourceOptions& opts) {
  if (opts.memory_bytes == 0 || opts.memory_bytes % kGuestPage != 0)
    return Error(Code::kInvalidArgument, "kvm: memory must be a non-zero multiple of 4 KiB");
  XM_ASSIGN_OR_RETURN(auto layout, kvm::PlanGuest(opts.memory_bytes, opts.workload, opts.vcpus));
  GuestShape shape;
  shape.page_size = kGuestPage;
  shape.page_count = opts.memory_bytes / kGuestPage;
  shape.ranges = {{0, shape.page_count}};
  shape.vcpus = opts.vcpus;
  XM_ASSIGN_OR_RETURN(auto b, CreateVm(shape, false));
  b->source_ = true;
  kvm::GuestTiming timing;
  timing.tsc_khz = b->tsc_khz_;
  timing.pass_interval_ms = opts.pass_interval_ms;
  kvm::BuildGuest(b->mem_.data(), layout, opts.workload, timing);
  for (uint32_t i = 0; i < opts.vcpus; ++i) XM_TRY_CTX(b->BootVcpu(i), "kvm: boot vCPU " + std::to_string(i));
  if (opts.cpu_policy) {
    auto applied = b->ApplyCpuPolicy(*opts.cpu_policy);
    if (!applied.ok()) return std::move(applied).With("kvm: source CPU policy").status();
  }
  XM_TRY(b->Resume());
  return b;
}

Result<std::unique_ptr<KvmBackend>> KvmBackend::CreateDestination(const GuestShape& shape, bool hugepages) {
  return CreateVm(shape, hugepages);
}

KvmBackend::~KvmBackend() {
  if (runner_) runner_->Stop();
}

Result<MappedPages> KvmBackend::MapPages(std::span<const uint64_t> pfns, Access) {
  return MapLinear(mem_.data(), shape_, pfns, "kvm");
}

// The guest's writes fault its memory in through this process's page tables,
// so the kernel's record of which pages it ever allocated covers them.
void KvmBackend::PagesMaybeWritten(DirtyBitmap& out) { PagesTouched(mem_.data(), shape_.page_count, out); }

Status KvmBackend::EnableDirtyLog() {
  XM_TRY_CTX(vm_->SetMemory(0, 0, mem_.size(), mem_.data(), true), "kvm: enable dirty log");
  logging_ = true;
  return {};
}

Status KvmBackend::FetchDirty(DirtyBitmap& out) {
  if (!logging_) return Error(Code::kInternal, "kvm: dirty log not enabled");
  XM_TRY_CTX(vm_->GetDirtyLog(0, dirty_words_.data()), "kvm: fetch dirty log");
  bool any = false;
  for (uint64_t w : dirty_words_) any |= w != 0;
  if (!any) return {};
  // With manual protect, GET only copies the log; CLEAR re-protects exactly the
  // pages reported, so a write after it is caught by the next fetch. The engine
  // reads page contents after this returns, so a write between GET and CLEAR is
  // in the data it sends.
  if (manual_protect_)
    XM_TRY_CTX(vm_->ClearDirtyLog(0, 0, shape_.page_count, dirty_words_.data()), "kvm: fetch dirty log");
  out.OrWords(0, dirty_words_.data(), dirty_words_.size());
  return {};
}

Status KvmBackend::DisableDirtyLog() {
  if (!logging_) return {};
  logging_ = false;
  XM_TRY_CTX(vm_->SetMemory(0, 0, mem_.size(), mem_.data(), false), "kvm: disable dirty log");
  return {};
}

Status KvmBackend::Pause() {
  const bool was_running = runner_->running();
  XM_ASSIGN_OR_RETURN(auto took, runner_->Pause());
  if (was_running) pause_latencies_.push_back(took);
  return {};
}

Status KvmBackend::Resume() {
  if (released_) return Error(Code::kInternal, "kvm: guest was released to the destination; it must not run here");
  if (!source_ && !state_loaded_) return Error(Code::kInternal, "kvm: destination guest resumed before its vCPU state was loaded");
  if (!ever_ran_ && !source_) {
    std::lock_guard lk(report_mu_);
    for (uint32_t i = 0; i < shape_.vcpus; ++i)
      seen_[i].partial_pass = kvm::ReadGuestStatus(mem_.data(), i).check_pos != 0;
  }
  XM_TRY(runner_->Resume());
  ever_ran_ = true;
  return {};
}

Status KvmBackend::SetThrottle(double run_fraction) {
  if (!(run_fraction > 0.0 && run_fraction <= 1.0))
    return Error(Code::kInvalidArgument, "kvm: throttle fraction must be in (0, 1]");
  runner_->SetThrottle(run_fraction);
  return {};
}

bool KvmBackend::Running() const { return runner_->running() && runner_->fatal().empty(); }

GuestState KvmBackend::State() const {
  if (!runner_->fatal().empty()) return GuestState::kCrashed;
  return runner_->running() ? GuestState::kRunning : GuestState::kPaused;
}

Result<std::vector<uint8_t>> KvmBackend::SaveVcpuState() {
  if (runner_->running()) return Error(Code::kInternal, "kvm: vCPU state saved while the guest runs");
  if (auto f = runner_->fatal(); !f.empty()) return Error(Code::kInternal, "kvm: the guest crashed: " + f);
  return kvm::SaveState(state_ctx_);
}

Status KvmBackend::LoadVcpuState(std::span<const uint8_t> blob) {
  if (ever_ran_) return Error(Code::kInternal, "kvm: vCPU state loaded into a guest that already ran");
  XM_TRY(kvm::LoadState(state_ctx_, blob));
  state_loaded_ = true;
  return {};
}

Result<CpuPolicy> KvmBackend::GetCpuPolicy() {
  XM_ASSIGN_OR_RETURN(auto entries, vcpus_[0].GetCpuid());
  return kvm::PolicyFromCpuid(entries);
}

Result<CpuPolicy> KvmBackend::ApplyCpuPolicy(const CpuPolicy& policy) {
  // KVM refuses a different CPUID once a vCPU has run.
  if (ever_ran_) return Error(Code::kInternal, "kvm: a CPU policy can only be applied before the guest first runs");
  XM_ASSIGN_OR_RETURN(auto entries, kvm::CpuidFromPolicy(policy));
  for (auto& v : vcpus_) XM_TRY_CTX(v.SetCpuid(kvm::CpuidForVcpu(entries, v.index())), "kvm: apply CPU policy");
  return GetCpuPolicy();
}

void KvmBackend::Discard() { runner_->Stop(); }

Status KvmBackend::Release() {
  runner_->Stop();
  released_ = true;
  return {};
}

void KvmBackend::OnGuestEvent(uint32_t vcpu, uint8_t event) {
  kvm::GuestStatus st = kvm::ReadGuestStatus(mem_.data(), vcpu);
  std::lock_guard lk(report_mu_);
  auto& seen = seen_[vcpu];
  seen.reported = true;
  std::memcpy(seen.seen_cpuid, st.cpuid, sizeof seen.seen_cpuid);
  if (event == XMG_EV_PASS) {
    if (st.last_result != 0) {
      ++seen.passes_failed;
      last_bad_page_ = st.last_bad;
    } else if (!seen.partial_pass) {
      ++seen.passes_ok;
    }
    // A pass that began before this copy first ran checked part of the memory
    // elsewhere: its success does not count here, its failure does.
    seen.partial_pass = false;
  }
}

GuestProgress KvmBackend::Progress() {
  KvmGuestReport r = GuestReport();
  GuestProgress p;
  p.available = true;
  p.selfcheck = true;
  p.counter = r.counter;
  p.checks_passed = r.passes_ok;
  p.checks_failed = r.passes_failed;
  p.describe = DescribeGuest();
  return p;
}

KvmGuestReport KvmBackend::GuestReport() const {
  KvmGuestReport r;
  uint32_t n = 0;
  bool booted = kvm::HasGuestParams(mem_.data(), mem_.size(), &n);
  std::lock_guard lk(report_mu_);
  for (uint32_t i = 0; i < shape_.vcpus; ++i) {
    KvmGuestReport::Vcpu v = seen_[i];
    if (booted && i < n) v.status = kvm::ReadGuestStatus(mem_.data(), i);
    r.counter += v.status.counter;
    r.vcpus.push_back(v);
  }
  r.passes_ok = ~0ull;
  for (const auto& v : r.vcpus) {
    r.passes_ok = std::min(r.passes_ok, v.passes_ok);
    r.passes_failed += v.passes_failed;
  }
  if (r.vcpus.empty()) r.passes_ok = 0;
  r.last_bad_page = last_bad_page_;
  r.fatal = runner_->fatal();
  return r;
}

std::string KvmBackend::DescribeGuest() const {
  KvmGuestReport r = GuestReport();
  uint64_t life_ok = 0, life_bad = 0, deep = 0;
  for (const auto& v : r.vcpus) {
    life_ok += v.status.passes_ok;
    life_bad += v.status.passes_bad;
    deep += v.status.deep_pages;
  }
  char buf[512];
  std::snprintf(buf, sizeof buf,
                "kvm guest (%zu vCPU%s): counter %llu; self-check %llu passes ok, %llu failed here "
                "(%llu ok, %llu failed in the guest's lifetime), %llu whole pages re-added",
                r.vcpus.size(), r.vcpus.size() == 1 ? "" : "s", static_cast<unsigned long long>(r.counter),
                static_cast<unsigned long long>(r.passes_ok), static_cast<unsigned long long>(r.passes_failed),
                static_cast<unsigned long long>(life_ok), static_cast<unsigned long long>(life_bad),
                static_cast<unsigned long long>(deep));
  std::string out = buf;
  if (!r.vcpus.empty() && r.vcpus[0].reported) {
    kvm::GuestStatus s;
    std::memcpy(s.cpuid, r.vcpus[0].seen_cpuid, sizeof s.cpuid);
    std::snprintf(buf, sizeof buf, "; CPUID seen: %s, 1.ecx=%08x 1.edx=%08x 7.ebx=%08x", s.vendor().c_str(),
                  s.cpuid[5], s.cpuid[6], s.cpuid[7]);
    out += buf;
  }
  if (r.passes_failed) out += "; last bad page: ws index " + std::to_string(r.last_bad_page);
  if (!r.fatal.empty()) out += "; STOPPED: " + r.fatal;
  return out;
}

std::vector<std::chrono::nanoseconds> KvmBackend::PauseLatencies() const { return pause_latencies_; }

}  // namespace xm
