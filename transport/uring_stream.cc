#include "transport/uring_stream.h"

#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "transport/socket_stream.h"

namespace xm {
namespace {

// user_data layout: tag in the top byte, a per-stream send sequence number in
// the low 32 bits (a late completion of a chain given up on is told apart by it).
enum Tag : uint64_t { kTagSend = 1, kTagRecv = 2, kTagRecvTimeout = 3, kTagCancel = 4 };

uint64_t MakeUserData(Tag tag, uint32_t seq) { return (uint64_t(tag) << 56) | seq; }
Tag TagOf(uint64_t ud) { return static_cast<Tag>(ud >> 56); }
uint32_t SeqOf(uint64_t ud) { return uint32_t(ud); }

__kernel_timespec Timespec(int ms) {
  __kernel_timespec ts{};
  ts.tv_sec = ms / 1000;
  ts.tv_nsec = (ms % 1000) * 1000000LL;
  return ts;
}

// A stream read straight into the caller's buffer once this much is still wanted.
constexpr size_t kDirectRecvBytes = 64 << 10;

}  // namespace

Result<UringRing> UringStream::MakeRing(const UringOptions& options) {
  // A chain must fit the submission queue with room for a recv, its timeout and cancels.
  unsigned entries = 16;
  while (entries < options.max_inflight + 8) entries *= 2;
  return UringRing::Create(entries);
}

UringStream::UringStream(UniqueFd fd, UringRing ring, const UringOptions& options)
    : fd_(std::move(fd)), ring_(std::move(ring)), opt_(options), peer_(PeerName(fd_.get())) {}

Result<std::unique_ptr<UringStream>> UringStream::Create(UniqueFd fd, UringRing ring, const UringOptions& options) {
  if (!fd.valid()) return Error(Code::kInvalidArgument, "io_uring stream: no socket");
  if (!ring.valid()) return Error(Code::kInvalidArgument, "io_uring stream: no ring");
  std::unique_ptr<UringStream> s(new UringStream(std::move(fd), std::move(ring), options));
  const UringCaps& caps = s->ring_.caps();
  unsigned room = s->ring_.sq_entries() > 8 ? s->ring_.sq_entries() - 8 : 1;
  s->chain_max_ = caps.ordered_links ? std::clamp(options.max_inflight, 1u, room) : 1;
  s->chain_.reserve(s->chain_max_);
  s->limits_.max_bytes = std::max<size_t>(options.max_op_bytes, 4096);
  s->rbuf_.resize(options.read_ahead_bytes);
  return s;
}

UringStream::~UringStream() {
  // The ring goes first: it cancels whatever the kernel still holds before the
  // buffers and the socket those requests point at are released.
  ring_.reset();
}

io_uring_sqe* UringStream::GetSqe() {
  io_uring_sqe* sqe = io_uring_get_sqe(ring_.get());
  if (!sqe) {
    io_uring_submit(ring_.get());
    sqe = io_uring_get_sqe(ring_.get());
  }
  return sqe;
}

io_uring_sqe* UringStream::PrepSend(InFlight& f, uint64_t user_data) {
  const int flags = MSG_NOSIGNAL | MSG_WAITALL;
  SendOp& op = f.op;
  io_uring_sqe* sqe = GetSqe();
  if (op.iov.size() == 1) {
    io_uring_prep_send(sqe, fd_.get(), op.iov[0].iov_base, op.iov[0].iov_len, flags);
  } else {
    f.msg = msghdr{};
    f.msg.msg_iov = op.iov.data();
    f.msg.msg_iovlen = op.iov.size();
    io_uring_prep_sendmsg(sqe, fd_.get(), &f.msg, flags);
  }
  io_uring_sqe_set_data64(sqe, user_data);
  return sqe;
}

void UringStream::SubmitChain() {
  const size_t n = std::min<size_t>(pending_.size(), chain_max_);
  chain_.resize(n);  // within the reserved capacity: msghdrs handed to the kernel stay put
  chain_done_ = 0;
  chain_seq_ = next_seq_;
  for (size_t i = 0; i < n; ++i) {
    InFlight& f = chain_[i];
    f = InFlight{};
    f.op = std::move(pending_.front());
    pending_.pop_front();
    io_uring_sqe* sqe = PrepSend(f, MakeUserData(kTagSend, next_seq_++));
    // The link keeps the sends in order; MSG_WAITALL makes the kernel finish a
    // short send itself and break the link if it cannot (FinishChain).
    if (i + 1 < n) sqe->flags |= IOSQE_IO_LINK;
  }
  io_uring_submit(ring_.get());
  ++stats_.chains;
  stats_.send_sqes += n;
}

void UringStream::Reap(io_uring_cqe* cqe) {
  const uint64_t ud = io_uring_cqe_get_data64(cqe);
  switch (TagOf(ud)) {
    case kTagSend: {
      const uint32_t index = SeqOf(ud) - chain_seq_;
      if (index >= chain_.size() || chain_[index].done) return;  // a send given up on after a timeout
      InFlight& f = chain_[index];
      f.res = cqe->res;
      f.done = true;
      ++chain_done_;
      return;
    }
    case kTagRecv:
      recv_res_ = cqe->res;
      recv_done_ = true;
      return;
    case kTagRecvTimeout:
      recv_timeout_done_ = true;
      if (cqe->res == -ETIME) recv_timed_out_ = true;
      return;
    case kTagCancel:
      return;
  }
}

Status UringStream::WaitAndReap(int timeout_ms) {
  io_uring_cqe* cqe = nullptr;
  __kernel_timespec ts = Timespec(timeout_ms);
  int rc;
  do rc = io_uring_wait_cqe_timeout(ring_.get(), &cqe, timeout_ms > 0 ? &ts : nullptr);
  while (rc == -EINTR);
  if (rc == -ETIME) return Error(Code::kTimeout, "no completion");
  if (rc < 0) return ErrnoError("io_uring wait", -rc);
  unsigned head;
  unsigned seen = 0;
  io_uring_for_each_cqe(ring_.get(), head, cqe) {
    Reap(cqe);
    ++seen;
  }
  io_uring_cq_advance(ring_.get(), seen);
  return {};
}

Status UringStream::Fail(Status st) {
  if (shut_down_.load()) st = Error(Code::kAborted, "stream to " + peer_ + " shut down");
  broken_ = st;
  pending_.clear();
  return st;
}

Status UringStream::FinishChain() {
  std::vector<SendOp> requeue;
  Status err;
  bool broke = false;
  bool out_of_order = false;
  bool would_block = false;
  size_t progress = 0;
  for (InFlight& f : chain_) {
    const size_t want = f.op.bytes();
    if (broke) {
      // After a send that ended short, the kernel must have cancelled the rest
      // of the chain; a later send that went through anyway put its bytes
      // ahead of the missing ones.
      if (f.res > 0) out_of_order = true;
      requeue.push_back(std::move(f.op));
      continue;
    }
    if (f.res >= 0 && size_t(f.res) == want) {
      progress += want;
      stats_.bytes_sent += want;
      continue;
    }
    broke = true;
    if (f.res >= 0) {
      // Short: the peer reset, a signal, an allocation failure... Resume where it stopped.
      ++stats_.short_sends;
      progress += size_t(f.res);
      stats_.bytes_sent += size_t(f.res);
      f.op.Consume(size_t(f.res));
      requeue.push_back(std::move(f.op));
      continue;
    }
    const int e = -f.res;
    if (e == ECANCELED || e == EAGAIN || e == EINTR) {
      ++stats_.retried_sends;
      would_block |= e == EAGAIN;
      requeue.push_back(std::move(f.op));
      continue;
    }
    err = ErrnoError("send to " + peer_, e);
  }
  chain_.clear();
  chain_done_ = 0;
  if (out_of_order)
    return Fail(Error(Code::kIo, "send to " + peer_ +
                                     ": io_uring ran a linked send after a short one, the byte stream is out of order "
                                     "(kernel without MSG_WAITALL for sends?); use the sockets transport"));
  if (!err.ok()) return Fail(err);
  for (auto it = requeue.rbegin(); it != requeue.rend(); ++it) pending_.push_front(std::move(*it));
  if (progress > 0 || requeue.empty()) {
    stalls_ = 0;
  } else if (would_block) {
    // EAGAIN leaks out of io_uring when it could not arm a poll; wait here
    // rather than spin resubmitting.
    pollfd p{fd_.get(), POLLOUT, 0};
    int n;
    do n = ::poll(&p, 1, timeout_ms_ > 0 ? timeout_ms_ : -1);
    while (n < 0 && errno == EINTR);
    if (n == 0)
      return Fail(Error(Code::kTimeout, "no progress sending to " + peer_ + " for " + std::to_string(timeout_ms_) + " ms"));
  } else if (++stalls_ > 1000) {
    return Fail(Error(Code::kIo, "send to " + peer_ + ": no progress after 1000 resubmissions"));
  }
  return {};
}

Status UringStream::CancelChainAfterTimeout() {
  for (size_t i = 0; i < chain_.size(); ++i) {
    if (chain_[i].done) continue;
    io_uring_sqe* sqe = GetSqe();
    io_uring_prep_cancel64(sqe, MakeUserData(kTagSend, chain_seq_ + uint32_t(i)), 0);
    io_uring_sqe_set_data64(sqe, MakeUserData(kTagCancel, 0));
  }
  io_uring_submit(ring_.get());
  // A cancelled send completes at once; if one is stuck inside the socket
  // layer, shutting the socket down releases it. The stream is lost either way.
  for (int attempt = 0; chain_done_ < chain_.size() && attempt < 10; ++attempt) {
    Status st = WaitAndReap(1000);
    if (!st.ok() && attempt == 0) ::shutdown(fd_.get(), SHUT_RDWR);
  }
  chain_.clear();
  chain_done_ = 0;
  return Fail(Error(Code::kTimeout, "no progress sending to " + peer_ + " for " + std::to_string(timeout_ms_) + " ms"));
}

Status UringStream::Step() {
  if (chain_.empty() && !pending_.empty()) {
    SubmitChain();
    return {};
  }
  Status st = WaitAndReap(timeout_ms_);
  if (st.code() == Code::kTimeout) return CancelChainAfterTimeout();  // a chain is in flight (SendsIdle is false)
  if (!st.ok()) return Fail(st);
  if (!chain_.empty() && chain_done_ == chain_.size()) return FinishChain();
  return {};
}

Status UringStream::Pump() {
  unsigned head;
  unsigned seen = 0;
  io_uring_cqe* cqe;
  io_uring_for_each_cqe(ring_.get(), head, cqe) {
    Reap(cqe);
    ++seen;
  }
  io_uring_cq_advance(ring_.get(), seen);
  if (!chain_.empty() && chain_done_ == chain_.size()) XM_TRY(FinishChain());
  if (chain_.empty() && !pending_.empty()) SubmitChain();
  return {};
}

Status UringStream::Flush() {
  if (!broken_.ok()) return broken_;
  while (!SendsIdle()) XM_TRY(Step());
  return {};
}

Status UringStream::Send(std::span<const iovec> iov) {
  if (!broken_.ok()) return broken_;
  std::vector<SendOp> ops;
  PlanSends(iov, limits_, &ops);
  for (SendOp& op : ops) pending_.push_back(std::move(op));
  // The caller owns these buffers again when we return, so wait for every byte.
  return Flush();
}

Status UringStream::EndOfStream(size_t got, size_t want) const {
  if (shut_down_.load()) return Error(Code::kAborted, "stream to " + peer_ + " shut down");
  return ClosedByPeer(peer_, got, want);
}

Status UringStream::RecvInto(std::byte* dst, size_t len, bool waitall, size_t* got) {
  len = std::min<size_t>(len, 1u << 30);  // the SQE length field is 32 bits
  for (;;) {
    io_uring_sqe* sqe = GetSqe();
    io_uring_prep_recv(sqe, fd_.get(), dst, len, waitall ? MSG_WAITALL : 0);
    io_uring_sqe_set_data64(sqe, MakeUserData(kTagRecv, 0));
    recv_done_ = false;
    recv_timed_out_ = false;
    recv_timeout_done_ = true;
    __kernel_timespec ts = Timespec(timeout_ms_);
    if (timeout_ms_ > 0) {
      // Times this one recv, not the whole call: any bytes are progress.
      sqe->flags |= IOSQE_IO_LINK;
      io_uring_sqe* lt = GetSqe();
      io_uring_prep_link_timeout(lt, &ts, 0);
      io_uring_sqe_set_data64(lt, MakeUserData(kTagRecvTimeout, 0));
      recv_timeout_done_ = false;
    }
    io_uring_submit(ring_.get());
    ++stats_.recv_sqes;
    // Never leave with the recv in flight: the kernel would write into a buffer
    // the caller may free.
    while (!recv_done_ || !recv_timeout_done_) {
      Status st = WaitAndReap(0);
      if (!st.ok()) return st;
    }
    if (recv_res_ >= 0) {
      *got = size_t(recv_res_);
      stats_.bytes_received += *got;
      return {};
    }
    const int e = -recv_res_;
    if (shut_down_.load()) return Error(Code::kAborted, "stream to " + peer_ + " shut down");
    if (e == ECANCELED && recv_timed_out_)
      return Error(Code::kTimeout, "no progress from peer " + peer_ + " for " + std::to_string(timeout_ms_) + " ms");
    if (e == EINTR || e == EAGAIN || e == ECANCELED) continue;
    return ErrnoError("receive from " + peer_, e);
  }
}

Status UringStream::Recv(std::span<std::byte> buf) {
  size_t got = 0;
  return RecvCounted(buf, &got);
}

Status UringStream::RecvCounted(std::span<std::byte> buf, size_t* got_out) {
  size_t& got = *got_out;
  got = 0;
  // Whatever the caller queued goes out before it waits for an answer. A send
  // side that already failed does not stop reading (the peer's ABORT may be there).
  if (broken_.ok()) XM_TRY(Flush());
  while (got < buf.size()) {
    if (rpos_ < rend_) {
      const size_t take = std::min(rend_ - rpos_, buf.size() - got);
      std::memcpy(buf.data() + got, rbuf_.data() + rpos_, take);
      rpos_ += take;
      got += take;
      continue;
    }
    const size_t left = buf.size() - got;
    size_t n = 0;
    if (rbuf_.empty() || left >= kDirectRecvBytes) {
      XM_TRY(RecvInto(buf.data() + got, left, timeout_ms_ <= 0, &n));
      got += n;
    } else {
      XM_TRY(RecvInto(rbuf_.data(), rbuf_.size(), false, &n));
      rpos_ = 0;
      rend_ = n;
    }
    if (n == 0) return EndOfStream(got, buf.size());
  }
  return {};
}

void UringStream::Shutdown() {
  // Only the socket is touched: the ring belongs to the thread driving the
  // stream. Its blocked send or recv then completes with EPIPE or end of stream.
  shut_down_.store(true);
  ::shutdown(fd_.get(), SHUT_RDWR);
}

void UringStream::InterruptRecv() {
  // The read half only: a pending recv completes with end of stream, sends go on.
  ::shutdown(fd_.get(), SHUT_RD);
}

std::string UringStream::Describe() const {
  std::string d = "io_uring: ";
  if (chain_max_ > 1) {
    d += "linked sends (up to " + std::to_string(chain_max_) + " in flight)";
  } else {
    d += "one send at a time (kernel cannot keep linked sends in order)";
  }
  return d;
}

}  // namespace xm
