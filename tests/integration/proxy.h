// TcpProxy: a test's network path between a real sender and receiver, which
// breaks on purpose once a number of bytes went from client to server:
//   kCut     closes that connection with a reset (both sides); later
//            connections are forwarded normally, so a reconnect gets through.
//   kSilent  stops forwarding in both directions and keeps every socket open,
//            later connections included: a dead path that never says so (no
//            FIN, no RST), only timeouts can notice.
// The proxy runs on its own threads until destroyed.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace xm::testing {

class TcpProxy {
 public:
  enum class Fault { kNone, kCut, kSilent };
  // Forwards 127.0.0.1:port() to 127.0.0.1:target_port.
  TcpProxy(uint16_t target_port, Fault fault, uint64_t after_bytes);
  ~TcpProxy();
  TcpProxy(const TcpProxy&) = delete;
  TcpProxy& operator=(const TcpProxy&) = delete;

  uint16_t port() const { return port_; }
  // Client-to-server bytes forwarded, all connections.
  uint64_t forwarded() const { return forwarded_.load(); }
  bool tripped() const { return tripped_.load(); }
  int connections() const { return connections_.load(); }

 private:
  void AcceptLoop();
  void Pump(int client, int server);

  const uint16_t target_;
  const Fault fault_;
  const uint64_t after_;
  int listen_fd_ = -1;
  uint16_t port_ = 0;
  std::atomic<bool> stop_{false}, tripped_{false};
  std::atomic<uint64_t> forwarded_{0};
  std::atomic<int> connections_{0};
  std::mutex mu_;
  std::vector<int> fds_;  // every socket, closed at destruction
  std::vector<std::thread> threads_;
  std::thread acceptor_;
};

}  // namespace xm::testing
