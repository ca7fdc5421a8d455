// Mapping: sole owner of an mmap()ed region; unmaps it on destruction.
#pragma once

#include <sys/mman.h>

#include <cstddef>
#include <utility>

#include "base/status.h"

namespace xm {

class Mapping {
 public:
  Mapping() = default;
  Mapping(void* addr, size_t len) : addr_(addr), len_(len) {}
  Mapping(const Mapping&) = delete;
  Mapping& operator=(const Mapping&) = delete;
  Mapping(Mapping&& o) noexcept : addr_(std::exchange(o.addr_, nullptr)), len_(std::exchange(o.len_, 0)) {}
  Mapping& operator=(Mapping&& o) noexcept {
    if (this != &o) {
      reset();
      addr_ = std::exchange(o.addr_, nullptr);
      len_ = std::exchange(o.len_, 0);
    }
    return *this;
  }
  ~Mapping() { reset(); }

  // Private anonymous zero-filled memory, e.g. guest RAM of the sim backend,
  // allocated page by page as it is first written (nothing is reserved or
  // faulted in ahead). No MADV_HUGEPAGE: 100x slower to first-touch on the
  // benchmark VM, whose balloon reclaims free 2 MiB blocks (DESIGN.md §3).
  static Result<Mapping> Anonymous(size_t len);

  std::byte* data() const { return static_cast<std::byte*>(addr_); }
  size_t size() const { return len_; }
  bool valid() const { return addr_ != nullptr; }
  void reset() {
    if (addr_) ::munmap(addr_, len_);
    addr_ = nullptr;
    len_ = 0;
  }

 private:
  void* addr_ = nullptr;
  size_t len_ = 0;
};

}  // namespace xm
