// Little-endian body builders and bounds-checked parsers for record bodies.
//
// WireReader never reads past its span: every getter reports failure instead,
// so decoders of untrusted bytes stay simple and safe (see tests/fuzz).
#pragma once

#include <bit>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace xm {

static_assert(std::endian::native == std::endian::little, "xmotion assumes a little-endian host");

class WireWriter {
 public:
  template <typename T>
  void Put(T v) {
    static_assert(std::is_trivially_copyable_v<T>);
    const auto* p = reinterpret_cast<const uint8_t*>(&v);
    buf_.insert(buf_.end(), p, p + sizeof v);
  }
  void PutBytes(std::span<const uint8_t> b) { buf_.insert(buf_.end(), b.begin(), b.end()); }
  void PutBytes(const void* p, size_t n) {
    const auto* b = static_cast<const uint8_t*>(p);
    buf_.insert(buf_.end(), b, b + n);
  }
  void PutString(std::string_view s) {
    Put(static_cast<uint32_t>(s.size()));
    PutBytes(s.data(), s.size());
  }
  std::vector<uint8_t>& bytes() { return buf_; }
  std::vector<uint8_t> Take() { return std::move(buf_); }

 private:
  std::vector<uint8_t> buf_;
};

class WireReader {
 public:
  explicit WireReader(std::span<const uint8_t> in) : in_(in) {}

  template <typename T>
  bool Get(T& v) {
    static_assert(std::is_trivially_copyable_v<T>);
    if (in_.size() < sizeof v) return false;
    std::memcpy(&v, in_.data(), sizeof v);
    in_ = in_.subspan(sizeof v);
    return true;
  }
  bool GetBytes(void* out, size_t n) {
    if (in_.size() < n) return false;
    std::memcpy(out, in_.data(), n);
    in_ = in_.subspan(n);
    return true;
  }
  bool GetSpan(size_t n, std::span<const uint8_t>& out) {
    if (in_.size() < n) return false;
    out = in_.first(n);
    in_ = in_.subspan(n);
    return true;
  }
  // Strings longer than `max` are refused, so a hostile length cannot force a huge allocation.
  bool GetString(std::string& out, size_t max = 4096) {
    uint32_t n = 0;
    if (!Get(n) || n > max || in_.size() < n) return false;
    out.assign(reinterpret_cast<const char*>(in_.data()), n);
    in_ = in_.subspan(n);
    return true;
  }
  std::span<const uint8_t> rest() const { return in_; }
  bool empty() const { return in_.empty(); }
  size_t remaining() const { return in_.size(); }

 private:
  std::span<const uint8_t> in_;
};

}  // namespace xm
