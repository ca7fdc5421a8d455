// Chooses the transport for one connection: io_uring where it can be set up,
// plain sockets otherwise, with the reason so the report can say which one
// carried the migration and why.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "base/unique_fd.h"
#include "transport/socket_stream.h"
#include "transport/stream.h"
#include "transport/uring_stream.h"

namespace xm {

enum class TransportKind {
  kAuto,     // io_uring, falling back to sockets when the ring cannot be set up
  kUring,    // io_uring or an error
  kSockets,  // plain sockets
};

std::string_view TransportKindName(TransportKind kind);  // "auto", "io_uring", "sockets"
// Accepts "auto", "io_uring" (or "uring"), "sockets".
Result<TransportKind> ParseTransportKind(std::string_view text);

// Wraps a connected socket. With kAuto, when io_uring cannot be set up (old
// kernel, kernel.io_uring_disabled, seccomp, memlock; or XMOTION_DISABLE_IO_URING=1)
// the result is a SocketStream and *why_fallback says why; it is left empty
// when no fallback happened. kind() of the result names what is in use.
Result<std::unique_ptr<Stream>> MakeStream(UniqueFd fd, TransportKind want, std::string* why_fallback,
                                           const UringOptions& uring = {});

// Connects to `to` and wraps the connection as MakeStream does.
Result<std::unique_ptr<Stream>> ConnectStream(const HostPort& to, int timeout_ms, TransportKind want,
                                              std::string* why_fallback, const UringOptions& uring = {});

// One line for reports: UringStream::Describe, or "sockets".
std::string DescribeStream(const Stream& stream);

}  // namespace xm
