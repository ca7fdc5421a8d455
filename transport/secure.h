// The security layer under every xmotion connection (PROTOCOL.md §5): before a
// record is exchanged, each stream runs a TLS 1.3 handshake in which both ends
// authenticate, with an external PSK derived from --key-file or with
// certificates signed by the pool's CA (--tls-cert/--tls-key/--tls-ca). Then
// the stream carries either TLS records (the default: secret and tamper-proof)
// or, with --no-encrypt, plain frames under a per-direction GMAC keyed from the
// handshake (tamper-proof, readable; mac_stream.h). Both ends must choose the
// same mode: it is the handshake's ALPN, so a mismatch is refused, never
// downgraded. Without any key the streams stay plain and that is said loudly.
//
// OpenSSL does the handshake in user space over a BIO of our own, so whatever
// transport is underneath (io_uring, sockets, a test's faults) moves it; then
// the record layer (tls_record.h) carries the data with the handshake's keys,
// in user space or, where the kernel has the `tls` ULP and the transport is a
// bare socket, handed to kernel TLS (ktls.h).
//
// Thread-safety: a SecureContext is shared by the streams of one migration;
// Secure() may be called from one thread at a time. The streams it returns
// take one sender and one receiver thread, as any Stream.
#pragma once

#include <openssl/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "base/status.h"
#include "transport/messages.h"
#include "transport/stream.h"

namespace xm {

struct SecurityOptions {
  std::vector<uint8_t> psk;  // the --key-file bytes; empty = no pre-shared key
  std::string cert_file, key_file, ca_file;  // PEM; all three or none
  bool encrypt = true;                       // false: --no-encrypt (MAC only)
  int handshake_timeout_ms = 10000;          // for the raw stream during the handshake (0 = as it is)

  bool certificates() const { return !cert_file.empty(); }
  bool enabled() const { return !psk.empty() || certificates(); }
};

// What protects the streams, for the report's `encryption` (REPORT.md).
struct EncryptionInfo {
  std::string mode = "none";  // "tls1.3" | "mac" | "none"
  std::string auth = "none";  // "psk" | "certificate" | "none"
  std::string cipher;         // the TLS 1.3 suite the handshake negotiated, e.g. TLS_AES_128_GCM_SHA256
  std::string mac;            // mode "mac": "AES-128-GMAC"
  std::string implementation; // the code that seals records: "kernel (tls ULP)", "intel-ipsec-mb ...", "OpenSSL ..."
  bool kernel = false;        // every stream's records sealed and opened by the kernel (kTLS)
  std::string kernel_note;    // how that went (why not, or which direction only)
};

class SecureContext {
 public:
  // Loads keys and certificates (a bad file is kInvalidArgument naming it).
  // The source is the TLS client, the destination the server.
  static Result<std::unique_ptr<SecureContext>> Create(const SecurityOptions& opts, Role role);
  ~SecureContext();

  // Authenticates the peer on a new connection and returns the stream to use
  // in its place (the raw one itself when security is off). A wrong key, an
  // untrusted certificate, a peer in the other mode or without TLS at all is
  // kAuth with the reason; nothing of the peer's reaches the caller before that.
  Result<std::unique_ptr<Stream>> Secure(std::unique_ptr<Stream> raw);

  // Filled once the first stream is secured (mode "none" when security is off).
  const EncryptionInfo& info() const { return info_; }

 private:
  SecureContext(const SecurityOptions& opts, Role role);
  Status Init();

  SecurityOptions opts_;
  Role role_;
  SSL_CTX* ctx_ = nullptr;
  std::string psk_identity_;
  std::vector<uint8_t> psk_;
  EncryptionInfo info_;
  size_t secured_ = 0;             // TLS streams so far
  std::string first_kernel_note_;  // how kernel TLS went for the first
  friend class TlsStream;
};

}  // namespace xm
