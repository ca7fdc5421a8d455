// TlsRecordStream: the TLS 1.3 record layer (RFC 8446 §5) for the application
// data of a connection whose handshake OpenSSL did (secure.h), with the
// traffic secrets it negotiated: AES-GCM records of up to 16 KiB, sealed
// straight from the caller's buffers into one send and opened in place. It is
// what kernel TLS does after a user-space handshake, done in user space: the
// bytes on the wire are standard TLS 1.3 records, at one pass over the data
// each way instead of OpenSSL's staging copies.
//
// Only what xmotion's handshake allows is supported: TLS_AES_128_GCM_SHA256 and
// TLS_AES_256_GCM_SHA384, no key update, no post-handshake messages (either
// ends the connection with a protocol error, as does any record that fails
// authentication).
//
// Thread-safety: one sender and one receiver thread (separate state); Shutdown
// from any thread.
#pragma once

#include <openssl/evp.h>

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "transport/stream.h"

namespace xm {

// One direction's record protection, from its traffic secret.
class TlsRecordCipher {
 public:
  TlsRecordCipher() = default;
  TlsRecordCipher(const TlsRecordCipher&) = delete;
  TlsRecordCipher& operator=(const TlsRecordCipher&) = delete;
  ~TlsRecordCipher();
  // `sha384` with AES-256-GCM (TLS_AES_256_GCM_SHA384), else AES-128-GCM/SHA-256.
  // `seq`: records this direction already carried under the secret.
  Status Init(std::span<const uint8_t> traffic_secret, bool sha384, uint64_t seq);

  // Appends one record holding `plain` (at most kMaxPlain bytes, in pieces) to `out`.
  bool Seal(std::span<const iovec> plain, size_t plain_len, std::vector<uint8_t>& out);
  // Opens the record whose 5-byte header is `header` and whose encrypted body is
  // `body`, in place. Returns the inner content type (0 = failed authentication)
  // and the plaintext's length in *plain_len.
  uint8_t Open(const uint8_t* header, std::span<uint8_t> body, size_t* plain_len);

  static constexpr size_t kMaxPlain = 16 << 10;
  static constexpr size_t kTag = 16;

 private:
  void Nonce(uint8_t out[12]) const;
  EVP_CIPHER_CTX* ctx_ = nullptr;
  uint8_t iv_[12] = {};
  uint64_t seq_ = 0;
};

class TlsRecordStream final : public Stream {
 public:
  TlsRecordStream(std::unique_ptr<Stream> inner, std::unique_ptr<TlsRecordCipher> tx,
                  std::unique_ptr<TlsRecordCipher> rx)
      : inner_(std::move(inner)), tx_(std::move(tx)), rx_(std::move(rx)) {}

  Status Send(std::span<const iovec> iov) override;
  using Stream::Send;
  Status Recv(std::span<std::byte> buf) override;
  void Shutdown() override { inner_->Shutdown(); }
  void SetTimeoutMs(int ms) override { inner_->SetTimeoutMs(ms); }
  std::string_view kind() const override { return inner_->kind(); }
  std::string peer() const override { return inner_->peer(); }
  const Stream* wrapped() const override { return inner_.get(); }

 private:
  // Reads and opens the next record into in_ (plaintext at [pos_, end_)).
  Status NextRecord(size_t got, size_t want);

  std::unique_ptr<Stream> inner_;
  std::unique_ptr<TlsRecordCipher> tx_, rx_;
  std::vector<uint8_t> out_;    // sealed records of one Send
  std::vector<iovec> pieces_;   // the plaintext pieces of one record
  std::vector<uint8_t> in_;     // the current record, opened in place
  size_t pos_ = 0, end_ = 0;
  // The first failed read, returned by every later one: past a record that did
  // not open (or a cut) the stream is out of step, and nothing behind it may
  // be handed out (a skim for the peer's ABORT reads on after a failure).
  Status rx_failed_;
};

}  // namespace xm
