#include "transport/socket_stream.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <vector>

namespace xm {

std::string HostPort::ToString() const {
  if (host.find(':') != std::string::npos) return "[" + host + "]:" + std::to_string(port);
  return host + ":" + std::to_string(port);
}

Result<HostPort> ParseHostPort(std::string_view text) {
  HostPort hp;
  std::string_view port_text;
  if (!text.empty() && text.front() == '[') {
    size_t close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':')
      return Error(Code::kInvalidArgument, "bad address '" + std::string(text) + "': expected [v6addr]:port");
    hp.host = std::string(text.substr(1, close - 1));
    port_text = text.substr(close + 2);
  } else {
    size_t colon = text.rfind(':');
    if (colon == std::string_view::npos)
      return Error(Code::kInvalidArgument, "bad address '" + std::string(text) + "': expected HOST:PORT");
    hp.host = std::string(text.substr(0, colon));
    port_text = text.substr(colon + 1);
  }
  unsigned port = 0;
  auto [p, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (ec != std::errc() || p != port_text.data() + port_text.size() || port > 65535)
    return Error(Code::kInvalidArgument, "bad port in '" + std::string(text) + "'");
  hp.port = static_cast<uint16_t>(port);
  return hp;
}

void TuneSocket(int fd) {
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  int buf = 4 << 20;
  ::setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &buf, sizeof buf);
  ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buf, sizeof buf);
}

std::string PeerName(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (::getpeername(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return "?";
  char host[INET6_ADDRSTRLEN] = "?";
  uint16_t port = 0;
  if (ss.ss_family == AF_INET) {
    auto* a = reinterpret_cast<sockaddr_in*>(&ss);
    ::inet_ntop(AF_INET, &a->sin_addr, host, sizeof host);
    port = ntohs(a->sin_port);
  } else if (ss.ss_family == AF_INET6) {
    auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
    ::inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof host);
    port = ntohs(a->sin6_port);
  }
  return HostPort{host, port}.ToString();
}

namespace {

struct AddrInfoDeleter {
  void operator()(addrinfo* ai) const { ::freeaddrinfo(ai); }
};
using AddrInfoPtr = std::unique_ptr<addrinfo, AddrInfoDeleter>;

Result<AddrInfoPtr> Resolve(const HostPort& hp, bool passive) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  if (passive) hints.ai_flags = AI_PASSIVE;
  addrinfo* res = nullptr;
  std::string port = std::to_string(hp.port);
  int rc = ::getaddrinfo(hp.host.empty() ? nullptr : hp.host.c_str(), port.c_str(), &hints, &res);
  if (rc != 0)
    return Error(Code::kIo, "resolve " + hp.ToString() + ": " + ::gai_strerror(rc));
  return AddrInfoPtr(res);
}

}  // namespace

SocketStream::SocketStream(UniqueFd fd) : fd_(std::move(fd)), peer_(PeerName(fd_.get())) {}

Result<std::unique_ptr<SocketStream>> SocketStream::Connect(const HostPort& to, int timeout_ms) {
  XM_ASSIGN_OR_RETURN(AddrInfoPtr ai, Resolve(to, false));
  Status last = Error(Code::kIo, "connect " + to.ToString() + ": no address");
  for (addrinfo* a = ai.get(); a; a = a->ai_next) {
    UniqueFd fd(::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, a->ai_protocol));
    if (!fd.valid()) {
      last = ErrnoError("socket", errno);
      continue;
    }
    TuneSocket(fd.get());
    int rc = ::connect(fd.get(), a->ai_addr, a->ai_addrlen);
    if (rc != 0 && errno == EINPROGRESS) {
      pollfd p{fd.get(), POLLOUT, 0};
      int n = ::poll(&p, 1, timeout_ms > 0 ? timeout_ms : -1);
      if (n == 0) {
        last = Error(Code::kTimeout, "connect " + to.ToString() + ": timed out after " + std::to_string(timeout_ms) + " ms");
        continue;
      }
      int err = 0;
      socklen_t len = sizeof err;
      ::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &len);
      rc = err ? -1 : 0;
      errno = err;
    }
    if (rc != 0) {
      last = ErrnoError("connect " + to.ToString(), errno);
      continue;
    }
    int flags = ::fcntl(fd.get(), F_GETFL);
    ::fcntl(fd.get(), F_SETFL, flags & ~O_NONBLOCK);
    return std::make_unique<SocketStream>(std::move(fd));
  }
  return last;
}

Status SocketStream::WaitFor(short events) {
  if (timeout_ms_ <= 0) return {};
  pollfd p{fd_.get(), events, 0};
  int n;
  do n = ::poll(&p, 1, timeout_ms_);
  while (n < 0 && errno == EINTR);
  if (n == 0) return Error(Code::kTimeout, "no progress from peer " + peer_ + " for " + std::to_string(timeout_ms_) + " ms");
  if (n < 0) return ErrnoError("poll", errno);
  return {};
}

Status SocketStream::Send(std::span<const iovec> iov_in) {
  std::vector<iovec> iov(iov_in.begin(), iov_in.end());
  size_t i = 0;
  while (i < iov.size()) {
    if (iov[i].iov_len == 0) {
      ++i;
      continue;
    }
    XM_TRY(WaitFor(POLLOUT));
    msghdr msg{};
    msg.msg_iov = iov.data() + i;
    msg.msg_iovlen = std::min<size_t>(iov.size() - i, IOV_MAX);
    // With a timeout, send only what fits now and poll again: a blocking sendmsg
    // would wait for the whole buffer and never honour the timeout.
    ssize_t n = ::sendmsg(fd_.get(), &msg, MSG_NOSIGNAL | (timeout_ms_ > 0 ? MSG_DONTWAIT : 0));
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK) continue;
      return ErrnoError("send to " + peer_, errno);
    }
    size_t left = static_cast<size_t>(n);
    while (left > 0 && i < iov.size()) {
      if (left >= iov[i].iov_len) {
        left -= iov[i].iov_len;
        ++i;
      } else {
        iov[i].iov_base = static_cast<char*>(iov[i].iov_base) + left;
        iov[i].iov_len -= left;
        left = 0;
      }
    }
  }
  return {};
}

Status SocketStream::Recv(std::span<std::byte> buf) {
  size_t got = 0;
  return RecvCounted(buf, &got);
}

Status SocketStream::RecvCounted(std::span<std::byte> buf, size_t* got_out) {
  size_t& got = *got_out;
  got = 0;
  while (got < buf.size()) {
    XM_TRY(WaitFor(POLLIN));
    ssize_t n = ::recv(fd_.get(), buf.data() + got, buf.size() - got, timeout_ms_ > 0 ? MSG_DONTWAIT : 0);
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK) continue;
      return ErrnoError("receive from " + peer_, errno);
    }
    if (n == 0) {
      return ClosedByPeer(peer_, got, buf.size());
    }
    got += static_cast<size_t>(n);
  }
  return {};
}

void SocketStream::Shutdown() {
  if (fd_.valid()) ::shutdown(fd_.get(), SHUT_RDWR);
}

void SocketStream::InterruptRecv() {
  if (fd_.valid()) ::shutdown(fd_.get(), SHUT_RD);
}

Result<Listener> Listener::Bind(const HostPort& at) {
  XM_ASSIGN_OR_RETURN(AddrInfoPtr ai, Resolve(at, true));
  Status last = Error(Code::kIo, "listen " + at.ToString() + ": no address");
  for (addrinfo* a = ai.get(); a; a = a->ai_next) {
    UniqueFd fd(::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol));
    if (!fd.valid()) {
      last = ErrnoError("socket", errno);
      continue;
    }
    int one = 1;
    ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (::bind(fd.get(), a->ai_addr, a->ai_addrlen) != 0) {
      last = ErrnoError("bind " + at.ToString(), errno);
      continue;
    }
    if (::listen(fd.get(), 64) != 0) {
      last = ErrnoError("listen " + at.ToString(), errno);
      continue;
    }
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    ::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&ss), &len);
    Listener l;
    l.port_ = ss.ss_family == AF_INET6 ? ntohs(reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port)
                                       : ntohs(reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
    l.fd_ = std::move(fd);
    return l;
  }
  return last;
}

Result<UniqueFd> Listener::Accept(int timeout_ms) {
  for (;;) {
    if (timeout_ms > 0) {
      pollfd p{fd_.get(), POLLIN, 0};
      int n = ::poll(&p, 1, timeout_ms);
      if (n == 0) return Error(Code::kTimeout, "no connection within " + std::to_string(timeout_ms) + " ms");
      if (n < 0 && errno != EINTR) return ErrnoError("poll", errno);
      if (n < 0) continue;
    }
    int fd = ::accept4(fd_.get(), nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      return ErrnoError("accept", errno);
    }
    TuneSocket(fd);
    return UniqueFd(fd);
  }
}

}  // namespace xm
