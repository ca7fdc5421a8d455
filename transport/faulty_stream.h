// FaultyStream: a Stream wrapper that misbehaves on purpose, at a byte offset
// chosen by a test: the seams failure tests drive a migration through (see
// tests/support/in_process_migration.h). Faults apply to what this end sends;
// wrap the other end to fault the other direction.
//
// Under a security layer (secure.h) it is the man in the middle: every Send()
// it sees is whole TLS records or MAC frames, so the per-send faults (replay,
// drop, reorder, inject) move authentic records around as an attacker on the
// path could.
//
// Thread-safety: as the wrapped stream (one sender, one receiver, Shutdown
// from anywhere).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

#include "transport/stream.h"

namespace xm {

struct StreamFaults {
  static constexpr uint64_t kNever = UINT64_MAX;
  uint64_t close_after_bytes = kNever;  // send this many bytes, then shut the stream and fail
  uint64_t drop_after_bytes = kNever;   // send this many bytes, then swallow the rest (peer stalls)
  uint64_t corrupt_byte = kNever;       // flip the low bit of the byte at this offset
  int delay_ms = 0;                     // sleep before every send
  // The same faults placed by record instead of by offset: close (or drop from)
  // where the `record_nth` record of this type begins (0 = none). Each Send is
  // one record (WriteRecord), so a fault lands exactly on a phase of the protocol.
  uint32_t close_at_record = 0;
  uint32_t drop_at_record = 0;
  uint32_t record_nth = 1;
  // The first send that starts at or after the offset is...
  uint64_t replay_send_at = kNever;   // ...sent twice (a replayed record)
  uint64_t drop_send_at = kNever;     // ...swallowed, later sends go on (a deleted record)
  uint64_t reorder_send_at = kNever;  // ...held back and sent after the next one
  uint64_t inject_at = kNever;        // ...preceded by `inject` (a forged record)
  std::vector<std::byte> inject;
};

class FaultyStream final : public Stream {
 public:
  FaultyStream(std::unique_ptr<Stream> inner, StreamFaults faults);

  Status Send(std::span<const iovec> iov) override;
  using Stream::Send;
  Status Recv(std::span<std::byte> buf) override { return inner_->Recv(buf); }
  Status RecvCounted(std::span<std::byte> buf, size_t* got) override { return inner_->RecvCounted(buf, got); }
  void Shutdown() override { inner_->Shutdown(); }
  void InterruptRecv() override { inner_->InterruptRecv(); }
  void SetTimeoutMs(int ms) override { inner_->SetTimeoutMs(ms); }
  std::string_view kind() const override { return inner_->kind(); }
  std::string peer() const override { return inner_->peer(); }
  const Stream* wrapped() const override { return inner_.get(); }

  uint64_t bytes_sent() const { return sent_.load(); }

 private:
  std::unique_ptr<Stream> inner_;
  const StreamFaults faults_;
  std::atomic<uint64_t> sent_{0};  // bytes offered to Send so far
  // The offsets in effect: faults_' own, or where a chosen record began.
  std::atomic<uint64_t> close_after_, drop_after_;
  std::atomic<uint32_t> close_seen_{0}, drop_seen_{0};
  bool replayed_ = false, dropped_ = false, injected_ = false, reordered_ = false;
  std::vector<std::byte> held_;  // the send held back for reordering
};

}  // namespace xm
