// Faults on a real network path between real `xmotion send` and `xmotion
// receive` processes (issue 17): a cut the migration survives by reconnecting,
// a path that goes silent, processes killed or frozen mid-pre-copy, and a lossy,
// slow link (tc netem in a private network namespace). Each test bounds how long
// each end may take to notice, and checks where the guest is left.
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <thread>

#include <gtest/gtest.h>

#include "tests/integration/process.h"
#include "tests/integration/proxy.h"

namespace xm::testing {
namespace {

using Clock = std::chrono::steady_clock;

double SecondsSince(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

std::vector<std::string> Receiver(TempDir& dir, std::vector<std::string> extra) {
  std::vector<std::string> a = {XmotionBin(), "receive", "--listen", "127.0.0.1:0", "--backend", "sim", "--report",
                                dir.path("recv.json"), "--accept-timeout", "30", "--quiet"};
  a.insert(a.end(), extra.begin(), extra.end());
  return a;
}

std::vector<std::string> Sender(TempDir& dir, int port, const std::string& memory, const std::string& workload,
                                std::vector<std::string> extra) {
  std::vector<std::string> a = {XmotionBin(), "send", "--to", "127.0.0.1:" + std::to_string(port), "--backend",
                                "sim", "--memory", memory, "--workload", workload, "--report", dir.path("send.json"),
                                "--quiet"};
  a.insert(a.end(), extra.begin(), extra.end());
  return a;
}

// Failed before GO: the guest runs on at the source, and its own counter says so.
void ExpectSourceGuestRunning(const nlohmann::json& send, const std::string& err) {
  ASSERT_TRUE(send.is_object()) << err;
  EXPECT_EQ(send["result"], "failed") << err;
  EXPECT_EQ(send["exit_code"], 1);
  EXPECT_EQ(send["source_guest"], "running");
  EXPECT_GT(send["guest"]["counter_after_resume"].get<uint64_t>(), send["guest"]["counter_at_failure"].get<uint64_t>());
}

void ExpectDestinationDiscarded(const nlohmann::json& recv, const std::string& err) {
  ASSERT_TRUE(recv.is_object()) << err;
  EXPECT_NE(recv["result"], "completed");
  EXPECT_EQ(recv["destination_guest"], "gone") << err;
  EXPECT_FALSE(recv["digest_match"].get<bool>());
}

TEST(IntegrationFault, CutAfter300MiBOfA1GiBGuestIsResumed) {
  TempDir dir;
  Child r(Receiver(dir, {"--io-timeout", "10"}), true);
  ASSERT_GT(r.port(), 0) << r.Stderr();
  TcpProxy path(static_cast<uint16_t>(r.port()), TcpProxy::Fault::kCut, 300ull << 20);
  Child s(Sender(dir, path.port(), "1G", "ws=75%,hot=64M,rate=100M/s",
                 {"--reconnect", "3", "--io-timeout", "10", "--no-compress", "--max-rounds", "6"}),
          false);
  const int send_rc = s.Wait(), recv_rc = r.Wait();
  ASSERT_EQ(send_rc, 0) << s.Stderr();
  ASSERT_EQ(recv_rc, 0) << r.Stderr();
  EXPECT_TRUE(path.tripped());
  auto send = ReadJsonFile(dir.path("send.json")), recv = ReadJsonFile(dir.path("recv.json"));
  EXPECT_TRUE(send["digest_match"].get<bool>());
  EXPECT_EQ(send["digest"], recv["digest"]);
  EXPECT_GE(send["reconnects"].get<uint32_t>(), 1u);
  EXPECT_GE(recv["reconnects"].get<uint32_t>(), 1u);
  const uint64_t resent = send["bytes_resent"], memory = send["memory_bytes"];
  EXPECT_LT(resent, memory / 10) << resent;
  ASSERT_GE(send["breaks"].size(), 1u);
  EXPECT_EQ(send["breaks"][0]["phase"], "round 0");
  std::printf("cut after 300 MiB of 1 GiB: reconnects %u, bytes_resent %llu (%.2f%% of memory), total %.0f ms\n",
              send["reconnects"].get<uint32_t>(), static_cast<unsigned long long>(resent), 100.0 * resent / memory,
              send["total_ms"].get<double>());
}

TEST(IntegrationFault, SilentPathAfter100MiBFailsWithinTheTimeouts) {
  TempDir dir;
  Child r(Receiver(dir, {"--io-timeout", "5", "--resume-window", "5"}), true);
  ASSERT_GT(r.port(), 0) << r.Stderr();
  TcpProxy path(static_cast<uint16_t>(r.port()), TcpProxy::Fault::kSilent, 100ull << 20);
  auto t0 = Clock::now();
  Child s(Sender(dir, path.port(), "512M", "ws=100%,hot=8M,rate=50M/s", {"--io-timeout", "5", "--no-compress"}),
          false);
  const int send_rc = s.Wait();
  const double send_s = SecondsSince(t0);
  const int recv_rc = r.Wait();
  EXPECT_TRUE(path.tripped());
  EXPECT_EQ(send_rc, 1) << s.Stderr();
  EXPECT_LT(send_s, 20.0);
  auto send = ReadJsonFile(dir.path("send.json"));
  ExpectSourceGuestRunning(send, s.Stderr());
  // The reports name where it stopped and the last record each end had read.
  EXPECT_EQ(send["phase"], "round 0");
  EXPECT_EQ(send["last_record"], "ACCEPT");
  EXPECT_NE(send["error"].get<std::string>().find("reconnecting failed"), std::string::npos) << send["error"];
  EXPECT_NE(recv_rc, 0);
  auto recv = ReadJsonFile(dir.path("recv.json"));
  ExpectDestinationDiscarded(recv, r.Stderr());
  EXPECT_EQ(recv["phase"], "resume wait");
  EXPECT_EQ(recv["last_record"], "PAGES");
  ASSERT_EQ(recv["breaks"].size(), 1u);
  EXPECT_EQ(recv["breaks"][0]["phase"], "round 0");
  std::printf("silent path: sender exited %d after %.1f s\n", send_rc, send_s);
}

TEST(IntegrationFault, ReceiverKilledMidPrecopy) {
  TempDir dir;
  Child r(Receiver(dir, {"--io-timeout", "10"}), true);
  Clock::time_point killed;
  std::thread killer([&] {
    EXPECT_TRUE(WaitForRssGrowth(r.pid(), 32 << 20, 30000));
    killed = Clock::now();
    r.Kill(SIGKILL);
  });
  Child s(Sender(dir, r.port(), "512M", "ws=100%,hot=8M,rate=50M/s", {"--no-compress", "--io-timeout", "10"}), false);
  const int rc = s.Wait();
  const double after_kill = SecondsSince(killed);
  killer.join();
  EXPECT_EQ(rc, 1) << s.Stderr();
  EXPECT_LT(after_kill, 10.0);
  ExpectSourceGuestRunning(ReadJsonFile(dir.path("send.json")), s.Stderr());
  std::printf("receiver killed: sender exited %d %.1f s later\n", rc, after_kill);
}

// With the default windows (60 s io timeout and resume window): the killed
// process's kernel closes its sockets, and the receiver holds the guest only
// --resume-window-closed (10 s) for a source that will never come back.
TEST(IntegrationFault, SenderKilledMidPrecopy) {
  TempDir dir;
  Child r(Receiver(dir, {}), true);
  Child s(Sender(dir, r.port(), "512M", "ws=100%,hot=8M,rate=0", {"--no-compress"}), false);
  EXPECT_TRUE(WaitForRssGrowth(r.pid(), 32 << 20, 30000));
  s.Kill(SIGKILL);
  auto killed = Clock::now();
  const int rc = r.Wait();
  const double after_kill = SecondsSince(killed);
  EXPECT_NE(rc, 0) << r.Stderr();
  EXPECT_LT(after_kill, 15.0);
  auto recv = ReadJsonFile(dir.path("recv.json"));
  ExpectDestinationDiscarded(recv, r.Stderr());
  EXPECT_NE(recv["error"].get<std::string>().find("resume window (10 s, shortened because the source's end closed"),
            std::string::npos)
      << recv["error"];
  std::printf("sender killed: receiver exited %d %.1f s later\n", rc, after_kill);
}

// A frozen receiver (SIGSTOP) is a silent peer: the sender's timeouts end it.
TEST(IntegrationFault, ReceiverFrozenMidPrecopy) {
  TempDir dir;
  Child r(Receiver(dir, {"--io-timeout", "3", "--resume-window", "3"}), true);
  Clock::time_point frozen;
  std::thread freezer([&] {
    EXPECT_TRUE(WaitForRssGrowth(r.pid(), 32 << 20, 30000));
    frozen = Clock::now();
    r.Kill(SIGSTOP);
  });
  Child s(Sender(dir, r.port(), "512M", "ws=100%,hot=8M,rate=50M/s", {"--no-compress", "--io-timeout", "3"}), false);
  const int rc = s.Wait();
  const double after = SecondsSince(frozen);
  freezer.join();
  r.Kill(SIGCONT);
  EXPECT_EQ(rc, 1) << s.Stderr();
  EXPECT_LT(after, 3 * 3 + 2.0);  // detection, then one io timeout of reconnecting
  ExpectSourceGuestRunning(ReadJsonFile(dir.path("send.json")), s.Stderr());
  // Thawed, the receiver finds the source gone and discards.
  EXPECT_NE(r.Wait(), 0);
  ExpectDestinationDiscarded(ReadJsonFile(dir.path("recv.json")), r.Stderr());
}

// A frozen sender: the receiver's timeout and resume window end it; thawed,
// the sender finds nobody to reconnect to and resumes its guest.
TEST(IntegrationFault, SenderFrozenMidPrecopy) {
  TempDir dir;
  Child r(Receiver(dir, {"--io-timeout", "3", "--resume-window", "2"}), true);
  Child s(Sender(dir, r.port(), "512M", "ws=100%,hot=8M,rate=50M/s", {"--no-compress", "--io-timeout", "3"}), false);
  EXPECT_TRUE(WaitForRssGrowth(r.pid(), 32 << 20, 30000));
  s.Kill(SIGSTOP);
  auto frozen = Clock::now();
  const int recv_rc = r.Wait();
  EXPECT_LT(SecondsSince(frozen), 3 + 2 + 2.0);
  s.Kill(SIGCONT);
  EXPECT_NE(recv_rc, 0);
  ExpectDestinationDiscarded(ReadJsonFile(dir.path("recv.json")), r.Stderr());
  EXPECT_EQ(s.Wait(), 1) << s.Stderr();
  ExpectSourceGuestRunning(ReadJsonFile(dir.path("send.json")), s.Stderr());
}

// The destination's disk is full: its --xen-stream-out cannot be written. The
// receiver refuses the migration with the reason; the guest runs on at the source.
PairRun MigrateWithReceiver(TempDir& dir, std::vector<std::string> receiver, const std::string& workload) {
  Child r(receiver, true);
  EXPECT_GT(r.port(), 0) << r.Stderr();
  Child s(Sender(dir, r.port(), "64M", workload, {"--io-timeout", "10", "--no-compress"}), false);
  return WaitForPair(r, s, dir);
}

void ExpectRefusedForNoSpace(const PairRun& o) {
  EXPECT_EQ(o.send_rc, 1) << o.send_err;
  EXPECT_EQ(o.recv_rc, 1) << o.recv_err;
  ExpectSourceGuestRunning(o.send, o.send_err);
  ASSERT_TRUE(o.recv.is_object()) << o.recv_err;
  EXPECT_EQ(o.recv["result"], "failed");
  EXPECT_NE(o.recv["error"].get<std::string>().find("No space left on device"), std::string::npos) << o.recv["error"];
  // The source quotes the destination's reason (its ABORT), not a broken pipe,
  // and does not try to reconnect to a destination that refused.
  EXPECT_NE(o.send["error"].get<std::string>().find("No space left on device"), std::string::npos) << o.send["error"];
  EXPECT_EQ(o.send["reconnects"], 0);
}

TEST(IntegrationFault, DestinationDiskFullAtTheFirstWriteFailsBeforeGo) {
  TempDir dir;
  // A small working set: the guest's writer is running by the time the handshake fails.
  PairRun o = MigrateWithReceiver(dir, Receiver(dir, {"--io-timeout", "10", "--xen-stream-out", "/dev/full"}),
                                      "ws=4M,hot=4M,rate=50M/s");
  ExpectRefusedForNoSpace(o);
  EXPECT_EQ(o.recv["phase"], "handshake");  // the stream's headers: before any page moved
  EXPECT_EQ(o.recv["bytes_wire"], 0);
}

// A disk that fills mid-migration: a 4 MiB tmpfs, in a mount namespace of the
// receiver's own, receiving the stream of a 64 MiB guest.
TEST(IntegrationFault, DestinationDiskFullMidRoundFailsBeforeGoAndDiscards) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to mount a small tmpfs in a private mount namespace";
  if (std::system("unshare -m true 2>/dev/null") != 0) GTEST_SKIP() << "cannot create a mount namespace here";
  TempDir dir;
  ::mkdir(dir.path("full").c_str(), 0755);
  // sh mounts the tmpfs on $0, then becomes the receiver ("$@").
  std::vector<std::string> recv = {"/usr/bin/unshare", "-m",         "--", "/bin/sh", "-c",
                                   "mount -t tmpfs -o size=4m xmotion-full \"$0\" && exec \"$@\"",
                                   dir.path("full")};
  auto args = Receiver(dir, {"--io-timeout", "10", "--xen-stream-out", dir.path("full/stream")});
  recv.insert(recv.end(), args.begin(), args.end());
  PairRun o = MigrateWithReceiver(dir, recv, "ws=75%,hot=4M,rate=50M/s");
  ExpectRefusedForNoSpace(o);
  EXPECT_EQ(o.recv["destination_guest"], "gone");
  EXPECT_NE(o.recv["phase"], "handshake");  // pages had started to arrive
  EXPECT_GT(o.recv["bytes_wire"].get<uint64_t>(), 4u << 20);
}

// 1% loss and 50 ms delay on loopback, in a network namespace of its own (the
// host's interfaces are never touched): the migration still completes.
TEST(IntegrationFault, LossyDelayedLinkInAPrivateNetnsCompletes) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root for a network namespace and tc netem";
  if (std::system("command -v unshare >/dev/null && command -v tc >/dev/null && command -v ip >/dev/null") != 0)
    GTEST_SKIP() << "needs unshare (util-linux), tc and ip (iproute2)";
  if (std::system("unshare -n true 2>/dev/null") != 0) GTEST_SKIP() << "cannot create a network namespace here";
  if (std::system("unshare -n sh -c 'ip link set lo up && tc qdisc add dev lo root netem loss 1% delay 50ms' "
                  "2>/dev/null") != 0)
    GTEST_SKIP() << "tc netem is not available (sch_netem module missing?)";
  TempDir dir;
  const std::string bin = XmotionBin();
  // Both processes in one private namespace, whose loopback drops 1% and delays 50 ms.
  const std::string script =
      "set -e; ip link set lo up; tc qdisc add dev lo root netem loss 1% delay 50ms; " + bin +
      " receive --listen 127.0.0.1:7471 --backend sim --report " + dir.path("recv.json") +
      " --accept-timeout 30 --io-timeout 30 --quiet & rpid=$!; sleep 0.5; " + bin +
      " send --to 127.0.0.1:7471 --backend sim --memory 32M --workload ws=16M,hot=2M,rate=10M/s --report " +
      dir.path("send.json") + " --io-timeout 30 --quiet; src=$?; wait $rpid; exit $src";
  Child c({"/usr/bin/unshare", "-n", "--", "/bin/sh", "-c", script}, false);
  const int rc = c.Wait();
  ASSERT_EQ(rc, 0) << c.Stderr();
  auto send = ReadJsonFile(dir.path("send.json")), recv = ReadJsonFile(dir.path("recv.json"));
  EXPECT_EQ(send["result"], "completed");
  EXPECT_EQ(recv["result"], "completed");
  EXPECT_TRUE(send["digest_match"].get<bool>());
  EXPECT_EQ(send["digest"], recv["digest"]);
  std::printf("netem 1%% loss, 50 ms delay: 32 MiB guest in %.0f ms, downtime %.0f ms\n",
              send["total_ms"].get<double>(), send["downtime_ms"].get<double>());
}

}  // namespace
}  // namespace xm::testing
