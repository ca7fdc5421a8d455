// Two connected SocketStreams over an AF_UNIX socketpair: the cheapest real
// Stream pair for tests of framing (no TCP, no ports).
#pragma once

#include <sys/socket.h>

#include <gtest/gtest.h>

#include <memory>

#include "transport/socket_stream.h"

namespace xm::testing {

struct StreamPair {
  std::unique_ptr<SocketStream> a, b;
  StreamPair() {
    int fds[2] = {-1, -1};
    EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
    a = std::make_unique<SocketStream>(UniqueFd(fds[0]));
    b = std::make_unique<SocketStream>(UniqueFd(fds[1]));
  }
  // Closes side a, so b sees end of stream after whatever a already sent.
  void CloseA() { a.reset(); }
};

}  // namespace xm::testing
