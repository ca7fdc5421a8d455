#include "transport/tls_record.h"

#include <openssl/crypto.h>
#include <openssl/kdf.h>

#include <algorithm>
#include <cstring>
#include <string>

namespace xm {

namespace {

constexpr uint8_t kApplicationData = 23, kAlert = 21;
constexpr size_t kHeader = 5;
constexpr size_t kMaxCipher = TlsRecordCipher::kMaxPlain + 256;
constexpr size_t kFlushBytes = 1 << 20;  // sealed bytes gathered before one send below

// HKDF-Expand-Label (RFC 8446 §7.1) with an empty context.
bool ExpandLabel(std::span<const uint8_t> secret, const EVP_MD* md, const char* label, uint8_t* out, size_t len) {
  std::string full = std::string("tls13 ") + label;
  std::vector<uint8_t> info = {static_cast<uint8_t>(len >> 8), static_cast<uint8_t>(len),
                               static_cast<uint8_t>(full.size())};
  info.insert(info.end(), full.begin(), full.end());
  info.push_back(0);
  EVP_PKEY_CTX* p = EVP_PKEY_CTX_new_id(EVP_PKEY_HKDF, nullptr);
  bool ok = p && EVP_PKEY_derive_init(p) > 0 && EVP_PKEY_CTX_set_hkdf_mode(p, EVP_PKEY_HKDEF_MODE_EXPAND_ONLY) > 0 &&
            EVP_PKEY_CTX_set_hkdf_md(p, md) > 0 &&
            EVP_PKEY_CTX_set1_hkdf_key(p, secret.data(), static_cast<int>(secret.size())) > 0 &&
            EVP_PKEY_CTX_add1_hkdf_info(p, info.data(), static_cast<int>(info.size())) > 0 &&
            EVP_PKEY_derive(p, out, &len) > 0;
  EVP_PKEY_CTX_free(p);
  return ok;
}

}  // namespace

TlsRecordCipher::~TlsRecordCipher() {
  EVP_CIPHER_CTX_free(ctx_);
  OPENSSL_cleanse(iv_, sizeof iv_);
}

Status TlsRecordCipher::Init(std::span<const uint8_t> secret, bool sha384, uint64_t seq) {
  uint8_t key[32];
  const size_t key_len = sha384 ? 32 : 16;
  const EVP_MD* md = sha384 ? EVP_sha384() : EVP_sha256();
  ctx_ = EVP_CIPHER_CTX_new();
  bool ok = ctx_ && ExpandLabel(secret, md, "key", key, key_len) && ExpandLabel(secret, md, "iv", iv_, sizeof iv_) &&
            EVP_CipherInit_ex(ctx_, sha384 ? EVP_aes_256_gcm() : EVP_aes_128_gcm(), nullptr, key, nullptr, -1) == 1;
  OPENSSL_cleanse(key, sizeof key);
  if (!ok) return Error(Code::kInternal, "TLS record keys could not be derived");
  seq_ = seq;
  return {};
}

void TlsRecordCipher::Nonce(uint8_t out[12]) const {
  std::memcpy(out, iv_, 12);
  for (int i = 0; i < 8; ++i) out[11 - i] ^= static_cast<uint8_t>(seq_ >> (8 * i));
}

bool TlsRecordCipher::Seal(std::span<const iovec> plain, size_t plain_len, std::vector<uint8_t>& out) {
  const size_t body = plain_len + 1 + kTag;  // inner content type, tag
  const size_t at = out.size();
  out.resize(at + kHeader + body);
  uint8_t* h = out.data() + at;
  h[0] = kApplicationData, h[1] = 3, h[2] = 3, h[3] = static_cast<uint8_t>(body >> 8), h[4] = static_cast<uint8_t>(body);
  uint8_t nonce[12];
  Nonce(nonce);
  ++seq_;
  int n = 0;
  uint8_t* p = h + kHeader;
  if (EVP_EncryptInit_ex(ctx_, nullptr, nullptr, nullptr, nonce) != 1 ||
      EVP_EncryptUpdate(ctx_, nullptr, &n, h, kHeader) != 1)
    return false;
  for (const iovec& v : plain) {
    if (EVP_EncryptUpdate(ctx_, p, &n, static_cast<const uint8_t*>(v.iov_base), static_cast<int>(v.iov_len)) != 1)
      return false;
    p += n;
  }
  const uint8_t type = kApplicationData;
  if (EVP_EncryptUpdate(ctx_, p, &n, &type, 1) != 1) return false;
  p += n;
  if (EVP_EncryptFinal_ex(ctx_, p, &n) != 1) return false;
  p += n;
  return EVP_CIPHER_CTX_ctrl(ctx_, EVP_CTRL_AEAD_GET_TAG, kTag, p) == 1;
}

uint8_t TlsRecordCipher::Open(const uint8_t* header, std::span<uint8_t> body, size_t* plain_len) {
  if (body.size() < kTag + 1) return 0;
  uint8_t nonce[12];
  Nonce(nonce);
  ++seq_;
  const size_t clen = body.size() - kTag;
  int n = 0, fin = 0;
  if (EVP_DecryptInit_ex(ctx_, nullptr, nullptr, nullptr, nonce) != 1 ||
      EVP_DecryptUpdate(ctx_, nullptr, &n, header, kHeader) != 1 ||
      EVP_DecryptUpdate(ctx_, body.data(), &n, body.data(), static_cast<int>(clen)) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx_, EVP_CTRL_AEAD_SET_TAG, kTag, body.data() + clen) != 1 ||
      EVP_DecryptFinal_ex(ctx_, body.data() + n, &fin) != 1)
    return 0;
  // Padding zeros, then the real content type (RFC 8446 §5.4).
  size_t end = clen;
  while (end > 0 && body[end - 1] == 0) --end;
  if (end == 0) return 0;
  *plain_len = end - 1;
  return body[end - 1];
}

Status TlsRecordStream::Send(std::span<const iovec> iov) {
  out_.clear();
  size_t vi = 0, off = 0;
  for (;;) {
    pieces_.clear();
    size_t len = 0;
    while (vi < iov.size() && len < TlsRecordCipher::kMaxPlain) {
      if (off == iov[vi].iov_len) {
        ++vi, off = 0;
        continue;
      }
      size_t n = std::min(iov[vi].iov_len - off, TlsRecordCipher::kMaxPlain - len);
      pieces_.push_back({static_cast<uint8_t*>(iov[vi].iov_base) + off, n});
      off += n, len += n;
    }
    if (len == 0) break;
    if (!tx_->Seal(pieces_, len, out_)) return Error(Code::kInternal, "TLS: sealing a record failed");
    if (out_.size() >= kFlushBytes) {
      XM_TRY(inner_->Send(out_.data(), out_.size()));
      out_.clear();
    }
  }
  if (out_.empty()) return {};
  return inner_->Send(out_.data(), out_.size());
}

Status TlsRecordStream::NextRecord(size_t got, size_t want) {
  uint8_t h[kHeader];
  Status st = inner_->Recv(std::as_writable_bytes(std::span(h)));
  if (!st.ok()) {
    if (st.code() == Code::kAborted && got > 0)
      return ClosedByPeer(inner_->peer(), got, want);
    return st;
  }
  auto rejected = [&](const std::string& why) {
    return Error(Code::kProtocol, "TLS record from " + inner_->peer() + " rejected: " + why +
                                      " (the stream was altered, cut, replayed or reordered on the way)");
  };
  const size_t len = (size_t{h[3]} << 8) | h[4];
  if (h[0] != kApplicationData || h[1] != 3 || h[2] != 3 || len > kMaxCipher || len < TlsRecordCipher::kTag + 1)
    return rejected("malformed record header");
  if (in_.size() < len) in_.resize(kMaxCipher);
  st = inner_->Recv(std::as_writable_bytes(std::span(in_.data(), len)));
  if (!st.ok()) return st.code() == Code::kAborted ? rejected("record cut short") : st;
  size_t plain = 0;
  const uint8_t type = rx_->Open(h, std::span(in_.data(), len), &plain);
  if (type == 0) return rejected("decryption failed or bad record MAC");
  if (type == kAlert && plain == 2 && in_[1] == 0) {  // close_notify
    return ClosedByPeer(inner_->peer(), got, want);
  }
  if (type == kAlert) return rejected("the peer sent TLS alert " + std::to_string(plain == 2 ? in_[1] : 0));
  if (type != kApplicationData) return rejected("unexpected content type " + std::to_string(type));
  pos_ = 0;
  end_ = plain;
  return {};
}

Status TlsRecordStream::Recv(std::span<std::byte> buf) {
  XM_TRY(rx_failed_);
  size_t got = 0;
  while (got < buf.size()) {
    if (pos_ == end_) {
      if (Status st = NextRecord(got, buf.size()); !st.ok()) {
        pos_ = end_ = 0;
        rx_failed_ = st;
        return st;
      }
      continue;
    }
    size_t n = std::min(buf.size() - got, end_ - pos_);
    std::memcpy(buf.data() + got, in_.data() + pos_, n);
    pos_ += n, got += n;
  }
  return {};
}

}  // namespace xm
