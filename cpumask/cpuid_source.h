// Fills featureset words from any CPUID/MSR source, following the word list
// of Xen's header (feature_table.h): the running CPU, a KVM entry list, ...
//
// Only bits the header names are kept: registers also carry bits Xen does not
// track (AMD repeats most of leaf 1.edx in 0x80000001.edx), and a bit without a
// name cannot be levelled or reported meaningfully.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "cpumask/feature_table.h"
#include "cpumask/featureset.h"

namespace xm::cpumask {

struct CpuidRegs {
  uint32_t eax = 0, ebx = 0, ecx = 0, edx = 0;
};

// nullopt: the leaf/subleaf does not exist in this source (its words read 0).
using CpuidFn = std::function<std::optional<CpuidRegs>(uint32_t leaf, uint32_t subleaf)>;
using MsrFn = std::function<std::optional<uint64_t>(uint32_t msr)>;

FeatureWords FeaturesetFrom(const CpuidFn& cpuid, const MsrFn& msr);
// Leaf 0's ebx:edx:ecx ("GenuineIntel"); "" if leaf 0 is absent.
std::string VendorFrom(const CpuidFn& cpuid);

// The register a word comes from within a leaf's result.
uint32_t RegValue(const CpuidRegs& r, Reg reg);

}  // namespace xm::cpumask
