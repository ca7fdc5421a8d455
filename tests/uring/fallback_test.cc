// MakeStream's choice of transport, and the fallback to plain sockets when
// io_uring cannot be set up, forced with XMOTION_DISABLE_IO_URING=1 the way a
// 4.19 kernel would refuse it. Data must move over the fallback as before.
#include "transport/stream_factory.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <thread>

#include "tests/uring/loopback.h"

namespace xm::testing {
namespace {

class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) { ::setenv(name, value, 1); }
  ~ScopedEnv() { ::unsetenv(name_); }

 private:
  const char* name_;
};

// Sends a few records each way and checks them.
void ExchangeData(Stream& x, Stream& y) {
  for (size_t n : {size_t(1), size_t(24), size_t(4096), size_t(3 << 20)}) {
    std::vector<std::byte> out = Pattern(n, n), in(n);
    std::thread t([&] { ASSERT_TRUE(x.Send(out.data(), n).ok()); });
    ASSERT_TRUE(y.Recv(in).ok());
    t.join();
    ASSERT_EQ(FirstMismatch(in, n), -1);
    std::vector<std::byte> back(n);
    std::thread u([&] { ASSERT_TRUE(y.Send(in.data(), n).ok()); });
    ASSERT_TRUE(x.Recv(back).ok());
    u.join();
    ASSERT_EQ(FirstMismatch(back, n), -1);
  }
}

TEST(Fallback, DisabledIoUringFallsBackToSocketsAndMovesData) {
  ScopedEnv env(kDisableUringEnv, "1");
  auto [a, b] = TcpPair();
  std::string why_a, why_b;
  auto x = MakeStream(std::move(a), TransportKind::kAuto, &why_a);
  auto y = MakeStream(std::move(b), TransportKind::kAuto, &why_b);
  ASSERT_TRUE(x.ok() && y.ok());
  EXPECT_EQ((*x)->kind(), "sockets");
  EXPECT_EQ((*y)->kind(), "sockets");
  EXPECT_NE(why_a.find("XMOTION_DISABLE_IO_URING"), std::string::npos) << why_a;
  EXPECT_NE(why_a.find("Function not implemented"), std::string::npos) << why_a;
  EXPECT_EQ(DescribeStream(**x), "sockets");
  ExchangeData(**x, **y);
}

TEST(Fallback, ExplicitIoUringFailsInsteadOfFallingBack) {
  ScopedEnv env(kDisableUringEnv, "1");
  auto [a, b] = TcpPair();
  std::string why;
  auto x = MakeStream(std::move(a), TransportKind::kUring, &why);
  ASSERT_FALSE(x.ok());
  EXPECT_EQ(x.status().code(), Code::kUnsupported);
  EXPECT_NE(x.status().message().find("io_uring"), std::string::npos);
}

TEST(Fallback, SocketsOnRequestIsNoFallback) {
  auto [a, b] = TcpPair();
  std::string why = "stale";
  auto x = MakeStream(std::move(a), TransportKind::kSockets, &why);
  auto y = MakeStream(std::move(b), TransportKind::kSockets, nullptr);
  ASSERT_TRUE(x.ok() && y.ok());
  EXPECT_EQ((*x)->kind(), "sockets");
  EXPECT_TRUE(why.empty());
  ExchangeData(**x, **y);
}

TEST(Fallback, EnvValueZeroDoesNotDisable) {
  ScopedEnv env(kDisableUringEnv, "0");
  if (!UringRing::Create(8).ok()) GTEST_SKIP() << "io_uring unavailable here";
  auto [a, b] = TcpPair();
  std::string why;
  auto x = MakeStream(std::move(a), TransportKind::kAuto, &why);
  ASSERT_TRUE(x.ok());
  EXPECT_EQ((*x)->kind(), "io_uring");
  EXPECT_TRUE(why.empty()) << why;
}

// Where io_uring works, auto picks it; one end on each transport still talks.
TEST(Fallback, AutoPicksIoUringAndInteroperatesWithSockets) {
  auto ring = UringRing::Create(8);
  if (!ring.ok()) GTEST_SKIP() << "io_uring unavailable here: " << ring.status().ToString();
  auto [a, b] = TcpPair();
  std::string why;
  auto x = MakeStream(std::move(a), TransportKind::kAuto, &why);
  auto y = MakeStream(std::move(b), TransportKind::kSockets, nullptr);
  ASSERT_TRUE(x.ok() && y.ok());
  EXPECT_EQ((*x)->kind(), "io_uring");
  EXPECT_TRUE(why.empty()) << why;
  EXPECT_EQ(DescribeStream(**x).rfind("io_uring: ", 0), 0u) << DescribeStream(**x);
  ExchangeData(**x, **y);
}

TEST(Fallback, ConnectStreamWrapsTheConnection) {
  auto listener = Listener::Bind(HostPort{"127.0.0.1", 0});
  ASSERT_TRUE(listener.ok());
  std::string why;
  auto x = ConnectStream(HostPort{"127.0.0.1", listener->port()}, 5000, TransportKind::kAuto, &why);
  ASSERT_TRUE(x.ok()) << x.status().ToString();
  auto fd = listener->Accept(5000);
  ASSERT_TRUE(fd.ok());
  auto y = MakeStream(std::move(fd).value(), TransportKind::kAuto, nullptr);
  ASSERT_TRUE(y.ok());
  ExchangeData(**x, **y);
}

TEST(Fallback, ParsesTransportNames) {
  EXPECT_EQ(ParseTransportKind("auto").value(), TransportKind::kAuto);
  EXPECT_EQ(ParseTransportKind("io_uring").value(), TransportKind::kUring);
  EXPECT_EQ(ParseTransportKind("uring").value(), TransportKind::kUring);
  EXPECT_EQ(ParseTransportKind("sockets").value(), TransportKind::kSockets);
  EXPECT_EQ(ParseTransportKind("tcp").status().code(), Code::kInvalidArgument);
  for (TransportKind k : {TransportKind::kAuto, TransportKind::kUring, TransportKind::kSockets})
    EXPECT_EQ(ParseTransportKind(TransportKindName(k)).value(), k);
}

}  // namespace
}  // namespace xm::testing
