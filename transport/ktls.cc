#include "transport/ktls.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/crypto.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string_view>

namespace xm {

namespace {

constexpr char kUlp[] = "tls";

std::string AvailableUlps() {
  std::ifstream in("/proc/sys/net/ipv4/tcp_available_ulp");
  std::string ulps;
  std::getline(in, ulps);
  return ulps;
}

void PutSeq(uint64_t seq, unsigned char out[8]) {
  for (int i = 0; i < 8; ++i) out[i] = static_cast<unsigned char>(seq >> (56 - 8 * i));
}

// The static IV of RFC 8446 is the kernel's 4-byte salt followed by its 8-byte
// IV; the kernel XORs the sequence number into the last 8 bytes, as RFC 8446 §5.3.
template <typename Info>
void Fill(const TlsRecordCipher& c, Info& k, uint16_t cipher) {
  static_assert(sizeof k.salt + sizeof k.iv == 12 && sizeof k.rec_seq == 8);
  k.info.version = TLS_1_3_VERSION;
  k.info.cipher_type = cipher;
  std::memcpy(k.key, c.key().data(), sizeof k.key);
  std::memcpy(k.salt, c.iv().data(), sizeof k.salt);
  std::memcpy(k.iv, c.iv().data() + sizeof k.salt, sizeof k.iv);
  PutSeq(c.next_seq(), k.rec_seq);
}

}  // namespace

KernelTlsKeys::KernelTlsKeys() { std::memset(&aes256, 0, sizeof aes256); }
KernelTlsKeys::~KernelTlsKeys() { OPENSSL_cleanse(&aes256, sizeof aes256); }

void KernelKeysFor(const TlsRecordCipher& c, KernelTlsKeys* out) {
  if (c.key().size() == TLS_CIPHER_AES_GCM_256_KEY_SIZE) {
    Fill(c, out->aes256, TLS_CIPHER_AES_GCM_256);
    out->size = sizeof out->aes256;
  } else {
    Fill(c, out->aes128, TLS_CIPHER_AES_GCM_128);
    out->size = sizeof out->aes128;
  }
}

bool KernelTlsAvailable() {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  // The ULP is looked up before the connection is: ENOENT is "no such ULP",
  // anything else (ENOTCONN) says it exists.
  const bool found = ::setsockopt(fd, SOL_TCP, TCP_ULP, kUlp, sizeof kUlp - 1) == 0 || errno != ENOENT;
  ::close(fd);
  return found;
}

KernelTlsOutcome HandToKernel(Stream& raw, const TlsRecordCipher& tx, const TlsRecordCipher& rx) {
  KernelTlsOutcome out;
  const char* env = std::getenv("XMOTION_KTLS");
  if (env && std::string_view(env) == "off") {
    out.note = "kernel TLS turned off (XMOTION_KTLS=off): records sealed in user space";
    return out;
  }
  const int fd = raw.socket_fd();
  if (fd < 0) {
    out.note = "the " + std::string(raw.kind()) + " stream under TLS is not a bare socket: records sealed in user space";
    return out;
  }
  if (::setsockopt(fd, SOL_TCP, TCP_ULP, kUlp, sizeof kUlp - 1) != 0) {
    const int e = errno;
    out.note = std::string("no kernel TLS: setsockopt(TCP_ULP, \"tls\"): ") + std::strerror(e);
    if (e == ENOENT) out.note += " (no tls module on this host; available ULPs: '" + AvailableUlps() + "')";
    out.note += ": records sealed in user space";
    return out;
  }
  std::string rx_why, tx_why;
  if (const size_t ahead = raw.read_ahead(); ahead > 0) {
    rx_why = std::to_string(ahead) + " bytes of the peer's were already read ahead in user space";
  } else {
    KernelTlsKeys k;
    KernelKeysFor(rx, &k);
    if (::setsockopt(fd, SOL_TLS, TLS_RX, &k, k.size) == 0) {
      out.rx = true;
      // Linux >= 6.0: decrypt straight into the caller's buffer, as no xmotion
      // peer pads (a padded record still opens, the kernel retries it). Older
      // kernels refuse the option; nothing is lost.
      int one = 1;
      (void)::setsockopt(fd, SOL_TLS, TLS_RX_EXPECT_NO_PAD, &one, sizeof one);
    } else {
      rx_why = std::string("setsockopt(TLS_RX): ") + std::strerror(errno);
    }
  }
  {
    KernelTlsKeys k;
    KernelKeysFor(tx, &k);
    if (::setsockopt(fd, SOL_TLS, TLS_TX, &k, k.size) == 0)
      out.tx = true;
    else
      tx_why = std::string("setsockopt(TLS_TX): ") + std::strerror(errno);
  }
  if (out.tx && out.rx)
    out.note = "records sealed and opened by the kernel (tls ULP)";
  else if (out.tx)
    out.note = "kernel TLS sends only; received records opened in user space (" + rx_why + ")";
  else if (out.rx)
    out.note = "kernel TLS receives only; records sent sealed in user space (" + tx_why + ")";
  else
    out.note = "kernel TLS refused the keys (" + rx_why + "; " + tx_why + "): records sealed in user space";
  return out;
}

}  // namespace xm
