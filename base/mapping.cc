#include "base/mapping.h"

#include <cerrno>
#include <string>

namespace xm {

Result<Mapping> Mapping::Anonymous(size_t len) {
  void* p = ::mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) return ErrnoError("mmap " + std::to_string(len) + " bytes", errno);
  return Mapping(p, len);
}

}  // namespace xm
