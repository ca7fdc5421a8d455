// KVM ioctl numbers that C++ cannot take from <linux/kvm.h>.
//
// The uapi structs with a flexible array member (kvm_cpuid2, kvm_msrs,
// kvm_msr_list, kvm_xsave) are declared with __DECLARE_FLEX_ARRAY, which in C++
// adds a one-byte empty struct: sizeof() grows, and since _IOWR() encodes the
// size, KVM_GET_SUPPORTED_CPUID, KVM_GET_MSRS, KVM_SET_CPUID2, KVM_GET_XSAVE...
// compiled as C++ carry the wrong number and fail with EINVAL. These are the
// numbers the kernel expects, checked against the values it documents, plus
// layout-correct headers to build the variable-length buffers on.
#pragma once

#include <linux/kvm.h>
#include <sys/ioctl.h>

#include <cstdint>

namespace xm::kvm {

// The fixed part of kvm_cpuid2 / kvm_msrs as the kernel lays it out (C).
struct CpuidHeader {
  uint32_t nent;
  uint32_t padding;
};
struct MsrsHeader {
  uint32_t nmsrs;
  uint32_t pad;
};
struct MsrListHeader {
  uint32_t nmsrs;
};
struct XsaveRegion {
  uint32_t region[1024];
};
static_assert(sizeof(kvm_cpuid_entry2) == 40 && sizeof(kvm_msr_entry) == 16);

inline constexpr unsigned long kGetMsrIndexList = _IOWR(KVMIO, 0x02, MsrListHeader);
inline constexpr unsigned long kGetSupportedCpuid = _IOWR(KVMIO, 0x05, CpuidHeader);
inline constexpr unsigned long kGetMsrs = _IOWR(KVMIO, 0x88, MsrsHeader);
inline constexpr unsigned long kSetMsrs = _IOW(KVMIO, 0x89, MsrsHeader);
inline constexpr unsigned long kSetCpuid2 = _IOW(KVMIO, 0x90, CpuidHeader);
inline constexpr unsigned long kGetCpuid2 = _IOWR(KVMIO, 0x91, CpuidHeader);
inline constexpr unsigned long kGetXsave = _IOR(KVMIO, 0xa4, XsaveRegion);
inline constexpr unsigned long kSetXsave = _IOW(KVMIO, 0xa5, XsaveRegion);
inline constexpr unsigned long kGetXsave2 = _IOR(KVMIO, 0xcf, XsaveRegion);

static_assert(kGetMsrIndexList == 0xc004ae02ul);
static_assert(kGetSupportedCpuid == 0xc008ae05ul);
static_assert(kGetMsrs == 0xc008ae88ul);
static_assert(kSetMsrs == 0x4008ae89ul);
static_assert(kSetCpuid2 == 0x4008ae90ul);
static_assert(kGetCpuid2 == 0xc008ae91ul);
static_assert(kGetXsave == 0x9000aea4ul);
static_assert(kSetXsave == 0x5000aea5ul);
static_assert(kGetXsave2 == 0x9000aecful);

}  // namespace xm::kvm
