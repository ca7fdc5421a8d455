#include "dirtylog/bitmap.h"

namespace xm {

void DirtyBitmap::Resize(uint64_t bits) {
  bits_ = bits;
  nwords_ = static_cast<size_t>((bits + 63) / 64);
  words_ = std::make_unique<std::atomic<uint64_t>[]>(nwords_);
  ClearAll();
}

void DirtyBitmap::SetAll() {
  for (size_t w = 0; w < nwords_; ++w) {
    uint64_t remaining = bits_ - static_cast<uint64_t>(w) * 64;
    uint64_t v = remaining >= 64 ? ~uint64_t{0} : ((uint64_t{1} << remaining) - 1);
    words_[w].store(v, std::memory_order_relaxed);
  }
}

void DirtyBitmap::SetRanges(std::span<const PfnRange> ranges) {
  for (const PfnRange& r : ranges)
    for (uint64_t p = r.first; p < r.first + r.count; ++p) Set(p);
}

void DirtyBitmap::ClearAll() {
  for (size_t w = 0; w < nwords_; ++w) words_[w].store(0, std::memory_order_relaxed);
}

void DirtyBitmap::FetchAndClearInto(DirtyBitmap& out) {
  for (size_t w = 0; w < nwords_ && w < out.nwords_; ++w) {
    if (words_[w].load(std::memory_order_relaxed) == 0) continue;
    uint64_t v = words_[w].exchange(0, std::memory_order_acq_rel);
    out.words_[w].fetch_or(v, std::memory_order_relaxed);
  }
}

void DirtyBitmap::OrWords(uint64_t first_bit, const uint64_t* src, size_t n) {
  size_t base = static_cast<size_t>(first_bit / 64);
  for (size_t i = 0; i < n && base + i < nwords_; ++i)
    if (src[i]) words_[base + i].fetch_or(src[i], std::memory_order_relaxed);
}

uint64_t DirtyBitmap::Count() const {
  uint64_t n = 0;
  for (size_t w = 0; w < nwords_; ++w)
    n += static_cast<uint64_t>(__builtin_popcountll(words_[w].load(std::memory_order_relaxed)));
  return n;
}

}  // namespace xm

namespace xm {

void DirtyBitmap::AndNot(const DirtyBitmap& other) {
  for (size_t w = 0; w < nwords_ && w < other.nwords_; ++w)
    words_[w].fetch_and(~other.Word(w), std::memory_order_relaxed);
}

}  // namespace xm
