// What the security layer costs per byte: 2 MiB batches shaped like a PAGES
// record (24-byte header, 512 descriptors, 512 scattered 4 KiB random pages)
// sent over a socketpair and received at the other end by a second thread,
// plain, under TLS 1.3 (AES-128-GCM, user space) and under --no-encrypt's
// AES-128-GMAC frames. Process CPU time is measured (both ends), so
// `CPU s/GiB` stays meaningful on a loaded machine; GB/s is wall-clock.
//
//   build*/bench/secure_bench --benchmark_counters_tabular=true
#include <benchmark/benchmark.h>
#include <sys/socket.h>

#include <random>
#include <thread>
#include <vector>

#include "transport/secure.h"
#include "transport/socket_stream.h"

namespace xm {
namespace {

constexpr size_t kPages = 512, kPage = 4096;

enum Mode { kPlain, kMac, kTls };

void BM_Stream(benchmark::State& state, Mode mode) {
  std::vector<std::byte> header(24), desc(kPages * 24), memory(2 * kPages * kPage);
  std::mt19937_64 rng(1);
  for (auto& x : memory) x = std::byte(rng());
  std::vector<iovec> iov{{header.data(), header.size()}, {desc.data(), desc.size()}};
  for (size_t i = 0; i < kPages; ++i) iov.push_back({memory.data() + 2 * i * kPage, kPage});
  size_t batch = 0;
  for (const iovec& v : iov) batch += v.iov_len;

  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) {
    state.SkipWithError("socketpair");
    return;
  }
  std::unique_ptr<Stream> a = std::make_unique<SocketStream>(UniqueFd(fds[0]));
  std::unique_ptr<Stream> b = std::make_unique<SocketStream>(UniqueFd(fds[1]));
  SecurityOptions so;
  if (mode != kPlain) so.psk.assign(32, 9);
  so.encrypt = mode == kTls;
  auto sc = SecureContext::Create(so, Role::kSource);
  auto dc = SecureContext::Create(so, Role::kDestination);
  if (!sc.ok() || !dc.ok()) {
    state.SkipWithError("security context");
    return;
  }
  Result<std::unique_ptr<Stream>> bs = Error(Code::kInternal, "");
  std::thread accept([&] { bs = (*dc)->Secure(std::move(b)); });
  auto as = (*sc)->Secure(std::move(a));
  accept.join();
  if (!as.ok() || !bs.ok()) {
    state.SkipWithError("handshake");
    return;
  }
  Stream& tx = **as;
  Stream& rx = **bs;
  std::atomic<bool> stop{false};
  std::thread receiver([&] {
    std::vector<std::byte> buf(batch);
    while (!stop.load() && rx.Recv(buf).ok()) {
    }
  });
  for (auto _ : state)
    if (!tx.Send(iov).ok()) {
      state.SkipWithError("send");
      break;
    }
  stop = true;
  rx.Shutdown();  // wakes a receiver blocked in Recv
  receiver.join();
  const double bytes = double(state.iterations()) * double(batch);
  state.SetBytesProcessed(int64_t(bytes));
  state.counters["GB/s"] = benchmark::Counter(bytes, benchmark::Counter::kIsRate);
  state.SetLabel(mode == kPlain ? "plain" : (*sc)->info().mode + " " + (*sc)->info().cipher);
}

BENCHMARK_CAPTURE(BM_Stream, plain, kPlain)->UseRealTime()->MeasureProcessCPUTime()->MinTime(2);
BENCHMARK_CAPTURE(BM_Stream, mac, kMac)->UseRealTime()->MeasureProcessCPUTime()->MinTime(2);
BENCHMARK_CAPTURE(BM_Stream, tls, kTls)->UseRealTime()->MeasureProcessCPUTime()->MinTime(2);

}  // namespace
}  // namespace xm
