// UringStream: a Stream over a connected TCP socket driven through io_uring.
//
// Sends are cut into send SQEs (uring_send_plan.h) that go to the kernel as one
// linked chain, so a batch of many iovecs costs one submission and the kernel
// keeps them in order; at most `max_inflight` are in flight. Every send copies
// (no SEND_ZC: measured 4x slower on loopback, where the kernel copies anyway,
// and never enabled by a migration; DESIGN.md §4). Receives run on the ring too, through a small read-ahead buffer so that a record header and a
// short body cost one completion, with io_uring link timeouts for SetTimeoutMs.
//
// One thread drives a stream (the ring is not shared); Shutdown() may be called
// from any thread and makes a blocked call fail promptly.
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "base/unique_fd.h"
#include "transport/stream.h"
#include "transport/uring_ring.h"
#include "transport/uring_send_plan.h"

namespace xm {

struct UringOptions {
  unsigned max_inflight = 32;       // send SQEs in flight at once (one linked chain)
  size_t max_op_bytes = 1 << 20;    // bytes per send SQE
  size_t read_ahead_bytes = 256 << 10;  // receive staging buffer (0: read straight into the caller's buffer)
};

struct UringStats {
  uint64_t chains = 0;          // submissions of a linked chain of sends
  uint64_t send_sqes = 0;
  uint64_t bytes_sent = 0;
  uint64_t short_sends = 0;     // send completions short of their length (resumed)
  uint64_t retried_sends = 0;   // sends resubmitted after being cancelled, EAGAIN or EINTR
  uint64_t recv_sqes = 0;
  uint64_t bytes_received = 0;
};

class UringStream final : public Stream {
 public:
  // Takes `fd` (a connected stream socket) and a ring that UringRing::Create made.
  // Two steps so that a caller can fall back to another transport, still
  // holding the fd, when the ring cannot be set up.
  static Result<UringRing> MakeRing(const UringOptions& options);
  static Result<std::unique_ptr<UringStream>> Create(UniqueFd fd, UringRing ring, const UringOptions& options);
  ~UringStream() override;

  Status Send(std::span<const iovec> iov) override;
  using Stream::Send;
  Status Recv(std::span<std::byte> buf) override;
  Status RecvCounted(std::span<std::byte> buf, size_t* got) override;
  void Shutdown() override;
  void InterruptRecv() override;
  void SetTimeoutMs(int ms) override { timeout_ms_ = ms; }
  std::string_view kind() const override { return "io_uring"; }
  std::string peer() const override { return peer_; }
  // (Every Send waits for its bytes to leave, so nothing sealed in user space
  // is still queued when kernel TLS takes the socket over.)
  int socket_fd() const override { return fd_.get(); }
  size_t read_ahead() const override { return rend_ - rpos_; }

  // Waits until every queued byte has left. Send and Recv flush first, so the byte order on the wire is the
  // order of the calls.
  Status Flush();

  const UringStats& stats() const { return stats_; }
  // One line for reports, e.g. "io_uring: linked sends (up to 32 in flight)".
  std::string Describe() const;

 private:
  UringStream(UniqueFd fd, UringRing ring, const UringOptions& options);

  struct InFlight {
    SendOp op;
    msghdr msg{};
    int res = 0;
    bool done = false;
  };

  io_uring_sqe* GetSqe();
  io_uring_sqe* PrepSend(InFlight& f, uint64_t user_data);
  void SubmitChain();
  // One blocking step of send progress: submit the next chain, or wait for
  // completions and settle a finished chain.
  Status Step();
  // The non-blocking part of Step: settle what has completed and keep the kernel busy.
  Status Pump();
  Status FinishChain();
  // Waits for at least one completion (up to the timeout) and handles all that are ready.
  Status WaitAndReap(int timeout_ms);
  void Reap(io_uring_cqe* cqe);
  Status CancelChainAfterTimeout();
  Status Fail(Status st);
  bool SendsIdle() const { return pending_.empty() && chain_.empty(); }
  Status RecvInto(std::byte* dst, size_t len, bool waitall, size_t* got);
  Status EndOfStream(size_t got, size_t want) const;

  UniqueFd fd_;
  UringRing ring_;
  UringOptions opt_;
  std::string peer_;
  int timeout_ms_ = 0;
  std::atomic<bool> shut_down_{false};
  Status broken_;  // once a send failed or timed out, the byte stream is unusable

  SendPlanLimits limits_;
  unsigned chain_max_ = 1;
  std::deque<SendOp> pending_;
  std::vector<InFlight> chain_;
  size_t chain_done_ = 0;
  uint32_t next_seq_ = 0;   // sequence number of the next send SQE
  uint32_t chain_seq_ = 0;  // that of chain_[0]
  unsigned stalls_ = 0;

  // Receive: the one recv in flight and its link timeout.
  int recv_res_ = 0;
  bool recv_done_ = false;
  bool recv_timed_out_ = false;
  bool recv_timeout_done_ = true;
  std::vector<std::byte> rbuf_;
  size_t rpos_ = 0, rend_ = 0;

  UringStats stats_;
};

}  // namespace xm
