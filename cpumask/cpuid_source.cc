#include "cpumask/cpuid_source.h"

#include <cstring>

#include "cpumask/feature_table.h"

namespace xm::cpumask {

uint32_t RegValue(const CpuidRegs& r, Reg reg) {
  switch (reg) {
    case Reg::kEax: return r.eax;
    case Reg::kEbx: return r.ebx;
    case Reg::kEcx: return r.ecx;
    case Reg::kEdx: return r.edx;
  }
  return 0;
}

FeatureWords FeaturesetFrom(const CpuidFn& cpuid, const MsrFn& msr) {
  FeatureWords words(WordCount(), 0);
  for (const WordInfo& w : Words()) {
    uint32_t value = 0;
    if (w.source == WordSource::kCpuid) {
      if (auto regs = cpuid(w.leaf, w.subleaf)) value = RegValue(*regs, w.reg);
    } else if (msr) {
      if (auto v = msr(w.leaf)) value = static_cast<uint32_t>(w.reg == Reg::kEdx ? *v >> 32 : *v);
    }
    words[w.index] = value & KnownMask(w.index);
  }
  return words;
}

std::string VendorFrom(const CpuidFn& cpuid) {
  auto r = cpuid(0, 0);
  if (!r) return {};
  char v[12];
  std::memcpy(v, &r->ebx, 4);
  std::memcpy(v + 4, &r->edx, 4);
  std::memcpy(v + 8, &r->ecx, 4);
  return std::string(v, 12);
}

}  // namespace xm::cpumask
