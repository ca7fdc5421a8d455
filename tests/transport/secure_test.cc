// The security layer on a socketpair: TLS 1.3 with a PSK or certificates, the
// MAC-only mode, and every way a handshake can be refused. Tampering with the
// records on the way (tests/migrate/secure_migration_test.cc does it to whole
// migrations) is checked here on the stream itself.
#include "transport/secure.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <algorithm>
#include <future>
#include <random>
#include <thread>

#include "tests/transport/stream_pair.h"
#include "tests/transport/random_bytes.h"
#include "transport/faulty_stream.h"
#include "transport/messages.h"
#include "transport/record.h"
#include "transport/tls_record.h"

namespace xm {
namespace {

// Keeps a copy of what goes out, to look at the wire.
class TapStream final : public Stream {
 public:
  TapStream(std::unique_ptr<Stream> inner, std::vector<uint8_t>& tap) : inner_(std::move(inner)), tap_(tap) {}
  Status Send(std::span<const iovec> iov) override {
    for (const iovec& v : iov) tap_.insert(tap_.end(), (uint8_t*)v.iov_base, (uint8_t*)v.iov_base + v.iov_len);
    return inner_->Send(iov);
  }
  using Stream::Send;
  Status Recv(std::span<std::byte> buf) override { return inner_->Recv(buf); }
  void Shutdown() override { inner_->Shutdown(); }
  void SetTimeoutMs(int ms) override { inner_->SetTimeoutMs(ms); }
  std::string_view kind() const override { return inner_->kind(); }
  std::string peer() const override { return inner_->peer(); }

 private:
  std::unique_ptr<Stream> inner_;
  std::vector<uint8_t>& tap_;
};

std::vector<uint8_t> Key(char c) { return std::vector<uint8_t>(32, static_cast<uint8_t>(c)); }

SecurityOptions Psk(char c, bool encrypt = true) {
  SecurityOptions o;
  o.psk = Key(c);
  o.encrypt = encrypt;
  o.handshake_timeout_ms = 5000;
  return o;
}

struct Secured {
  Result<std::unique_ptr<Stream>> source = Error(Code::kInternal, "not run");
  Result<std::unique_ptr<Stream>> destination = Error(Code::kInternal, "not run");
  std::unique_ptr<SecureContext> source_ctx, destination_ctx;
};

// Runs both handshakes over a socketpair; `source_raw` may wrap the source's raw stream.
Secured Handshake(const SecurityOptions& source, const SecurityOptions& destination,
                  std::function<std::unique_ptr<Stream>(std::unique_ptr<Stream>)> source_raw = nullptr) {
  testing::StreamPair p;
  Secured out;
  auto sc = SecureContext::Create(source, Role::kSource);
  auto dc = SecureContext::Create(destination, Role::kDestination);
  EXPECT_TRUE(sc.ok() && dc.ok()) << sc.status().ToString() << dc.status().ToString();
  if (!sc.ok() || !dc.ok()) return out;
  out.source_ctx = std::move(sc).value();
  out.destination_ctx = std::move(dc).value();
  std::unique_ptr<Stream> a = std::move(p.a);
  if (source_raw) a = source_raw(std::move(a));
  std::thread d([&, b = std::unique_ptr<Stream>(std::move(p.b))]() mutable {
    out.destination = out.destination_ctx->Secure(std::move(b));
  });
  out.source = out.source_ctx->Secure(std::move(a));
  // A failed end drops its stream, so the other one sees the close and stops.
  if (!out.source.ok()) out.source = out.source.status();
  d.join();
  return out;
}

// Sends `data` as odd-sized iovec pieces one way and a small answer back.
void ExpectCarries(Stream& from, Stream& to, const std::vector<uint8_t>& data) {
  std::vector<iovec> iov;
  size_t sizes[] = {24, 1, 4096, 100000, 16384, 3 << 20};
  for (size_t at = 0, i = 0; at < data.size(); ++i) {
    size_t n = std::min(sizes[i % std::size(sizes)], data.size() - at);
    iov.push_back({const_cast<uint8_t*>(data.data()) + at, n});
    at += n;
  }
  auto sent = std::async(std::launch::async, [&] { return from.Send(iov); });
  std::vector<uint8_t> got(data.size());
  ASSERT_TRUE(to.Recv(std::as_writable_bytes(std::span(got))).ok());
  ASSERT_TRUE(sent.get().ok());
  EXPECT_EQ(got, data);
  uint8_t answer[3] = {1, 2, 3}, back[3] = {};
  ASSERT_TRUE(to.Send(answer, 3).ok());
  ASSERT_TRUE(from.Recv(std::as_writable_bytes(std::span(back))).ok());
  EXPECT_EQ(std::memcmp(answer, back, 3), 0);
}

TEST(Secure, PskTlsCarriesBytesEncrypted) {
  std::vector<uint8_t> wire;
  auto s = Handshake(Psk('k'), Psk('k'), [&](auto raw) { return std::make_unique<TapStream>(std::move(raw), wire); });
  ASSERT_TRUE(s.source.ok()) << s.source.status().ToString();
  ASSERT_TRUE(s.destination.ok()) << s.destination.status().ToString();
  const EncryptionInfo& info = s.source_ctx->info();
  EXPECT_EQ(info.mode, "tls1.3");
  EXPECT_EQ(info.auth, "psk");
  EXPECT_EQ(info.cipher, "TLS_AES_128_GCM_SHA256");
  EXPECT_FALSE(info.kernel);
  EXPECT_FALSE(info.kernel_note.empty());
  EXPECT_EQ(info.implementation, TlsRecordCipher::Implementation());
  EXPECT_EQ(s.destination_ctx->info().cipher, "TLS_AES_128_GCM_SHA256");
  std::vector<uint8_t> data = testing::RandomBytes(5 << 20, 1);
  ExpectCarries(**s.source, **s.destination, data);
  // Nothing of the plaintext shows on the wire.
  std::vector<uint8_t> probe(data.begin() + 1000, data.begin() + 1064);
  EXPECT_EQ(std::search(wire.begin(), wire.end(), probe.begin(), probe.end()), wire.end());
  EXPECT_GT(wire.size(), data.size());
}

TEST(Secure, MacOnlyCarriesBytesInTheClearButTagged) {
  std::vector<uint8_t> wire;
  auto s = Handshake(Psk('k', false), Psk('k', false),
                     [&](auto raw) { return std::make_unique<TapStream>(std::move(raw), wire); });
  ASSERT_TRUE(s.source.ok()) << s.source.status().ToString();
  ASSERT_TRUE(s.destination.ok()) << s.destination.status().ToString();
  EXPECT_EQ(s.source_ctx->info().mode, "mac");
  EXPECT_EQ(s.source_ctx->info().mac, "AES-128-GMAC");
  std::vector<uint8_t> data = testing::RandomBytes(5 << 20, 2);
  ExpectCarries(**s.source, **s.destination, data);
  std::vector<uint8_t> probe(data.begin() + 1000, data.begin() + 1064);
  EXPECT_NE(std::search(wire.begin(), wire.end(), probe.begin(), probe.end()), wire.end());
}

TEST(Secure, WithoutAKeyTheStreamIsLeftAsItIs) {
  testing::StreamPair p;
  auto c = SecureContext::Create(SecurityOptions{}, Role::kSource);
  ASSERT_TRUE(c.ok());
  Stream* raw = p.a.get();
  auto s = (*c)->Secure(std::move(p.a));
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->get(), raw);
  EXPECT_EQ((*c)->info().mode, "none");
}

TEST(Secure, WrongKeyIsRefusedByBothEnds) {
  auto s = Handshake(Psk('a'), Psk('b'));
  ASSERT_FALSE(s.source.ok());
  ASSERT_FALSE(s.destination.ok());
  EXPECT_EQ(s.source.status().code(), Code::kAuth) << s.source.status().ToString();
  EXPECT_EQ(s.destination.status().code(), Code::kAuth) << s.destination.status().ToString();
  EXPECT_NE(s.destination.status().message().find("--key-file differs"), std::string::npos)
      << s.destination.status().ToString();
  EXPECT_NE(s.source.status().message().find("--key-file"), std::string::npos) << s.source.status().ToString();
}

TEST(Secure, EndsInDifferentModesAreRefused) {
  for (bool source_encrypts : {true, false}) {
    auto s = Handshake(Psk('k', source_encrypts), Psk('k', !source_encrypts));
    ASSERT_FALSE(s.source.ok());
    ASSERT_FALSE(s.destination.ok());
    EXPECT_EQ(s.source.status().code(), Code::kAuth);
    EXPECT_EQ(s.destination.status().code(), Code::kAuth);
    EXPECT_NE(s.destination.status().message().find("--no-encrypt"), std::string::npos)
        << s.destination.status().ToString();
    EXPECT_NE(s.source.status().message().find("--no-encrypt"), std::string::npos) << s.source.status().ToString();
  }
}

TEST(Secure, ReceiverWithAKeyTellsAPlainSourceWhy) {
  testing::StreamPair p;
  auto dc = SecureContext::Create(Psk('k'), Role::kDestination);
  ASSERT_TRUE(dc.ok());
  Hello h;
  ASSERT_TRUE(WriteRecord(*p.a, RecordType::kHello, EncodeHello(h)).ok());
  auto d = (*dc)->Secure(std::move(p.b));
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.status().code(), Code::kAuth);
  EXPECT_NE(d.status().message().find("without TLS"), std::string::npos) << d.status().ToString();
  Record rec;
  ASSERT_TRUE(ReadRecord(*p.a, rec).ok());
  ASSERT_EQ(rec.type, RecordType::kAbort);
  auto abort = DecodeAbort(rec.body);
  ASSERT_TRUE(abort.ok());
  EXPECT_NE(abort->reason.find("requires TLS"), std::string::npos) << abort->reason;
}

// Certificates made for the test with the openssl command: a pool CA, one
// certificate per host it signed, and a stranger's CA and certificate.
class SecureCerts : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::string(::testing::TempDir() + "xm-secure-certs-" + std::to_string(::getpid()));
    std::string d = *dir_;
    std::string script =
        "set -e; mkdir -p " + d + "; cd " + d +
        "; for ca in ca other; do openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2"
        " -subj /CN=$ca -keyout $ca.key -out $ca.pem 2>/dev/null; done"
        "; for h in a:ca b:ca x:other; do n=${h%:*}; ca=${h#*:}; openssl req -newkey ec -pkeyopt"
        " ec_paramgen_curve:P-256 -nodes -subj /CN=$n -keyout $n.key -out $n.csr 2>/dev/null; openssl x509 -req"
        " -in $n.csr -CA $ca.pem -CAkey $ca.key -CAcreateserial -days 2 -out $n.pem 2>/dev/null; done";
    ok_ = std::system(("bash -c '" + script + "'").c_str()) == 0;
  }
  static void TearDownTestSuite() {
    (void)std::system(("rm -rf " + *dir_).c_str());
    delete dir_;
  }
  void SetUp() override {
    if (!ok_) GTEST_SKIP() << "openssl command could not make test certificates";
  }
  static SecurityOptions Host(const std::string& name, const std::string& ca, bool encrypt = true) {
    SecurityOptions o;
    o.cert_file = *dir_ + "/" + name + ".pem";
    o.key_file = *dir_ + "/" + name + ".key";
    o.ca_file = *dir_ + "/" + ca + ".pem";
    o.encrypt = encrypt;
    o.handshake_timeout_ms = 5000;
    return o;
  }
  static inline std::string* dir_ = nullptr;
  static inline bool ok_ = false;
};

TEST_F(SecureCerts, PoolCertificatesAuthenticateBothWays) {
  for (bool encrypt : {true, false}) {
    auto s = Handshake(Host("a", "ca", encrypt), Host("b", "ca", encrypt));
    ASSERT_TRUE(s.source.ok()) << s.source.status().ToString();
    ASSERT_TRUE(s.destination.ok()) << s.destination.status().ToString();
    EXPECT_EQ(s.source_ctx->info().auth, "certificate");
    EXPECT_EQ(s.source_ctx->info().mode, encrypt ? "tls1.3" : "mac");
    ExpectCarries(**s.source, **s.destination, testing::RandomBytes(1 << 20, 3));
  }
}

TEST_F(SecureCerts, AStrangersCertificateIsRefusedEitherWay) {
  // A source the pool CA did not sign.
  auto s = Handshake(Host("x", "ca"), Host("b", "ca"));
  ASSERT_FALSE(s.source.ok());
  ASSERT_FALSE(s.destination.ok());
  EXPECT_EQ(s.source.status().code(), Code::kAuth);
  EXPECT_EQ(s.destination.status().code(), Code::kAuth);
  EXPECT_NE(s.destination.status().message().find("source's certificate is not trusted"), std::string::npos)
      << s.destination.status().ToString();
  EXPECT_NE(s.source.status().message().find("certificate"), std::string::npos) << s.source.status().ToString();
  // A receiver the source's CA did not sign.
  s = Handshake(Host("a", "ca"), Host("x", "other"));
  ASSERT_FALSE(s.source.ok());
  EXPECT_EQ(s.source.status().code(), Code::kAuth);
  EXPECT_NE(s.source.status().message().find("receiver's certificate is not trusted"), std::string::npos)
      << s.source.status().ToString();
  ASSERT_FALSE(s.destination.ok());
  EXPECT_EQ(s.destination.status().code(), Code::kAuth);
  // Certificates against a pre-shared key.
  s = Handshake(Host("a", "ca"), Psk('k'));
  EXPECT_EQ(s.source.status().code(), Code::kAuth);
  EXPECT_EQ(s.destination.status().code(), Code::kAuth);
}

TEST_F(SecureCerts, BadFilesAreNamed) {
  SecurityOptions o = Host("a", "ca");
  o.key_file = *dir_ + "/b.key";
  auto c = SecureContext::Create(o, Role::kSource);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), Code::kInvalidArgument);
  EXPECT_NE(c.status().message().find("mismatch"), std::string::npos) << c.status().ToString();
  o = Host("a", "ca");
  o.ca_file = *dir_ + "/missing.pem";
  c = SecureContext::Create(o, Role::kSource);
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("--tls-ca"), std::string::npos) << c.status().ToString();
}

// Every kind of tampering with the records the source sends, in both modes:
// the receiving end fails with kProtocol and never hands over altered bytes.
TEST(Secure, TamperedRecordsAreDetected) {
  struct Fault {
    const char* what;
    std::function<void(StreamFaults&, uint64_t at)> set;
  };
  std::vector<std::byte> forged(21);
  forged[0] = std::byte{23}, forged[1] = std::byte{3}, forged[2] = std::byte{3}, forged[4] = std::byte{16};
  std::vector<std::byte> forged_frame(8 + 64 + 16, std::byte{0x5a});
  forged_frame[0] = std::byte{64}, forged_frame[1] = forged_frame[2] = forged_frame[3] = std::byte{0};
  for (int i = 4; i < 8; ++i) forged_frame[i] = std::byte{0};
  for (bool encrypt : {true, false}) {
    const std::vector<Fault> faults = {
        {"flip", [](StreamFaults& f, uint64_t at) { f.corrupt_byte = at; }},
        {"truncate", [](StreamFaults& f, uint64_t at) { f.close_after_bytes = at; }},
        {"replay", [](StreamFaults& f, uint64_t at) { f.replay_send_at = at; }},
        {"drop", [](StreamFaults& f, uint64_t at) { f.drop_send_at = at; }},
        {"reorder", [](StreamFaults& f, uint64_t at) { f.reorder_send_at = at; }},
        {"inject", [&](StreamFaults& f, uint64_t at) {
           f.inject_at = at;
           f.inject = encrypt ? forged : forged_frame;
         }},
    };
    for (const Fault& fault : faults) {
      for (uint64_t at : {uint64_t{5000}, uint64_t{1} << 20, uint64_t{3} << 20}) {
        SCOPED_TRACE(std::string(encrypt ? "tls " : "mac ") + fault.what + " at " + std::to_string(at));
        StreamFaults f;
        fault.set(f, at);
        auto s = Handshake(Psk('k', encrypt), Psk('k', encrypt),
                           [&](auto raw) { return std::make_unique<FaultyStream>(std::move(raw), f); });
        ASSERT_TRUE(s.source.ok()) << s.source.status().ToString();
        ASSERT_TRUE(s.destination.ok()) << s.destination.status().ToString();
        (*s.destination)->SetTimeoutMs(3000);
        std::vector<uint8_t> data = testing::RandomBytes(4 << 20, 4);
        // Sent as many sends of 64 KiB, as records go out in a migration.
        std::thread sender([&] {
          for (size_t off = 0; off < data.size(); off += 64 << 10)
            if (!(*s.source)->Send(data.data() + off, 64 << 10).ok()) break;
        });
        std::vector<uint8_t> got(data.size());
        Status st = (*s.destination)->Recv(std::as_writable_bytes(std::span(got)));
        // Nothing behind a failed check is handed out, however often one asks.
        uint8_t more[64];
        Status again = (*s.destination)->Recv(std::as_writable_bytes(std::span(more)));
        EXPECT_EQ(again.ToString(), st.ToString());
        (*s.destination)->Shutdown();
        sender.join();
        ASSERT_FALSE(st.ok()) << "tampering went unnoticed";
        // A cut stream may read as the peer's close or a timeout; anything else is a failed check.
        if (std::string(fault.what) != "truncate") {
          EXPECT_EQ(st.code(), Code::kProtocol) << st.ToString();
        }
      }
    }
  }
}

}  // namespace
}  // namespace xm
