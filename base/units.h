// Human sizes on the command line: "4096", "64K", "1G", "512M", "75%" (of a total),
// and rates "500M/s". Binary units (K = 1024). Also the reverse, for reports.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "base/status.h"

namespace xm {

// "1G" -> 1073741824. Suffixes K, M, G, T (optionally followed by "iB" or "B").
Result<uint64_t> ParseSize(std::string_view text);
// Like ParseSize, but "75%" means 75% of `total` (rounded down).
Result<uint64_t> ParseSizeOrPercent(std::string_view text, uint64_t total);
// "500M/s" or "500M" -> bytes per second.
Result<uint64_t> ParseRate(std::string_view text);

// 1536 -> "1.5 KiB".
std::string FormatBytes(uint64_t bytes);

}  // namespace xm
