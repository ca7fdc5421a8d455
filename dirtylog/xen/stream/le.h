// Little/big-endian field packing for the Xen stream code: explicit byte
// order, no struct casts, bounds-checked reads.
#pragma once

#include <cstdint>
#include <cstring>
#include <span>
#include <vector>

namespace xm::xen {

inline void PutLe16(std::vector<uint8_t>& out, uint16_t v) {
  out.push_back(static_cast<uint8_t>(v));
  out.push_back(static_cast<uint8_t>(v >> 8));
}
inline void PutLe32(std::vector<uint8_t>& out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<uint8_t>(v >> (8 * i)));
}
inline void PutLe64(std::vector<uint8_t>& out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<uint8_t>(v >> (8 * i)));
}
inline void PutBe16(std::vector<uint8_t>& out, uint16_t v) {
  out.push_back(static_cast<uint8_t>(v >> 8));
  out.push_back(static_cast<uint8_t>(v));
}
inline void PutBe32(std::vector<uint8_t>& out, uint32_t v) {
  for (int i = 3; i >= 0; --i) out.push_back(static_cast<uint8_t>(v >> (8 * i)));
}
inline void PutBe64(std::vector<uint8_t>& out, uint64_t v) {
  for (int i = 7; i >= 0; --i) out.push_back(static_cast<uint8_t>(v >> (8 * i)));
}
inline void PutBytes(std::vector<uint8_t>& out, std::span<const uint8_t> b) { out.insert(out.end(), b.begin(), b.end()); }
inline void PadTo8(std::vector<uint8_t>& out) {
  while (out.size() % 8) out.push_back(0);
}

inline uint16_t GetLe16(const uint8_t* p) { return static_cast<uint16_t>(p[0] | (p[1] << 8)); }
inline uint32_t GetLe32(const uint8_t* p) {
  return static_cast<uint32_t>(p[0]) | static_cast<uint32_t>(p[1]) << 8 | static_cast<uint32_t>(p[2]) << 16 |
         static_cast<uint32_t>(p[3]) << 24;
}
inline uint64_t GetLe64(const uint8_t* p) { return GetLe32(p) | static_cast<uint64_t>(GetLe32(p + 4)) << 32; }
inline uint16_t GetBe16(const uint8_t* p) { return static_cast<uint16_t>(p[0] << 8 | p[1]); }
inline uint32_t GetBe32(const uint8_t* p) {
  return static_cast<uint32_t>(p[0]) << 24 | static_cast<uint32_t>(p[1]) << 16 | static_cast<uint32_t>(p[2]) << 8 |
         static_cast<uint32_t>(p[3]);
}
inline uint64_t GetBe64(const uint8_t* p) { return static_cast<uint64_t>(GetBe32(p)) << 32 | GetBe32(p + 4); }

// Writes a little-endian value at a fixed offset of a preallocated buffer.
inline void SetLe16(std::span<uint8_t> b, size_t off, uint16_t v) {
  b[off] = static_cast<uint8_t>(v);
  b[off + 1] = static_cast<uint8_t>(v >> 8);
}
inline void SetLe32(std::span<uint8_t> b, size_t off, uint32_t v) {
  for (int i = 0; i < 4; ++i) b[off + i] = static_cast<uint8_t>(v >> (8 * i));
}
inline void SetLe64(std::span<uint8_t> b, size_t off, uint64_t v) {
  for (int i = 0; i < 8; ++i) b[off + i] = static_cast<uint8_t>(v >> (8 * i));
}

// Sequential bounds-checked reader over a byte span.
class LeReader {
 public:
  explicit LeReader(std::span<const uint8_t> b) : b_(b) {}
  bool Has(size_t n) const { return b_.size() - pos_ >= n; }
  size_t pos() const { return pos_; }
  size_t left() const { return b_.size() - pos_; }
  bool U16(uint16_t& v) { return Take(2, [&](const uint8_t* p) { v = GetLe16(p); }); }
  bool U32(uint32_t& v) { return Take(4, [&](const uint8_t* p) { v = GetLe32(p); }); }
  bool U64(uint64_t& v) { return Take(8, [&](const uint8_t* p) { v = GetLe64(p); }); }
  bool Bytes(size_t n, std::vector<uint8_t>& out) {
    return Take(n, [&](const uint8_t* p) { out.assign(p, p + n); });
  }
  bool Skip(size_t n) {
    return Take(n, [](const uint8_t*) {});
  }

 private:
  template <typename F>
  bool Take(size_t n, F&& f) {
    if (!Has(n)) return false;
    f(b_.data() + pos_);
    pos_ += n;
    return true;
  }
  std::span<const uint8_t> b_;
  size_t pos_ = 0;
};

}  // namespace xm::xen
