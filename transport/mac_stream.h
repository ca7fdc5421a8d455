// MacStream: integrity without secrecy, for `--no-encrypt` on a trusted link
// (PROTOCOL.md §5). Every Send() goes out as frames of at most kMaxFrame
// payload bytes, each carrying an AES-128-GMAC tag over its header, its payload
// and its sequence number (the GMAC nonce, never sent), with one key per
// direction exported from the TLS 1.3 handshake that authenticated the peer. A
// flipped bit, a cut, a replayed, reordered or injected frame fails the tag
// check before a byte of that frame reaches the caller. The payload is readable
// by anyone on the path: that is what --no-encrypt means.
//
// Why GMAC: on AES-NI/VPCLMULQDQ hardware it runs at AES-GCM speed (the
// tagging half of TLS's own cipher), several times HMAC-SHA256's rate.
//
// Thread-safety: one sender and one receiver thread (their state is separate);
// Shutdown from any thread.
#pragma once

#include <openssl/evp.h>

#include <array>
#include <cstdint>
#include <memory>
#include <vector>

#include "transport/stream.h"

namespace xm {

using MacKey = std::array<uint8_t, 16>;

class MacStream final : public Stream {
 public:
  static constexpr size_t kMaxFrame = 256 << 10;
  static constexpr size_t kHeaderSize = 8;  // u32 payload length, u32 reserved (0)
  static constexpr size_t kTagSize = 16;

  // `send_key` tags what this end sends; `recv_key` checks what it receives.
  static Result<std::unique_ptr<MacStream>> Create(std::unique_ptr<Stream> inner, const MacKey& send_key,
                                                   const MacKey& recv_key);
  ~MacStream() override;

  Status Send(std::span<const iovec> iov) override;
  using Stream::Send;
  Status Recv(std::span<std::byte> buf) override;
  void Shutdown() override { inner_->Shutdown(); }
  void SetTimeoutMs(int ms) override { inner_->SetTimeoutMs(ms); }
  std::string_view kind() const override { return inner_->kind(); }
  std::string peer() const override { return inner_->peer(); }
  const Stream* wrapped() const override { return inner_.get(); }

 private:
  struct Direction {
    MacKey key{};
    uint64_t seq = 0;
    EVP_MAC_CTX* ctx = nullptr;
  };
  MacStream(std::unique_ptr<Stream> inner, const MacKey& send_key, const MacKey& recv_key);
  // The tag of frame `d.seq` (header + payload pieces); advances d.seq.
  bool Tag(Direction& d, const uint8_t* header, std::span<const iovec> payload, uint8_t* tag);
  // Reads, checks and stages the next frame. `got`: bytes the current Recv has
  // delivered, to tell an orderly close from a cut.
  Status NextFrame(size_t got, size_t want);

  std::unique_ptr<Stream> inner_;
  Direction tx_, rx_;
  std::vector<uint8_t> frame_;  // the checked payload being handed out
  size_t pos_ = 0;
  // The first failed read, returned by every later one: past a frame that did
  // not check (or a cut) the stream is out of step, and nothing behind it may
  // be handed out (a skim for the peer's ABORT reads on after a failure).
  Status rx_failed_;
  std::vector<uint8_t> scratch_;  // send: headers and tags of one Send
  std::vector<iovec> iov_;
};

}  // namespace xm
