#include "base/process_memory.h"

#include <sys/resource.h>

#include <cstdio>

#include <fstream>
#include <string>
#include <vector>

namespace xm {
namespace {

uint64_t StatusKiB(const char* key) {
  std::ifstream f("/proc/self/status");
  std::string line;
  const std::string k(key);
  while (std::getline(f, line))
    if (line.compare(0, k.size(), k) == 0) return std::stoull(line.substr(k.size())) * 1024;
  return 0;
}

}  // namespace

uint64_t ResidentBytes() { return StatusKiB("VmRSS:"); }
uint64_t PeakResidentBytes() { return StatusKiB("VmHWM:"); }

uint64_t ResidentBytesIn(const void* addr, size_t len) {
  if (!addr || len == 0) return 0;
  const uintptr_t lo = reinterpret_cast<uintptr_t>(addr), hi = lo + len;
  std::ifstream f("/proc/self/smaps");
  std::string line;
  bool inside = false;
  uint64_t kib = 0;
  while (std::getline(f, line)) {
    unsigned long start = 0, end = 0;
    // A mapping's header: "start-end perms offset dev inode [path]".
    if (std::sscanf(line.c_str(), "%lx-%lx ", &start, &end) == 2 && line.find('-') < line.find(' ')) {
      inside = start < hi && end > lo;
      continue;
    }
    if (inside && line.compare(0, 4, "Rss:") == 0) kib += std::stoull(line.substr(4));
  }
  return kib * 1024;
}

bool ResetPeakResident() {
  std::ofstream f("/proc/self/clear_refs");
  f << "5";
  f.flush();
  return static_cast<bool>(f);
}

uint64_t ResidentBeyond(const void* guest, size_t guest_len) {
  const uint64_t rss = ResidentBytes();
  const uint64_t in_guest = ResidentBytesIn(guest, guest_len);
  return rss > in_guest ? rss - in_guest : 0;
}

uint64_t OverheadSince(uint64_t baseline, const void* guest, size_t guest_len) {
  const uint64_t peak = PeakResidentBytes();
  const uint64_t in_guest = ResidentBytesIn(guest, guest_len);
  return peak > baseline + in_guest ? peak - baseline - in_guest : 0;
}

double ProcessCpuMs() {
  rusage u{};
  if (::getrusage(RUSAGE_SELF, &u) != 0) return 0;
  auto ms = [](const timeval& t) { return static_cast<double>(t.tv_sec) * 1e3 + static_cast<double>(t.tv_usec) / 1e3; };
  return ms(u.ru_utime) + ms(u.ru_stime);
}

}  // namespace xm
