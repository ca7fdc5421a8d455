// CPU vendors: the 12-character CPUID vendor string (what CpuPolicy::vendor
// holds) and the short names the text syntax accepts ("intel", "amd").
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace xm::cpumask {

// "intel" / "GenuineIntel" (any case) -> "GenuineIntel"; nullopt if unknown.
std::optional<std::string> CanonicalVendor(std::string_view name);
// "GenuineIntel" -> "intel"; an unknown vendor string is returned as is.
std::string ShortVendor(std::string_view vendor);
// The names CanonicalVendor accepts, for error messages.
std::string KnownVendorNames();

}  // namespace xm::cpumask
