// PlanSends / SendOp::Consume: how gathered sends become io_uring operations,
// and how an operation that completed short is resumed without losing or
// repeating a byte.
#include "transport/uring_send_plan.h"

#include <gtest/gtest.h>

#include <random>
#include <string>

namespace xm {
namespace {

iovec Iov(const char* p, size_t n) { return iovec{const_cast<char*>(p), n}; }

std::string Concat(const std::vector<SendOp>& ops) {
  std::string s;
  for (const SendOp& op : ops)
    for (const iovec& v : op.iov) s.append(static_cast<const char*>(v.iov_base), v.iov_len);
  return s;
}

TEST(SendPlan, MergesContiguousAndDropsEmpty) {
  const char buf[] = "abcdefghij";
  std::vector<iovec> in = {Iov(buf, 3), Iov(buf + 3, 0), Iov(buf + 3, 4), Iov(buf + 8, 2)};
  std::vector<SendOp> ops;
  PlanSends(in, SendPlanLimits{}, &ops);
  ASSERT_EQ(ops.size(), 1u);
  ASSERT_EQ(ops[0].iov.size(), 2u);  // "abcdefg" merged, "ij" separate (gap at 'h')
  EXPECT_EQ(ops[0].iov[0].iov_len, 7u);
  EXPECT_EQ(Concat(ops), "abcdefgij");
}

TEST(SendPlan, SplitsAtIovLimit) {
  std::vector<char> buf(3000);
  std::vector<iovec> in;
  for (size_t i = 0; i < 1500; ++i) in.push_back(Iov(&buf[2 * i], 1));  // gaps: nothing merges
  std::vector<SendOp> ops;
  PlanSends(in, SendPlanLimits{1024, 1 << 20}, &ops);
  ASSERT_EQ(ops.size(), 2u);
  EXPECT_EQ(ops[0].iov.size(), 1024u);
  EXPECT_EQ(ops[1].iov.size(), 476u);
}

TEST(SendPlan, SplitsLargeBufferAtByteLimit) {
  std::vector<char> buf(10000, 'x');
  std::vector<iovec> in = {Iov(buf.data(), buf.size())};
  std::vector<SendOp> ops;
  PlanSends(in, SendPlanLimits{1024, 4096}, &ops);
  ASSERT_EQ(ops.size(), 3u);
  EXPECT_EQ(ops[0].bytes(), 4096u);
  EXPECT_EQ(ops[1].bytes(), 4096u);
  EXPECT_EQ(ops[2].bytes(), 1808u);
  EXPECT_EQ(ops[1].iov[0].iov_base, buf.data() + 4096);
}

TEST(SendPlan, ConsumeResumesInsideAndAcrossIovecs) {
  const char a[] = "0123", b[] = "4567", c[] = "89";
  SendOp op;
  op.iov = {Iov(a, 4), Iov(b, 4), Iov(c, 2)};
  op.Consume(2);
  EXPECT_EQ(Concat({op}), "23456789");
  op.Consume(2);  // exactly the end of the first iovec
  ASSERT_EQ(op.iov.size(), 2u);
  EXPECT_EQ(Concat({op}), "456789");
  op.Consume(5);
  EXPECT_EQ(Concat({op}), "9");
  op.Consume(1);
  EXPECT_TRUE(op.iov.empty());
  EXPECT_EQ(op.bytes(), 0u);
}

// Random gathers under random limits, each op then sent through a sequence of
// random short sends: the bytes that leave must be exactly the input, in order.
TEST(SendPlan, RandomShortSendsPreserveTheByteStream) {
  std::mt19937_64 rng(7);
  std::vector<char> mem(1 << 20);
  for (size_t i = 0; i < mem.size(); ++i) mem[i] = char(rng());
  for (int round = 0; round < 200; ++round) {
    std::vector<iovec> in;
    std::string want;
    const int n = 1 + int(rng() % 300);
    for (int i = 0; i < n; ++i) {
      size_t len = rng() % 3 == 0 ? 0 : rng() % 9000;
      size_t off = rng() % (mem.size() - len);
      if (rng() % 4 == 0 && !in.empty()) {  // sometimes contiguous with the previous one
        off = size_t(static_cast<char*>(in.back().iov_base) - mem.data()) + in.back().iov_len;
        len = std::min(len, mem.size() - off);
      }
      in.push_back(Iov(mem.data() + off, len));
      want.append(mem.data() + off, len);
    }
    SendPlanLimits limits{1 + rng() % 64, 1 + rng() % 20000};
    std::vector<SendOp> ops;
    PlanSends(in, limits, &ops);
    std::string sent;
    for (SendOp& op : ops) {
      ASSERT_LE(op.iov.size(), limits.max_iov);
      ASSERT_LE(op.bytes(), limits.max_bytes);
      ASSERT_GT(op.bytes(), 0u);
      while (op.bytes() > 0) {
        size_t k = 1 + rng() % op.bytes();
        SendOp taken = op;
        std::string chunk = Concat({taken});
        sent += chunk.substr(0, k);
        op.Consume(k);
      }
    }
    ASSERT_EQ(sent, want) << "round " << round;
  }
}

}  // namespace
}  // namespace xm
