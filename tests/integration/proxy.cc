#include "tests/integration/proxy.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <stdexcept>

namespace xm::testing {
namespace {

sockaddr_in Loopback(uint16_t port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return a;
}

// Resets the connection, as a path that breaks does (not an orderly FIN: the
// receiver holds a guest whose source closed only --resume-window-closed).
// Disconnecting (connect to AF_UNSPEC) sends the RST and keeps the fd, which
// the destructor closes.
void Reset(int fd) {
  sockaddr unspec{};
  unspec.sa_family = AF_UNSPEC;
  ::connect(fd, &unspec, sizeof unspec);
}

}  // namespace

TcpProxy::TcpProxy(uint16_t target_port, Fault fault, uint64_t after_bytes)
    : target_(target_port), fault_(fault), after_(after_bytes) {
  listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  ::setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in a = Loopback(0);
  socklen_t len = sizeof a;
  if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(listen_fd_, 16) != 0 ||
      ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&a), &len) != 0)
    throw std::runtime_error("proxy: cannot listen");
  port_ = ntohs(a.sin_port);
  acceptor_ = std::thread([this] { AcceptLoop(); });
}

TcpProxy::~TcpProxy() {
  stop_.store(true);
  acceptor_.join();
  for (auto& t : threads_) t.join();
  for (int fd : fds_) ::close(fd);
  ::close(listen_fd_);
}

void TcpProxy::AcceptLoop() {
  while (!stop_.load()) {
    pollfd p{listen_fd_, POLLIN, 0};
    if (::poll(&p, 1, 50) <= 0) continue;
    int client = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (client < 0) continue;
    connections_.fetch_add(1);
    std::lock_guard lock(mu_);
    fds_.push_back(client);
    if (fault_ == Fault::kSilent && tripped_.load()) continue;  // accepted, then nothing, ever
    int server = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a = Loopback(target_);
    fds_.push_back(server);
    if (::connect(server, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
      Reset(client);  // as a path to a host with nothing listening
      continue;
    }
    threads_.emplace_back([this, client, server] { Pump(client, server); });
  }
}

void TcpProxy::Pump(int client, int server) {
  std::vector<char> buf(64 << 10);
  pollfd p[2] = {{client, POLLIN, 0}, {server, POLLIN, 0}};
  while (!stop_.load()) {
    if (fault_ == Fault::kSilent && tripped_.load()) {
      ::usleep(20000);  // hold both sockets open, read nothing, forward nothing
      continue;
    }
    if (::poll(p, 2, 50) <= 0) continue;
    for (int i = 0; i < 2; ++i) {
      if (!(p[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      const bool upstream = i == 0;  // client -> server
      size_t want = buf.size();
      bool trip_now = false;
      if (upstream && fault_ != Fault::kNone && !tripped_.load()) {
        const uint64_t before = forwarded_.load();
        if (before + want >= after_) {
          want = static_cast<size_t>(after_ - std::min(after_, before));
          trip_now = true;
        }
      }
      ssize_t n = want ? ::recv(p[i].fd, buf.data(), want, 0) : 0;
      if (want && n <= 0) {
        ::shutdown(p[1 - i].fd, SHUT_WR);  // pass the close on
        return;
      }
      for (ssize_t off = 0; off < n;) {
        ssize_t w = ::send(p[1 - i].fd, buf.data() + off, static_cast<size_t>(n - off), MSG_NOSIGNAL);
        if (w <= 0) return;
        off += w;
      }
      if (upstream) forwarded_.fetch_add(static_cast<uint64_t>(n));
      if (trip_now && forwarded_.load() >= after_) {
        tripped_.store(true);
        if (fault_ == Fault::kCut) {
          Reset(client);
          Reset(server);
          return;
        }
        break;
      }
    }
  }
}

}  // namespace xm::testing
