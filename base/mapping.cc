#include "base/mapping.h"

#include <cerrno>
#include <cstdio>
#include <string>
#include <string_view>

#include "base/units.h"

namespace xm {

Result<Mapping> Mapping::Anonymous(size_t len) {
  int flags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE;
  void* p = ::mmap(nullptr, len, PROT_READ | PROT_WRITE, flags, -1, 0);
  if (p == MAP_FAILED) return ErrnoError("mmap " + std::to_string(len) + " bytes", errno);
  return Mapping(p, len);
}

HugePagePool ReadHugePagePool() {
  HugePagePool pool;
  std::FILE* f = std::fopen("/proc/meminfo", "re");
  if (!f) return pool;
  char line[256];
  while (std::fgets(line, sizeof line, f)) {
    char name[64];
    unsigned long long v = 0;
    if (std::sscanf(line, "%63[^:]: %llu", name, &v) != 2) continue;
    const std::string_view n(name);
    if (n == "Hugepagesize") pool.page_bytes = v * 1024;
    else if (n == "HugePages_Total") pool.total = v;
    else if (n == "HugePages_Free") pool.free = v;
    else if (n == "HugePages_Rsvd") pool.reserved = v;
  }
  std::fclose(f);
  if (std::FILE* o = std::fopen("/proc/sys/vm/nr_overcommit_hugepages", "re")) {
    unsigned long long v = 0;
    if (std::fscanf(o, "%llu", &v) == 1) pool.overcommit = v;
    std::fclose(o);
  }
  return pool;
}

Result<Mapping> Mapping::HugeTlb(size_t len) {
  const uint64_t huge = ReadHugePagePool().page_bytes;
  if (huge == 0) return Error(Code::kUnsupported, "huge pages: this kernel has no hugetlb pool (no Hugepagesize)");
  const size_t rounded = (len + huge - 1) / huge * huge;
  void* p = ::mmap(nullptr, rounded, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB, -1, 0);
  if (p == MAP_FAILED) {
    const int err = errno;
    if (err != ENOMEM) return ErrnoError("mmap " + std::to_string(rounded) + " bytes of huge pages", err);
    const HugePagePool pool = ReadHugePagePool();
    return Error(Code::kIncompatible,
                 "huge pages: " + FormatBytes(rounded) + " needs " + std::to_string(rounded / huge) + " pages of " +
                     FormatBytes(huge) + "; the kernel's pool has " + std::to_string(pool.available()) +
                     " free and unreserved of " + std::to_string(pool.total) +
                     " (raise /proc/sys/vm/nr_hugepages, or run without --hugepages)");
  }
  return Mapping(p, len, rounded);
}

}  // namespace xm
