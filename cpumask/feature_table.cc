#include "cpumask/feature_table.h"

#include <algorithm>
#include <cctype>
#include <unordered_map>
#include <vector>

namespace xm::cpumask {
namespace {

// Spelling-insensitive key: lowercase, without '_' and '-'.
std::string Key(std::string_view name) {
  std::string k;
  k.reserve(name.size());
  for (char c : name) {
    if (c == '_' || c == '-') continue;
    k.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
  }
  return k;
}

const std::unordered_map<std::string, const FeatureInfo*>& ByKey() {
  static const auto* map = [] {
    auto* m = new std::unordered_map<std::string, const FeatureInfo*>;
    for (const FeatureInfo& f : Features()) m->emplace(Key(f.name), &f);
    return m;
  }();
  return *map;
}

const std::vector<uint32_t>& Masks() {
  static const auto* masks = [] {
    auto* m = new std::vector<uint32_t>(WordCount(), 0);
    for (const FeatureInfo& f : Features()) (*m)[f.word()] |= 1u << (f.bit % 32);
    return m;
  }();
  return *masks;
}

}  // namespace

const FeatureInfo* FindFeature(std::string_view name) {
  auto it = ByKey().find(Key(name));
  return it == ByKey().end() ? nullptr : it->second;
}

const FeatureInfo* FeatureAt(uint32_t bit) {
  auto features = Features();
  auto it = std::lower_bound(features.begin(), features.end(), bit,
                             [](const FeatureInfo& f, uint32_t b) { return f.bit < b; });
  return it != features.end() && it->bit == bit ? &*it : nullptr;
}

std::string BitName(uint32_t bit) {
  if (const FeatureInfo* f = FeatureAt(bit)) return std::string(f->name);
  return "word" + std::to_string(bit / 32) + ".bit" + std::to_string(bit % 32);
}

uint32_t KnownMask(uint32_t index) { return index < Masks().size() ? Masks()[index] : 0; }

}  // namespace xm::cpumask
