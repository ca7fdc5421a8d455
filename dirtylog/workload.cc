#include "dirtylog/workload.h"

#include <cstring>
#include <vector>

#include "base/units.h"

namespace xm {
namespace {

uint64_t Xorshift64(uint64_t& s) {
  s ^= s << 13;
  s ^= s >> 7;
  s ^= s << 17;
  return s;
}

// A small vocabulary of short words: pages of text-like bytes. LZ4 gets ~1.9x per page on
// them (bench/README.md: 0.53), about what it gets on prose; zstd -1 would get ~3.7x.
constexpr const char* kWords[] = {
    "migrate", "page",   "dirty", "round",  "xen",     "guest",  "memory", "vcpu",
    "the",     "of",     "and",   "to",     "kernel",  "buffer", "cache",  "write",
    "read",    "socket", "hash",  "frame",  "pool",    "host",   "policy", "cpu",
    "error",   "ok",     "info",  "debug",  "request", "reply",  "status", "time"};

void FillRandom(uint64_t pfn, std::byte* out, uint32_t page_size) {
  uint64_t s = 0x9E3779B97F4A7C15ull ^ (pfn * 0xBF58476D1CE4E5B9ull);
  if (s == 0) s = 1;
  for (uint32_t off = 0; off + 8 <= page_size; off += 8) {
    uint64_t v = Xorshift64(s);  // never 0 from a non-zero state
    std::memcpy(out + off, &v, 8);
  }
}

void FillText(uint64_t pfn, std::byte* out, uint32_t page_size) {
  uint64_t s = 0xD1B54A32D192ED03ull ^ (pfn * 0x94D049BB133111EBull);
  if (s == 0) s = 1;
  uint32_t off = 0;
  char* p = reinterpret_cast<char*>(out);
  while (off < page_size) {
    uint64_t r = Xorshift64(s);
    const char* w = kWords[r % (sizeof kWords / sizeof kWords[0])];
    size_t n = std::strlen(w);
    for (size_t i = 0; i < n && off < page_size; ++i) p[off++] = w[i];
    if (off < page_size) p[off++] = (r >> 32) % 11 == 0 ? '\n' : ' ';
  }
}

}  // namespace

std::string WorkloadSpec::ToString() const {
  return "ws=" + std::to_string(ws_bytes) + ",hot=" + std::to_string(hot_bytes) +
         ",rate=" + std::to_string(rate_bytes_per_s) + "/s,fill=" +
         (fill == Fill::kMixed ? "mixed" : "random");
}

Result<WorkloadSpec> ParseWorkload(std::string_view text, uint64_t memory_bytes) {
  WorkloadSpec spec;
  std::string_view rest = text;
  while (!rest.empty()) {
    size_t comma = rest.find(',');
    std::string_view item = rest.substr(0, comma);
    rest = comma == std::string_view::npos ? std::string_view{} : rest.substr(comma + 1);
    if (item.empty()) continue;
    size_t eq = item.find('=');
    if (eq == std::string_view::npos)
      return Error(Code::kInvalidArgument, "workload: '" + std::string(item) + "' is not key=value");
    std::string_view key = item.substr(0, eq), value = item.substr(eq + 1);
    if (key == "ws" || key == "hot") {
      auto r = ParseSizeOrPercent(value, memory_bytes);
      if (!r.ok()) return std::move(r).With("workload " + std::string(key)).status();
      if (*r > memory_bytes)
        return Error(Code::kInvalidArgument, "workload: " + std::string(key) + "=" + std::string(value) +
                                                 " is larger than guest memory (" + FormatBytes(memory_bytes) + ")");
      (key == "ws" ? spec.ws_bytes : spec.hot_bytes) = *r;
    } else if (key == "rate") {
      auto r = ParseRate(value);
      if (!r.ok()) return std::move(r).With("workload rate").status();
      spec.rate_bytes_per_s = *r;
    } else if (key == "fill") {
      if (value == "random") spec.fill = Fill::kRandom;
      else if (value == "mixed") spec.fill = Fill::kMixed;
      else return Error(Code::kInvalidArgument, "workload: fill must be random or mixed, not '" + std::string(value) + "'");
    } else {
      return Error(Code::kInvalidArgument, "workload: unknown key '" + std::string(key) + "' (known: ws, hot, rate, fill)");
    }
  }
  return spec;
}

void FillPage(Fill fill, uint64_t pfn, std::byte* out, uint32_t page_size) {
  if (fill == Fill::kRandom) return FillRandom(pfn, out, page_size);
  switch (pfn % 3) {
    case 0: std::memset(out, 0, page_size); return;
    case 1: return FillText(pfn, out, page_size);
    default: return FillRandom(pfn, out, page_size);
  }
}

}  // namespace xm
