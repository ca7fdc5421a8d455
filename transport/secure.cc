#include "transport/secure.h"

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <sstream>

#include "base/log.h"
#include "transport/ktls.h"
#include "transport/mac_stream.h"
#include "transport/record.h"
#include "transport/tls_record.h"

namespace xm {

namespace {

// ALPN names the record mode, so the handshake (whose Finished covers it)
// settles it: an attacker cannot talk one end into the other's mode.
constexpr std::string_view kAlpnTls = "xmotion-tls/1";
constexpr std::string_view kAlpnMac = "xmotion-mac/1";
constexpr char kMacExporterLabel[] = "EXPORTER-xmotion-record-mac-v1";
constexpr size_t kTlsHeader = 5;
constexpr size_t kMaxTlsRecord = (16 << 10) + 256;  // TLS 1.3 ciphertext limit

std::string_view Alpn(bool encrypt) { return encrypt ? kAlpnTls : kAlpnMac; }

// The OpenSSL error queue as one reason (the first entry is the cause).
std::string SslReason() {
  std::string out;
  while (unsigned long e = ERR_get_error()) {
    if (!out.empty()) continue;
    const char* r = ERR_reason_error_string(e);
    out = r ? r : "error " + std::to_string(e);
  }
  return out.empty() ? "unknown TLS error" : out;
}

Result<std::vector<uint8_t>> Hkdf(std::span<const uint8_t> key, std::string_view info, size_t len) {
  std::vector<uint8_t> out(len);
  EVP_PKEY_CTX* p = EVP_PKEY_CTX_new_id(EVP_PKEY_HKDF, nullptr);
  static constexpr char kSalt[] = "xmotion-psk-v1";
  bool ok = p && EVP_PKEY_derive_init(p) > 0 && EVP_PKEY_CTX_set_hkdf_md(p, EVP_sha256()) > 0 &&
            EVP_PKEY_CTX_set1_hkdf_salt(p, reinterpret_cast<const unsigned char*>(kSalt), sizeof kSalt - 1) > 0 &&
            EVP_PKEY_CTX_set1_hkdf_key(p, key.data(), static_cast<int>(key.size())) > 0 &&
            EVP_PKEY_CTX_add1_hkdf_info(p, reinterpret_cast<const unsigned char*>(info.data()),
                                        static_cast<int>(info.size())) > 0 &&
            EVP_PKEY_derive(p, out.data(), &len) > 0;
  EVP_PKEY_CTX_free(p);
  if (!ok) return Error(Code::kInternal, "HKDF: " + SslReason());
  return out;
}

const char* PeerName(Role me) { return me == Role::kSource ? "receiver" : "source"; }

}  // namespace

// The TLS handshake over another Stream: OpenSSL runs it in user space
// through a BIO whose bytes are ours (out_ to send, in_ received), and the
// inner stream moves them. Received records are read whole (5-byte header,
// then its length), never beyond, so the connection can be handed to the
// record layer (tls_record.h) or a MacStream with nothing buffered.
class TlsStream {
 public:
  TlsStream(SecureContext& ctx, std::unique_ptr<Stream> inner) : ctx_(ctx), inner_(std::move(inner)) {}
  ~TlsStream() {
    SSL_free(ssl_);
    OPENSSL_cleanse(client_secret.data(), client_secret.size());
    OPENSSL_cleanse(server_secret.data(), server_secret.size());
  }

  Status Init();
  Status Handshake();
  Result<std::unique_ptr<Stream>> IntoMacStream() &&;
  // The record layer, with each direction handed to kernel TLS where it can
  // take it (`kernel` says how that went).
  Result<std::unique_ptr<Stream>> IntoRecordStream(KernelTlsOutcome* kernel) &&;
  std::string cipher() const { return SSL_CIPHER_get_name(SSL_get_current_cipher(ssl_)); }

  // Set by callbacks during the handshake, for its error message.
  std::string refusal;        // why this end refused
  std::string alert_received; // the peer's alert, when it sent one
  // The application traffic secrets (OpenSSL's key log), for the record layer.
  std::vector<uint8_t> client_secret, server_secret;

 private:
  static BIO_METHOD* Method();
  static int BioWrite(BIO* b, const char* data, int len);
  static int BioRead(BIO* b, char* data, int len);
  static long BioCtrl(BIO*, int cmd, long, void*) { return cmd == BIO_CTRL_FLUSH ? 1 : 0; }

  Status FlushOut();
  Status FetchRecord(size_t got, size_t want);
  Status HandshakeError(Status io);

  SecureContext& ctx_;
  std::unique_ptr<Stream> inner_;
  SSL* ssl_ = nullptr;
  std::vector<uint8_t> out_;  // handshake bytes to send
  std::vector<uint8_t> in_;   // handshake records received, not yet consumed by OpenSSL
  size_t in_pos_ = 0;
};

BIO_METHOD* TlsStream::Method() {
  static BIO_METHOD* m = [] {
    BIO_METHOD* b = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "xmotion stream");
    BIO_meth_set_write(b, &TlsStream::BioWrite);
    BIO_meth_set_read(b, &TlsStream::BioRead);
    BIO_meth_set_ctrl(b, &TlsStream::BioCtrl);
    BIO_meth_set_create(b, [](BIO* bio) {
      BIO_set_init(bio, 1);
      return 1;
    });
    return b;
  }();
  return m;
}

int TlsStream::BioWrite(BIO* b, const char* data, int len) {
  auto* t = static_cast<TlsStream*>(BIO_get_data(b));
  // resize + memcpy: an insert from char* into a vector of uint8_t copies byte by byte.
  const size_t at = t->out_.size();
  t->out_.resize(at + static_cast<size_t>(len));
  std::memcpy(t->out_.data() + at, data, static_cast<size_t>(len));
  return len;
}

int TlsStream::BioRead(BIO* b, char* data, int len) {
  auto* t = static_cast<TlsStream*>(BIO_get_data(b));
  BIO_clear_retry_flags(b);
  size_t n = std::min<size_t>(static_cast<size_t>(len), t->in_.size() - t->in_pos_);
  if (n == 0) {
    BIO_set_retry_read(b);
    return -1;
  }
  std::memcpy(data, t->in_.data() + t->in_pos_, n);
  t->in_pos_ += n;
  return static_cast<int>(n);
}

Status TlsStream::Init() {
  ssl_ = SSL_new(ctx_.ctx_);
  BIO* bio = BIO_new(Method());
  if (!ssl_ || !bio) {
    BIO_free(bio);
    return Error(Code::kInternal, "TLS: " + SslReason());
  }
  BIO_set_data(bio, this);
  SSL_set_bio(ssl_, bio, bio);
  SSL_set_app_data(ssl_, this);
  if (ctx_.role_ == Role::kSource) {
    SSL_set_connect_state(ssl_);
    std::string_view want = Alpn(ctx_.opts_.encrypt);
    std::vector<uint8_t> alpn{static_cast<uint8_t>(want.size())};
    alpn.insert(alpn.end(), want.begin(), want.end());
    if (SSL_set_alpn_protos(ssl_, alpn.data(), static_cast<unsigned>(alpn.size())) != 0)
      return Error(Code::kInternal, "TLS ALPN: " + SslReason());
  } else {
    SSL_set_accept_state(ssl_);
  }
  return {};
}

Status TlsStream::FlushOut() {
  if (out_.empty()) return {};
  Status st = inner_->Send(out_.data(), out_.size());
  out_.clear();
  return st;
}

// One whole TLS record from the wire into in_.
Status TlsStream::FetchRecord(size_t got, size_t want) {
  if (in_pos_ == in_.size()) in_.clear(), in_pos_ = 0;
  uint8_t h[kTlsHeader];
  Status st = inner_->Recv(std::as_writable_bytes(std::span(h)));
  if (!st.ok()) {
    if (st.code() == Code::kAborted && got > 0)
      return ClosedByPeer(inner_->peer(), got, want);
    return st;
  }
  const size_t len = (size_t{h[3]} << 8) | h[4];
  if (h[0] < 20 || h[0] > 23 || h[1] != 3 || len > kMaxTlsRecord) {
    const bool plain_xmotion = h[0] == static_cast<uint8_t>(RecordType::kHello) && h[1] == 0 && h[2] == 0 && h[3] == 0;
    if (plain_xmotion) {
      // A source without a key: tell it why in words it can read (a plain ABORT).
      if (ctx_.role_ == Role::kDestination)
        (void)WriteRecord(*inner_, RecordType::kAbort,
                          EncodeAbort({Code::kAuth, "this receiver requires TLS (--key-file or --tls-cert)"}));
      return Error(Code::kAuth, "the " + std::string(PeerName(ctx_.role_)) + " at " + inner_->peer() +
                                    " speaks xmotion without TLS (it has no --key-file/--tls-cert)");
    }
    return Error(Code::kAuth, "from " + inner_->peer() + ": not TLS: " +
                                  DescribeForeignBytes(std::span<const uint8_t>(h, kTlsHeader)));
  }
  in_.insert(in_.end(), h, h + kTlsHeader);
  size_t at = in_.size();
  in_.resize(at + len);
  st = inner_->Recv(std::as_writable_bytes(std::span(in_).subspan(at)));
  if (!st.ok() && st.code() == Code::kAborted)
    return Error(Code::kProtocol, "connection closed by " + inner_->peer() + " in the middle of a TLS record");
  return st;
}

Status TlsStream::HandshakeError(Status io) {
  const char* peer = PeerName(ctx_.role_);
  const bool psk = !ctx_.opts_.certificates();
  std::string why;
  if (!io.ok() && io.code() == Code::kAuth) {
    why = io.message();
  } else if (!refusal.empty()) {
    why = refusal;
  } else if (long v = SSL_get_verify_result(ssl_); v != X509_V_OK) {
    why = std::string("the ") + peer + "'s certificate is not trusted: " + X509_verify_cert_error_string(v);
  } else if (!alert_received.empty()) {
    why = std::string("the ") + peer + " refused the handshake (TLS alert '" + alert_received + "')";
    if (alert_received == "no application protocol")
      why += ": the ends differ in --no-encrypt";
    else if (psk)
      why += ": its --key-file differs from ours, or it uses certificates";
    else
      why += ": it does not accept our certificate, or uses a pre-shared key";
  } else if (!io.ok()) {
    if (io.code() == Code::kAborted)
      why = std::string("the ") + peer + " closed the connection during the TLS handshake (does it run without " +
            "--key-file/--tls-cert, or with another key?)";
    else
      return std::move(io).With("TLS handshake with " + inner_->peer());
  } else {
    why = SslReason();
    if (psk && (why == "no suitable signature algorithm" || why == "no shared cipher"))
      why = "no common key with the " + std::string(peer) + " (" + why + "): its --key-file differs from ours";
  }
  ERR_clear_error();
  return Error(Code::kAuth, "TLS handshake with " + inner_->peer() + " failed: " + why);
}

Status TlsStream::Handshake() {
  ERR_clear_error();
  for (;;) {
    int r = SSL_do_handshake(ssl_), err = r == 1 ? 0 : SSL_get_error(ssl_, r);
    // Our alert or flight goes out before we wait for the peer or give up.
    Status sent = FlushOut();
    if (r == 1) {
      if (!sent.ok()) return HandshakeError(sent);
      break;
    }
    if (err != SSL_ERROR_WANT_READ) return HandshakeError({});
    if (!sent.ok()) return HandshakeError(sent);
    if (Status st = FetchRecord(0, 0); !st.ok()) return HandshakeError(st);
  }
  // The server says "go on" in one application record, so a client whose last
  // flight (its certificate) the server refuses learns it here, with the reason,
  // and never mistakes the alert for data.
  uint8_t go = 1;
  if (ctx_.role_ == Role::kDestination) {
    if (SSL_write(ssl_, &go, 1) != 1) return HandshakeError({});
    if (Status st = FlushOut(); !st.ok()) return HandshakeError(st);
  } else {
    for (;;) {
      int r = SSL_read(ssl_, &go, 1), err = r == 1 ? 0 : SSL_get_error(ssl_, r);
      if (r == 1) break;
      if (err != SSL_ERROR_WANT_READ) return HandshakeError({});
      if (Status st = FetchRecord(0, 0); !st.ok()) return HandshakeError(st);
    }
    const unsigned char* sel = nullptr;
    unsigned sel_len = 0;
    SSL_get0_alpn_selected(ssl_, &sel, &sel_len);
    std::string_view want = Alpn(ctx_.opts_.encrypt);
    if (go != 1 || std::string_view(reinterpret_cast<const char*>(sel), sel_len) != want)
      return Error(Code::kAuth, "TLS handshake with " + inner_->peer() + " failed: the receiver did not confirm " +
                                    std::string(want));
  }
  return {};
}

Result<std::unique_ptr<Stream>> TlsStream::IntoRecordStream(KernelTlsOutcome* kernel) && {
  const bool sha384 = SSL_CIPHER_get_id(SSL_get_current_cipher(ssl_)) == TLS1_3_CK_AES_256_GCM_SHA384;
  if (client_secret.empty() || server_secret.empty())
    return Error(Code::kInternal, "TLS: the handshake did not yield its traffic secrets");
  auto to_destination = std::make_unique<TlsRecordCipher>(), to_source = std::make_unique<TlsRecordCipher>();
  // The destination's "go on" record was application record 0 of its direction.
  XM_TRY(to_destination->Init(client_secret, sha384, 0));
  XM_TRY(to_source->Init(server_secret, sha384, 1));
  const bool source = ctx_.role_ == Role::kSource;
  std::unique_ptr<TlsRecordCipher> tx = source ? std::move(to_destination) : std::move(to_source);
  std::unique_ptr<TlsRecordCipher> rx = source ? std::move(to_source) : std::move(to_destination);
  // The hand-over point: the handshake read records whole and nothing more,
  // and the "go on" record is the only application record so far, so the
  // ciphers' next sequence numbers are where the kernel carries on.
  *kernel = HandToKernel(*inner_, *tx, *rx);
  if (kernel->tx) tx.reset();
  if (kernel->rx) rx.reset();
  return std::unique_ptr<Stream>(std::make_unique<TlsRecordStream>(std::move(inner_), std::move(tx), std::move(rx)));
}

Result<std::unique_ptr<Stream>> TlsStream::IntoMacStream() && {
  uint8_t keys[32];
  if (SSL_export_keying_material(ssl_, keys, sizeof keys, kMacExporterLabel, sizeof kMacExporterLabel - 1, nullptr,
                                 0, 0) != 1)
    return Error(Code::kInternal, "TLS exporter: " + SslReason());
  MacKey to_destination, to_source;
  std::memcpy(to_destination.data(), keys, 16);
  std::memcpy(to_source.data(), keys + 16, 16);
  OPENSSL_cleanse(keys, sizeof keys);
  const bool source = ctx_.role_ == Role::kSource;
  auto s = MacStream::Create(std::move(inner_), source ? to_destination : to_source,
                             source ? to_source : to_destination);
  OPENSSL_cleanse(to_destination.data(), 16);
  OPENSSL_cleanse(to_source.data(), 16);
  if (!s.ok()) return s.status();
  return std::unique_ptr<Stream>(std::move(s).value());
}

SecureContext::SecureContext(const SecurityOptions& opts, Role role) : opts_(opts), role_(role) {}

SecureContext::~SecureContext() {
  SSL_CTX_free(ctx_);
  OPENSSL_cleanse(psk_.data(), psk_.size());
  OPENSSL_cleanse(opts_.psk.data(), opts_.psk.size());
}

namespace {

TlsStream* StreamOf(const SSL* ssl) { return static_cast<TlsStream*>(SSL_get_app_data(ssl)); }

SSL_SESSION* PskSession(SSL* ssl, std::span<const uint8_t> psk) {
  static constexpr unsigned char kAes128GcmSha256[] = {0x13, 0x01};
  const SSL_CIPHER* cipher = SSL_CIPHER_find(ssl, kAes128GcmSha256);
  SSL_SESSION* s = SSL_SESSION_new();
  if (!s || !cipher || !SSL_SESSION_set1_master_key(s, psk.data(), psk.size()) ||
      !SSL_SESSION_set_cipher(s, cipher) || !SSL_SESSION_set_protocol_version(s, TLS1_3_VERSION)) {
    SSL_SESSION_free(s);
    return nullptr;
  }
  return s;
}

}  // namespace

Status SecureContext::Init() {
  ctx_ = SSL_CTX_new(role_ == Role::kSource ? TLS_client_method() : TLS_server_method());
  if (!ctx_) return Error(Code::kInternal, "TLS: " + SslReason());
  SSL_CTX_set_min_proto_version(ctx_, TLS1_3_VERSION);
  SSL_CTX_set_max_proto_version(ctx_, TLS1_3_VERSION);
  // AES-GCM only (the record layer, tls_record.h, does those): AES-128 first,
  // the fastest with AES-NI/VAES.
  SSL_CTX_set_ciphersuites(ctx_, "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384");
  SSL_CTX_set_options(ctx_, SSL_OP_NO_TICKET | SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_RENEGOTIATION);
  SSL_CTX_set_num_tickets(ctx_, 0);  // nothing after the handshake but our records
  SSL_CTX_set_session_cache_mode(ctx_, SSL_SESS_CACHE_OFF);
  // The application traffic secrets go to the record layer, as they would to kernel TLS.
  SSL_CTX_set_keylog_callback(ctx_, [](const SSL* ssl, const char* line) {
    std::string_view l(line);
    auto take = [&](std::string_view label, std::vector<uint8_t>& into) {
      if (l.substr(0, label.size()) != label || l.size() <= label.size() || l[label.size()] != ' ') return;
      size_t secret_at = l.rfind(' ');
      if (secret_at == std::string_view::npos) return;
      std::string_view hex = l.substr(secret_at + 1);
      into.clear();
      for (size_t i = 0; i + 1 < hex.size(); i += 2)
        into.push_back(static_cast<uint8_t>(std::stoi(std::string(hex.substr(i, 2)), nullptr, 16)));
    };
    take("CLIENT_TRAFFIC_SECRET_0", StreamOf(ssl)->client_secret);
    take("SERVER_TRAFFIC_SECRET_0", StreamOf(ssl)->server_secret);
  });
  SSL_CTX_set_info_callback(ctx_, [](const SSL* ssl, int where, int ret) {
    if ((where & SSL_CB_ALERT) && (where & SSL_CB_READ)) StreamOf(ssl)->alert_received = SSL_alert_desc_string_long(ret);
  });
  if (role_ == Role::kDestination) {
    SSL_CTX_set_alpn_select_cb(
        ctx_,
        [](SSL* ssl, const unsigned char** out, unsigned char* outlen, const unsigned char* in, unsigned inlen,
           void* arg) -> int {
          auto* self = static_cast<SecureContext*>(arg);
          std::string_view want = Alpn(self->opts_.encrypt), other = Alpn(!self->opts_.encrypt);
          bool offered_other = false;
          for (unsigned i = 0; i < inlen;) {
            unsigned n = in[i];
            if (i + 1 + n > inlen) break;
            std::string_view p(reinterpret_cast<const char*>(in + i + 1), n);
            if (p == want) {
              *out = in + i + 1;
              *outlen = static_cast<unsigned char>(n);
              return SSL_TLSEXT_ERR_OK;
            }
            offered_other |= p == other;
            i += 1 + n;
          }
          StreamOf(ssl)->refusal =
              offered_other ? (self->opts_.encrypt ? "the source runs with --no-encrypt (integrity only), this receiver "
                                                     "encrypts: both ends must agree"
                                                   : "the source encrypts, this receiver runs with --no-encrypt: both "
                                                     "ends must agree")
                            : "the peer is not an xmotion source (no xmotion protocol in its TLS hello)";
          return SSL_TLSEXT_ERR_ALERT_FATAL;
        },
        this);
  }
  if (opts_.certificates()) {
    if (opts_.key_file.empty() || opts_.ca_file.empty())
      return Error(Code::kInvalidArgument, "--tls-cert needs --tls-key and --tls-ca too");
    if (SSL_CTX_use_certificate_chain_file(ctx_, opts_.cert_file.c_str()) != 1)
      return Error(Code::kInvalidArgument, "--tls-cert " + opts_.cert_file + ": " + SslReason());
    if (SSL_CTX_use_PrivateKey_file(ctx_, opts_.key_file.c_str(), SSL_FILETYPE_PEM) != 1)
      return Error(Code::kInvalidArgument, "--tls-key " + opts_.key_file + ": " + SslReason());
    if (SSL_CTX_check_private_key(ctx_) != 1)
      return Error(Code::kInvalidArgument, "--tls-key " + opts_.key_file + " does not belong to --tls-cert " +
                                               opts_.cert_file);
    if (SSL_CTX_load_verify_locations(ctx_, opts_.ca_file.c_str(), nullptr) != 1)
      return Error(Code::kInvalidArgument, "--tls-ca " + opts_.ca_file + ": " + SslReason());
    // Both ends present a certificate and check the other's against the pool CA.
    SSL_CTX_set_verify(ctx_, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
    info_.auth = "certificate";
  } else {
    // An external PSK: the identity and the key are derived from the key file,
    // so the identity (sent in clear) says nothing about the key.
    XM_ASSIGN_OR_RETURN(std::vector<uint8_t> id, Hkdf(opts_.psk, "identity", 16));
    XM_ASSIGN_OR_RETURN(psk_, Hkdf(opts_.psk, "tls13 external psk", 32));
    static constexpr char kHex[] = "0123456789abcdef";
    psk_identity_ = "xmotion-psk-";
    for (uint8_t b : id) psk_identity_ += {kHex[b >> 4], kHex[b & 15]};
    SSL_CTX_set_app_data(ctx_, this);
    if (role_ == Role::kSource) {
      SSL_CTX_set_psk_use_session_callback(
          ctx_, [](SSL* ssl, const EVP_MD*, const unsigned char** id, size_t* idlen, SSL_SESSION** sess) -> int {
            auto* self = static_cast<SecureContext*>(SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl)));
            *sess = PskSession(ssl, self->psk_);
            if (!*sess) return 0;
            *id = reinterpret_cast<const unsigned char*>(self->psk_identity_.data());
            *idlen = self->psk_identity_.size();
            return 1;
          });
    } else {
      SSL_CTX_set_psk_find_session_callback(
          ctx_, [](SSL* ssl, const unsigned char* id, size_t idlen, SSL_SESSION** sess) -> int {
            auto* self = static_cast<SecureContext*>(SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl)));
            *sess = nullptr;
            if (std::string_view(reinterpret_cast<const char*>(id), idlen) != self->psk_identity_) {
              StreamOf(ssl)->refusal = "the source's --key-file differs from this receiver's (unknown PSK identity)";
              return 1;  // no session: the handshake fails for want of a common key
            }
            *sess = PskSession(ssl, self->psk_);
            return *sess ? 1 : 0;
          });
    }
    info_.auth = "psk";
  }
  return {};
}

Result<std::unique_ptr<SecureContext>> SecureContext::Create(const SecurityOptions& opts, Role role) {
  std::unique_ptr<SecureContext> c(new SecureContext(opts, role));
  if (!opts.enabled()) {
    // Said when a migration really starts (not for a command refused for its
    // arguments), on every run: never silently in the clear.
    spdlog::warn("{}: NO --key-file or --tls-cert: the migration streams are neither authenticated nor encrypted; "
                 "anyone on the path can read and rewrite guest memory",
                 role == Role::kSource ? "send" : "receive");
    return c;
  }
  XM_TRY(c->Init());
  return c;
}

Result<std::unique_ptr<Stream>> SecureContext::Secure(std::unique_ptr<Stream> raw) {
  if (!opts_.enabled()) return raw;
  if (opts_.handshake_timeout_ms > 0) raw->SetTimeoutMs(opts_.handshake_timeout_ms);
  auto t = std::make_unique<TlsStream>(*this, std::move(raw));
  XM_TRY(t->Init());
  XM_TRY(t->Handshake());
  info_.cipher = t->cipher();
  if (opts_.encrypt) {
    info_.mode = "tls1.3";
    KernelTlsOutcome k;
    auto s = std::move(*t).IntoRecordStream(&k);
    if (!s.ok()) return s;
    // The report's `kernel` holds for every stream of the migration; a stream
    // that went otherwise than the first is said in the note (and logged).
    const bool both = k.tx && k.rx;
    const std::string impl = both ? "kernel (tls ULP)" : TlsRecordCipher::Implementation();
    if (secured_ == 0 || info_.implementation == impl)
      info_.implementation = impl;
    else
      info_.implementation = "kernel (tls ULP) and " + TlsRecordCipher::Implementation();
    if (secured_ == 0) {
      first_kernel_note_ = k.note;
      info_.kernel = both;
      info_.kernel_note = k.note;
    } else if (k.note != first_kernel_note_) {
      info_.kernel = info_.kernel && both;
      info_.kernel_note = "streams differ: stream 1: " + first_kernel_note_ + "; stream " +
                          std::to_string(secured_ + 1) + ": " + k.note;
    }
    if (secured_ == 0 || k.note != first_kernel_note_)
      spdlog::info("{}: TLS 1.3 ({}) {}: {}", role_ == Role::kSource ? "send" : "receive", info_.cipher,
                   both ? "in the kernel" : "in user space", k.note);
    ++secured_;
    return s;
  }
  info_.mode = "mac";
  info_.mac = "AES-128-GMAC";
  info_.implementation = TlsRecordCipher::OpenSslImplementation();
  info_.kernel_note = "--no-encrypt: frames tagged in user space (kernel TLS carries only TLS records)";
  return std::move(*t).IntoMacStream();
}

}  // namespace xm
