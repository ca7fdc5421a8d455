// TlsRecordStream: the TLS 1.3 record layer (RFC 8446 §5) for the application
// data of a connection whose handshake OpenSSL did (secure.h), with the
// traffic secrets it negotiated: AES-GCM records of up to 16 KiB, sealed
// straight from the caller's buffers into one send and opened straight into the
// caller's buffer. It is what kernel TLS does after a user-space handshake, done
// in user space: the bytes on the wire are standard TLS 1.3 records, at one pass
// over the data each way instead of OpenSSL's staging copies.
//
// A large Send or Recv (several records) seals or opens its records on two
// threads, the caller's and one helper per direction started on first need:
// AES-GCM is the dominant cost of an encrypted stream, each record is
// independent given its sequence number, and the destination's stream thread
// is the migration's critical path.
//
// AES-GCM itself comes from intel-ipsec-mb where it is built in and the CPU
// has AES-NI with AVX (its VAES/AVX-512 code is ~4x OpenSSL 3.0's on such a
// CPU, which OpenSSL 3.0 does not use), otherwise from OpenSSL's EVP; both
// are the same standard AES-GCM (XMOTION_GCM=openssl chooses OpenSSL).
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
#include <string>
#include <vector>

#include "transport/stream.h"

namespace xm {

// One direction's record protection, from its traffic secret. Seal and Open
// may run concurrently for different records on different lanes.
class TlsRecordCipher {
 public:
  static constexpr int kLanes = 2;  // cipher contexts: the stream's thread, one helper
  static constexpr size_t kHeader = 5;
  static constexpr size_t kMaxPlain = 16 << 10;
  static constexpr size_t kTag = 16;
  // Bytes of a record carrying `plain_len` bytes: header, content, inner type,
  // `pad` zeros, tag.
  static constexpr size_t SealedSize(size_t plain_len, size_t pad = 0) { return kHeader + plain_len + 1 + pad + kTag; }

  TlsRecordCipher();
  TlsRecordCipher(const TlsRecordCipher&) = delete;
  TlsRecordCipher& operator=(const TlsRecordCipher&) = delete;
  ~TlsRecordCipher();
  // Which AES-GCM code seals and opens records in this process, e.g.
  // "intel-ipsec-mb 1.3.0 (AVX-512, VAES)" or "OpenSSL 3.0.19 EVP".
  static std::string Implementation();
  // "OpenSSL <version> EVP": the name of the fallback (and of the MAC mode's GMAC).
  static std::string OpenSslImplementation();

  // `sha384` with AES-256-GCM (TLS_AES_256_GCM_SHA384), else AES-128-GCM/SHA-256.
  // `seq`: records this direction already carried under the secret.
  Status Init(std::span<const uint8_t> traffic_secret, bool sha384, uint64_t seq);

  // Claims the sequence numbers of the next `n` records; returns the first.
  uint64_t Reserve(uint64_t n) {
    const uint64_t s = seq_;
    seq_ += n;
    return s;
  }
  // Writes record `seq` holding `plain` (plain_len <= kMaxPlain bytes, in
  // pieces) at `out`: SealedSize(plain_len, pad) bytes. xmotion never pads
  // (pad = 0); tests pad, as RFC 8446 §5.4 lets any peer.
  bool Seal(int lane, uint64_t seq, std::span<const iovec> plain, size_t plain_len, uint8_t* out, size_t pad = 0);
  // Opens the body of record `seq` (whose header is `header`), out of place or
  // in place: the first body.size() - kTag - 1 bytes of the inner plaintext go
  // to `plain`, its last byte to *last. False if it fails authentication.
  bool Open(int lane, uint64_t seq, const uint8_t* header, std::span<const uint8_t> body, uint8_t* plain,
            uint8_t* last);

  // This direction's state as kernel TLS takes it over (ktls.h): the record
  // key (16 or 32 bytes), the 12-byte static IV and the sequence number of the
  // next record.
  std::span<const uint8_t> key() const { return {key_, key_len_}; }
  std::span<const uint8_t, 12> iv() const { return std::span<const uint8_t, 12>(iv_, 12); }
  uint64_t next_seq() const { return seq_; }

 private:
  struct FastKey;  // intel-ipsec-mb's expanded key, when it does the records
  std::unique_ptr<FastKey> fast_;
  EVP_CIPHER_CTX* ctx_[kLanes] = {};
  uint8_t key_[32] = {};
  size_t key_len_ = 0;
  uint8_t iv_[12] = {};
  uint64_t seq_ = 0;
};

class CryptoLanes;

// A direction whose cipher is null is done by kernel TLS (ktls.h): its bytes
// pass through to the socket in the clear and the kernel seals or opens them.
class TlsRecordStream final : public Stream {
 public:
  TlsRecordStream(std::unique_ptr<Stream> inner, std::unique_ptr<TlsRecordCipher> tx,
                  std::unique_ptr<TlsRecordCipher> rx);
  ~TlsRecordStream() override;

  Status Send(std::span<const iovec> iov) override;
  using Stream::Send;
  Status Recv(std::span<std::byte> buf) override;
  void Shutdown() override { inner_->Shutdown(); }
  void SetTimeoutMs(int ms) override { inner_->SetTimeoutMs(ms); }
  std::string_view kind() const override { return inner_->kind(); }
  std::string peer() const override { return inner_->peer(); }
  const Stream* wrapped() const override { return inner_.get(); }
  // Which directions the kernel does (a null cipher).
  bool kernel_tx() const { return !tx_; }
  bool kernel_rx() const { return !rx_; }
  // The user-space ciphers (null where the kernel took over), for tests.
  const TlsRecordCipher* tx_cipher() const { return tx_.get(); }
  const TlsRecordCipher* rx_cipher() const { return rx_.get(); }

 private:
  // A record read whole into arena_, not yet opened.
  struct Sealed {
    uint8_t header[TlsRecordCipher::kHeader];
    size_t at, len;  // body in arena_
    size_t dest;     // where its content goes in the caller's buffer (if it fits)
    uint64_t seq;
    uint8_t last;    // the inner plaintext's last byte
    bool ok;
  };
  // One record to be sealed: pieces_[first, first + count), at `out` in out_.
  struct Plain {
    size_t first, count, len, out;
  };
  Status Fill(std::span<std::byte> buf, size_t& got);
  // Recv when the kernel opens the records: its refusals as the record layer's.
  Status KernelRecv(std::span<std::byte> buf);
  // Reads the next record's header into `h` and its body (`len` bytes) to the front of arena_.
  Status ReadSealed(uint8_t* h, size_t& len, size_t got, size_t want);
  // Reads and opens the next record into in_ (plaintext at [pos_, end_)).
  Status NextRecord(size_t got, size_t want);
  // Reads the records that fill the caller's buffer from `got` on and opens
  // them into it on both lanes; a record that would overflow it goes to in_.
  Status RecvBatch(std::span<std::byte> buf, size_t& got);
  // The inner plaintext's content type and length (padding stripped), 0 if invalid.
  static uint8_t InnerType(const uint8_t* plain, size_t n, uint8_t last, size_t* content);
  // The error of a record that opened to `type` (not application data).
  Status NotData(uint8_t type, const uint8_t* content, size_t len, size_t got, size_t want);
  Status Rejected(const std::string& why) const;

  std::unique_ptr<Stream> inner_;
  std::unique_ptr<TlsRecordCipher> tx_, rx_;
  std::unique_ptr<CryptoLanes> tx_lanes_, rx_lanes_;  // started on first need
  std::unique_ptr<uint8_t[]> out_;  // sealed records of one send (never zero-filled)
  size_t out_cap_ = 0;
  std::vector<iovec> pieces_;       // the plaintext pieces of the records of one send
  std::vector<Plain> plain_;
  std::vector<uint8_t> arena_;      // records read for one batch
  std::vector<Sealed> sealed_;
  std::vector<uint8_t> in_;         // the current record, opened in place
  size_t pos_ = 0, end_ = 0;
  // The first failed read, returned by every later one: past a record that did
  // not open (or a cut) the stream is out of step, and nothing behind it may
  // be handed out (a skim for the peer's ABORT reads on after a failure).
  Status rx_failed_;
};

}  // namespace xm
