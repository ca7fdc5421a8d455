// The x86 featureset layout: which CPUID register (or MSR half) each 32-bit
// word holds and which named feature each bit is.
//
// The table is generated at build time from Xen's public header
// xen/arch-x86/cpufeatureset.h (cpumask/gen_feature_table.py), so word order,
// names and bit positions are exactly Xen's and a newer Xen adds features by
// rebuilding. Names are Xen's, lowercased ("avx512_vnni").
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace xm::cpumask {

enum class WordSource { kCpuid, kMsr };
enum class Reg { kEax, kEbx, kEcx, kEdx };

struct WordInfo {
  uint32_t index;
  WordSource source;
  uint32_t leaf;     // CPUID leaf, or the MSR number
  uint32_t subleaf;  // CPUID subleaf (0 when the leaf has none)
  Reg reg;           // for an MSR: kEax = low half, kEdx = high half
  std::string_view text;  // "CPUID 0x00000007:0.ebx"
};

struct FeatureInfo {
  std::string_view name;  // lowercase Xen name
  uint32_t bit;           // word * 32 + bit, as XEN_CPUFEATURE writes it
  std::string_view attrs; // Xen's attribute characters ("A", "!A", "S", ...)
  std::string_view description;

  uint32_t word() const { return bit / 32; }
};

std::span<const WordInfo> Words();        // index order, Words()[i].index == i
std::span<const FeatureInfo> Features();  // ascending bit order
std::string_view FeatureHeaderPath();     // the header the table came from

inline size_t WordCount() { return Words().size(); }

// Looks a feature up by name, ignoring case, '_' and '-' ("AVX512-VNNI",
// "avx512_vnni" and "avx512vnni" are the same). nullptr if unknown.
const FeatureInfo* FindFeature(std::string_view name);
// The feature at `bit` (word*32+bit), nullptr if the header names none there.
const FeatureInfo* FeatureAt(uint32_t bit);
// Name for a bit: the feature name, or "word5.bit22" for a bit Xen does not name.
std::string BitName(uint32_t bit);
// Bits of word `index` that the header names (0 for words beyond the table).
uint32_t KnownMask(uint32_t index);

}  // namespace xm::cpumask
