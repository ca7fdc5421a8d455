// Loopback TCP connections and checkable byte patterns for the io_uring transport tests.
#pragma once

#include <sys/socket.h>

#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "base/unique_fd.h"
#include "transport/socket_stream.h"

namespace xm::testing {

// Two connected ends of a 127.0.0.1 TCP connection.
inline std::pair<UniqueFd, UniqueFd> TcpPair() {
  auto listener = Listener::Bind(HostPort{"127.0.0.1", 0});
  EXPECT_TRUE(listener.ok()) << listener.status().ToString();
  auto client = SocketStream::Connect(HostPort{"127.0.0.1", listener->port()}, 5000);
  EXPECT_TRUE(client.ok()) << client.status().ToString();
  auto server = listener->Accept(5000);
  EXPECT_TRUE(server.ok()) << server.status().ToString();
  return {(*client)->TakeFd(), std::move(server).value()};
}

// Small kernel buffers so that a send cannot be absorbed at once and the
// kernel has to finish it piecemeal as the peer drains. (Not smaller: with a
// few KiB TCP on loopback stalls on delayed ACKs, sockets and io_uring alike.)
inline void ShrinkBuffers(int fd) {
  int size = 64 << 10;
  ::setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
  ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
}

// The byte at stream offset `pos` of a test stream.
inline std::byte PatternByte(uint64_t pos) {
  uint64_t x = (pos + 1) * 0x9E3779B97F4A7C15ull;
  return std::byte(x >> 56);
}

inline std::vector<std::byte> Pattern(uint64_t from, size_t len) {
  std::vector<std::byte> v(len);
  for (size_t i = 0; i < len; ++i) v[i] = PatternByte(from + i);
  return v;
}

// Index of the first byte of `got` that is not the pattern at `from`, or -1.
inline int64_t FirstMismatch(const std::vector<std::byte>& got, uint64_t from) {
  for (size_t i = 0; i < got.size(); ++i)
    if (got[i] != PatternByte(from + i)) return int64_t(i);
  return -1;
}

}  // namespace xm::testing
