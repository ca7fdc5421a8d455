#include "dirtylog/xen/stream/hvm_cpu_layout.h"

#include <span>

#include "dirtylog/xen/stream/le.h"

namespace xm::xen::hvmcpu {

std::vector<uint8_t> PowerOnCpuState(uint32_t cpuid_leaf1_eax) {
  std::vector<uint8_t> cpu(kSize, 0);
  std::span<uint8_t> b(cpu);
  SetLe64(b, kRdx, cpuid_leaf1_eax);
  SetLe64(b, kRip, 0xfff0);
  SetLe64(b, kRflags, 0x2);
  SetLe64(b, kCr0, 0x60000010);  // CD, NW, ET
  SetLe64(b, kDr6, 0xffff0ff0);
  SetLe64(b, kDr7, 0x400);
  for (int s = kCs; s <= kGdtr; ++s) SetLe32(b, kLimit + 4 * s, 0xffff);
  SetLe32(b, kSel + 4 * kCs, 0xf000);
  SetLe64(b, kBase + 8 * kCs, 0xffff0000);
  // Xen's compressed attribute format: type[3:0] s[4] dpl[6:5] p[7] avl l db g.
  SetLe32(b, kArbytes + 4 * kCs, 0x9b);  // present, code, execute/read, accessed
  for (int s : {kDs, kEs, kFs, kGs, kSs}) SetLe32(b, kArbytes + 4 * s, 0x93);  // present, data, read/write, accessed
  SetLe32(b, kArbytes + 4 * kTr, 0x8b);    // present, busy 32-bit TSS
  SetLe32(b, kArbytes + 4 * kLdtr, 0x82);  // present, LDT
  return cpu;
}

}  // namespace xm::xen::hvmcpu
