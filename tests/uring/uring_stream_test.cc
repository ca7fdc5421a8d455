// UringStream over loopback TCP: gathered sends past IOV_MAX with small kernel
// buffers, exact receives, end-of-stream and timeout error codes, Shutdown from
// another thread, and interop with SocketStream on the other end.
#include "transport/uring_stream.h"

#include <gtest/gtest.h>
#include <sys/socket.h>

#include <chrono>
#include <random>
#include <thread>

#include "tests/uring/uring_fixture.h"

namespace xm::testing {
namespace {

using std::chrono::milliseconds;

// Reads `total` bytes from `fd` with plain recv in chunks of random size.
std::vector<std::byte> DrainSocket(int fd, size_t total, unsigned seed, bool slow) {
  std::vector<std::byte> got(total);
  std::mt19937 rng(seed);
  size_t pos = 0;
  while (pos < total) {
    size_t want = std::min<size_t>(total - pos, 1 + rng() % 70000);
    ssize_t n = ::recv(fd, got.data() + pos, want, 0);
    if (n <= 0) break;
    pos += size_t(n);
    if (slow && rng() % 8 == 0) std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  got.resize(pos);
  return got;
}

struct Gather {
  std::vector<std::byte> mem;
  std::vector<iovec> iov;
  std::vector<std::byte> expected;
};

// `count` iovecs of random length with gaps between them (so none merge).
Gather MakeGather(size_t count, size_t max_len, unsigned seed) {
  std::mt19937 rng(seed);
  Gather g;
  std::vector<std::pair<size_t, size_t>> spans;
  size_t off = 0;
  for (size_t i = 0; i < count; ++i) {
    size_t len = 1 + rng() % max_len;
    spans.push_back({off, len});
    off += len + 1 + rng() % 7;
  }
  g.mem = Pattern(12345, off);
  for (auto [o, l] : spans) {
    g.iov.push_back(iovec{g.mem.data() + o, l});
    g.expected.insert(g.expected.end(), g.mem.begin() + o, g.mem.begin() + o + l);
  }
  return g;
}

TEST_F(UringTest, GatheredSendPastIovMaxArrivesIntact) {
  auto [a, b] = TcpPair();
  auto s = Wrap(std::move(a));
  Gather g = MakeGather(5000, 3000, 1);  // > IOV_MAX (1024)
  std::vector<std::byte> got;
  std::thread reader([&, fd = b.get()] { got = DrainSocket(fd, g.expected.size(), 2, false); });
  Status st = s->Send(g.iov);
  reader.join();
  ASSERT_TRUE(st.ok()) << st.ToString();
  ASSERT_EQ(got.size(), g.expected.size());
  EXPECT_TRUE(got == g.expected);
  EXPECT_EQ(s->stats().bytes_sent, g.expected.size());
  EXPECT_GE(s->stats().send_sqes, 5u);  // cut at 1024 iovecs per sendmsg
}

// Tiny kernel buffers, many small ops in one linked chain and a reader that
// dawdles: the kernel must finish every send piecemeal, in order.
TEST_F(UringTest, LinkedChainWithTinyBuffersStaysInOrder) {
  auto [a, b] = TcpPair();
  ShrinkBuffers(a.get());
  ShrinkBuffers(b.get());
  UringOptions o;
  o.max_op_bytes = 16 << 10;
  o.max_inflight = 16;
  auto s = Wrap(std::move(a), o);
  Gather g = MakeGather(3000, 2000, 3);
  std::vector<std::byte> got;
  std::thread reader([&, fd = b.get()] { got = DrainSocket(fd, g.expected.size() * 3, 4, true); });
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(s->Send(g.iov).ok());
  reader.join();
  ASSERT_EQ(got.size(), g.expected.size() * 3);
  for (int i = 0; i < 3; ++i)
    EXPECT_TRUE(std::equal(g.expected.begin(), g.expected.end(), got.begin() + i * g.expected.size())) << i;
  if (caps_.ordered_links) {
    EXPECT_GT(s->stats().send_sqes, s->stats().chains);  // chains really held several sends
  }
}

TEST_F(UringTest, ExactReceivesOfEverySize) {
  auto [a, b] = TcpPair();
  auto r = Wrap(std::move(b));
  constexpr size_t kTotal = 6 << 20;
  std::thread writer([fd = a.get()] {
    SocketStream w{UniqueFd(::dup(fd))};
    std::mt19937 rng(5);
    std::vector<std::byte> all = Pattern(0, kTotal);
    size_t pos = 0;
    while (pos < kTotal) {
      size_t n = std::min<size_t>(kTotal - pos, 1 + rng() % 50000);
      ASSERT_TRUE(w.Send(all.data() + pos, n).ok());
      pos += n;
    }
  });
  std::mt19937 rng(6);
  size_t pos = 0;
  while (pos < kTotal) {
    size_t n;
    switch (rng() % 3) {
      case 0: n = 1 + rng() % 64; break;       // record headers: read-ahead path
      case 1: n = 1 + rng() % 60000; break;    // below the direct threshold
      default: n = 64000 + rng() % 400000;     // large bodies: straight into the caller's buffer
    }
    n = std::min(n, kTotal - pos);
    std::vector<std::byte> buf(n);
    Status st = r->Recv(buf);
    ASSERT_TRUE(st.ok()) << st.ToString();
    ASSERT_EQ(FirstMismatch(buf, pos), -1) << "at stream offset " << pos;
    pos += n;
  }
  writer.join();
  EXPECT_EQ(r->stats().bytes_received, kTotal);
}

TEST_F(UringTest, BothEndsOnIoUringTalkBothWays) {
  auto [a, b] = TcpPair();
  auto x = Wrap(std::move(a));
  auto y = Wrap(std::move(b));
  for (int round = 0; round < 20; ++round) {
    size_t n = 1 + size_t(round) * 100003;
    std::vector<std::byte> out = Pattern(round, n), in(n);
    std::thread t([&] { ASSERT_TRUE(x->Send(out.data(), n).ok()); });
    ASSERT_TRUE(y->Recv(in).ok());
    t.join();
    ASSERT_TRUE(in == out);
    // and back, small
    std::vector<std::byte> ack = Pattern(round, 24), ack_in(24);
    ASSERT_TRUE(y->Send(ack.data(), 24).ok());
    ASSERT_TRUE(x->Recv(ack_in).ok());
    ASSERT_TRUE(ack_in == ack);
  }
}

TEST_F(UringTest, PeerClosesBeforeFirstByteIsAborted) {
  auto [a, b] = TcpPair();
  auto r = Wrap(std::move(b));
  a.reset();
  std::vector<std::byte> buf(100);
  Status st = r->Recv(buf);
  EXPECT_EQ(st.code(), Code::kAborted) << st.ToString();
  EXPECT_NE(st.message().find("connection closed"), std::string::npos) << st.message();
}

TEST_F(UringTest, PeerClosesMidRecordIsProtocolError) {
  auto [a, b] = TcpPair();
  auto r = Wrap(std::move(b));
  std::vector<std::byte> ten = Pattern(0, 10);
  ASSERT_EQ(::send(a.get(), ten.data(), 10, 0), 10);
  a.reset();
  std::vector<std::byte> buf(100);
  Status st = r->Recv(buf);
  EXPECT_EQ(st.code(), Code::kProtocol) << st.ToString();
  EXPECT_NE(st.message().find("after 10 of 100 bytes"), std::string::npos) << st.message();
}

TEST_F(UringTest, PeerClosesMidLargeRecordIsProtocolError) {
  auto [a, b] = TcpPair();
  auto r = Wrap(std::move(b));
  std::vector<std::byte> part = Pattern(0, 300000);
  std::thread w([&, fd = a.get()] { SocketStream s{UniqueFd(::dup(fd))}; ASSERT_TRUE(s.Send(part.data(), part.size()).ok()); });
  w.join();
  a.reset();
  std::vector<std::byte> buf(1 << 20);  // direct path with MSG_WAITALL
  Status st = r->Recv(buf);
  EXPECT_EQ(st.code(), Code::kProtocol) << st.ToString();
  EXPECT_NE(st.message().find("after 300000 of 1048576 bytes"), std::string::npos) << st.message();
}

// The read-ahead buffer holds bytes past the first record; the count in the
// error is still that of the record being read.
TEST_F(UringTest, CloseAfterBufferedBytesCountsThem) {
  auto [a, b] = TcpPair();
  auto r = Wrap(std::move(b));
  std::vector<std::byte> thirty = Pattern(0, 30);
  ASSERT_EQ(::send(a.get(), thirty.data(), 30, 0), 30);
  a.reset();
  std::vector<std::byte> first(20), second(100);
  ASSERT_TRUE(r->Recv(first).ok());
  EXPECT_EQ(FirstMismatch(first, 0), -1);
  Status st = r->Recv(second);
  EXPECT_EQ(st.code(), Code::kProtocol) << st.ToString();
  EXPECT_NE(st.message().find("after 10 of 100 bytes"), std::string::npos) << st.message();
}

TEST_F(UringTest, RecvTimesOutAndStaysUsable) {
  auto [a, b] = TcpPair();
  auto r = Wrap(std::move(b));
  r->SetTimeoutMs(100);
  std::vector<std::byte> buf(16);
  Status st = r->Recv(buf);
  EXPECT_EQ(st.code(), Code::kTimeout) << st.ToString();
  std::vector<std::byte> big(1 << 20);  // the direct path times out too
  st = r->Recv(big);
  EXPECT_EQ(st.code(), Code::kTimeout) << st.ToString();
  // Nothing was consumed: the next record still arrives whole.
  std::vector<std::byte> data = Pattern(0, 16);
  ASSERT_EQ(::send(a.get(), data.data(), 16, 0), 16);
  st = r->Recv(buf);
  ASSERT_TRUE(st.ok()) << st.ToString();
  EXPECT_EQ(FirstMismatch(buf, 0), -1);
}

TEST_F(UringTest, SendTimesOutWhenPeerStopsReading) {
  auto [a, b] = TcpPair();
  ShrinkBuffers(a.get());
  ShrinkBuffers(b.get());
  auto s = Wrap(std::move(a));
  s->SetTimeoutMs(200);
  std::vector<std::byte> big(32 << 20);
  Status st = s->Send(big.data(), big.size());
  EXPECT_EQ(st.code(), Code::kTimeout) << st.ToString();
  // Part of the bytes went out: the stream cannot be used for framing any more.
  EXPECT_EQ(s->Send(big.data(), 10).code(), Code::kTimeout);
}

TEST_F(UringTest, ShutdownFromAnotherThreadUnblocksRecv) {
  auto [a, b] = TcpPair();
  auto r = Wrap(std::move(b));
  std::thread killer([&] {
    std::this_thread::sleep_for(milliseconds(50));
    r->Shutdown();
  });
  std::vector<std::byte> buf(100);
  Status st = r->Recv(buf);
  killer.join();
  EXPECT_EQ(st.code(), Code::kAborted) << st.ToString();
  EXPECT_NE(st.message().find("shut down"), std::string::npos) << st.message();
}

TEST_F(UringTest, ShutdownFromAnotherThreadUnblocksSend) {
  auto [a, b] = TcpPair();
  ShrinkBuffers(a.get());
  ShrinkBuffers(b.get());
  auto s = Wrap(std::move(a));
  std::thread killer([&] {
    std::this_thread::sleep_for(milliseconds(50));
    s->Shutdown();
  });
  std::vector<std::byte> big(64 << 20);
  Status st = s->Send(big.data(), big.size());
  killer.join();
  EXPECT_EQ(st.code(), Code::kAborted) << st.ToString();
}

TEST_F(UringTest, SendToClosedPeerFailsWithoutSigpipe) {
  auto [a, b] = TcpPair();
  auto s = Wrap(std::move(a));
  b.reset();
  std::vector<std::byte> chunk(1 << 20);
  Status st;
  for (int i = 0; i < 100 && st.ok(); ++i) st = s->Send(chunk.data(), chunk.size());
  EXPECT_EQ(st.code(), Code::kIo) << st.ToString();
}

TEST_F(UringTest, UnixSocketpairWorks) {
  int sv[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  auto x = Wrap(UniqueFd(sv[0]));
  auto y = Wrap(UniqueFd(sv[1]));
  Gather g = MakeGather(2000, 500, 8);
  std::vector<std::byte> in(g.expected.size());
  std::thread t([&] { ASSERT_TRUE(x->Send(g.iov).ok()); });
  ASSERT_TRUE(y->Recv(in).ok());
  t.join();
  EXPECT_TRUE(in == g.expected);
}

}  // namespace
}  // namespace xm::testing
