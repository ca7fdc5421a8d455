// Text forms of a CPU policy (vendor + featureset), as the CLI, the receive and
// demo options and the docs write them. The grammar is in cpumask/README.md:
//
//   [VENDOR:]HEX8:HEX8:...     Xen's form (`xl info` hw_caps)
//   [VENDOR:]HEX8-HEX8-...     XAPI's form (host/VM cpu_info "features")
//   [VENDOR:]name,name,...     feature names from Xen's cpufeatureset.h
//   {"vendor": ..., "featureset": ..., "features": [...]}   JSON
//   @path                      any of the above, read from a file
//
// VENDOR is intel, amd, hygon, centaur, shanghai/zhaoxin or a 12-character
// CPUID vendor string; without it the vendor is unspecified ("") and matches
// any vendor in the checks. Only the vendor and the featureset words travel in
// text; CpuPolicy::format is "none" and the blob is empty.
#pragma once

#include <string>
#include <string_view>

#include <nlohmann/json_fwd.hpp>

#include "base/guest.h"
#include "base/status.h"
#include "cpumask/featureset.h"

namespace xm::cpumask {

enum class TextFormat { kXen, kXapi, kNames, kJson };

// Parses any of the forms above. Text that is not a valid policy but names an
// existing file is read from that file, so plain paths work too. Errors are
// kInvalidArgument and name the offending word, feature or vendor.
Result<CpuPolicy> ParsePolicy(std::string_view text);
Result<CpuPolicy> PolicyFromJson(const nlohmann::json& j);

// The policy in one of the forms; every form parses back to the same vendor and
// featureset (kNames falls back to the Xen form when no bit is set).
std::string FormatPolicy(const CpuPolicy& policy, TextFormat format);
// Just the words: "%08x" joined by `sep` (':' for Xen, '-' for XAPI).
std::string FormatWords(const FeatureWords& words, char sep);
// {"vendor": "GenuineIntel", "featureset": "<xen form>", "features": [...]}
nlohmann::json PolicyToJson(const CpuPolicy& policy);

}  // namespace xm::cpumask
