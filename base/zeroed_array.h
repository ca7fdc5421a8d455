// ZeroedArray<T>: n elements that read as zero, in anonymous memory the
// kernel zero-fills page by page on first write (Mapping::Anonymous).
//
// Why not std::vector<T>(n): that writes every zero itself, faulting in the
// whole array. The per-frame tables of a migration span the guest's gfn space
// up to its highest frame, and a PVH or HVM guest's special pages sit just
// below 4 GiB: a 128 MiB guest has ~1M frames, 32K of them memory. Filling
// the source's hash table and the destination's three tables touched ~22 MB
// (~5400 first-touch faults, ~0.1 ms each in the nested-Xen lab's PV dom0
// under TCG: most of the ~0.6 s between handshake and pre-copy). Here only
// the frames a migration writes are ever faulted in.
//
// REQUIRES: T trivially copyable and all-zero bytes a valid T (no constructor
// runs). Thread-safety: like a plain array; distinct elements may be written
// by different threads.
#pragma once

#include <cstddef>
#include <cstdint>
#include <new>
#include <span>
#include <type_traits>
#include <utility>

#include "base/mapping.h"

namespace xm {

template <class T>
class ZeroedArray {
  static_assert(std::is_trivially_copyable_v<T> && std::is_trivially_default_constructible_v<T>);

 public:
  ZeroedArray() = default;
  // Throws std::bad_alloc if the address space cannot be had, as a vector would.
  explicit ZeroedArray(size_t n) : n_(n) {
    if (n == 0) return;
    if (n > SIZE_MAX / sizeof(T)) throw std::bad_alloc();
    auto m = Mapping::Anonymous(n * sizeof(T));
    if (!m.ok()) throw std::bad_alloc();
    mem_ = std::move(m).value();
  }

  ZeroedArray(ZeroedArray&& o) noexcept : mem_(std::move(o.mem_)), n_(std::exchange(o.n_, 0)) {}
  ZeroedArray& operator=(ZeroedArray&& o) noexcept {
    mem_ = std::move(o.mem_);
    n_ = std::exchange(o.n_, 0);
    return *this;
  }

  T& operator[](size_t i) { return data()[i]; }
  const T& operator[](size_t i) const { return data()[i]; }
  T* data() { return reinterpret_cast<T*>(mem_.data()); }
  const T* data() const { return reinterpret_cast<const T*>(mem_.data()); }
  size_t size() const { return n_; }
  std::span<T> span() { return {data(), n_}; }
  std::span<const T> span() const { return {data(), n_}; }

 private:
  Mapping mem_;
  size_t n_ = 0;
};

}  // namespace xm
