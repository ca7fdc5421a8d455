#include "cpumask/vendor.h"

#include <cctype>

namespace xm::cpumask {
namespace {

struct Vendor {
  std::string_view short_name;
  std::string_view cpuid;  // CPUID leaf 0 ebx:edx:ecx
};

// Zhaoxin parts report "  Shanghai  " (with the spaces); "zhaoxin" is accepted as an alias.
constexpr Vendor kVendors[] = {
    {"intel", "GenuineIntel"}, {"amd", "AuthenticAMD"},     {"hygon", "HygonGenuine"},
    {"centaur", "CentaurHauls"}, {"shanghai", "  Shanghai  "},
};

bool EqualNoCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(a[i])) != std::tolower(static_cast<unsigned char>(b[i]))) return false;
  return true;
}

}  // namespace

std::optional<std::string> CanonicalVendor(std::string_view name) {
  if (EqualNoCase(name, "zhaoxin")) name = "shanghai";
  for (const Vendor& v : kVendors)
    if (EqualNoCase(name, v.short_name) || EqualNoCase(name, v.cpuid)) return std::string(v.cpuid);
  return std::nullopt;
}

std::string ShortVendor(std::string_view vendor) {
  for (const Vendor& v : kVendors)
    if (vendor == v.cpuid) return std::string(v.short_name);
  return std::string(vendor);
}

std::string KnownVendorNames() {
  std::string out;
  for (const Vendor& v : kVendors) {
    if (!out.empty()) out += ", ";
    out += v.short_name;
  }
  return out + " (or the CPUID vendor string, e.g. GenuineIntel)";
}

}  // namespace xm::cpumask
