// Where streams come from. A source dials one stream per connection it wants;
// a receiver accepts them. In production both are TCP (TcpDialer, TcpAcceptor);
// the in-process test harness hands out socketpairs instead, optionally behind
// FaultyStream, so a whole migration runs without processes or ports.
#pragma once

#include <memory>
#include <string>

#include "base/status.h"
#include "transport/socket_stream.h"
#include "transport/stream.h"
#include "transport/stream_factory.h"

namespace xm {

class Dialer {
 public:
  virtual ~Dialer() = default;
  // A new connected stream to the peer. *why_fallback: why the preferred
  // transport was not used (left empty when it was).
  virtual Result<std::unique_ptr<Stream>> Dial(std::string* why_fallback) = 0;
};

class Acceptor {
 public:
  virtual ~Acceptor() = default;
  // The next stream a peer opened; kTimeout after `timeout_ms` (0 = wait forever).
  virtual Result<std::unique_ptr<Stream>> Accept(int timeout_ms, std::string* why_fallback) = 0;
};

class TcpDialer final : public Dialer {
 public:
  TcpDialer(HostPort to, int connect_timeout_ms, TransportKind transport)
      : to_(std::move(to)), timeout_ms_(connect_timeout_ms), transport_(transport) {}
  Result<std::unique_ptr<Stream>> Dial(std::string* why_fallback) override {
    return ConnectStream(to_, timeout_ms_, transport_, why_fallback);
  }

 private:
  HostPort to_;
  int timeout_ms_;
  TransportKind transport_;
};

// Accepts on a listener the caller keeps alive.
class TcpAcceptor final : public Acceptor {
 public:
  TcpAcceptor(Listener& listener, TransportKind transport) : listener_(listener), transport_(transport) {}
  Result<std::unique_ptr<Stream>> Accept(int timeout_ms, std::string* why_fallback) override {
    XM_ASSIGN_OR_RETURN(UniqueFd fd, listener_.Accept(timeout_ms));
    return MakeStream(std::move(fd), transport_, why_fallback);
  }

 private:
  Listener& listener_;
  TransportKind transport_;
};

}  // namespace xm
