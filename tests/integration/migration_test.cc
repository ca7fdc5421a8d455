// Whole migrations between real `xmotion receive` and `xmotion send` processes on
// loopback: the destination's memory must equal the source's at the moment of
// pause, byte for byte, and the guest must go on running on the destination.
#include <gtest/gtest.h>

#include <fstream>

#include "tests/integration/process.h"

namespace xm::testing {
namespace {

using Outcome = PairRun;

Outcome Migrate(TempDir& dir, const std::string& memory, const std::string& workload,
                std::vector<std::string> send_extra = {}, bool dumps = true) {
  std::vector<std::string> recv = {XmotionBin(), "receive", "--listen", "127.0.0.1:0", "--backend", "sim",
                                   "--report", dir.path("recv.json"), "--accept-timeout", "30", "--run-after", "300",
                                   "--quiet"};
  if (dumps) recv.insert(recv.end(), {"--dump-memory", dir.path("dst.mem")});
  Child r(recv, true);
  EXPECT_GT(r.port(), 0) << r.Stderr();
  std::vector<std::string> send = {XmotionBin(), "send", "--to", "127.0.0.1:" + std::to_string(r.port()),
                                   "--backend", "sim", "--memory", memory, "--workload", workload,
                                   "--report", dir.path("send.json"), "--quiet"};
  if (dumps) send.insert(send.end(), {"--dump-at-pause", dir.path("src.mem")});
  send.insert(send.end(), send_extra.begin(), send_extra.end());
  Child s(send, false);
  return WaitForPair(r, s, dir);
}

void ExpectCompleted(const Outcome& o) {
  ASSERT_EQ(o.send_rc, 0) << o.send_err;
  ASSERT_EQ(o.recv_rc, 0) << o.recv_err;
  ASSERT_TRUE(o.send.is_object());
  ASSERT_TRUE(o.recv.is_object());
  EXPECT_EQ(o.send["result"], "completed");
  EXPECT_EQ(o.recv["result"], "completed");
  EXPECT_TRUE(o.send["digest_match"].get<bool>());
  EXPECT_TRUE(o.recv["digest_match"].get<bool>());
  EXPECT_EQ(o.send["digest"], o.recv["digest"]);
  EXPECT_EQ(o.send["source_guest"], "released");
}

TEST(IntegrationMigration, IdleGuestArrivesByteIdentical) {
  TempDir dir;
  Outcome o = Migrate(dir, "64M", "ws=48M");
  ExpectCompleted(o);
  std::string why;
  EXPECT_TRUE(SameFile(dir.path("src.mem"), dir.path("dst.mem"), &why)) << why;
  // 16 MiB of the guest was never written: those pages travel as pfns only.
  EXPECT_GE(o.send["pages"]["zero"].get<uint64_t>(), 4096u);
  EXPECT_EQ(o.send["memory_bytes"].get<uint64_t>(), 64ull << 20);
}

// What a migration costs each host beyond the guest, measured by the kernel:
// the destination must never stage a copy of the guest (issue 13's bound:
// 64 MiB + 1% of guest memory), and both figures are in the reports.
TEST(IntegrationMigration, OverheadBeyondTheGuestIsMeasuredAndBounded) {
  TempDir dir;
  Outcome o = Migrate(dir, "512M", "ws=384M,hot=32M,rate=50M/s", {}, /*dumps=*/false);
  ExpectCompleted(o);
  const uint64_t guest = o.recv["memory_bytes"].get<uint64_t>();
  ASSERT_TRUE(o.recv.contains("destination_overhead_bytes")) << o.recv.dump();
  EXPECT_EQ(o.recv.value("guest_memory", ""), "anonymous");  // no --hugepages
  ASSERT_TRUE(o.send.contains("source_peak_overhead_bytes")) << o.send.dump();
  // (A few MiB in truth here, so no lower bound: a freed buffer can make it read 0.)
  const uint64_t dst = o.recv["destination_overhead_bytes"].get<uint64_t>();
  EXPECT_LE(dst, (64ull << 20) + guest / 100) << "the receiver holds " << (dst >> 20) << " MiB beyond the guest";
  // The source's pipeline holds hashes, batches and the delta cache: tens of MiB.
  EXPECT_GT(o.send["source_peak_overhead_bytes"].get<uint64_t>(), 1u << 20);
}

TEST(IntegrationMigration, HotGuestArrivesByteIdenticalAndKeepsRunning) {
  TempDir dir;
  Outcome o = Migrate(dir, "128M", "ws=96M,hot=32M,rate=0", {"--max-rounds", "6"});
  ExpectCompleted(o);
  std::string why;
  EXPECT_TRUE(SameFile(dir.path("src.mem"), dir.path("dst.mem"), &why)) << why;
  // The guest continues from exactly where the source paused it, and goes on.
  uint64_t at_pause = o.send["guest"]["counter_at_pause"];
  EXPECT_GT(at_pause, 0u);
  EXPECT_EQ(o.recv["guest"]["counter_at_resume"].get<uint64_t>(), at_pause);
  EXPECT_GT(o.recv["guest"]["counter_after"].get<uint64_t>(), at_pause);
  EXPECT_TRUE(o.recv["guest"]["running"].get<bool>());
  EXPECT_GE(o.send["rounds"].size(), 2u);
}

TEST(IntegrationMigration, Ws75Hot512GuestOf1GiBArrivesByteIdentical) {
  TempDir dir;
  Outcome o = Migrate(dir, "1G", "ws=75%,hot=512M,rate=0", {"--max-rounds", "3"});
  ExpectCompleted(o);
  std::string why;
  EXPECT_TRUE(SameFile(dir.path("src.mem"), dir.path("dst.mem"), &why)) << why;
  EXPECT_GT(o.recv["guest"]["counter_after"].get<uint64_t>(), o.recv["guest"]["counter_at_resume"].get<uint64_t>());
}

TEST(IntegrationMigration, FullVerifyProvesTheDirtyLogMissedNothing) {
  TempDir dir;
  Outcome o = Migrate(dir, "64M", "ws=32M,hot=16M,rate=200M/s", {"--verify", "full", "--max-rounds", "4"}, false);
  ExpectCompleted(o);
  EXPECT_EQ(o.send["verify"], "full");
  EXPECT_EQ(o.recv["verify"], "full");
}

TEST(IntegrationMigration, ThreeStreamsDeltasAndCompressionArriveByteIdentical) {
  TempDir dir;
  Outcome o = Migrate(dir, "96M", "ws=64M,hot=16M,rate=0,fill=mixed",
                      {"--streams", "3", "--max-rounds", "5", "--downtime-target", "0.001", "--no-adaptive"});
  ExpectCompleted(o);
  std::string why;
  EXPECT_TRUE(SameFile(dir.path("src.mem"), dir.path("dst.mem"), &why)) << why;
  EXPECT_EQ(o.send["streams"], 3);
  EXPECT_EQ(o.recv["streams"], 3);
  EXPECT_GT(o.send["pages"]["lz4"].get<uint64_t>(), 0u);
  EXPECT_GT(o.send["pages"]["delta"].get<uint64_t>(), 0u);  // hot pages resent from round 2 on
  // The destination decoded exactly what the source encoded.
  for (const char* k : {"zero", "duplicate", "delta", "lz4", "zstd", "raw"})
    EXPECT_EQ(o.send["pages"][k], o.recv["pages"][k]) << k;
  EXPECT_EQ(o.send["record_streams"], true);
  EXPECT_EQ(o.recv["record_streams"], true);
}

// As with a peer that predates record streams (PROTOCOL.md §4): every page
// compressed alone (LZ4 here), still byte-identical.
TEST(IntegrationMigration, PagesCompressedAloneStillArriveByteIdentical) {
  TempDir dir;
  Outcome o = Migrate(dir, "96M", "ws=64M,hot=16M,rate=0,fill=mixed",
                      {"--streams", "2", "--max-rounds", "5", "--downtime-target", "0.001", "--no-adaptive",
                       "--no-record-streams"});
  ExpectCompleted(o);
  std::string why;
  EXPECT_TRUE(SameFile(dir.path("src.mem"), dir.path("dst.mem"), &why)) << why;
  EXPECT_EQ(o.send["record_streams"], false);
  EXPECT_EQ(o.recv["record_streams"], false);
  EXPECT_GT(o.send["pages"]["raw"].get<uint64_t>(), 0u) << "alone, a random page that does not shrink goes raw";
  EXPECT_GT(o.send["pages"]["lz4"].get<uint64_t>(), 0u);
  for (const char* k : {"zero", "duplicate", "delta", "lz4", "zstd", "raw"})
    EXPECT_EQ(o.send["pages"][k], o.recv["pages"][k]) << k;
}

TEST(IntegrationMigration, WithoutIoUringTheSocketFallbackCarriesTheMigration) {
  TempDir dir;
  ::setenv("XMOTION_DISABLE_IO_URING", "1", 1);  // inherited by both children
  Outcome o = Migrate(dir, "64M", "ws=32M,hot=8M,rate=100M/s", {"--streams", "2", "--max-rounds", "4"});
  ::unsetenv("XMOTION_DISABLE_IO_URING");
  ExpectCompleted(o);
  std::string why;
  EXPECT_TRUE(SameFile(dir.path("src.mem"), dir.path("dst.mem"), &why)) << why;
  EXPECT_EQ(o.send["transport"], "sockets");
  EXPECT_EQ(o.recv["transport"], "sockets");
  EXPECT_FALSE(o.send.value("transport_note", "").empty());  // and it says why
}

TEST(IntegrationMigration, IoUringCarriesTheMigrationWhereTheKernelHasIt) {
  TempDir dir;
  Outcome o = Migrate(dir, "64M", "ws=32M", {"--transport", "io_uring"}, false);
  if (o.send_rc != 0 && o.send_err.find("io_uring") != std::string::npos)
    GTEST_SKIP() << "io_uring is not available here: " << o.send_err;
  ExpectCompleted(o);
  EXPECT_EQ(o.send["transport"], "io_uring");
}

TEST(IntegrationMigration, AuthenticatedMigrationCompletes) {
  TempDir dir;
  {
    std::ofstream(dir.path("key")) << "0123456789abcdef0123456789abcdef\n";
  }
  Child r({XmotionBin(), "receive", "--listen", "127.0.0.1:0", "--backend", "sim", "--key-file", dir.path("key"),
           "--report", dir.path("recv.json"), "--accept-timeout", "30", "--quiet"},
          true);
  Child s({XmotionBin(), "send", "--to", "127.0.0.1:" + std::to_string(r.port()), "--backend", "sim", "--memory", "32M",
           "--workload", "ws=16M", "--key-file", dir.path("key"), "--report", dir.path("send.json"), "--quiet"},
          false);
  EXPECT_EQ(s.Wait(), 0) << s.Stderr();
  EXPECT_EQ(r.Wait(), 0) << r.Stderr();
  EXPECT_EQ(ReadJsonFile(dir.path("send.json"))["result"], "completed");
}

}  // namespace
}  // namespace xm::testing
