#include "transport/mac_stream.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/params.h>

#include <algorithm>
#include <cstring>
#include <string>

namespace xm {

namespace {

EVP_MAC_CTX* NewGmac() {
  EVP_MAC* mac = EVP_MAC_fetch(nullptr, "GMAC", nullptr);
  if (!mac) return nullptr;
  EVP_MAC_CTX* ctx = EVP_MAC_CTX_new(mac);
  EVP_MAC_free(mac);  // the context keeps its own reference
  return ctx;
}

}  // namespace

MacStream::MacStream(std::unique_ptr<Stream> inner, const MacKey& send_key, const MacKey& recv_key)
    : inner_(std::move(inner)) {
  tx_.key = send_key;
  rx_.key = recv_key;
  tx_.ctx = NewGmac();
  rx_.ctx = NewGmac();
}

MacStream::~MacStream() {
  EVP_MAC_CTX_free(tx_.ctx);
  EVP_MAC_CTX_free(rx_.ctx);
  OPENSSL_cleanse(tx_.key.data(), tx_.key.size());
  OPENSSL_cleanse(rx_.key.data(), rx_.key.size());
}

Result<std::unique_ptr<MacStream>> MacStream::Create(std::unique_ptr<Stream> inner, const MacKey& send_key,
                                                     const MacKey& recv_key) {
  std::unique_ptr<MacStream> s(new MacStream(std::move(inner), send_key, recv_key));
  if (!s->tx_.ctx || !s->rx_.ctx) return Error(Code::kInternal, "record MAC: OpenSSL has no AES-128-GMAC");
  return s;
}

bool MacStream::Tag(Direction& d, const uint8_t* header, std::span<const iovec> payload, uint8_t* tag) {
  // The nonce is the frame's sequence number: unique per key (a key lives for
  // one connection and one direction), and a replayed or reordered frame is
  // checked against the wrong one.
  uint8_t iv[12] = {};
  std::memcpy(iv + 4, &d.seq, sizeof d.seq);
  ++d.seq;
  char cipher[] = "AES-128-GCM";
  OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_CIPHER, cipher, 0),
                         OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_IV, iv, sizeof iv), OSSL_PARAM_construct_end()};
  if (!EVP_MAC_init(d.ctx, d.key.data(), d.key.size(), params)) return false;
  if (!EVP_MAC_update(d.ctx, header, kHeaderSize)) return false;
  for (const iovec& v : payload)
    if (v.iov_len && !EVP_MAC_update(d.ctx, static_cast<const uint8_t*>(v.iov_base), v.iov_len)) return false;
  size_t len = 0;
  return EVP_MAC_final(d.ctx, tag, &len, kTagSize) && len == kTagSize;
}

Status MacStream::Send(std::span<const iovec> iov) {
  uint64_t total = 0;
  for (const iovec& v : iov) total += v.iov_len;
  const size_t frames = std::max<uint64_t>(1, (total + kMaxFrame - 1) / kMaxFrame);
  // Headers and tags live in scratch_, the payload stays where the caller has it.
  scratch_.resize(frames * (kHeaderSize + kTagSize));
  iov_.clear();
  size_t vi = 0, off = 0;  // position in `iov`
  for (size_t f = 0; f < frames; ++f) {
    uint8_t* header = scratch_.data() + f * (kHeaderSize + kTagSize);
    uint8_t* tag = header + kHeaderSize;
    const uint32_t len = static_cast<uint32_t>(std::min<uint64_t>(kMaxFrame, total - f * kMaxFrame));
    const uint32_t reserved = 0;
    std::memcpy(header, &len, 4);
    std::memcpy(header + 4, &reserved, 4);
    iov_.push_back({header, kHeaderSize});
    const size_t first = iov_.size();
    for (uint32_t left = len; left > 0;) {
      while (iov[vi].iov_len == off) ++vi, off = 0;
      size_t n = std::min<size_t>(left, iov[vi].iov_len - off);
      iov_.push_back({static_cast<uint8_t*>(iov[vi].iov_base) + off, n});
      off += n;
      left -= static_cast<uint32_t>(n);
    }
    if (!Tag(tx_, header, std::span(iov_).subspan(first), tag))
      return Error(Code::kInternal, "record MAC: computing the tag failed");
    iov_.push_back({tag, kTagSize});
  }
  return inner_->Send(iov_);
}

Status MacStream::NextFrame(size_t got, size_t want) {
  uint8_t header[kHeaderSize];
  Status st = inner_->Recv(std::as_writable_bytes(std::span(header)));
  if (!st.ok()) {
    // An orderly close between frames is the peer's end; anything in the middle of
    // what the caller asked for is a cut stream.
    if (st.code() == Code::kAborted && got > 0)
      return ClosedByPeer(inner_->peer(), got, want);
    return st;
  }
  uint32_t len, reserved;
  std::memcpy(&len, header, 4);
  std::memcpy(&reserved, header + 4, 4);
  const uint64_t frame = rx_.seq;
  auto tampered = [&](const std::string& what) {
    return Error(Code::kProtocol, "record MAC check failed on frame " + std::to_string(frame) + " from " +
                                      inner_->peer() + ": " + what +
                                      " (the stream was altered, cut, replayed or reordered on the way)");
  };
  if (len == 0 || len > kMaxFrame || reserved != 0) return tampered("malformed frame header");
  frame_.resize(len + kTagSize);
  st = inner_->Recv(std::as_writable_bytes(std::span(frame_)));
  if (!st.ok()) {
    if (st.code() == Code::kAborted || st.code() == Code::kProtocol) return tampered("frame cut short");
    return st;
  }
  uint8_t tag[kTagSize];
  iovec payload{frame_.data(), len};
  if (!Tag(rx_, header, std::span(&payload, 1), tag)) return Error(Code::kInternal, "record MAC: computing the tag failed");
  if (CRYPTO_memcmp(tag, frame_.data() + len, kTagSize) != 0) return tampered("tag mismatch");
  frame_.resize(len);
  pos_ = 0;
  return {};
}

Status MacStream::Recv(std::span<std::byte> buf) {
  XM_TRY(rx_failed_);
  size_t got = 0;
  while (got < buf.size()) {
    if (pos_ == frame_.size()) {
      if (Status st = NextFrame(got, buf.size()); !st.ok()) {
        frame_.clear(), pos_ = 0;
        rx_failed_ = st;
        return st;
      }
    }
    size_t n = std::min(buf.size() - got, frame_.size() - pos_);
    std::memcpy(buf.data() + got, frame_.data() + pos_, n);
    pos_ += n;
    got += n;
  }
  return {};
}

}  // namespace xm
