// The registered send-buffer pool of UringStream: buffers queued with
// SendAcquired interleave with plain Send in call order, a full pool blocks until
// the kernel is done with a buffer, and misuse is refused.
#include <gtest/gtest.h>
#include <sys/socket.h>

#include <cstring>
#include <random>
#include <thread>

#include "tests/uring/uring_fixture.h"

namespace xm::testing {
namespace {

std::vector<std::byte> ReadAll(int fd, size_t total, bool slow) {
  std::vector<std::byte> got(total);
  size_t pos = 0;
  int reads = 0;
  while (pos < total) {
    ssize_t n = ::recv(fd, got.data() + pos, std::min<size_t>(total - pos, 32768), 0);
    if (n <= 0) break;
    pos += size_t(n);
    if (slow && ++reads % 4 == 0) std::this_thread::sleep_for(std::chrono::microseconds(300));
  }
  got.resize(pos);
  return got;
}

class RegisteredTest : public UringTest, public ::testing::WithParamInterface<bool> {};

TEST_P(RegisteredTest, InterleavesWithPlainSendInCallOrder) {
  const bool zero_copy = GetParam();
  if (zero_copy && !caps_.send_zc) GTEST_SKIP() << "kernel has no IORING_OP_SEND_ZC";
  auto [a, b] = TcpPair();
  ShrinkBuffers(a.get());
  ShrinkBuffers(b.get());
  UringOptions o;
  o.send_buffers = 4;
  o.send_buffer_bytes = 64 << 10;
  o.zero_copy = zero_copy;
  o.zc_min_bytes = 4096;
  auto s = Wrap(std::move(a), o);
  ASSERT_EQ(s->send_buffer_count(), 4u);

  std::mt19937 rng(21);
  std::vector<size_t> sizes;
  size_t total = 0;
  for (int i = 0; i < 300; ++i) {
    sizes.push_back(1 + rng() % (64 << 10));
    total += sizes.back();
  }
  std::vector<std::byte> got;
  std::thread reader([&, fd = b.get()] { got = ReadAll(fd, total, true); });
  uint64_t pos = 0;
  for (size_t i = 0; i < sizes.size(); ++i) {
    std::vector<std::byte> chunk = Pattern(pos, sizes[i]);
    if (i % 5 == 0) {
      ASSERT_TRUE(s->Send(chunk.data(), chunk.size()).ok());
    } else {
      auto buf = s->AcquireSendBuffer();
      ASSERT_TRUE(buf.ok()) << buf.status().ToString();
      ASSERT_GE(buf->data.size(), sizes[i]);
      std::memcpy(buf->data.data(), chunk.data(), sizes[i]);
      Status st = s->SendAcquired(*buf, sizes[i]);
      ASSERT_TRUE(st.ok()) << st.ToString();
    }
    pos += sizes[i];
  }
  ASSERT_TRUE(s->Flush().ok());
  reader.join();
  ASSERT_EQ(got.size(), total);
  EXPECT_EQ(FirstMismatch(got, 0), -1);
  if (zero_copy && s->registered()) {
    EXPECT_GT(s->stats().zc_fixed_sqes, 0u);
  }
  std::printf("%s\n", s->Describe().c_str());
}

INSTANTIATE_TEST_SUITE_P(Copy, RegisteredTest, ::testing::Values(false));
INSTANTIATE_TEST_SUITE_P(ZeroCopy, RegisteredTest, ::testing::Values(true));

// More buffers than the pool holds, to a reader that starts late: Acquire has
// to wait for the kernel to finish with earlier ones.
TEST_F(UringTest, FullPoolWaitsForTheKernel) {
  auto [a, b] = TcpPair();
  ShrinkBuffers(a.get());
  ShrinkBuffers(b.get());
  UringOptions o;
  o.send_buffers = 2;
  o.send_buffer_bytes = 128 << 10;
  auto s = Wrap(std::move(a), o);
  constexpr size_t kChunks = 40;
  const size_t chunk = o.send_buffer_bytes;
  std::vector<std::byte> got;
  std::thread reader([&, fd = b.get()] {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    got = ReadAll(fd, kChunks * chunk, false);
  });
  for (size_t i = 0; i < kChunks; ++i) {
    auto buf = s->AcquireSendBuffer();
    ASSERT_TRUE(buf.ok()) << buf.status().ToString();
    std::vector<std::byte> p = Pattern(i * chunk, chunk);
    std::memcpy(buf->data.data(), p.data(), chunk);
    ASSERT_TRUE(s->SendAcquired(*buf, chunk).ok());
  }
  ASSERT_TRUE(s->Flush().ok());
  reader.join();
  ASSERT_EQ(got.size(), kChunks * chunk);
  EXPECT_EQ(FirstMismatch(got, 0), -1);
}

TEST_F(UringTest, PoolMisuseIsRefused) {
  auto [a, b] = TcpPair();
  {
    auto none = Wrap(UniqueFd(::dup(a.get())));
    EXPECT_EQ(none->AcquireSendBuffer().status().code(), Code::kUnsupported);
  }
  UringOptions o;
  o.send_buffers = 2;
  o.send_buffer_bytes = 4096;
  auto s = Wrap(std::move(a), o);
  auto x = s->AcquireSendBuffer();
  auto y = s->AcquireSendBuffer();
  ASSERT_TRUE(x.ok() && y.ok());
  // Both held by us and nothing in flight: waiting would never end.
  EXPECT_EQ(s->AcquireSendBuffer().status().code(), Code::kInternal);
  EXPECT_EQ(s->SendAcquired(*x, 4097).code(), Code::kInvalidArgument);
  EXPECT_EQ(s->SendAcquired(UringStream::SendBuffer{{}, 7}, 1).code(), Code::kInvalidArgument);
  ASSERT_TRUE(s->SendAcquired(*x, 0).ok());  // an empty send just returns the buffer
  EXPECT_EQ(s->SendAcquired(*x, 1).code(), Code::kInvalidArgument);  // no longer ours
  EXPECT_TRUE(s->AcquireSendBuffer().ok());
}

}  // namespace
}  // namespace xm::testing
