// Failures at every step must end cleanly: a receiver fed garbage, a truncated
// stream, another protocol version, a wrong key or a dying peer exits non-zero
// with a one-line reason, and the source's guest keeps running whenever the
// migration fails before GO.
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <thread>

#include <gtest/gtest.h>

#include "cpumask/feature_table.h"
#include "cpumask/featureset.h"
#include "cpumask/host.h"
#include "cpumask/policy_text.h"
#include "migrate/common/control.h"
#include "tests/integration/process.h"
#include "transport/messages.h"
#include "transport/pages.h"
#include "transport/record.h"
#include "transport/socket_stream.h"

namespace xm::testing {
namespace {

std::vector<std::string> ReceiverArgs(TempDir& dir, std::vector<std::string> extra = {}) {
  std::vector<std::string> a = {XmotionBin(), "receive", "--listen", "127.0.0.1:0", "--backend", "sim",
                                "--report", dir.path("recv.json"), "--accept-timeout", "30", "--io-timeout", "10",
                                // A peer that misbehaves is not waited for: no holding for a reconnect.
                                "--resume-window", "0", "--quiet"};
  a.insert(a.end(), extra.begin(), extra.end());
  return a;
}

std::unique_ptr<SocketStream> ConnectTo(int port) {
  auto s = SocketStream::Connect({"127.0.0.1", static_cast<uint16_t>(port)}, 5000);
  EXPECT_TRUE(s.ok()) << s.status().ToString();
  (*s)->SetTimeoutMs(10000);
  return std::move(s).value();
}

// Lines of stderr, not counting the warning that there is no key (said on every keyless run).
int Lines(const std::string& s) {
  int n = 0;
  for (size_t at = 0, nl; (nl = s.find('\n', at)) != std::string::npos; at = nl + 1)
    n += s.substr(at, nl - at).find("neither authenticated nor encrypted") == std::string::npos;
  return n;
}

// A source that speaks the protocol correctly up to ACCEPT.
Hello SourceHandshake(Stream& s, uint64_t pages) {
  Hello h;
  h.role = Role::kSource;
  h.session_id = 42;
  EXPECT_TRUE(WriteRecord(s, RecordType::kHello, EncodeHello(h)).ok());
  Record rec;
  EXPECT_TRUE(ExpectRecord(s, rec, RecordType::kHello, "test").ok());
  Shape shape;
  shape.shape.page_count = pages;
  shape.shape.ranges = {{0, pages}};
  shape.backend = "sim";
  EXPECT_TRUE(WriteRecord(s, RecordType::kShape, EncodeShape(shape)).ok());
  CpuPolicy policy;
  policy.format = "none";
  EXPECT_TRUE(WriteRecord(s, RecordType::kCpuPolicy, EncodeCpuPolicy(policy)).ok());
  Status st = ExpectRecord(s, rec, RecordType::kAccept, "test");
  EXPECT_TRUE(st.ok()) << st.ToString();
  return h;
}

// A PAGES body of round 0 holding one RAW page of `fill` bytes, claiming `hash`.
std::vector<uint8_t> OneRawPageBody(uint64_t pfn, uint64_t hash, uint8_t fill) {
  std::vector<uint8_t> body(sizeof(PagesHeader) + sizeof(PageDesc) + kPageSize, fill);
  PagesHeader ph{0, 1, 0};
  std::memcpy(body.data(), &ph, sizeof ph);
  PageDesc d;
  d.pfn = pfn;
  d.hash = hash;
  d.encoding = static_cast<uint8_t>(PageEncoding::kRaw);
  d.payload_len = kPageSize;
  std::memcpy(body.data() + sizeof ph, &d, sizeof d);
  return body;
}

TEST(IntegrationBadPeer, ReceiverGivenGarbageExitsWithOneLineReason) {
  TempDir dir;
  Child r(ReceiverArgs(dir), true);
  auto s = ConnectTo(r.port());
  std::vector<uint8_t> junk(4096);
  for (size_t i = 0; i < junk.size(); ++i) junk[i] = static_cast<uint8_t>(i * 131 + 7);
  (void)s->Send(junk.data(), junk.size());
  EXPECT_EQ(r.Wait(), 5) << "the wrong peer's exit code";
  std::string err = r.Stderr();
  EXPECT_EQ(Lines(err), 1) << err;
  EXPECT_NE(err.find("xmotion receive:"), std::string::npos) << err;
  EXPECT_NE(err.find("not an xmotion peer"), std::string::npos) << err;
  EXPECT_EQ(ReadJsonFile(dir.path("recv.json"))["result"], "failed");
}

TEST(IntegrationBadPeer, ReceiverGivenATruncatedStreamExitsWithOneLineReason) {
  TempDir dir;
  Child r(ReceiverArgs(dir), true);
  auto s = ConnectTo(r.port());
  SourceHandshake(*s, 256);
  // Half of a valid PAGES record, then the connection goes away.
  std::vector<uint8_t> body = OneRawPageBody(1, 0, 0xAB);
  iovec v{body.data(), body.size()};
  RecordHeader h = MakeHeader(RecordType::kPages, std::span<const iovec>(&v, 1));
  ASSERT_TRUE(s->Send(&h, sizeof h).ok());
  ASSERT_TRUE(s->Send(body.data(), body.size() / 2).ok());
  s.reset();
  EXPECT_EQ(r.Wait(), 1);
  std::string err = r.Stderr();
  EXPECT_EQ(Lines(err), 1) << err;
  EXPECT_NE(err.find("connection closed"), std::string::npos) << err;
}

TEST(IntegrationBadPeer, ReceiverRefusesAnotherProtocolVersion) {
  TempDir dir;
  Child r(ReceiverArgs(dir), true);
  auto s = ConnectTo(r.port());
  Hello h;
  h.role = Role::kSource;
  h.version_min = h.version_max = kProtocolVersion + 1;
  ASSERT_TRUE(WriteRecord(*s, RecordType::kHello, EncodeHello(h)).ok());
  Record rec;
  Status st = ReadControl(*s, rec, "test");
  EXPECT_EQ(st.code(), Code::kVersion) << st.ToString();  // the receiver said why, in an ABORT
  EXPECT_EQ(r.Wait(), 5);
  std::string err = r.Stderr();
  EXPECT_EQ(Lines(err), 1) << err;
  EXPECT_NE(err.find("xmotion protocol " + std::to_string(kProtocolVersion) + " here, the source speaks " +
                     std::to_string(kProtocolVersion + 1)),
            std::string::npos)
      << err;
}

TEST(IntegrationBadPeer, ReceiverRejectsCorruptPageData) {
  TempDir dir;
  Child r(ReceiverArgs(dir), true);
  auto s = ConnectTo(r.port());
  SourceHandshake(*s, 256);
  // A well-framed PAGES record whose page hash does not match its content.
  std::vector<uint8_t> body = OneRawPageBody(3, 12345, 0x5A);
  ASSERT_TRUE(WriteRecord(*s, RecordType::kPages, body).ok());
  Record rec;
  Status st = ReadControl(*s, rec, "test");
  EXPECT_EQ(st.code(), Code::kIntegrity) << st.ToString();
  EXPECT_EQ(r.Wait(), 1);
  EXPECT_NE(r.Stderr().find("hash mismatch"), std::string::npos) << r.Stderr();
}

TEST(IntegrationBadPeer, ReceiverRefusesAGuestLargerThanTheHost) {
  TempDir dir;
  Child r(ReceiverArgs(dir), true);
  auto s = ConnectTo(r.port());
  Hello h;
  h.role = Role::kSource;
  ASSERT_TRUE(WriteRecord(*s, RecordType::kHello, EncodeHello(h)).ok());
  Record rec;
  ASSERT_TRUE(ExpectRecord(*s, rec, RecordType::kHello, "test").ok());
  Shape shape;  // 1 TiB in 60 bytes: must be refused, not allocated for
  shape.shape.page_count = 1ull << 28;
  shape.shape.ranges = {{0, 1ull << 28}};
  shape.backend = "sim";
  ASSERT_TRUE(WriteRecord(*s, RecordType::kShape, EncodeShape(shape)).ok());
  CpuPolicy policy;
  policy.format = "none";
  ASSERT_TRUE(WriteRecord(*s, RecordType::kCpuPolicy, EncodeCpuPolicy(policy)).ok());
  Status st = ExpectRecord(*s, rec, RecordType::kAccept, "test");
  EXPECT_EQ(st.code(), Code::kIncompatible) << st.ToString();
  EXPECT_EQ(r.Wait(), 3);
  EXPECT_NE(r.Stderr().find("larger than this host"), std::string::npos) << r.Stderr();
}

// --- the source side: its guest must survive every failure before GO ---

struct SourceRun {
  int rc;
  nlohmann::json report;
  std::string err;
};

SourceRun RunSender(TempDir& dir, int port, std::vector<std::string> extra = {},
                    const std::string& workload = "ws=32M,hot=8M,rate=50M/s", const std::string& memory = "64M") {
  std::vector<std::string> a = {XmotionBin(), "send", "--to", "127.0.0.1:" + std::to_string(port), "--backend", "sim",
                                "--memory", memory, "--workload", workload, "--report",
                                dir.path("send.json"), "--io-timeout", "10", "--quiet"};
  a.insert(a.end(), extra.begin(), extra.end());
  Child s(a, false);
  SourceRun o;
  o.rc = s.Wait();
  o.report = ReadJsonFile(dir.path("send.json"));
  o.err = s.Stderr();
  return o;
}

void ExpectSourceGuestRunning(const SourceRun& o) {
  ASSERT_TRUE(o.report.is_object()) << o.err;
  EXPECT_NE(o.report["result"], "completed");
  EXPECT_EQ(o.report["source_guest"], "running");
  // The guest's own counter moved after the failure: it really runs.
  EXPECT_GT(o.report["guest"]["counter_after_resume"].get<uint64_t>(),
            o.report["guest"]["counter_at_failure"].get<uint64_t>());
  EXPECT_EQ(Lines(o.err), 1) << o.err;
}

TEST(IntegrationBadPeer, SourceKeepsRunningWhenThePeerSpeaksAnotherVersion) {
  TempDir dir;
  auto l = Listener::Bind({"127.0.0.1", 0});
  ASSERT_TRUE(l.ok());
  std::thread fake([&] {
    auto fd = l->Accept(10000);
    if (!fd.ok()) return;
    SocketStream s(std::move(fd).value());
    s.SetTimeoutMs(10000);
    Record rec;
    if (!ReadRecord(s, rec).ok()) return;
    Hello h;
    h.role = Role::kDestination;
    h.version_min = h.version_max = kProtocolVersion + 1;
    h.session_id = DecodeHello(rec.body)->session_id;
    (void)WriteRecord(s, RecordType::kHello, EncodeHello(h));
    (void)ReadRecord(s, rec);  // the source's ABORT
  });
  SourceRun o = RunSender(dir, l->port());
  fake.join();
  EXPECT_EQ(o.rc, 5);
  ExpectSourceGuestRunning(o);
  EXPECT_NE(o.report["error"].get<std::string>().find("xmotion protocol " + std::to_string(kProtocolVersion) +
                                                      " here, the receiver speaks " +
                                                      std::to_string(kProtocolVersion + 1)),
            std::string::npos)
      << o.report["error"];
}

// Whatever listens at --to, if it is not xmotion the sender says so within
// seconds (exit 5), names what it met, and the guest runs on.
TEST(IntegrationBadPeer, SourceNamesAPeerThatIsNotXmotion) {
  struct Case {
    const char* what;
    std::string answer;  // written after reading the source's first bytes; then close
    bool silent;         // write nothing, keep the connection open
    const char* expect;
  };
  const std::vector<Case> cases = {
      {"http", "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n", false, "like an HTTP server"},
      {"ssh", "SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n", false, "like an SSH server"},
      {"tls", std::string("\x15\x03\x03\x00\x02\x02\x32", 7), false, "like a TLS endpoint"},
      {"hangs up", "", false, "closed the connection without a word"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    TempDir dir;
    auto l = Listener::Bind({"127.0.0.1", 0});
    ASSERT_TRUE(l.ok());
    std::thread fake([&] {
      auto fd = l->Accept(10000);
      if (!fd.ok()) return;
      char buf[64];
      (void)::read(fd->get(), buf, sizeof buf);
      if (!c.answer.empty()) (void)!::write(fd->get(), c.answer.data(), c.answer.size());
    });
    auto t0 = std::chrono::steady_clock::now();
    SourceRun o = RunSender(dir, l->port());
    fake.join();
    EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(10));
    EXPECT_EQ(o.rc, 5) << o.err;
    EXPECT_NE(o.err.find("not an xmotion peer"), std::string::npos) << o.err;
    EXPECT_NE(o.err.find(c.expect), std::string::npos) << o.err;
    ExpectSourceGuestRunning(o);
  }
  // Nothing listening at all.
  TempDir dir;
  uint16_t closed;
  {
    auto l = Listener::Bind({"127.0.0.1", 0});
    ASSERT_TRUE(l.ok());
    closed = l->port();
  }
  SourceRun o = RunSender(dir, closed);
  EXPECT_EQ(o.rc, 5) << o.err;
  EXPECT_NE(o.err.find("refused"), std::string::npos) << o.err;
  EXPECT_NE(o.err.find("no xmotion receiver listens"), std::string::npos) << o.err;
}

TEST(IntegrationBadPeer, WrongKeyIsRefusedAndTheSourceKeepsRunning) {
  TempDir dir;
  {
    std::ofstream(dir.path("key-a")) << "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    std::ofstream(dir.path("key-b")) << "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
  }
  Child r(ReceiverArgs(dir, {"--key-file", dir.path("key-a")}), true);
  SourceRun o = RunSender(dir, r.port(), {"--key-file", dir.path("key-b")});
  EXPECT_EQ(o.rc, 5);
  ExpectSourceGuestRunning(o);
  EXPECT_EQ(r.Wait(), 5);
  EXPECT_NE(r.Stderr().find("--key-file differs"), std::string::npos) << r.Stderr();
  EXPECT_NE(o.err.find("--key-file"), std::string::npos) << o.err;
}

TEST(IntegrationBadPeer, ReceiverWithAKeyRefusesASourceWithout) {
  TempDir dir;
  {
    std::ofstream(dir.path("key")) << "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
  }
  Child r(ReceiverArgs(dir, {"--key-file", dir.path("key")}), true);
  SourceRun o = RunSender(dir, r.port());
  EXPECT_EQ(o.rc, 5);
  ExpectSourceGuestRunning(o);
  EXPECT_EQ(r.Wait(), 5);
}

TEST(IntegrationBadPeer, DestinationLackingACpuFeatureIsRefusedBeforeAnyPageMoves) {
  TempDir dir;
  // This host, minus one feature the (sim) guest sees: the guest sees this host's CPU.
  auto host = cpumask::HostCpuPolicy();
  ASSERT_TRUE(host.ok()) << host.status().ToString();
  const cpumask::FeatureInfo* f = cpumask::FindFeature("sse2");
  ASSERT_NE(f, nullptr);
  ASSERT_TRUE(cpumask::TestBit(host->featureset, f->bit));
  CpuPolicy lacking = *host;
  lacking.featureset[f->bit / 32] &= ~(1u << (f->bit % 32));
  Child r(ReceiverArgs(dir, {"--host-featureset", cpumask::FormatPolicy(lacking, cpumask::TextFormat::kXen)}), true);
  SourceRun o = RunSender(dir, r.port());
  EXPECT_EQ(o.rc, 3) << o.err;
  EXPECT_EQ(r.Wait(), 3) << r.Stderr();
  ExpectSourceGuestRunning(o);
  EXPECT_NE(o.report["error"].get<std::string>().find("lacks sse2"), std::string::npos) << o.report["error"];
  EXPECT_TRUE(o.report["rounds"].empty());  // no round started
  auto recv = ReadJsonFile(dir.path("recv.json"));
  EXPECT_EQ(recv["bytes_wire"], 0);         // not one page arrived
  EXPECT_NE(recv["error"].get<std::string>().find("sse2"), std::string::npos);
}

// Processes killed or frozen mid-migration: fault_test.cc.

}  // namespace
}  // namespace xm::testing
