#include "cpumask/host.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "base/unique_fd.h"
#include "cpumask/cpuid_source.h"
#include "cpumask/feature_table.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#define XM_HAVE_CPUID 1
#endif

namespace xm::cpumask {

#ifdef XM_HAVE_CPUID
namespace {

CpuidRegs RawCpuid(uint32_t leaf, uint32_t subleaf) {
  CpuidRegs r;
  __cpuid_count(leaf, subleaf, r.eax, r.ebx, r.ecx, r.edx);
  return r;
}

// A leaf beyond the reported maximum returns another leaf's data on Intel, so
// the maxima decide which leaves exist.
CpuidFn HostCpuid() {
  uint32_t max_basic = RawCpuid(0, 0).eax;
  uint32_t max_ext = RawCpuid(0x80000000, 0).eax;
  uint32_t max_leaf7_sub = max_basic >= 7 ? RawCpuid(7, 0).eax : 0;
  return [=](uint32_t leaf, uint32_t subleaf) -> std::optional<CpuidRegs> {
    if (leaf >= 0x80000000 ? (max_ext < 0x80000000 || leaf > max_ext) : leaf > max_basic) return std::nullopt;
    if (leaf == 7 && subleaf > max_leaf7_sub) return std::nullopt;
    return RawCpuid(leaf, subleaf);
  };
}

}  // namespace
#endif

Result<HostDetection> DetectHostCpu() {
#ifndef XM_HAVE_CPUID
  return Error(Code::kUnsupported, "CPU featuresets are x86-only; this build is not for x86");
#else
  HostDetection d;
  d.policy.format = "none";
  CpuidFn cpuid = HostCpuid();
  d.policy.vendor = VendorFrom(cpuid);

  bool has_msr_words = false;
  for (const WordInfo& w : Words()) has_msr_words |= w.source == WordSource::kMsr;
  UniqueFd msr_dev;
  if (has_msr_words) {
    msr_dev.reset(::open("/dev/cpu/0/msr", O_RDONLY | O_CLOEXEC));
    if (!msr_dev.valid()) {
      int err = errno;
      d.notes.push_back(std::string("MSR-sourced featureset words (e.g. MSR_ARCH_CAPS) left 0: /dev/cpu/0/msr: ") +
                        std::strerror(err) + " (needs root and the msr kernel module)");
    }
  }
  MsrFn msr = [&](uint32_t index) -> std::optional<uint64_t> {
    if (!msr_dev.valid()) return std::nullopt;
    uint64_t v = 0;
    // EIO means the CPU has no such MSR: its word is genuinely 0.
    if (::pread(msr_dev.get(), &v, sizeof v, index) != static_cast<ssize_t>(sizeof v)) return std::nullopt;
    return v;
  };
  d.policy.featureset = FeaturesetFrom(cpuid, msr);
  return d;
#endif
}

Result<CpuPolicy> HostCpuPolicy() {
  XM_ASSIGN_OR_RETURN(HostDetection d, DetectHostCpu());
  return std::move(d.policy);
}

}  // namespace xm::cpumask
