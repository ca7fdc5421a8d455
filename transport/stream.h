// Stream: one ordered, reliable byte connection between source and destination.
//
// The engine frames records on top of it (record.h) and never cares whether the
// bytes move through plain socket calls or io_uring. One thread drives a stream;
// Shutdown() may be called from any thread to make a blocked call fail promptly.
#pragma once

#include <sys/uio.h>

#include <cstddef>
#include <span>
#include <string>
#include <string_view>

#include "base/status.h"

namespace xm {

// The peer closed its end `got` bytes into a read of `want`: kAborted between
// reads (its orderly end), kProtocol in the middle of one (a cut stream). Every
// stream says it in these words.
inline constexpr std::string_view kClosedByPeer = "connection closed by ";
inline Status ClosedByPeer(const std::string& peer, size_t got, size_t want) {
  if (got == 0) return Status(Code::kAborted, std::string(kClosedByPeer) + peer);
  return Status(Code::kProtocol, std::string(kClosedByPeer) + peer + " after " + std::to_string(got) + " of " +
                                     std::to_string(want) + " bytes");
}
// Whether `st` (or what it was wrapped into) came from ClosedByPeer: the
// peer's end closed (FIN), rather than a reset or a silent path.
inline bool IsClosedByPeer(const Status& st) {
  return !st.ok() && st.message().find(kClosedByPeer) != std::string::npos;
}

class Stream {
 public:
  virtual ~Stream() = default;

  // Sends every byte of the gathered buffers, or fails.
  virtual Status Send(std::span<const iovec> iov) = 0;
  Status Send(const void* data, size_t len) {
    iovec v{const_cast<void*>(data), len};
    return Send(std::span<const iovec>(&v, 1));
  }
  // Fills `buf` completely, or fails. A peer that closes before the first byte
  // gives kAborted ("connection closed"); one that closes mid-way gives
  // kProtocol ("connection closed after N of M bytes"), so callers can tell an
  // orderly end from truncation.
  virtual Status Recv(std::span<std::byte> buf) = 0;
  // Recv that also says, when it fails, how many bytes had arrived at the
  // front of `buf` (*got; buf.size() on success), so a caller reading ahead
  // in one large read can still check what came before a stall or a cut.
  // Streams that cannot tell say 0.
  virtual Status RecvCounted(std::span<std::byte> buf, size_t* got) {
    Status st = Recv(buf);
    *got = st.ok() ? buf.size() : 0;
    return st;
  }
  virtual void Shutdown() = 0;
  // Makes a blocked or later Recv fail promptly while Send still works, so an
  // operator's cancel can wake a reader and still tell the peer (ABORT). Any
  // thread. A stream that cannot keep its sending half shuts down entirely.
  virtual void InterruptRecv() { Shutdown(); }

  // How long Send/Recv may block before failing with kTimeout (0 = forever).
  virtual void SetTimeoutMs(int ms) = 0;

  virtual std::string_view kind() const = 0;  // "sockets" or "io_uring"
  virtual std::string peer() const = 0;
  // The stream this one is layered on (TLS, MAC, faults), or nullptr for a
  // transport, so reports can name the transport under a security layer.
  virtual const Stream* wrapped() const { return nullptr; }
  // For kernel TLS (ktls.h), which takes over the socket itself: the connected
  // socket this stream moves its bytes through, or -1 when the stream must see
  // every byte (a layer, a test's fault injector or double).
  virtual int socket_fd() const { return -1; }
  // Bytes already taken from the socket and not yet handed to the caller (a
  // read-ahead buffer): the kernel would never see them.
  virtual size_t read_ahead() const { return 0; }
};

}  // namespace xm
