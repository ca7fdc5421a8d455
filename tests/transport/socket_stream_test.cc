// SocketStream, Listener and address parsing over real loopback TCP.
#include "transport/socket_stream.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <gtest/gtest.h>

#include <numeric>
#include <thread>
#include <vector>

#include "tests/transport/stream_pair.h"

namespace xm {
namespace {

HostPort Hp(std::string_view text) {
  auto r = ParseHostPort(text);
  EXPECT_TRUE(r.ok()) << text << ": " << r.status().ToString();
  return r.ok() ? *r : HostPort{};
}

TEST(ParseHostPort, Forms) {
  HostPort a = Hp("127.0.0.1:7000");
  EXPECT_EQ(a.host, "127.0.0.1");
  EXPECT_EQ(a.port, 7000);
  HostPort b = Hp("[::1]:7001");
  EXPECT_EQ(b.host, "::1");
  EXPECT_EQ(b.port, 7001);
  HostPort c = Hp("dst.example:65535");
  EXPECT_EQ(c.host, "dst.example");
  EXPECT_EQ(c.port, 65535);
  HostPort d = Hp(":7000");
  EXPECT_EQ(d.host, "");
  EXPECT_EQ(d.port, 7000);
  HostPort e = Hp("[fe80::1%eth0]:0");
  EXPECT_EQ(e.host, "fe80::1%eth0");
  EXPECT_EQ(e.port, 0);
}

TEST(ParseHostPort, ToStringRoundTrips) {
  for (std::string_view s : {"127.0.0.1:7000", "[::1]:7001", "host:1", ":9"}) EXPECT_EQ(Hp(s).ToString(), s);
}

TEST(ParseHostPort, Rejects) {
  for (std::string_view bad : {"", "host", "127.0.0.1", "host:", "host:65536", "host:-1", "host:70x", "host: 70",
                               "host:99999999999", "[::1]", "[::1]7000", "[::1:7000", "[::1]:", "[::1]:port"}) {
    auto r = ParseHostPort(bad);
    EXPECT_FALSE(r.ok()) << "'" << bad << "' parsed as " << (r.ok() ? r->ToString() : "");
    if (!r.ok()) {
      EXPECT_EQ(r.status().code(), Code::kInvalidArgument);
    }
  }
}

struct Loopback {
  Listener listener;
  std::unique_ptr<SocketStream> client, server;
};

Loopback Connect(std::string_view at = "127.0.0.1:0") {
  Loopback l;
  auto lis = Listener::Bind(Hp(at));
  EXPECT_TRUE(lis.ok()) << lis.status().ToString();
  if (!lis.ok()) return l;
  l.listener = std::move(lis).value();
  EXPECT_NE(l.listener.port(), 0);
  HostPort to = Hp(at);
  to.port = l.listener.port();
  auto c = SocketStream::Connect(to, 5000);
  EXPECT_TRUE(c.ok()) << c.status().ToString();
  if (!c.ok()) return l;
  l.client = std::move(c).value();
  auto fd = l.listener.Accept(5000);
  EXPECT_TRUE(fd.ok()) << fd.status().ToString();
  if (fd.ok()) l.server = std::make_unique<SocketStream>(std::move(fd).value());
  return l;
}

TEST(SocketStream, ConnectAcceptSendRecv) {
  Loopback l = Connect();
  ASSERT_TRUE(l.client && l.server);
  EXPECT_EQ(l.client->kind(), "sockets");
  EXPECT_EQ(l.client->peer(), "127.0.0.1:" + std::to_string(l.listener.port()));
  EXPECT_EQ(l.server->peer().rfind("127.0.0.1:", 0), 0u) << l.server->peer();
  const char msg[] = "hello over tcp";
  ASSERT_TRUE(l.client->Send(msg, sizeof msg).ok());
  char got[sizeof msg] = {};
  ASSERT_TRUE(l.server->Recv(std::as_writable_bytes(std::span(got))).ok());
  EXPECT_STREQ(got, msg);
}

TEST(SocketStream, Ipv6Loopback) {
  {
    auto lis = Listener::Bind(Hp("[::1]:0"));  // released at the brace; Connect() binds its own
    if (!lis.ok()) GTEST_SKIP() << "no IPv6 loopback here: " << lis.status().ToString();
  }
  Loopback l = Connect("[::1]:0");
  ASSERT_TRUE(l.client && l.server);
  EXPECT_EQ(l.client->peer(), "[::1]:" + std::to_string(l.listener.port()));
}

TEST(SocketStream, GatheredSendLargerThanIovMax) {
  // 2000 pieces (over IOV_MAX) of 4 KiB: Send must resume mid-iovec correctly.
  constexpr size_t kPieces = 2000, kPiece = 4096;
  std::vector<uint8_t> data(kPieces * kPiece);
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<uint8_t>(i * 131 + (i >> 12));
  std::vector<iovec> iov;
  for (size_t i = 0; i < kPieces; ++i) iov.push_back({data.data() + i * kPiece, kPiece});
  iov.insert(iov.begin() + 7, iovec{nullptr, 0});  // empty pieces are allowed
  testing::StreamPair p;
  std::thread sender([&] { EXPECT_TRUE(p.a->Send(iov).ok()); });
  std::vector<uint8_t> got(data.size());
  ASSERT_TRUE(p.b->Recv(std::as_writable_bytes(std::span(got))).ok());
  sender.join();
  EXPECT_TRUE(got == data);
}

TEST(SocketStream, RecvTimeout) {
  Loopback l = Connect();
  ASSERT_TRUE(l.server);
  l.server->SetTimeoutMs(30);
  char b;
  Status st = l.server->Recv(std::as_writable_bytes(std::span(&b, 1)));
  EXPECT_EQ(st.code(), Code::kTimeout);
  EXPECT_NE(st.message().find("for 30 ms"), std::string::npos) << st.message();
}

TEST(SocketStream, SendTimeoutWhenPeerDoesNotRead) {
  testing::StreamPair p;
  p.a->SetTimeoutMs(30);
  std::vector<uint8_t> big(64 << 20);  // far more than any socket buffer
  Status st = p.a->Send(big.data(), big.size());
  EXPECT_EQ(st.code(), Code::kTimeout);
}

TEST(SocketStream, TimeoutIsPerProgressNotPerCall) {
  // A send far larger than the socket buffers completes while the peer keeps reading.
  testing::StreamPair p;
  p.a->SetTimeoutMs(5000);
  p.b->SetTimeoutMs(5000);
  std::vector<uint8_t> data(16 << 20);
  for (size_t i = 0; i < data.size(); i += 4096) data[i] = static_cast<uint8_t>(i >> 12);
  std::thread sender([&] { EXPECT_TRUE(p.a->Send(data.data(), data.size()).ok()); });
  std::vector<uint8_t> got(data.size());
  Status st = p.b->Recv(std::as_writable_bytes(std::span(got)));
  sender.join();
  ASSERT_TRUE(st.ok()) << st.ToString();
  EXPECT_TRUE(got == data);
}

TEST(SocketStream, CloseGivesAbortedThenProtocolMidway) {
  Loopback l = Connect();
  ASSERT_TRUE(l.client && l.server);
  ASSERT_TRUE(l.client->Send("abc", 3).ok());
  l.client.reset();
  char buf[8];
  Status st = l.server->Recv(std::as_writable_bytes(std::span(buf, 8)));
  EXPECT_EQ(st.code(), Code::kProtocol);
  EXPECT_NE(st.message().find("after 3 of 8 bytes"), std::string::npos) << st.message();
  st = l.server->Recv(std::as_writable_bytes(std::span(buf, 1)));
  EXPECT_EQ(st.code(), Code::kAborted);
}

TEST(SocketStream, ShutdownFromAnotherThreadUnblocksRecv) {
  testing::StreamPair p;
  std::thread t([&] { p.b->Shutdown(); });
  char b;
  Status st = p.b->Recv(std::as_writable_bytes(std::span(&b, 1)));  // no timeout: only Shutdown ends it
  t.join();
  EXPECT_EQ(st.code(), Code::kAborted);
}

TEST(SocketStream, SendToClosedPeerIsIoErrorNotSignal) {
  testing::StreamPair p;
  p.b.reset();
  Status st = p.a->Send("x", 1);
  EXPECT_EQ(st.code(), Code::kIo);  // MSG_NOSIGNAL: no SIGPIPE kills the test
}

TEST(Listener, AcceptTimeout) {
  auto lis = Listener::Bind(Hp("127.0.0.1:0"));
  ASSERT_TRUE(lis.ok());
  auto fd = lis->Accept(20);
  ASSERT_FALSE(fd.ok());
  EXPECT_EQ(fd.status().code(), Code::kTimeout);
}

TEST(Listener, BindBadAddress) {
  auto lis = Listener::Bind(Hp("256.1.1.1:0"));
  ASSERT_FALSE(lis.ok());
  EXPECT_EQ(lis.status().code(), Code::kIo);
}

TEST(SocketStream, ConnectRefused) {
  // A port bound but never listened on refuses connections, with no race against other processes.
  UniqueFd holder(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  ASSERT_TRUE(holder.valid());
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(holder.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0);
  socklen_t len = sizeof sa;
  ASSERT_EQ(::getsockname(holder.get(), reinterpret_cast<sockaddr*>(&sa), &len), 0);
  HostPort to{"127.0.0.1", ntohs(sa.sin_port)};
  auto c = SocketStream::Connect(to, 2000);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), Code::kIo);
  EXPECT_NE(c.status().message().find("connect 127.0.0.1:"), std::string::npos) << c.status().message();
}

TEST(SocketStream, ConnectUnresolvableHost) {
  auto c = SocketStream::Connect(HostPort{"no-such-host.invalid", 1}, 2000);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), Code::kIo);
  EXPECT_NE(c.status().message().find("resolve"), std::string::npos) << c.status().message();
}

}  // namespace
}  // namespace xm
