#include "cpumask/kvm_cpuid.h"

#include <fcntl.h>
#include <sys/ioctl.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>

#include "base/unique_fd.h"
#include "cpumask/cpuid_source.h"
#include "cpumask/feature_table.h"

namespace xm::cpumask {
namespace {

bool Matches(const kvm_cpuid_entry2& e, uint32_t leaf, uint32_t subleaf) {
  if (e.function != leaf) return false;
  return !(e.flags & KVM_CPUID_FLAG_SIGNIFCANT_INDEX) || e.index == subleaf;
}

uint32_t* RegPtr(kvm_cpuid_entry2& e, Reg reg) {
  switch (reg) {
    case Reg::kEax: return &e.eax;
    case Reg::kEbx: return &e.ebx;
    case Reg::kEcx: return &e.ecx;
    case Reg::kEdx: return &e.edx;
  }
  return nullptr;
}

// The variable-length ioctl structs, freed on scope exit.
struct FreeDeleter {
  void operator()(void* p) const { std::free(p); }
};

}  // namespace

CpuPolicy PolicyFromKvmCpuid(std::span<const kvm_cpuid_entry2> entries, std::span<const MsrValue> msrs) {
  CpuidFn cpuid = [entries](uint32_t leaf, uint32_t subleaf) -> std::optional<CpuidRegs> {
    for (const kvm_cpuid_entry2& e : entries)
      if (Matches(e, leaf, subleaf)) return CpuidRegs{e.eax, e.ebx, e.ecx, e.edx};
    return std::nullopt;
  };
  MsrFn msr = [msrs](uint32_t index) -> std::optional<uint64_t> {
    for (const MsrValue& m : msrs)
      if (m.index == index) return m.value;
    return std::nullopt;
  };
  CpuPolicy p;
  p.format = "none";
  p.vendor = VendorFrom(cpuid);
  p.featureset = FeaturesetFrom(cpuid, msr);
  return p;
}

uint32_t MaskKvmCpuid(std::span<kvm_cpuid_entry2> entries, const FeatureWords& featureset) {
  uint32_t cleared = 0;
  for (const WordInfo& w : Words()) {
    if (w.source != WordSource::kCpuid) continue;
    uint32_t hide = KnownMask(w.index) & ~(w.index < featureset.size() ? featureset[w.index] : 0);
    for (kvm_cpuid_entry2& e : entries) {
      if (!Matches(e, w.leaf, w.subleaf)) continue;
      uint32_t* reg = RegPtr(e, w.reg);
      cleared += static_cast<uint32_t>(__builtin_popcount(*reg & hide));
      *reg &= ~hide;
    }
  }
  return cleared;
}

namespace {

// Runs a CPUID-list ioctl with a growing buffer: KVM answers E2BIG until the
// buffer is big enough and does not say how big that is.
Result<std::vector<kvm_cpuid_entry2>> CpuidListIoctl(int fd, unsigned long request, const char* what) {
  for (uint32_t nent = 64; nent <= 4096; nent *= 2) {
    size_t bytes = sizeof(KvmCpuid2Header) + nent * sizeof(kvm_cpuid_entry2);
    std::unique_ptr<void, FreeDeleter> buf(std::calloc(1, bytes));
    if (!buf) return Error(Code::kInternal, std::string(what) + ": out of memory");
    auto* head = static_cast<KvmCpuid2Header*>(buf.get());
    auto* entries = reinterpret_cast<kvm_cpuid_entry2*>(head + 1);
    head->nent = nent;
    if (::ioctl(fd, request, buf.get()) == 0) return std::vector<kvm_cpuid_entry2>(entries, entries + head->nent);
    if (errno != E2BIG) return ErrnoError(what, errno);
  }
  return Error(Code::kInternal, std::string(what) + ": more than 4096 entries");
}

}  // namespace

Result<std::vector<kvm_cpuid_entry2>> KvmSupportedCpuid(int kvm_fd) {
  return CpuidListIoctl(kvm_fd, kKvmGetSupportedCpuid, "KVM_GET_SUPPORTED_CPUID");
}

Result<std::vector<kvm_cpuid_entry2>> KvmGetCpuid2(int vcpu_fd) {
  return CpuidListIoctl(vcpu_fd, kKvmGetCpuid2, "KVM_GET_CPUID2");
}

Status KvmSetCpuid2(int vcpu_fd, std::span<const kvm_cpuid_entry2> entries) {
  std::vector<unsigned char> buf(sizeof(KvmCpuid2Header) + entries.size_bytes());
  KvmCpuid2Header head{static_cast<uint32_t>(entries.size()), 0};
  std::memcpy(buf.data(), &head, sizeof head);
  if (!entries.empty()) std::memcpy(buf.data() + sizeof head, entries.data(), entries.size_bytes());
  if (::ioctl(vcpu_fd, kKvmSetCpuid2, buf.data()) != 0) return ErrnoError("KVM_SET_CPUID2", errno);
  return {};
}

Result<std::vector<MsrValue>> KvmFeatureMsrs(int kvm_fd) {
  std::vector<MsrValue> out;
  if (::ioctl(kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_GET_MSR_FEATURES) <= 0) return out;
  for (const WordInfo& w : Words()) {
    if (w.source != WordSource::kMsr) continue;
    bool seen = false;
    for (const MsrValue& m : out) seen |= m.index == w.leaf;
    if (seen) continue;
    struct {
      KvmMsrsHeader head;
      kvm_msr_entry entry;
    } req{};
    req.head.nmsrs = 1;
    req.entry.index = w.leaf;
    int n = ::ioctl(kvm_fd, kKvmGetMsrs, &req);
    if (n < 0) {
      char what[64];
      std::snprintf(what, sizeof what, "KVM_GET_MSRS (feature MSR 0x%x)", w.leaf);
      return ErrnoError(what, errno);
    }
    if (n == 1) out.push_back({w.leaf, req.entry.data});  // 0: KVM does not expose this MSR
  }
  return out;
}

Result<CpuPolicy> KvmSupportedPolicy() {
  UniqueFd kvm(::open("/dev/kvm", O_RDWR | O_CLOEXEC));
  if (!kvm.valid()) return ErrnoError("open /dev/kvm", errno);
  XM_ASSIGN_OR_RETURN(auto entries, KvmSupportedCpuid(kvm.get()));
  XM_ASSIGN_OR_RETURN(auto msrs, KvmFeatureMsrs(kvm.get()));
  return PolicyFromKvmCpuid(entries, msrs);
}

}  // namespace xm::cpumask
