#include "cpumask/featureset.h"

#include <algorithm>

#include "cpumask/feature_table.h"

namespace xm::cpumask {
namespace {

uint32_t WordOr0(const FeatureWords& fs, size_t i) { return i < fs.size() ? fs[i] : 0; }

const FeatureWords& EnvironmentWords() {
  static const FeatureWords* env = [] {
    auto* w = new FeatureWords;
    for (const char* name : {"hypervisor", "osxsave", "ospke"}) {
      // A header without one of these simply has nothing to ignore there.
      if (const FeatureInfo* f = FindFeature(name)) SetBit(*w, f->bit);
    }
    return w;
  }();
  return *env;
}

}  // namespace

bool TestBit(const FeatureWords& fs, uint32_t bit) { return (WordOr0(fs, bit / 32) >> (bit % 32)) & 1; }

void SetBit(FeatureWords& fs, uint32_t bit) {
  if (fs.size() <= bit / 32) fs.resize(bit / 32 + 1, 0);
  fs[bit / 32] |= 1u << (bit % 32);
}

FeatureWords Intersect(const FeatureWords& a, const FeatureWords& b) {
  FeatureWords out(std::max(a.size(), b.size()), 0);
  for (size_t i = 0; i < out.size(); ++i) out[i] = WordOr0(a, i) & WordOr0(b, i);
  return out;
}

std::vector<uint32_t> SetBits(const FeatureWords& fs) {
  std::vector<uint32_t> bits;
  for (size_t w = 0; w < fs.size(); ++w)
    for (uint32_t b = 0; b < 32; ++b)
      if ((fs[w] >> b) & 1) bits.push_back(static_cast<uint32_t>(w * 32 + b));
  return bits;
}

std::vector<uint32_t> Missing(const FeatureWords& a, const FeatureWords& b) {
  FeatureWords diff(a.size(), 0);
  for (size_t i = 0; i < a.size(); ++i) {
    const auto w = static_cast<uint32_t>(i);
    diff[i] = a[i] & ~WordOr0(b, i) & ~EnvironmentMask(w) & ~MirroredMask(w);
  }
  return SetBits(diff);
}

bool IsSubset(const FeatureWords& a, const FeatureWords& b) { return Missing(a, b).empty(); }

uint32_t EnvironmentMask(uint32_t word) { return WordOr0(EnvironmentWords(), word); }

uint32_t MirroredMask(uint32_t word) { return word == kMirroredWord ? kMirroredBits : 0; }

bool IsEnvironmentBit(uint32_t bit) { return (EnvironmentMask(bit / 32) >> (bit % 32)) & 1; }

std::vector<std::string> Names(const std::vector<uint32_t>& bits) {
  std::vector<std::string> names;
  names.reserve(bits.size());
  for (uint32_t bit : bits) names.push_back(BitName(bit));
  return names;
}

std::string JoinNames(const std::vector<uint32_t>& bits, std::string_view sep) {
  std::string out;
  for (uint32_t bit : bits) {
    if (!out.empty()) out += sep;
    out += BitName(bit);
  }
  return out;
}

}  // namespace xm::cpumask
