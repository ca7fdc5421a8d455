// Kernel TLS (transport/ktls.h). What can run on any host: the keys handed to
// the kernel seal and open records exactly as the user-space layer does at the
// same sequence number (checked with plain OpenSSL AES-GCM, as the kernel's
// crypto would do it), for both suites and at the live hand-over point of a
// real handshake; without the `tls` ULP (or with XMOTION_KTLS=off, or over a
// stream that is not a bare socket) the records stay in user space and the
// report says why; the kernel's refusals of a record read as the record layer's.
// Where the kernel has the ULP, the fallback tests instead check that the
// kernel took over and still carries the bytes both ways. (The machine this was
// written on has no `tls` ULP: there only the fallback branch has run.)
#include "transport/ktls.h"

#include <openssl/evp.h>
#include <poll.h>
#include <sys/socket.h>

#include <gtest/gtest.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <future>
#include <thread>

#include "tests/fuzz/memory_stream.h"
#include "tests/transport/random_bytes.h"
#include "tests/uring/loopback.h"
#include "transport/faulty_stream.h"
#include "transport/secure.h"
#include "transport/socket_stream.h"
#include "transport/tls_record.h"
#include "transport/uring_stream.h"

namespace xm {
namespace {

// Seals one TLS 1.3 application record as the kernel would from `k`: nonce =
// salt || iv, XOR the record sequence number (RFC 8446 §5.3), header as AAD.
std::vector<uint8_t> KernelSeal(const KernelTlsKeys& k, std::span<const uint8_t> plain) {
  const bool aes256 = k.info.cipher_type == TLS_CIPHER_AES_GCM_256;
  const unsigned char* key = aes256 ? k.aes256.key : k.aes128.key;
  const unsigned char* salt = aes256 ? k.aes256.salt : k.aes128.salt;
  const unsigned char* iv = aes256 ? k.aes256.iv : k.aes128.iv;
  const unsigned char* seq = aes256 ? k.aes256.rec_seq : k.aes128.rec_seq;
  uint8_t nonce[12];
  std::memcpy(nonce, salt, 4);
  std::memcpy(nonce + 4, iv, 8);
  for (int i = 0; i < 8; ++i) nonce[4 + i] ^= seq[i];
  const size_t body = plain.size() + 1 + 16;
  std::vector<uint8_t> out(5 + body);
  out[0] = 23, out[1] = 3, out[2] = 3, out[3] = uint8_t(body >> 8), out[4] = uint8_t(body);
  std::vector<uint8_t> inner(plain.begin(), plain.end());
  inner.push_back(23);
  EVP_CIPHER_CTX* c = EVP_CIPHER_CTX_new();
  int n = 0;
  EXPECT_EQ(EVP_EncryptInit_ex(c, aes256 ? EVP_aes_256_gcm() : EVP_aes_128_gcm(), nullptr, key, nonce), 1);
  EXPECT_EQ(EVP_EncryptUpdate(c, nullptr, &n, out.data(), 5), 1);
  EXPECT_EQ(EVP_EncryptUpdate(c, out.data() + 5, &n, inner.data(), int(inner.size())), 1);
  EXPECT_EQ(EVP_EncryptFinal_ex(c, out.data() + 5 + inner.size(), &n), 1);
  EXPECT_EQ(EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_GET_TAG, 16, out.data() + 5 + inner.size()), 1);
  EVP_CIPHER_CTX_free(c);
  return out;
}

// Whole writes and reads on a raw socket that may be non-blocking.
void RawSend(int fd, std::span<const uint8_t> data) {
  for (size_t at = 0; at < data.size();) {
    ssize_t n = ::send(fd, data.data() + at, data.size() - at, MSG_NOSIGNAL);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
      pollfd p{fd, POLLOUT, 0};
      ::poll(&p, 1, 1000);
      continue;
    }
    ASSERT_GT(n, 0) << std::strerror(errno);
    at += size_t(n);
  }
}
void RawRecv(int fd, std::span<uint8_t> data) {
  for (size_t at = 0; at < data.size();) {
    ssize_t n = ::recv(fd, data.data() + at, data.size() - at, 0);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
      pollfd p{fd, POLLIN, 0};
      ::poll(&p, 1, 1000);
      continue;
    }
    ASSERT_GT(n, 0) << std::strerror(errno);
    at += size_t(n);
  }
}

uint64_t SeqOf(const KernelTlsKeys& k) {
  const unsigned char* s = k.info.cipher_type == TLS_CIPHER_AES_GCM_256 ? k.aes256.rec_seq : k.aes128.rec_seq;
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = v << 8 | s[i];
  return v;
}

// For both suites and a sequence number well past 0: what the user-space layer
// seals at that number is byte for byte what the kernel's keys seal.
TEST(KernelTls, KeysSealAsTheUserSpaceLayer) {
  for (bool sha384 : {false, true}) {
    SCOPED_TRACE(sha384 ? "AES-256-GCM" : "AES-128-GCM");
    const std::vector<uint8_t> secret = testing::RandomBytes(sha384 ? 48 : 32, 7);
    TlsRecordCipher c;
    ASSERT_TRUE(c.Init(secret, sha384, 0x0102030405060708ull).ok());
    KernelTlsKeys k;
    KernelKeysFor(c, &k);
    EXPECT_EQ(k.info.version, TLS_1_3_VERSION);
    EXPECT_EQ(k.info.cipher_type, sha384 ? TLS_CIPHER_AES_GCM_256 : TLS_CIPHER_AES_GCM_128);
    EXPECT_EQ(k.size, sha384 ? sizeof k.aes256 : sizeof k.aes128);
    EXPECT_EQ(SeqOf(k), 0x0102030405060708ull);
    const std::vector<uint8_t> plain = testing::RandomBytes(1000, 8);
    iovec v{const_cast<uint8_t*>(plain.data()), plain.size()};
    std::vector<uint8_t> ours(TlsRecordCipher::SealedSize(plain.size()));
    ASSERT_TRUE(c.Seal(0, c.Reserve(1), std::span(&v, 1), plain.size(), ours.data()));
    EXPECT_EQ(KernelSeal(k, plain), ours);
    // One record later, both move on together (and the old keys no longer match).
    KernelTlsKeys next;
    KernelKeysFor(c, &next);
    EXPECT_EQ(SeqOf(next), 0x0102030405060709ull);
    EXPECT_NE(KernelSeal(next, plain), ours);
  }
}

struct LiveSession {
  std::unique_ptr<SecureContext> source_ctx, destination_ctx;
  std::unique_ptr<Stream> source, destination;
};

SecurityOptions Psk() {
  SecurityOptions o;
  o.psk.assign(32, 'k');
  o.handshake_timeout_ms = 5000;
  return o;
}

// Both handshakes over `a` (source) and `b` (destination).
LiveSession Handshake(std::unique_ptr<Stream> a, std::unique_ptr<Stream> b) {
  LiveSession s;
  auto sc = SecureContext::Create(Psk(), Role::kSource);
  auto dc = SecureContext::Create(Psk(), Role::kDestination);
  EXPECT_TRUE(sc.ok() && dc.ok());
  if (!sc.ok() || !dc.ok()) return s;
  s.source_ctx = std::move(sc).value();
  s.destination_ctx = std::move(dc).value();
  auto d = std::async(std::launch::async, [&] { return s.destination_ctx->Secure(std::move(b)); });
  auto src = s.source_ctx->Secure(std::move(a));
  auto dst = d.get();
  EXPECT_TRUE(src.ok()) << src.status().ToString();
  EXPECT_TRUE(dst.ok()) << dst.status().ToString();
  if (src.ok()) s.source = std::move(src).value();
  if (dst.ok()) s.destination = std::move(dst).value();
  return s;
}

std::pair<std::unique_ptr<Stream>, std::unique_ptr<Stream>> TcpSockets() {
  auto [a, b] = testing::TcpPair();
  return {std::make_unique<SocketStream>(std::move(a)), std::make_unique<SocketStream>(std::move(b))};
}

std::pair<std::unique_ptr<Stream>, std::unique_ptr<Stream>> TcpUring() {
  auto [a, b] = testing::TcpPair();
  auto ra = UringStream::MakeRing({}), rb = UringStream::MakeRing({});
  EXPECT_TRUE(ra.ok() && rb.ok());
  auto sa = UringStream::Create(std::move(a), std::move(ra).value(), {});
  auto sb = UringStream::Create(std::move(b), std::move(rb).value(), {});
  EXPECT_TRUE(sa.ok() && sb.ok());
  return {std::move(sa).value(), std::move(sb).value()};
}

void ExpectCarriesBothWays(Stream& a, Stream& b) {
  const std::vector<uint8_t> data = testing::RandomBytes(3 << 20, 3);
  auto sent = std::async(std::launch::async, [&] { return a.Send(data.data(), data.size()); });
  std::vector<uint8_t> got(data.size());
  ASSERT_TRUE(b.Recv(std::as_writable_bytes(std::span(got))).ok());
  ASSERT_TRUE(sent.get().ok());
  EXPECT_EQ(got, data);
  uint8_t answer[5] = {1, 2, 3, 4, 5}, back[5] = {};
  ASSERT_TRUE(b.Send(answer, 5).ok());
  ASSERT_TRUE(a.Recv(std::as_writable_bytes(std::span(back))).ok());
  EXPECT_EQ(std::memcmp(answer, back, 5), 0);
}

// Over real TCP, through plain sockets and io_uring: the kernel takes the
// records where it has the ULP; elsewhere the report and the streams say why
// not, and the user-space layer carries the bytes.
TEST(KernelTls, OverTcpTheKernelTakesOverOrTheReportSaysWhyNot) {
  const bool available = KernelTlsAvailable();
  for (bool uring : {false, true}) {
    SCOPED_TRACE(uring ? "io_uring" : "sockets");
    auto [a, b] = uring ? TcpUring() : TcpSockets();
    LiveSession s = Handshake(std::move(a), std::move(b));
    ASSERT_TRUE(s.source && s.destination);
    for (SecureContext* c : {s.source_ctx.get(), s.destination_ctx.get()}) {
      const EncryptionInfo& info = c->info();
      EXPECT_EQ(info.mode, "tls1.3");
      EXPECT_EQ(info.kernel, available) << info.kernel_note;
      if (available) {
        EXPECT_EQ(info.kernel_note, "records sealed and opened by the kernel (tls ULP)");
      } else {
        EXPECT_NE(info.kernel_note.find("setsockopt(TCP_ULP, \"tls\"): " + std::string(std::strerror(ENOENT))),
                  std::string::npos)
            << info.kernel_note;
        EXPECT_NE(info.kernel_note.find("records sealed in user space"), std::string::npos) << info.kernel_note;
      }
    }
    auto* rs = dynamic_cast<TlsRecordStream*>(s.source.get());
    ASSERT_NE(rs, nullptr);
    EXPECT_EQ(rs->kernel_tx(), available);
    EXPECT_EQ(rs->kernel_rx(), available);
    ExpectCarriesBothWays(*s.source, *s.destination);
  }
}

TEST(KernelTls, TurnedOffOrNotABareSocketStaysInUserSpace) {
  {
    ASSERT_EQ(::setenv("XMOTION_KTLS", "off", 1), 0);
    auto [a, b] = TcpSockets();
    LiveSession s = Handshake(std::move(a), std::move(b));
    ::unsetenv("XMOTION_KTLS");
    ASSERT_TRUE(s.source && s.destination);
    EXPECT_FALSE(s.source_ctx->info().kernel);
    EXPECT_EQ(s.source_ctx->info().kernel_note,
              "kernel TLS turned off (XMOTION_KTLS=off): records sealed in user space");
    ExpectCarriesBothWays(*s.source, *s.destination);
  }
  {
    auto [a, b] = TcpSockets();
    LiveSession s = Handshake(std::make_unique<FaultyStream>(std::move(a), StreamFaults{}), std::move(b));
    ASSERT_TRUE(s.source && s.destination);
    EXPECT_FALSE(s.source_ctx->info().kernel);
    EXPECT_EQ(s.source_ctx->info().kernel_note,
              "the sockets stream under TLS is not a bare socket: records sealed in user space");
    ExpectCarriesBothWays(*s.source, *s.destination);
  }
}

// The live hand-over point of a real handshake: after data moved both ways,
// the kernel keys of one end's sending direction are the other end's
// receiving ones (same key, IV, next sequence number), a record the
// user-space layer sealed opens with them, and a record sealed with them (as a
// kernel on that end would send it) opens in the other end's user-space layer;
// so one end in the kernel and the other in user space speak the same records.
TEST(KernelTls, KernelKeysAtTheHandOverInteroperateWithTheUserSpaceLayer) {
  ASSERT_EQ(::setenv("XMOTION_KTLS", "off", 1), 0);  // keep both layers in user space to look at them
  auto [a, b] = TcpSockets();
  LiveSession s = Handshake(std::move(a), std::move(b));
  ::unsetenv("XMOTION_KTLS");
  ASSERT_TRUE(s.source && s.destination);
  auto* src = dynamic_cast<TlsRecordStream*>(s.source.get());
  auto* dst = dynamic_cast<TlsRecordStream*>(s.destination.get());
  ASSERT_TRUE(src && dst);
  {
    // At the hand-over itself: the destination's "go on" was its record 0.
    KernelTlsKeys stx, srx, dtx, drx;
    KernelKeysFor(*src->tx_cipher(), &stx);
    KernelKeysFor(*src->rx_cipher(), &srx);
    KernelKeysFor(*dst->tx_cipher(), &dtx);
    KernelKeysFor(*dst->rx_cipher(), &drx);
    EXPECT_EQ(SeqOf(stx), 0u);
    EXPECT_EQ(SeqOf(srx), 1u);
    EXPECT_EQ(SeqOf(dtx), 1u);
    EXPECT_EQ(SeqOf(drx), 0u);
    EXPECT_EQ(std::memcmp(&stx.aes128, &drx.aes128, sizeof stx.aes128), 0);
    EXPECT_EQ(std::memcmp(&dtx.aes128, &srx.aes128, sizeof dtx.aes128), 0);
    EXPECT_NE(std::memcmp(stx.aes128.key, dtx.aes128.key, sizeof stx.aes128.key), 0);
  }
  ExpectCarriesBothWays(*s.source, *s.destination);

  // A record the source's layer seals opens with the destination's receive keys.
  const std::vector<uint8_t> ping = testing::RandomBytes(300, 4);
  KernelTlsKeys drx;
  KernelKeysFor(*dst->rx_cipher(), &drx);
  EXPECT_GT(SeqOf(drx), 1u);
  ASSERT_TRUE(s.source->Send(ping.data(), ping.size()).ok());
  std::vector<uint8_t> wire(TlsRecordCipher::SealedSize(ping.size()));
  RawRecv(s.destination->wrapped()->socket_fd(), wire);
  EXPECT_EQ(KernelSeal(drx, ping), wire);  // GCM is deterministic: same keys, same record

  // A record sealed with the destination's send keys opens in the source's layer.
  KernelTlsKeys dtx;
  KernelKeysFor(*dst->tx_cipher(), &dtx);
  const std::vector<uint8_t> pong = testing::RandomBytes(20000, 5);  // more than a record: only its first part
  const std::span<const uint8_t> first(pong.data(), TlsRecordCipher::kMaxPlain);
  const std::vector<uint8_t> rec = KernelSeal(dtx, first);
  RawSend(s.destination->wrapped()->socket_fd(), rec);
  std::vector<uint8_t> got(first.size());
  ASSERT_TRUE(s.source->Recv(std::as_writable_bytes(std::span(got))).ok());
  EXPECT_TRUE(std::equal(got.begin(), got.end(), first.begin()));

  // The same record again (a replay, or a kernel that carried on from a stale
  // sequence number) is refused.
  RawSend(s.destination->wrapped()->socket_fd(), rec);
  Status st = s.source->Recv(std::as_writable_bytes(std::span(got)));
  EXPECT_EQ(st.code(), Code::kProtocol) << st.ToString();
}

// A transport whose reads fail with the errno the kernel's TLS gives a bad record.
class FailingRecv final : public Stream {
 public:
  explicit FailingRecv(int err) : err_(err) {}
  Status Send(std::span<const iovec>) override { return {}; }
  using Stream::Send;
  Status Recv(std::span<std::byte>) override { return ErrnoError("receive from peer", err_); }
  void Shutdown() override {}
  void SetTimeoutMs(int) override {}
  std::string_view kind() const override { return "test"; }
  std::string peer() const override { return "peer"; }

 private:
  int err_;
};

// With the kernel opening the records, its verdicts (EBADMSG: failed
// authentication; EIO: an alert or other non-data record; EMSGSIZE) end the
// stream as the user-space layer's rejections do, for good; other errors pass.
TEST(KernelTls, KernelRefusalsEndTheStreamAsRejections) {
  for (int e : {EBADMSG, EIO, EMSGSIZE}) {
    TlsRecordStream s(std::make_unique<FailingRecv>(e), nullptr, nullptr);
    std::byte buf[10];
    Status st = s.Recv(buf);
    EXPECT_EQ(st.code(), Code::kProtocol) << st.ToString();
    EXPECT_NE(st.message().find("rejected"), std::string::npos) << st.ToString();
    EXPECT_NE(st.message().find(std::strerror(e)), std::string::npos) << st.ToString();
    EXPECT_EQ(s.Recv(buf).message(), st.message());
  }
  TlsRecordStream s(std::make_unique<FailingRecv>(ECONNRESET), nullptr, nullptr);
  std::byte buf[10];
  EXPECT_EQ(s.Recv(buf).code(), Code::kIo);
  // Sends pass through in the clear (the kernel seals them).
  auto mem = std::make_unique<testing::MemoryStream>(std::span<const uint8_t>());
  testing::MemoryStream* tap = mem.get();
  TlsRecordStream plain(std::move(mem), nullptr, std::make_unique<TlsRecordCipher>());
  ASSERT_TRUE(plain.Send("abc", 3).ok());
  EXPECT_EQ(tap->sent(), (std::vector<uint8_t>{'a', 'b', 'c'}));
}

}  // namespace
}  // namespace xm
