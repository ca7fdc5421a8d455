// MemoryStream: a Stream over a fixed byte buffer, for fuzzing record decoding
// without sockets. It honours the Stream contract on end of input exactly as
// SocketStream does (kAborted before the first byte of a Recv, kProtocol after),
// so code under test sees the same errors as with a peer that closed. Test-only.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <vector>

#include "transport/stream.h"

namespace xm::testing {

class MemoryStream final : public Stream {
 public:
  explicit MemoryStream(std::span<const uint8_t> input) : in_(input) {}

  // Sent bytes are kept so a test can look at what the code under test answered.
  Status Send(std::span<const iovec> iov) override {
    for (const iovec& v : iov) {
      const auto* p = static_cast<const uint8_t*>(v.iov_base);
      sent_.insert(sent_.end(), p, p + v.iov_len);
    }
    return {};
  }
  using Stream::Send;

  Status Recv(std::span<std::byte> buf) override {
    size_t n = 0;
    return RecvCounted(buf, &n);
  }
  Status RecvCounted(std::span<std::byte> buf, size_t* got) override {
    size_t& n = *got;
    n = std::min(buf.size(), in_.size());
    if (n) std::memcpy(buf.data(), in_.data(), n);
    in_ = in_.subspan(n);
    if (n == buf.size()) return {};
    if (n == 0) return Error(Code::kAborted, "connection closed by memory");
    return Error(Code::kProtocol, "connection closed by memory after " + std::to_string(n) + " of " +
                                      std::to_string(buf.size()) + " bytes");
  }
  void Shutdown() override { in_ = {}; }
  void SetTimeoutMs(int) override {}
  std::string_view kind() const override { return "memory"; }
  std::string peer() const override { return "memory"; }

  size_t remaining() const { return in_.size(); }
  const std::vector<uint8_t>& sent() const { return sent_; }

 private:
  std::span<const uint8_t> in_;
  std::vector<uint8_t> sent_;
};

}  // namespace xm::testing
