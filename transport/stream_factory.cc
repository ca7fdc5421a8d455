#include "transport/stream_factory.h"

namespace xm {

std::string_view TransportKindName(TransportKind kind) {
  switch (kind) {
    case TransportKind::kAuto: return "auto";
    case TransportKind::kUring: return "io_uring";
    case TransportKind::kSockets: return "sockets";
  }
  return "?";
}

Result<TransportKind> ParseTransportKind(std::string_view text) {
  if (text == "auto") return TransportKind::kAuto;
  if (text == "io_uring" || text == "uring") return TransportKind::kUring;
  if (text == "sockets") return TransportKind::kSockets;
  return Error(Code::kInvalidArgument, "unknown transport '" + std::string(text) + "' (auto, io_uring, sockets)");
}

Result<std::unique_ptr<Stream>> MakeStream(UniqueFd fd, TransportKind want, std::string* why_fallback,
                                           const UringOptions& uring) {
  if (why_fallback) why_fallback->clear();
  if (!fd.valid()) return Error(Code::kInvalidArgument, "make stream: no socket");
  if (want != TransportKind::kSockets) {
    // The ring is made before the socket is handed over, so a failure leaves
    // the fd here for the fallback.
    Result<UringRing> ring = UringStream::MakeRing(uring);
    if (ring.ok()) {
      XM_ASSIGN_OR_RETURN(std::unique_ptr<UringStream> s,
                          UringStream::Create(std::move(fd), std::move(ring).value(), uring));
      return std::unique_ptr<Stream>(std::move(s));
    }
    if (want == TransportKind::kUring) return Status(ring.status()).With("io_uring transport");
    if (why_fallback) *why_fallback = ring.status().message();
  }
  return std::unique_ptr<Stream>(std::make_unique<SocketStream>(std::move(fd)));
}

Result<std::unique_ptr<Stream>> ConnectStream(const HostPort& to, int timeout_ms, TransportKind want,
                                              std::string* why_fallback, const UringOptions& uring) {
  XM_ASSIGN_OR_RETURN(std::unique_ptr<SocketStream> s, SocketStream::Connect(to, timeout_ms));
  return MakeStream(s->TakeFd(), want, why_fallback, uring);
}

std::string DescribeStream(const Stream& stream) {
  if (const Stream* inner = stream.wrapped()) return DescribeStream(*inner);
  if (auto* u = dynamic_cast<const UringStream*>(&stream)) return u->Describe();
  return std::string(stream.kind());
}

}  // namespace xm
