// Real processes through a man-in-the-middle TCP proxy: one bit flipped 48 MiB
// into the source's stream must make both ends fail before GO, in both modes
// (TLS and --no-encrypt), the sender within seconds with exit 1 and its guest
// running. And the loud warning when there is no key.
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <thread>

#include <gtest/gtest.h>

#include "tests/integration/process.h"
#include "transport/ktls.h"
#include "transport/socket_stream.h"

namespace xm::testing {
namespace {

// Forwards one connection at a time to `to`, flipping the low bit of byte
// `flip_at` of the first connection's source-to-receiver direction.
class FlipProxy {
 public:
  FlipProxy(uint16_t to, uint64_t flip_at) : to_(to), flip_at_(flip_at) {
    auto l = Listener::Bind({"127.0.0.1", 0});
    EXPECT_TRUE(l.ok());
    listener_ = std::make_unique<Listener>(std::move(l).value());
    thread_ = std::thread([this] { Serve(); });
  }
  ~FlipProxy() {
    stop_ = true;
    thread_.join();
  }
  uint16_t port() const { return listener_->port(); }
  bool flipped() const { return flipped_; }

 private:
  void Serve() {
    std::vector<std::thread> pumps;
    bool first = true;
    while (!stop_) {
      auto in = listener_->Accept(200);
      if (!in.ok()) continue;
      auto out = SocketStream::Connect({"127.0.0.1", to_}, 5000);
      if (!out.ok()) continue;
      auto a = std::make_shared<UniqueFd>(std::move(in).value());
      auto b = std::make_shared<UniqueFd>((*out)->TakeFd());
      pumps.emplace_back([this, a, b, first] { Pump(a->get(), b->get(), first); });
      pumps.emplace_back([this, a, b] { Pump(b->get(), a->get(), false); });
      first = false;
    }
    for (auto& t : pumps) t.join();
  }
  void Pump(int from, int to, bool flip) {
    std::vector<char> buf(1 << 16);
    uint64_t at = 0;
    while (!stop_) {
      pollfd p{from, POLLIN, 0};
      if (::poll(&p, 1, 100) <= 0) continue;
      ssize_t n = ::read(from, buf.data(), buf.size());
      if (n <= 0) break;
      if (flip && flip_at_ >= at && flip_at_ < at + static_cast<uint64_t>(n)) {
        buf[flip_at_ - at] ^= 1;
        flipped_ = true;
      }
      at += static_cast<uint64_t>(n);
      for (ssize_t off = 0; off < n;) {
        ssize_t w = ::send(to, buf.data() + off, static_cast<size_t>(n - off), MSG_NOSIGNAL);
        if (w <= 0) break;
        off += w;
      }
    }
    ::shutdown(to, SHUT_WR);
  }

  uint16_t to_;
  uint64_t flip_at_;
  std::unique_ptr<Listener> listener_;
  std::atomic<bool> stop_{false}, flipped_{false};
  std::thread thread_;
};

std::vector<std::string> Args(std::vector<std::string> a, const std::vector<std::string>& extra) {
  a.insert(a.end(), extra.begin(), extra.end());
  return a;
}

TEST(IntegrationSecure, BitFlipped48MiBInFailsBothEndsBeforeGoInBothModes) {
  for (bool encrypt : {true, false}) {
    SCOPED_TRACE(encrypt ? "tls" : "--no-encrypt");
    TempDir dir;
    std::ofstream(dir.path("key")) << "0123456789abcdef0123456789abcdef";
    std::vector<std::string> sec = {"--key-file", dir.path("key")};
    if (!encrypt) sec.push_back("--no-encrypt");
    Child r(Args({XmotionBin(), "receive", "--listen", "127.0.0.1:0", "--backend", "sim", "--report",
                  dir.path("recv.json"), "--accept-timeout", "30", "--io-timeout", "10", "--quiet"},
                 sec),
            true);
    FlipProxy proxy(static_cast<uint16_t>(r.port()), 48ull << 20);
    auto t0 = std::chrono::steady_clock::now();
    // 256 MiB of random pages: the stream is well past 48 MiB before any GO.
    Child s(Args({XmotionBin(), "send", "--to", "127.0.0.1:" + std::to_string(proxy.port()), "--backend", "sim",
                  "--memory", "256M", "--workload", "ws=100%,hot=8M,rate=50M/s", "--report", dir.path("send.json"),
                  "--io-timeout", "10", "--quiet"},
                 sec),
            false);
    int src = s.Wait();
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    int dst = r.Wait();
    EXPECT_TRUE(proxy.flipped());
    auto sr = ReadJsonFile(dir.path("send.json"));
    auto rr = ReadJsonFile(dir.path("recv.json"));
    EXPECT_EQ(src, 1) << s.Stderr();
    EXPECT_LT(secs, 10) << "the sender took " << secs << " s to fail";
    EXPECT_EQ(sr["source_guest"], "running") << sr.dump();
    EXPECT_EQ(sr["encryption"]["mode"], encrypt ? "tls1.3" : "mac");
    EXPECT_EQ(dst, 1) << r.Stderr();
    EXPECT_NE(rr["result"], "completed");
    EXPECT_EQ(rr["destination_guest"], "gone") << rr.dump();
    // The receiver names the check that caught it.
    EXPECT_NE(r.Stderr().find(encrypt ? "TLS record" : "record MAC check failed"), std::string::npos) << r.Stderr();
    std::printf("%s: sender failed after %.2f s: %s\n", encrypt ? "tls" : "mac", secs,
                sr["error"].get<std::string>().c_str());
  }
}

TEST(IntegrationSecure, NoKeyIsSaidLoudly) {
  TempDir dir;
  Child r({XmotionBin(), "receive", "--listen", "127.0.0.1:0", "--backend", "sim", "--report", dir.path("recv.json"),
           "--accept-timeout", "30", "--io-timeout", "10", "--quiet"},
          true);
  Child s({XmotionBin(), "send", "--to", "127.0.0.1:" + std::to_string(r.port()), "--backend", "sim", "--memory",
           "16M", "--report", dir.path("send.json"), "--io-timeout", "10", "--quiet"},
          false);
  EXPECT_EQ(s.Wait(), 0) << s.Stderr();
  EXPECT_EQ(r.Wait(), 0) << r.Stderr();
  EXPECT_NE(s.Stderr().find("neither authenticated nor encrypted"), std::string::npos) << s.Stderr();
  EXPECT_NE(r.Stderr().find("neither authenticated nor encrypted"), std::string::npos) << r.Stderr();
  EXPECT_EQ(ReadJsonFile(dir.path("send.json"))["encryption"]["mode"], "none");
  EXPECT_EQ(ReadJsonFile(dir.path("recv.json"))["encryption"]["mode"], "none");
}

TEST(IntegrationSecure, KeyedMigrationReportsTls13) {
  TempDir dir;
  std::ofstream(dir.path("key")) << "0123456789abcdef0123456789abcdef";
  Child r({XmotionBin(), "receive", "--listen", "127.0.0.1:0", "--backend", "sim", "--report", dir.path("recv.json"),
           "--accept-timeout", "30", "--io-timeout", "10", "--quiet", "--key-file", dir.path("key")},
          true);
  Child s({XmotionBin(), "send", "--to", "127.0.0.1:" + std::to_string(r.port()), "--backend", "sim", "--memory",
           "32M", "--report", dir.path("send.json"), "--io-timeout", "10", "--quiet", "--streams", "2", "--key-file",
           dir.path("key")},
          false);
  EXPECT_EQ(s.Wait(), 0) << s.Stderr();
  EXPECT_EQ(r.Wait(), 0) << r.Stderr();
  EXPECT_EQ(s.Stderr().find("neither authenticated"), std::string::npos) << s.Stderr();
  auto j = ReadJsonFile(dir.path("send.json"));
  EXPECT_EQ(j["encryption"]["mode"], "tls1.3");
  EXPECT_EQ(j["encryption"]["cipher"], "TLS_AES_128_GCM_SHA256");
  // Real TCP between processes: the kernel takes the records where it has the tls ULP.
  EXPECT_EQ(j["encryption"]["kernel"], KernelTlsAvailable()) << j["encryption"].dump();
  EXPECT_EQ(ReadJsonFile(dir.path("recv.json"))["encryption"]["mode"], "tls1.3");
}

// Certificates from the command line: the pool CA's hosts migrate (mutually
// verified); a host with a stranger's certificate is refused by both ends, exit 5.
TEST(IntegrationSecure, CertificatesFromTheCommandLine) {
  TempDir dir;
  const std::string d = dir.path("");
  std::string script =
      "set -e; cd " + d +
      "; for ca in ca other; do openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2"
      " -subj /CN=$ca -keyout $ca.key -out $ca.pem 2>/dev/null; done"
      "; for h in a:ca b:ca x:other; do n=${h%:*}; ca=${h#*:}; openssl req -newkey ec -pkeyopt"
      " ec_paramgen_curve:P-256 -nodes -subj /CN=$n -keyout $n.key -out $n.csr 2>/dev/null; openssl x509 -req"
      " -in $n.csr -CA $ca.pem -CAkey $ca.key -CAcreateserial -days 2 -out $n.pem 2>/dev/null; done";
  if (std::system(("bash -c '" + script + "'").c_str()) != 0) GTEST_SKIP() << "openssl could not make certificates";
  auto host = [&](const std::string& n, const std::string& ca) {
    return std::vector<std::string>{"--tls-cert", d + n + ".pem", "--tls-key", d + n + ".key", "--tls-ca",
                                    d + ca + ".pem"};
  };
  auto run = [&](const std::vector<std::string>& recv_sec, const std::vector<std::string>& send_sec, int* src,
                 int* dst, std::string* send_err, std::string* recv_err) {
    Child r(Args({XmotionBin(), "receive", "--listen", "127.0.0.1:0", "--backend", "sim", "--report",
                  dir.path("recv.json"), "--accept-timeout", "30", "--io-timeout", "10", "--quiet"},
                 recv_sec),
            true);
    Child s(Args({XmotionBin(), "send", "--to", "127.0.0.1:" + std::to_string(r.port()), "--backend", "sim",
                  "--memory", "16M", "--report", dir.path("send.json"), "--io-timeout", "10", "--quiet"},
                 send_sec),
            false);
    *src = s.Wait();
    *dst = r.Wait();
    *send_err = s.Stderr();
    *recv_err = r.Stderr();
  };
  int src, dst;
  std::string se, re;
  run(host("b", "ca"), host("a", "ca"), &src, &dst, &se, &re);
  EXPECT_EQ(src, 0) << se;
  EXPECT_EQ(dst, 0) << re;
  auto j = ReadJsonFile(dir.path("send.json"));
  EXPECT_EQ(j["encryption"]["auth"], "certificate");
  EXPECT_EQ(j["encryption"]["mode"], "tls1.3");
  // x trusts the pool CA, but the pool CA did not sign x.
  run(host("b", "ca"), host("x", "ca"), &src, &dst, &se, &re);
  EXPECT_EQ(src, 5) << se;
  EXPECT_EQ(dst, 5) << re;
  EXPECT_NE(re.find("source's certificate is not trusted"), std::string::npos) << re;
  EXPECT_NE(se.find("certificate"), std::string::npos) << se;
  EXPECT_EQ(ReadJsonFile(dir.path("send.json"))["source_guest"], "running");
  // A receiver the source's CA did not sign.
  run(host("x", "other"), host("a", "ca"), &src, &dst, &se, &re);
  EXPECT_EQ(src, 5) << se;
  EXPECT_EQ(dst, 5) << re;
  EXPECT_NE(se.find("receiver's certificate is not trusted"), std::string::npos) << se;
}

}  // namespace
}  // namespace xm::testing
