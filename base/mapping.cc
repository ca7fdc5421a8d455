#include "base/mapping.h"

#include <cerrno>
#include <string>

namespace xm {

Result<Mapping> Mapping::Anonymous(size_t len) {
  int flags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE;
  void* p = ::mmap(nullptr, len, PROT_READ | PROT_WRITE, flags, -1, 0);
  if (p == MAP_FAILED) return ErrnoError("mmap " + std::to_string(len) + " bytes", errno);
  return Mapping(p, len);
}

}  // namespace xm
