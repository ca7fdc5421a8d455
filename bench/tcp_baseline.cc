// tcp_baseline: raw loopback TCP throughput, the yardstick the migration
// targets of issue 3 are ratios against ("effective rate >= 85% of raw
// loopback TCP measured in the same run").
//
// One thread sends N bytes over 127.0.0.1 with plain blocking send() from one
// large buffer; a receiver (a forked process by default, as xmotion's receiver
// is, or a thread) drains it with plain recv() into a large buffer and answers
// with one byte once it has everything. The time is from connect to that answer,
// so bytes still queued in socket buffers are not counted as delivered. No
// framing, hashing or page handling: this is the best one TCP connection on this
// machine does right now, which is the ceiling for a 1-stream migration.
//
//   tcp_baseline [--bytes 2G] [--buffer 1M] [--sockbuf 0] [--receiver process|thread] [--json]
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "base/unique_fd.h"
#include "base/units.h"

namespace xm {
namespace {

struct Options {
  uint64_t bytes = 2ull << 30;
  uint64_t buffer = 1ull << 20;
  uint64_t sockbuf = 0;  // 0 = leave the kernel's autotuning alone
  bool fork_receiver = true;
  bool json = false;
};

[[noreturn]] void Die(const std::string& what) {
  std::fprintf(stderr, "tcp_baseline: %s: %s\n", what.c_str(), std::strerror(errno));
  std::exit(1);
}

void SetBuffers(int fd, uint64_t sockbuf) {
  if (sockbuf == 0) return;
  int v = static_cast<int>(sockbuf);
  if (::setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &v, sizeof v) != 0 ||
      ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &v, sizeof v) != 0)
    Die("setsockopt SO_SNDBUF/SO_RCVBUF");
}

// Drains `total` bytes from `fd`, then acknowledges with one byte.
int Drain(int fd, uint64_t total, uint64_t buffer) {
  std::vector<char> buf(buffer);
  uint64_t got = 0;
  while (got < total) {
    ssize_t n = ::recv(fd, buf.data(), buf.size(), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      std::fprintf(stderr, "tcp_baseline: receiver: connection ended after %llu of %llu bytes\n",
                   static_cast<unsigned long long>(got), static_cast<unsigned long long>(total));
      return 1;
    }
    got += static_cast<uint64_t>(n);
  }
  char ack = 1;
  return ::send(fd, &ack, 1, MSG_NOSIGNAL) == 1 ? 0 : 1;
}

Result<Options> Parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    auto value = [&]() -> Result<std::string_view> {
      if (i + 1 >= argc) return Error(Code::kInvalidArgument, std::string(a) + " needs a value");
      return std::string_view(argv[++i]);
    };
    if (a == "--bytes" || a == "--buffer" || a == "--sockbuf") {
      XM_ASSIGN_OR_RETURN(std::string_view v, value());
      auto size = ParseSize(v);
      if (!size.ok()) return std::move(size).With(std::string(a)).status();
      (a == "--bytes" ? o.bytes : a == "--buffer" ? o.buffer : o.sockbuf) = *size;
    } else if (a == "--receiver") {
      XM_ASSIGN_OR_RETURN(std::string_view v, value());
      if (v != "process" && v != "thread") return Error(Code::kInvalidArgument, "--receiver is process or thread");
      o.fork_receiver = v == "process";
    } else if (a == "--json") {
      o.json = true;
    } else {
      return Error(Code::kInvalidArgument,
                   "usage: tcp_baseline [--bytes 2G] [--buffer 1M] [--sockbuf 0] [--receiver process|thread] [--json]");
    }
  }
  if (o.bytes == 0 || o.buffer == 0) return Error(Code::kInvalidArgument, "--bytes and --buffer must be > 0");
  return o;
}

int Run(const Options& o) {
  UniqueFd listener(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!listener.valid()) Die("socket");
  SetBuffers(listener.get(), o.sockbuf);  // inherited by the accepted socket
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  if (::bind(listener.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::listen(listener.get(), 1) != 0 ||
      ::getsockname(listener.get(), reinterpret_cast<sockaddr*>(&addr), &len) != 0)
    Die("bind/listen on 127.0.0.1");

  // The receiver accepts on its own side of the fork/thread, like a real peer.
  pid_t child = -1;
  std::thread receiver;
  int receiver_rc = 0;
  auto receive = [&listener, &o]() {
    UniqueFd conn(::accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
    if (!conn.valid()) Die("accept");
    return Drain(conn.get(), o.bytes, o.buffer);
  };
  if (o.fork_receiver) {
    child = ::fork();
    if (child < 0) Die("fork");
    if (child == 0) std::_Exit(receive());
  } else {
    receiver = std::thread([&] { receiver_rc = receive(); });
  }

  std::vector<char> buf(o.buffer);
  for (size_t i = 0; i < buf.size(); ++i) buf[i] = static_cast<char>(i * 131 + (i >> 12));
  const auto t0 = std::chrono::steady_clock::now();
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) Die("socket");
  SetBuffers(fd.get(), o.sockbuf);
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) Die("connect");
  uint64_t sent = 0;
  while (sent < o.bytes) {
    size_t n = static_cast<size_t>(std::min<uint64_t>(buf.size(), o.bytes - sent));
    ssize_t w = ::send(fd.get(), buf.data(), n, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) Die("send");
    sent += static_cast<uint64_t>(w);
  }
  char ack = 0;
  ssize_t r;
  while ((r = ::recv(fd.get(), &ack, 1, 0)) < 0 && errno == EINTR) {
  }
  const auto t1 = std::chrono::steady_clock::now();
  if (r != 1) Die("waiting for the receiver's acknowledgement");

  if (o.fork_receiver) {
    int status = 0;
    if (::waitpid(child, &status, 0) != child) Die("waitpid");
    receiver_rc = WIFEXITED(status) ? WEXITSTATUS(status) : 1;
  } else {
    receiver.join();
  }
  if (receiver_rc != 0) return 1;

  const double s = std::chrono::duration<double>(t1 - t0).count();
  const double gbps = double(o.bytes) / s / 1e9;
  if (o.json) {
    std::printf(
        "{\"bytes\": %llu, \"seconds\": %.6f, \"bytes_per_s\": %.0f, \"gb_per_s\": %.4f, \"buffer\": %llu, "
        "\"sockbuf\": %llu, \"receiver\": \"%s\"}\n",
        static_cast<unsigned long long>(o.bytes), s, double(o.bytes) / s, gbps,
        static_cast<unsigned long long>(o.buffer), static_cast<unsigned long long>(o.sockbuf),
        o.fork_receiver ? "process" : "thread");
  } else {
    std::printf("loopback TCP, 1 connection, %s receiver: %s in %.3f s = %.3f GB/s (%.3f GiB/s)\n",
                o.fork_receiver ? "process" : "thread", FormatBytes(o.bytes).c_str(), s, gbps,
                double(o.bytes) / s / double(1ull << 30));
  }
  return 0;
}

}  // namespace
}  // namespace xm

int main(int argc, char** argv) {
  auto o = xm::Parse(argc, argv);
  if (!o.ok()) {
    std::fprintf(stderr, "tcp_baseline: %s\n", o.status().ToString().c_str());
    return 2;
  }
  return xm::Run(*o);
}
