// Mapping: sole owner of an mmap()ed region; unmaps it on destruction.
#pragma once

#include <sys/mman.h>

#include <cstddef>
#include <utility>

#include "base/status.h"

namespace xm {

// The kernel's hugetlb pool of the default huge page size (/proc/meminfo;
// zeros where it cannot be read).
struct HugePagePool {
  uint64_t page_bytes = 0;  // Hugepagesize (0: no hugetlb support)
  uint64_t total = 0, free = 0, reserved = 0;  // pages
  uint64_t overcommit = 0;  // vm.nr_overcommit_hugepages: surplus pages the kernel may add on demand
  // Pages a new mapping can still reserve.
  uint64_t available() const { return free > reserved ? free - reserved : 0; }
};
HugePagePool ReadHugePagePool();

class Mapping {
 public:
  Mapping() = default;
  Mapping(void* addr, size_t len) : addr_(addr), len_(len), mapped_(len) {}
  // `len` usable bytes of a mapping of `mapped` (a hugetlb mapping is unmapped in whole huge pages).
  Mapping(void* addr, size_t len, size_t mapped) : addr_(addr), len_(len), mapped_(mapped) {}
  Mapping(const Mapping&) = delete;
  Mapping& operator=(const Mapping&) = delete;
  Mapping(Mapping&& o) noexcept
      : addr_(std::exchange(o.addr_, nullptr)), len_(std::exchange(o.len_, 0)), mapped_(std::exchange(o.mapped_, 0)) {}
  Mapping& operator=(Mapping&& o) noexcept {
    if (this != &o) {
      reset();
      addr_ = std::exchange(o.addr_, nullptr);
      len_ = std::exchange(o.len_, 0);
      mapped_ = std::exchange(o.mapped_, 0);
    }
    return *this;
  }
  ~Mapping() { reset(); }

  // Private anonymous zero-filled memory, e.g. guest RAM of the sim backend,
  // allocated page by page as it is first written (nothing is reserved or
  // faulted in ahead). No MADV_HUGEPAGE: 100x slower to first-touch on the
  // benchmark VM, whose balloon reclaims free 2 MiB blocks (DESIGN.md §3).
  static Result<Mapping> Anonymous(size_t len);
  // Private memory from the kernel's hugetlb pool (default huge page size, `len`
  // rounded up to it), like QEMU's hugepage memory backends: first touch costs
  // a page clear per huge page instead of an allocation per 4 KiB. size() is
  // `len`; the mapping is rounded up to whole huge pages. The pages
  // are reserved at mmap, so a pool too small fails here with its figures
  // (kIncompatible), never later and never by falling back to 4 KiB pages.
  static Result<Mapping> HugeTlb(size_t len);

  std::byte* data() const { return static_cast<std::byte*>(addr_); }
  size_t size() const { return len_; }
  bool valid() const { return addr_ != nullptr; }
  void reset() {
    if (addr_) ::munmap(addr_, mapped_);
    addr_ = nullptr;
    len_ = 0;
    mapped_ = 0;
  }

 private:
  void* addr_ = nullptr;
  size_t len_ = 0;
  size_t mapped_ = 0;
};

}  // namespace xm
