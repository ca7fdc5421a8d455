// DirtyBitmap: one bit per guest page frame, set when the page was written.
//
// Writers (a hypervisor log, the sim workload) may Set() concurrently with a reader
// that calls FetchAndClear(); bits are atomic words so no write is ever lost: a
// page written after the fetch shows up in the next one. Everything else
// (iteration, counting) is for a single owner.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "base/guest.h"

namespace xm {

class DirtyBitmap {
 public:
  explicit DirtyBitmap(uint64_t bits = 0) { Resize(bits); }
  DirtyBitmap(const DirtyBitmap&) = delete;
  DirtyBitmap& operator=(const DirtyBitmap&) = delete;
  DirtyBitmap(DirtyBitmap&&) = default;
  DirtyBitmap& operator=(DirtyBitmap&&) = default;

  void Resize(uint64_t bits);
  uint64_t size() const { return bits_; }
  size_t words() const { return nwords_; }

  // Release ordering: whoever fetches this bit also sees the write that preceded Set().
  void Set(uint64_t bit) {
    words_[bit >> 6].fetch_or(uint64_t{1} << (bit & 63), std::memory_order_release);
  }
  void Clear(uint64_t bit) { words_[bit >> 6].fetch_and(~(uint64_t{1} << (bit & 63)), std::memory_order_relaxed); }
  bool Test(uint64_t bit) const {
    return (words_[bit >> 6].load(std::memory_order_relaxed) >> (bit & 63)) & 1;
  }
  void SetAll();
  // Sets the bits of every range (e.g. a GuestShape's populated pfns).
  void SetRanges(std::span<const PfnRange> ranges);
  void ClearAll();
  // Atomically moves every set bit into `out` (OR), leaving this bitmap clear.
  void FetchAndClearInto(DirtyBitmap& out);
  // ORs raw words (e.g. from KVM_GET_DIRTY_LOG) into this bitmap at bit `first_bit` (multiple of 64).
  void OrWords(uint64_t first_bit, const uint64_t* src, size_t nwords);
  uint64_t Count() const;
  // Clears every bit that is set in `other` (same size).
  void AndNot(const DirtyBitmap& other);
  // Raw word `i` (bits i*64 .. i*64+63), for callers that walk regions.
  uint64_t Word(size_t i) const { return words_[i].load(std::memory_order_acquire); }

  // Calls fn(bit) for every set bit, in increasing order.
  template <typename Fn>
  void ForEach(Fn&& fn) const {
    for (size_t w = 0; w < nwords_; ++w) {
      uint64_t v = words_[w].load(std::memory_order_acquire);
      while (v) {
        int b = __builtin_ctzll(v);
        fn(static_cast<uint64_t>(w) * 64 + static_cast<uint64_t>(b));
        v &= v - 1;
      }
    }
  }

 private:
  uint64_t bits_ = 0;
  size_t nwords_ = 0;
  std::unique_ptr<std::atomic<uint64_t>[]> words_;
};

}  // namespace xm
