#include "dirtylog/xen/stream/records.h"

namespace xm::xen {

std::string_view LibxcRecName(uint32_t type) {
  static constexpr std::string_view kNames[] = {
      "END",          "PAGE_DATA",   "X86_PV_INFO",     "X86_PV_P2M_FRAMES", "X86_PV_VCPU_BASIC",
      "X86_PV_VCPU_EXTENDED", "X86_PV_VCPU_XSAVE", "SHARED_INFO", "X86_TSC_INFO", "HVM_CONTEXT",
      "HVM_PARAMS",   "TOOLSTACK",   "X86_PV_VCPU_MSRS", "VERIFY",           "CHECKPOINT",
      "CHECKPOINT_DIRTY_PFN_LIST", "STATIC_DATA_END", "X86_CPUID_POLICY", "X86_MSR_POLICY"};
  if (type < std::size(kNames)) return kNames[type];
  return (type & 0x80000000u) ? "unknown optional record" : "unknown record";
}

std::string_view LibxlRecName(uint32_t type) {
  static constexpr std::string_view kNames[] = {"END", "LIBXC_CONTEXT", "EMULATOR_XENSTORE_DATA", "EMULATOR_CONTEXT",
                                                "CHECKPOINT_END", "CHECKPOINT_STATE"};
  if (type < std::size(kNames)) return kNames[type];
  return (type & 0x80000000u) ? "unknown optional record" : "unknown record";
}

bool PfnTypeKnown(uint32_t type) { return type <= 0x4 || (type >= 0x9 && type <= 0xf); }

bool PfnTypeHasData(uint32_t type) { return type <= 0x4 || (type >= 0x9 && type <= 0xc); }

}  // namespace xm::xen
