// xmotion writes Xen's structures field by field, from its own constants;
// here they are checked against Xen's real headers (Debian libxen-dev 4.17).
// Built only where those headers are installed.
#include <gtest/gtest.h>

#include <cstddef>

extern "C" {
#include <xenctrl.h>
#include <xen/arch-x86/hvm/save.h>
#include <xen/hvm/params.h>
}

#include "dirtylog/xen/stream/cpu_policy.h"
#include "dirtylog/xen/stream/hvm_cpu_layout.h"
#include "dirtylog/xen/stream/records.h"
#include "dirtylog/xen/xen_handles.h"

namespace xm::xen {
namespace {

TEST(XenAbi, HvmCpuRecordLayoutMatchesXen) {
  EXPECT_EQ(sizeof(struct hvm_hw_cpu), hvmcpu::kSize);
  EXPECT_EQ(sizeof(struct hvm_hw_cpu), kHvmHwCpuSize);
  EXPECT_EQ(offsetof(struct hvm_hw_cpu, fpu_regs), hvmcpu::kFpuRegs);
  EXPECT_EQ(offsetof(struct hvm_hw_cpu, rax), hvmcpu::kRax);
  EXPECT_EQ(offsetof(struct hvm_hw_cpu, rdx), hvmcpu::kRdx);
  EXPECT_EQ(offsetof(struct hvm_hw_cpu, rip), hvmcpu::kRip);
  EXPECT_EQ(offsetof(struct hvm_hw_cpu, rflags), hvmcpu::kRflags);
  EXPECT_EQ(offsetof(struct hvm_hw_cpu, cr0), hvmcpu::kCr0);
  EXPECT_EQ(offsetof(struct hvm_hw_cpu, cr3), hvmcpu::kCr3);
  EXPECT_EQ(offsetof(struct hvm_hw_cpu, cr4), hvmcpu::kCr4);
  EXPECT_EQ(offsetof(struct hvm_hw_cpu, dr6), hvmcpu::kDr6);
  EXPECT_EQ(offsetof(struct hvm_hw_cpu, dr7), hvmcpu::kDr7);
  EXPECT_EQ(offsetof(struct hvm_hw_cpu, cs_sel), hvmcpu::kSel + 4 * hvmcpu::kCs);
  EXPECT_EQ(offsetof(struct hvm_hw_cpu, ldtr_sel), hvmcpu::kSel + 4 * hvmcpu::kLdtr);
  EXPECT_EQ(offsetof(struct hvm_hw_cpu, cs_limit), hvmcpu::kLimit + 4 * hvmcpu::kCs);
  EXPECT_EQ(offsetof(struct hvm_hw_cpu, gdtr_limit), hvmcpu::kLimit + 4 * hvmcpu::kGdtr);
  EXPECT_EQ(offsetof(struct hvm_hw_cpu, cs_base), hvmcpu::kBase + 8 * hvmcpu::kCs);
  EXPECT_EQ(offsetof(struct hvm_hw_cpu, gdtr_base), hvmcpu::kBase + 8 * hvmcpu::kGdtr);
  EXPECT_EQ(offsetof(struct hvm_hw_cpu, cs_arbytes), hvmcpu::kArbytes + 4 * hvmcpu::kCs);
  EXPECT_EQ(offsetof(struct hvm_hw_cpu, ldtr_arbytes), hvmcpu::kArbytes + 4 * hvmcpu::kLdtr);
  EXPECT_EQ(offsetof(struct hvm_hw_cpu, msr_efer), hvmcpu::kMsrEfer);
  EXPECT_EQ(offsetof(struct hvm_hw_cpu, tsc), hvmcpu::kTsc);
  EXPECT_EQ(offsetof(struct hvm_hw_cpu, flags), hvmcpu::kFlags);
}

TEST(XenAbi, HvmContextHeaderAndCodesMatchXen) {
  EXPECT_EQ(sizeof(struct hvm_save_header), kHvmSaveHeaderSize);
  EXPECT_EQ(sizeof(struct hvm_save_descriptor), 8u);
  EXPECT_EQ(HVM_FILE_MAGIC, kHvmFileMagic);
  EXPECT_EQ(HVM_FILE_VERSION, kHvmFileVersion);
  EXPECT_EQ(HVM_SAVE_CODE(HEADER), kHvmSaveHeader);
  EXPECT_EQ(HVM_SAVE_CODE(CPU), kHvmSaveCpu);
  EXPECT_EQ(HVM_SAVE_CODE(END), kHvmSaveEnd);
}

TEST(XenAbi, PolicyAndParamNumbersMatchXen) {
  EXPECT_EQ(sizeof(xen_cpuid_leaf_t), kCpuidLeafSize);
  EXPECT_EQ(sizeof(xen_msr_entry_t), kMsrEntrySize);
  EXPECT_EQ(XEN_CPUID_NO_SUBLEAF, kNoSubleaf);
  EXPECT_EQ(HVM_PARAM_STORE_PFN, kHvmParamStorePfn);
  EXPECT_EQ(HVM_PARAM_CONSOLE_PFN, kHvmParamConsolePfn);
  EXPECT_EQ(HVM_PARAM_CALLBACK_IRQ, kHvmParamCallbackIrq);
  EXPECT_EQ(HVM_PARAM_ACPI_S_STATE, kHvmParamAcpiSState);
  EXPECT_EQ(XEN_DOMCTL_PFINFO_XTAB >> 28, static_cast<uint32_t>(PfnType::kXtab));
  EXPECT_EQ(XEN_DOMCTL_PFINFO_XALLOC >> 28, static_cast<uint32_t>(PfnType::kXalloc));
  EXPECT_EQ(XEN_DOMCTL_PFINFO_BROKEN >> 28, static_cast<uint32_t>(PfnType::kBroken));
}

// What the reports call a domain, from the flags xc_domain_getinfolist returns
// (the lab's crashed-source step checks the same on a real crashed domain).
TEST(XenAbi, DomainInfoFlagsGiveTheReportsGuestState) {
  auto with = [](uint32_t flags) {
    xc_domaininfo_t info{};
    info.flags = flags;
    return DomainStateOf(info);
  };
  auto shut = [](uint32_t reason) {
    return XEN_DOMINF_shutdown | (reason << XEN_DOMINF_shutdownshift);
  };
  EXPECT_EQ(with(XEN_DOMINF_running), GuestState::kRunning);
  EXPECT_EQ(with(XEN_DOMINF_blocked), GuestState::kRunning);
  EXPECT_EQ(with(XEN_DOMINF_paused), GuestState::kPaused);
  EXPECT_EQ(with(shut(SHUTDOWN_crash)), GuestState::kCrashed);
  EXPECT_EQ(with(shut(SHUTDOWN_crash) | XEN_DOMINF_paused), GuestState::kCrashed);
  EXPECT_EQ(with(shut(SHUTDOWN_suspend)), GuestState::kSuspended);
  EXPECT_EQ(with(shut(SHUTDOWN_poweroff)), GuestState::kShutdown);
  EXPECT_EQ(with(shut(SHUTDOWN_reboot)), GuestState::kShutdown);
  EXPECT_EQ(with(XEN_DOMINF_dying | shut(SHUTDOWN_crash)), GuestState::kGone);
}

// A PV domain is refused from its info flags alone, before the source maps or
// sends anything (the lab's --hvm run checks the same on a real PV domain).
TEST(XenAbi, PvDomainsAreRefusedByKind) {
  xc_domaininfo_t info{};
  info.flags = XEN_DOMINF_paused;  // no XEN_DOMINF_hvm_guest: PV
  Status pv = CheckSourceKind(7, info);
  EXPECT_EQ(pv.code(), Code::kUnsupported);
  EXPECT_NE(pv.message().find("domain 7 is a PV guest"), std::string::npos) << pv.message();
  EXPECT_NE(pv.message().find("xl migrate"), std::string::npos) << pv.message();
  info.flags = XEN_DOMINF_hvm_guest | XEN_DOMINF_running;  // HVM and PVH both carry hvm_guest
  EXPECT_TRUE(CheckSourceKind(7, info).ok());
  info.flags = XEN_DOMINF_hvm_guest | XEN_DOMINF_shutdown | (SHUTDOWN_crash << XEN_DOMINF_shutdownshift);
  EXPECT_TRUE(CheckSourceKind(7, info).ok());  // crashed: refused later, by the engine, with a report
  info.flags = XEN_DOMINF_hvm_guest | XEN_DOMINF_dying;
  EXPECT_EQ(CheckSourceKind(7, info).code(), Code::kUnsupported);
}

}  // namespace
}  // namespace xm::xen
