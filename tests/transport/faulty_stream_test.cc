// FaultyStream: faults land at exact byte offsets, whatever the send sizes.
#include "transport/faulty_stream.h"

#include <gtest/gtest.h>

#include <vector>

#include "tests/transport/stream_pair.h"

namespace xm {
namespace {

std::vector<std::byte> Bytes(size_t n) {
  std::vector<std::byte> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = std::byte(i & 0xff);
  return v;
}

TEST(FaultyStream, CorruptsExactlyTheChosenByte) {
  testing::StreamPair p;
  StreamFaults f;
  f.corrupt_byte = 1000;
  FaultyStream s(std::move(p.a), f);
  auto data = Bytes(3000);
  ASSERT_TRUE(s.Send(data.data(), 600).ok());
  ASSERT_TRUE(s.Send(data.data() + 600, 2400).ok());
  std::vector<std::byte> got(3000);
  ASSERT_TRUE(p.b->Recv(got).ok());
  for (size_t i = 0; i < got.size(); ++i)
    EXPECT_EQ(got[i], i == 1000 ? (data[i] ^ std::byte{1}) : data[i]) << i;
}

TEST(FaultyStream, ClosesAfterNBytes) {
  testing::StreamPair p;
  p.b->SetTimeoutMs(2000);
  StreamFaults f;
  f.close_after_bytes = 100;
  FaultyStream s(std::move(p.a), f);
  auto data = Bytes(300);
  Status st = s.Send(data.data(), data.size());
  EXPECT_EQ(st.code(), Code::kIo);
  std::vector<std::byte> got(100);
  ASSERT_TRUE(p.b->Recv(got).ok());
  std::vector<std::byte> more(1);
  EXPECT_FALSE(p.b->Recv(more).ok());  // the peer sees the end after exactly 100 bytes
}

TEST(FaultyStream, DropsSilentlyAfterNBytes) {
  testing::StreamPair p;
  p.b->SetTimeoutMs(200);
  StreamFaults f;
  f.drop_after_bytes = 10;
  FaultyStream s(std::move(p.a), f);
  auto data = Bytes(50);
  EXPECT_TRUE(s.Send(data.data(), data.size()).ok());
  EXPECT_EQ(s.bytes_sent(), 50u);
  std::vector<std::byte> got(10);
  ASSERT_TRUE(p.b->Recv(got).ok());
  std::vector<std::byte> more(1);
  EXPECT_EQ(p.b->Recv(more).code(), Code::kTimeout);
}

}  // namespace
}  // namespace xm
