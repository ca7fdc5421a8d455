// The fuzzers' in-memory Stream must end input exactly like a closed socket,
// or the fuzzers would exercise error paths the real transport never takes.
#include "tests/fuzz/memory_stream.h"

#include <gtest/gtest.h>

#include "tests/transport/stream_pair.h"

namespace xm {
namespace {

// Reads `sizes` in turn from `s`; returns each read's code.
std::vector<Code> Reads(Stream& s, std::vector<size_t> sizes) {
  std::vector<Code> codes;
  for (size_t n : sizes) {
    std::vector<std::byte> buf(n);
    codes.push_back(s.Recv(buf).code());
  }
  return codes;
}

TEST(MemoryStream, EndsLikeAClosedSocket) {
  const std::vector<uint8_t> input = {1, 2, 3, 4, 5};
  for (std::vector<size_t> sizes : {std::vector<size_t>{5, 1}, {2, 2, 2, 1}, {8}, {0, 5, 0, 1}}) {
    testing::MemoryStream mem(input);
    testing::StreamPair sock;
    ASSERT_TRUE(sock.a->Send(input.data(), input.size()).ok());
    sock.CloseA();
    EXPECT_EQ(Reads(mem, sizes), Reads(*sock.b, sizes));
  }
}

TEST(MemoryStream, KeepsWhatWasSent) {
  testing::MemoryStream mem({});
  ASSERT_TRUE(mem.Send("ab", 2).ok());
  ASSERT_TRUE(mem.Send("c", 1).ok());
  EXPECT_EQ(mem.sent(), (std::vector<uint8_t>{'a', 'b', 'c'}));
}

}  // namespace
}  // namespace xm
