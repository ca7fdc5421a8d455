#include "base/process_memory.h"

#include <sys/mman.h>
#include <unistd.h>

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
  const size_t page = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
  if (!addr || len == 0) return 0;
  std::vector<unsigned char> vec((len + page - 1) / page);
  if (::mincore(const_cast<void*>(addr), len, vec.data()) != 0) return 0;
  uint64_t n = 0;
  for (unsigned char v : vec) n += v & 1;
  return n * page;
}

uint64_t OverheadSince(uint64_t baseline, const void* guest, size_t guest_len) {
  const uint64_t peak = PeakResidentBytes();
  const uint64_t in_guest = ResidentBytesIn(guest, guest_len);
  return peak > baseline + in_guest ? peak - baseline - in_guest : 0;
}

}  // namespace xm
