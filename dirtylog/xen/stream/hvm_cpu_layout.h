// Where the fields of Xen's `struct hvm_hw_cpu` (the CPU record of an HVM
// context, public/arch-x86/hvm/save.h, Xen 4.17) sit, so xmotion can build and
// read CPU records without Xen's headers. tests/xen checks every offset
// against the real struct when libxen-dev is installed.
#pragma once

#include <cstdint>
#include <vector>

namespace xm::xen::hvmcpu {

inline constexpr uint32_t kFpuRegs = 0;  // 512-byte FXSAVE image
inline constexpr uint32_t kRax = 512;    // rax..r15: 16 × u64 in the order rax rbx rcx rdx rbp rsi rdi rsp r8..r15
inline constexpr uint32_t kRdx = 536;
inline constexpr uint32_t kRip = 640;
inline constexpr uint32_t kRflags = 648;
inline constexpr uint32_t kCr0 = 656;
inline constexpr uint32_t kCr3 = 672;
inline constexpr uint32_t kCr4 = 680;
inline constexpr uint32_t kDr6 = 720;
inline constexpr uint32_t kDr7 = 728;
// Segment registers in the order cs ds es fs gs ss tr ldtr (idtr, gdtr have no selector/arbytes).
inline constexpr uint32_t kSel = 736;      // 8 × u32
inline constexpr uint32_t kLimit = 768;    // 10 × u32 (…, idtr, gdtr)
inline constexpr uint32_t kBase = 808;     // 10 × u64
inline constexpr uint32_t kArbytes = 888;  // 8 × u32
inline constexpr uint32_t kMsrEfer = 992;
inline constexpr uint32_t kTsc = 1008;
inline constexpr uint32_t kFlags = 1024;
inline constexpr uint32_t kSize = 1032;

enum Seg { kCs = 0, kDs, kEs, kFs, kGs, kSs, kTr, kLdtr, kIdtr, kGdtr };

// The architectural power-on state of an x86 CPU (Intel SDM vol. 3 §9.1.1) as
// an hvm_hw_cpu record: real mode at CS:IP f000:fff0, EDX = processor
// signature. FPU left uninitialised (flags = 0) so Xen sets its own defaults.
std::vector<uint8_t> PowerOnCpuState(uint32_t cpuid_leaf1_eax);

}  // namespace xm::xen::hvmcpu

namespace xm::xen {
using hvmcpu::PowerOnCpuState;
}
