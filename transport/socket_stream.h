// Plain TCP sockets: the portable transport, and the fallback wherever io_uring
// cannot be set up (old dom0 kernels, io_uring_disabled, seccomp).
#pragma once

#include <memory>
#include <string>

#include "base/unique_fd.h"
#include "transport/stream.h"

namespace xm {

struct HostPort {
  std::string host;
  uint16_t port = 0;
  std::string ToString() const;
};
// "127.0.0.1:7000", "[::1]:7000", "host:7000", ":7000" (any address).
Result<HostPort> ParseHostPort(std::string_view text);

// Applies the options every migration connection wants (TCP_NODELAY, large buffers).
void TuneSocket(int fd);

class SocketStream final : public Stream {
 public:
  explicit SocketStream(UniqueFd fd);
  static Result<std::unique_ptr<SocketStream>> Connect(const HostPort& to, int timeout_ms);

  Status Send(std::span<const iovec> iov) override;
  using Stream::Send;
  Status Recv(std::span<std::byte> buf) override;
  Status RecvCounted(std::span<std::byte> buf, size_t* got) override;
  void Shutdown() override;
  void InterruptRecv() override;
  void SetTimeoutMs(int ms) override { timeout_ms_ = ms; }
  std::string_view kind() const override { return "sockets"; }
  std::string peer() const override { return peer_; }
  int socket_fd() const override { return fd_.get(); }
  int fd() const { return fd_.get(); }
  UniqueFd TakeFd() { return std::move(fd_); }

 private:
  Status WaitFor(short events);
  UniqueFd fd_;
  int timeout_ms_ = 0;
  std::string peer_;
};

// A listening TCP socket; Accept hands back connected file descriptors.
class Listener {
 public:
  static Result<Listener> Bind(const HostPort& at);
  Result<UniqueFd> Accept(int timeout_ms);
  uint16_t port() const { return port_; }
  int fd() const { return fd_.get(); }

 private:
  UniqueFd fd_;
  uint16_t port_ = 0;
};

std::string PeerName(int fd);

}  // namespace xm
