// libFuzzer target: a whole byte stream into the destination's Receiver, over a
// real loopback TCP connection, with the real sim destination factory.
//
// The input is a list of records (receiver_input.h) framed with correct hashes,
// so mutations reach the handshake, rounds and handoff logic. Each input is one
// migration attempt: connect, send the bytes, half-close, let Receiver::Run
// finish. Beyond "no crash": the result is one of the three documented ones, a
// failure carries a one-line error (PROTOCOL.md §7) and a non-zero exit code, and
// a completed migration proves its digest matched.
//
// Limits of this harness: one stream (max_streams = 1, no data connections),
// plain sockets (not io_uring), no authentication key, and guests of at most
// 4096 page frames so each attempt stays small (see kMaxFuzzPages).
#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdio>
#include <cstdlib>
#include <thread>

#include "dirtylog/registry.h"
#include "migrate/destination/receiver.h"
#include "tests/fuzz/receiver_input.h"
#include "transport/socket_stream.h"

namespace {

using namespace xm;

constexpr uint64_t kMaxFuzzPages = 4096;

Listener* g_listener = nullptr;

UniqueFd ConnectLoopback(uint16_t port) {
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  sa.sin_port = htons(port);
  if (!fd.valid() || ::connect(fd.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) std::abort();
  return fd;
}

void SendAll(int fd, const std::vector<uint8_t>& bytes) {
  size_t off = 0;
  while (off < bytes.size()) {
    ssize_t n = ::send(fd, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
    if (n <= 0) break;  // the receiver gave up and the harness shut the socket
    off += static_cast<size_t>(n);
  }
  ::shutdown(fd, SHUT_WR);
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  auto l = Listener::Bind(HostPort{"127.0.0.1", 0});
  if (!l.ok()) std::abort();
  g_listener = new Listener(std::move(l).value());
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::vector<uint8_t> wire = testing::FrameReceiverInput({data, size});

  UniqueFd client = ConnectLoopback(g_listener->port());
  std::thread source([&] { SendAll(client.get(), wire); });

  ReceiverOptions opts;
  opts.accept_timeout_ms = 10000;
  opts.io_timeout_ms = 10000;  // never reached: the source half-closes after its bytes
  opts.go_timeout_ms = 10000;
  // One input is one connection: a receiver holding its guest for a reconnect
  // would wait out the window on every input that ends mid-round. RESUME and
  // RESUME_STATE bodies are fuzzed by fuzz_messages.
  opts.resume_window_ms = 0;
  opts.max_streams = 1;
  opts.transport = TransportKind::kSockets;
  opts.make_backend = [](const GuestShape& shape, std::string_view source_backend) -> Result<std::unique_ptr<Backend>> {
    if (shape.page_count > kMaxFuzzPages) return Error(Code::kIncompatible, "fuzz harness: guest too large");
    BackendOptions b;
    b.backend = "sim";
    return CreateDestination(b, shape, source_backend);
  };
  MigrationReport report;
  {
    Receiver receiver(opts);
    report = receiver.Run(*g_listener);
    // Unblock a source still sending to a receiver that stopped reading, then
    // reset the connection so no TIME_WAIT piles up over millions of runs.
    ::shutdown(client.get(), SHUT_RDWR);
    source.join();
    linger lg{1, 0};
    ::setsockopt(client.get(), SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    client.reset();
  }

  if (std::getenv("XM_FUZZ_VERBOSE"))
    std::fprintf(stderr, "receiver: %s (exit %d) %s\n", report.result.c_str(), report.exit_code, report.error.c_str());
  if (report.result == "completed") {
    if (report.exit_code != 0 || !report.digest_match || !report.error.empty()) std::abort();
  } else {
    if (report.result != "failed" && report.result != "aborted") std::abort();
    if (report.exit_code == 0 || report.error.empty()) std::abort();
    if (report.error.find_first_of("\r\n") != std::string::npos) std::abort();
  }
  return 0;
}
