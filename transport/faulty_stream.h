// FaultyStream: a Stream wrapper that misbehaves on purpose, at a byte offset
// chosen by a test: the seams failure tests drive a migration through (see
// tests/support/in_process_migration.h). Faults apply to what this end sends;
// wrap the other end to fault the other direction.
//
// Thread-safety: as the wrapped stream (one sender, one receiver, Shutdown
// from anywhere).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>

#include "transport/stream.h"

namespace xm {

struct StreamFaults {
  static constexpr uint64_t kNever = UINT64_MAX;
  uint64_t close_after_bytes = kNever;  // send this many bytes, then shut the stream and fail
  uint64_t drop_after_bytes = kNever;   // send this many bytes, then swallow the rest (peer stalls)
  uint64_t corrupt_byte = kNever;       // flip the low bit of the byte at this offset
  int delay_ms = 0;                     // sleep before every send
};

class FaultyStream final : public Stream {
 public:
  FaultyStream(std::unique_ptr<Stream> inner, StreamFaults faults);

  Status Send(std::span<const iovec> iov) override;
  using Stream::Send;
  Status Recv(std::span<std::byte> buf) override { return inner_->Recv(buf); }
  void Shutdown() override { inner_->Shutdown(); }
  void InterruptRecv() override { inner_->InterruptRecv(); }
  void SetTimeoutMs(int ms) override { inner_->SetTimeoutMs(ms); }
  std::string_view kind() const override { return inner_->kind(); }
  std::string peer() const override { return inner_->peer(); }

  uint64_t bytes_sent() const { return sent_.load(); }

 private:
  std::unique_ptr<Stream> inner_;
  const StreamFaults faults_;
  std::atomic<uint64_t> sent_{0};  // bytes offered to Send so far
};

}  // namespace xm
