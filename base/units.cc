#include "base/units.h"

#include <cctype>
#include <charconv>
#include <cstdio>
#include <limits>

namespace xm {
namespace {

std::string_view Trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

Status BadSize(std::string_view text, std::string_view why) {
  return Error(Code::kInvalidArgument,
               "bad size '" + std::string(text) + "': " + std::string(why));
}

}  // namespace

Result<uint64_t> ParseSize(std::string_view text) {
  std::string_view s = Trim(text);
  if (s.empty()) return BadSize(text, "empty");
  uint64_t value = 0;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), value);
  if (ec == std::errc::result_out_of_range) return BadSize(text, "too large");
  if (ec != std::errc() || ptr == s.data()) return BadSize(text, "expected a number, e.g. 512M");
  std::string_view suffix = Trim(s.substr(static_cast<size_t>(ptr - s.data())));
  uint64_t mult = 1;
  if (!suffix.empty()) {
    switch (std::toupper(static_cast<unsigned char>(suffix.front()))) {
      case 'K': mult = 1ull << 10; break;
      case 'M': mult = 1ull << 20; break;
      case 'G': mult = 1ull << 30; break;
      case 'T': mult = 1ull << 40; break;
      case 'B': mult = 1; suffix.remove_prefix(0); break;
      default: return BadSize(text, "unknown unit (use K, M, G or T)");
    }
    if (std::toupper(static_cast<unsigned char>(suffix.front())) != 'B') suffix.remove_prefix(1);
    if (suffix == "iB" || suffix == "IB" || suffix == "ib" || suffix == "B" || suffix == "b") suffix = {};
    if (!suffix.empty()) return BadSize(text, "unexpected '" + std::string(suffix) + "'");
  }
  if (value > std::numeric_limits<uint64_t>::max() / mult) return BadSize(text, "too large");
  return value * mult;
}

Result<uint64_t> ParseSizeOrPercent(std::string_view text, uint64_t total) {
  std::string_view s = Trim(text);
  if (!s.empty() && s.back() == '%') {
    s.remove_suffix(1);
    double pct = 0;
    auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), pct);
    if (ec != std::errc() || ptr != s.data() + s.size() || pct < 0 || pct > 100)
      return BadSize(text, "percent must be 0..100");
    return static_cast<uint64_t>(static_cast<long double>(total) * pct / 100.0L);
  }
  return ParseSize(s);
}

Result<uint64_t> ParseRate(std::string_view text) {
  std::string_view s = Trim(text);
  if (s.size() >= 2 && s.substr(s.size() - 2) == "/s") s.remove_suffix(2);
  return ParseSize(s);
}

std::string FormatBytes(uint64_t bytes) {
  static const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(bytes);
  int u = 0;
  while (v >= 1024.0 && u < 4) {
    v /= 1024.0;
    ++u;
  }
  char buf[32];
  if (u == 0)
    std::snprintf(buf, sizeof buf, "%llu B", static_cast<unsigned long long>(bytes));
  else
    std::snprintf(buf, sizeof buf, "%.1f %s", v, kUnits[u]);
  return buf;
}

}  // namespace xm
