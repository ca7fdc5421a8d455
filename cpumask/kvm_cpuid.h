// Featuresets from and to KVM's CPUID entry lists (struct kvm_cpuid_entry2):
// what KVM_GET_SUPPORTED_CPUID offers and what KVM_GET_CPUID2/KVM_SET_CPUID2
// read and write for a vCPU. Used by the KVM backend and `xmotion cpu host --from kvm`.
#pragma once

#include <linux/kvm.h>

#include <cstdint>
#include <span>
#include <vector>

#include "base/guest.h"
#include "base/status.h"
#include "cpumask/featureset.h"

namespace xm::cpumask {

// Debian 12's <linux/kvm.h> (Linux 6.1 uapi) declares the flexible arrays of
// kvm_cpuid2 and kvm_msrs with a macro that C++ sizes differently from C: the
// structs grow by 4-8 bytes, `entries` moves, and the ioctl numbers that encode
// sizeof() change, so the kernel answers EINVAL (fixed upstream in later uapi
// headers). These are the C layouts and ioctl numbers; use them from C++.
struct KvmCpuid2Header {
  uint32_t nent;
  uint32_t padding;
};
struct KvmMsrsHeader {
  uint32_t nmsrs;
  uint32_t pad;
};
inline constexpr unsigned long kKvmGetSupportedCpuid = _IOWR(KVMIO, 0x05, KvmCpuid2Header);
inline constexpr unsigned long kKvmGetMsrs = _IOWR(KVMIO, 0x88, KvmMsrsHeader);  // system fd: feature MSRs
inline constexpr unsigned long kKvmSetCpuid2 = _IOW(KVMIO, 0x90, KvmCpuid2Header);
inline constexpr unsigned long kKvmGetCpuid2 = _IOWR(KVMIO, 0x91, KvmCpuid2Header);

struct MsrValue {
  uint32_t index;
  uint64_t value;
};

// Vendor and featureset of an entry list. A leaf missing from the list reads
// as 0; entries without KVM_CPUID_FLAG_SIGNIFCANT_INDEX match any subleaf.
// MSR-sourced words (MSR_ARCH_CAPS) come from `msrs` and are 0 when absent.
// format is "none": the caller attaches its own blob.
CpuPolicy PolicyFromKvmCpuid(std::span<const kvm_cpuid_entry2> entries, std::span<const MsrValue> msrs = {});

// Clears, in the entries, every named feature bit that `featureset` does not
// have, so KVM_SET_CPUID2 hides it. Bits are only ever cleared (a featureset
// cannot make KVM offer more), and bits Xen's header does not name are left
// alone. Returns how many bits were cleared.
uint32_t MaskKvmCpuid(std::span<kvm_cpuid_entry2> entries, const FeatureWords& featureset);

// KVM_GET_SUPPORTED_CPUID on `kvm_fd` (an open /dev/kvm).
Result<std::vector<kvm_cpuid_entry2>> KvmSupportedCpuid(int kvm_fd);
// The feature MSRs the featureset reads (MSR_ARCH_CAPS) through KVM_GET_MSRS
// on the system fd; MSRs KVM does not expose are left out.
Result<std::vector<MsrValue>> KvmFeatureMsrs(int kvm_fd);
// A vCPU's CPUID (KVM_GET_CPUID2) and setting it (KVM_SET_CPUID2, before the
// first KVM_RUN; later kernels refuse changes after it).
Result<std::vector<kvm_cpuid_entry2>> KvmGetCpuid2(int vcpu_fd);
Status KvmSetCpuid2(int vcpu_fd, std::span<const kvm_cpuid_entry2> entries);
// Opens /dev/kvm and combines the two: what KVM can give a guest on this host.
Result<CpuPolicy> KvmSupportedPolicy();

}  // namespace xm::cpumask
