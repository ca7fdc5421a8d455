// Several streams: batches of different streams arrive in any order, and a data
// stream may run a round ahead of the control stream; the receiver must still
// end with exactly the newest version of every page.
#include <xxhash.h>

#include <cstring>
#include <fstream>
#include <vector>

#include <gtest/gtest.h>

#include "migrate/common/page_codec.h"
#include "tests/support/stateless_batch.h"
#include "migrate/common/control.h"
#include "tests/integration/process.h"
#include "transport/messages.h"
#include "transport/record.h"
#include "transport/socket_stream.h"

namespace xm::testing {
namespace {

constexpr uint64_t kPages = 1024;  // regions 0 and 1: pfns 0..511 on stream 0, 512..1023 on stream 1

struct FakeSource {
  std::vector<std::byte> mem = std::vector<std::byte>(kPages * kPageSize);
  std::vector<uint64_t> hash = std::vector<uint64_t>(kPages);
  std::unique_ptr<SocketStream> s0, s1;
  uint64_t batches[2] = {0, 0};

  void Connect(int port) {
    auto c = SocketStream::Connect({"127.0.0.1", static_cast<uint16_t>(port)}, 5000);
    ASSERT_TRUE(c.ok());
    s0 = std::move(c).value();
    s0->SetTimeoutMs(10000);
    Hello h;
    h.role = Role::kSource;
    h.session_id = 7;
    h.streams = 2;
    ASSERT_TRUE(WriteRecord(*s0, RecordType::kHello, EncodeHello(h)).ok());
    Record rec;
    ASSERT_TRUE(ExpectRecord(*s0, rec, RecordType::kHello, "test").ok());
    ASSERT_EQ(DecodeHello(rec.body)->streams, 2u);
    Shape shape;
    shape.shape.page_count = kPages;
    shape.shape.ranges = {{0, kPages}};
    shape.backend = "sim";
    ASSERT_TRUE(WriteRecord(*s0, RecordType::kShape, EncodeShape(shape)).ok());
    CpuPolicy policy;
    policy.format = "none";
    ASSERT_TRUE(WriteRecord(*s0, RecordType::kCpuPolicy, EncodeCpuPolicy(policy)).ok());
    ASSERT_TRUE(ExpectRecord(*s0, rec, RecordType::kAccept, "test").ok());
    c = SocketStream::Connect({"127.0.0.1", static_cast<uint16_t>(port)}, 5000);
    ASSERT_TRUE(c.ok());
    s1 = std::move(c).value();
    Join j;
    j.session_id = 7;
    j.stream_index = 1;
    ASSERT_TRUE(WriteRecord(*s1, RecordType::kJoin, EncodeJoin(j)).ok());
  }

  std::vector<uint32_t> acks;  // ROUND_ACKs seen, in order

  void Fill(uint64_t pfn, uint8_t v) { std::memset(mem.data() + pfn * kPageSize, v, kPageSize); }

  // Sends `pfns` (all on one stream) as one batch of round `round`.
  void Send(uint32_t round, const std::vector<uint64_t>& pfns) {
    BatchBuilder b;
    b.Reset(round);
    EncodeCounts counts;
    for (uint64_t p : pfns) hash[p] = xm::testing::AddPage(b, p, mem.data() + p * kPageSize, true, counts);
    int stream = pfns.front() >= 512 ? 1 : 0;
    ASSERT_TRUE(WriteRecord(stream ? *s1 : *s0, RecordType::kPages, b.Body()).ok());
    ++batches[stream];
  }

  void EndRound(uint32_t round, uint64_t b0, uint64_t b1) {
    xm::RoundEnd re{round, 0, {b0, b1}};
    ASSERT_TRUE(WriteRecord(*s0, RecordType::kRoundEnd, EncodeRoundEnd(re)).ok());
  }

  Status Finish(uint32_t final_round) {
    VcpuState vs{"sim-v1", {}};
    // A valid sim vCPU blob: magic, version, an idle workload, counter 0, cursor 0.
    auto put = [&](auto v) {
      auto* p = reinterpret_cast<const uint8_t*>(&v);
      vs.blob.insert(vs.blob.end(), p, p + sizeof v);
    };
    put(uint32_t{0x4d495358});
    put(uint32_t{1});
    put(uint64_t{0});
    put(uint64_t{0});
    put(uint64_t{0});
    put(uint8_t{0});
    put(uint64_t{0});
    put(uint64_t{0});
    XM_TRY(WriteRecord(*s0, RecordType::kVcpuState, EncodeVcpuState(vs)));
    xm::Commit c;
    XXH128_canonical_t canon;
    XXH128_canonicalFromHash(&canon, XXH3_128bits(hash.data(), hash.size() * sizeof(uint64_t)));
    std::memcpy(c.digest.data(), canon.digest, 16);
    c.pages = kPages;
    c.final_round = final_round;
    XM_TRY(WriteRecord(*s0, RecordType::kCommit, EncodeCommit(c)));
    Record rec;
    // This source sends rounds without waiting for their ROUND_ACKs (so one
    // stream can run ahead); they are all queued before READY.
    for (;;) {
      XM_TRY(ReadControl(*s0, rec, "test"));
      if (rec.type != RecordType::kRoundAck) break;
      XM_ASSIGN_OR_RETURN(uint32_t acked, DecodeRoundAck(rec.body));
      acks.push_back(acked);
    }
    if (rec.type != RecordType::kReady)
      return Error(Code::kProtocol, "expected READY, got " + std::string(RecordName(rec.type)));
    XM_TRY(WriteRecord(*s0, RecordType::kGo, std::span<const uint8_t>()));
    for (;;) {
      XM_TRY(ReadControl(*s0, rec, "test"));
      if (rec.type == RecordType::kDone) return {};
    }
  }
};

std::vector<uint64_t> Range(uint64_t first, uint64_t n) {
  std::vector<uint64_t> v;
  for (uint64_t i = 0; i < n; ++i) v.push_back(first + i);
  return v;
}

TEST(IntegrationStreams, DataStreamAheadOfControlStreamAndNewestVersionWins) {
  TempDir dir;
  Child r({XmotionBin(), "receive", "--listen", "127.0.0.1:0", "--backend", "sim", "--report", dir.path("recv.json"),
           "--accept-timeout", "30", "--io-timeout", "10", "--dump-memory", dir.path("dst.mem"), "--quiet"},
          true);
  FakeSource src;
  src.Connect(r.port());
  for (uint64_t p = 0; p < kPages; ++p) src.Fill(p, static_cast<uint8_t>(p % 251 + 1));
  // Stream 1 runs a whole round ahead: its round-0 and round-1 batches go out
  // before stream 0 has sent anything of round 0.
  src.Send(0, Range(512, 512));
  src.Fill(600, 0xEE);
  src.Send(1, {600});
  src.Send(0, Range(0, 512));
  src.EndRound(0, 1, 1);
  src.Fill(3, 0xDD);
  src.Send(1, {3});
  src.EndRound(1, 2, 2);
  src.Fill(3, 0xCC);  // final round: page 3 once more, page 700 for the first time since round 0
  src.Fill(700, 0xBB);
  src.Send(2, {3});
  src.Send(2, {700});
  src.EndRound(2, 3, 3);
  Status st = src.Finish(2);
  EXPECT_TRUE(st.ok()) << st.ToString() << "\n" << r.Stderr();
  EXPECT_EQ(r.Wait(), 0) << r.Stderr();
  // Every round was acknowledged once it had been applied, in order.
  EXPECT_EQ(src.acks, (std::vector<uint32_t>{0, 1, 2}));
  // The destination holds the newest version of every page.
  std::string mem_path = dir.path("src.mem");
  {
    std::ofstream out(mem_path, std::ios::binary);
    out.write(reinterpret_cast<const char*>(src.mem.data()), static_cast<std::streamsize>(src.mem.size()));
  }
  std::string why;
  EXPECT_TRUE(SameFile(mem_path, dir.path("dst.mem"), &why)) << why;
}

TEST(IntegrationStreams, PageOnTheWrongStreamIsRejected) {
  TempDir dir;
  Child r({XmotionBin(), "receive", "--listen", "127.0.0.1:0", "--backend", "sim", "--report", dir.path("recv.json"),
           "--accept-timeout", "30", "--io-timeout", "10", "--quiet"},
          true);
  FakeSource src;
  src.Connect(r.port());
  // pfn 5 belongs to stream 0; send it on stream 1.
  BatchBuilder b;
  b.Reset(0);
  EncodeCounts counts;
  xm::testing::AddPage(b, 5, src.mem.data(), false, counts);
  ASSERT_TRUE(WriteRecord(*src.s1, RecordType::kPages, b.Body()).ok());
  EXPECT_EQ(r.Wait(), 1);
  EXPECT_NE(r.Stderr().find("wrong stream"), std::string::npos) << r.Stderr();
}

}  // namespace
}  // namespace xm::testing
