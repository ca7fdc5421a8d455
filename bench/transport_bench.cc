// Transport throughput over loopback TCP, 2 MiB batches shaped like a PAGES
// record (24-byte header, 512 descriptors, 512 scattered 4 KiB pages):
// plain sockets against io_uring, over 1 and 2 connections (one sending thread each), each beside a memcpy of the same
// gather in the same run. The far end of every connection is the same plain
// recv() loop, so the send-side variants are compared on equal terms; the Recv
// benchmarks swap the roles.
//
// There is no SEND_ZC variant any more: on loopback the kernel copied 100% of
// zero-copy sends and it ran at 0.69 GB/s against 2.8 GB/s copying (DESIGN.md §8).
//
//   build-*/bench/transport_bench --benchmark_counters_tabular=true
#include <benchmark/benchmark.h>
#include <sys/socket.h>

#include <atomic>
#include <barrier>
#include <cstring>
#include <functional>
#include <memory>
#include <random>
#include <thread>
#include <vector>

#include "base/unique_fd.h"
#include "transport/socket_stream.h"
#include "transport/uring_stream.h"

namespace xm {
namespace {

constexpr size_t kPages = 512;
constexpr size_t kPage = 4096;

struct Batch {
  std::vector<std::byte> header, descriptors, memory;
  std::vector<iovec> iov;
  size_t bytes = 0;
};

const Batch& TheBatch() {
  static const Batch batch = [] {
    Batch b;
    std::mt19937_64 rng(1);
    b.header.resize(24);
    b.descriptors.resize(kPages * 24);
    b.memory.resize(2 * kPages * kPage);  // every other page: nothing merges into one big iovec
    for (auto& x : b.memory) x = std::byte(rng());
    b.iov.push_back({b.header.data(), b.header.size()});
    b.iov.push_back({b.descriptors.data(), b.descriptors.size()});
    for (size_t i = 0; i < kPages; ++i) b.iov.push_back({b.memory.data() + 2 * i * kPage, kPage});
    for (const iovec& v : b.iov) b.bytes += v.iov_len;
    return b;
  }();
  return batch;
}

void SetRate(benchmark::State& state, size_t bytes_per_iteration) {
  const double bytes = double(state.iterations()) * double(bytes_per_iteration);
  state.SetBytesProcessed(int64_t(bytes));
  state.counters["GB/s"] = benchmark::Counter(bytes, benchmark::Counter::kIsRate);  // 10^9 bytes
}

// Runs job(i) for i in [0, n) at once, once per Run(), on n threads of which
// the caller is number 0. (Google Benchmark's own Threads() averages per-thread
// clocks, which misstated pipelined senders; here an iteration is the wall time
// until every connection has sent its batch.)
class Gang {
 public:
  Gang(int n, std::function<void(int)> job) : n_(n), job_(std::move(job)), start_(n), end_(n) {
    for (int i = 1; i < n; ++i)
      threads_.emplace_back([this, i] {
        for (;;) {
          start_.arrive_and_wait();
          if (stop_) return;
          job_(i);
          end_.arrive_and_wait();
        }
      });
  }
  ~Gang() {
    stop_ = true;
    start_.arrive_and_wait();
    for (auto& t : threads_) t.join();
  }
  void Run() {
    start_.arrive_and_wait();
    job_(0);
    end_.arrive_and_wait();
  }

 private:
  int n_;
  std::function<void(int)> job_;
  std::barrier<> start_, end_;
  std::atomic<bool> stop_{false};
  std::vector<std::thread> threads_;
};

// The same bytes gathered into one buffer per connection: what copying the
// batches costs on this machine, now.
void BM_MemcpyGather(benchmark::State& state) {
  const Batch& b = TheBatch();
  const int n = int(state.range(0));
  std::vector<std::vector<std::byte>> dst(n, std::vector<std::byte>(b.bytes));
  Gang gang(n, [&](int i) {
    std::byte* p = dst[i].data();
    for (const iovec& v : b.iov) {
      std::memcpy(p, v.iov_base, v.iov_len);
      p += v.iov_len;
    }
    benchmark::DoNotOptimize(dst[i].data());
    benchmark::ClobberMemory();
  });
  for (auto _ : state) gang.Run();
  SetRate(state, b.bytes * size_t(n));
}

// A loopback TCP connection whose far end a thread drains with plain recv().
struct DrainedConnection {
  UniqueFd near;
  std::thread drain;
  size_t drained = 0;  // valid after drain.join()

  DrainedConnection() {
    auto listener = Listener::Bind(HostPort{"127.0.0.1", 0});
    auto client = SocketStream::Connect(HostPort{"127.0.0.1", listener->port()}, 5000);
    auto server = listener->Accept(5000);
    if (!listener.ok() || !client.ok() || !server.ok()) std::abort();
    near = (*client)->TakeFd();
    drain = std::thread([this, fd = std::move(server).value()] {
      std::vector<char> buf(4 << 20);
      ssize_t n;
      while ((n = ::recv(fd.get(), buf.data(), buf.size(), 0)) > 0) drained += size_t(n);
    });
  }
};

enum Variant { kSockets, kUring };

std::unique_ptr<Stream> MakeSender(Variant v, UniqueFd fd, std::string* error) {
  if (v == kSockets) return std::make_unique<SocketStream>(std::move(fd));
  UringOptions o;
  auto ring = UringStream::MakeRing(o);
  if (!ring.ok()) {
    *error = ring.status().ToString();
    return nullptr;
  }
  auto s = UringStream::Create(std::move(fd), std::move(ring).value(), o);
  if (!s.ok()) {
    *error = s.status().ToString();
    return nullptr;
  }
  return std::move(s).value();
}

void BM_Send(benchmark::State& state, Variant variant) {
  const Batch& b = TheBatch();
  const int n = int(state.range(0));
  std::vector<std::unique_ptr<DrainedConnection>> conns;
  std::vector<std::unique_ptr<Stream>> streams;
  std::vector<Status> status(n);
  std::string error;
  for (int i = 0; i < n; ++i) {
    conns.push_back(std::make_unique<DrainedConnection>());
    streams.push_back(MakeSender(variant, std::move(conns.back()->near), &error));
    if (!streams.back()) break;
  }
  if (!error.empty()) {
    state.SkipWithError(error.c_str());
  } else {
    Gang gang(n, [&](int i) {
      if (!status[i].ok()) return;
      status[i] = streams[i]->Send(b.iov);
    });
    for (auto _ : state) gang.Run();
    for (const Status& st : status)
      if (!st.ok()) state.SkipWithError(st.ToString().c_str());
    SetRate(state, b.bytes * size_t(n));
    if (auto* u = dynamic_cast<UringStream*>(streams[0].get())) state.SetLabel(u->Describe());
  }
  streams.clear();  // closes the sockets: the drains see the end
  const size_t sent = size_t(state.iterations()) * b.bytes;
  for (auto& c : conns) {
    c->drain.join();
    if (error.empty() && status[0].ok() && c->drained != sent)
      state.SkipWithError(("the far end got " + std::to_string(c->drained) + " of " + std::to_string(sent) + " bytes").c_str());
  }
}

// Receive side: a thread pushes batches with plain send(); the benchmark reads
// each as a 24-byte header and a body, the way the receiver reads records.
void BM_Recv(benchmark::State& state, bool use_uring) {
  const Batch& b = TheBatch();
  auto listener = Listener::Bind(HostPort{"127.0.0.1", 0});
  auto client = SocketStream::Connect(HostPort{"127.0.0.1", listener->port()}, 5000);
  auto server = listener->Accept(5000);
  if (!listener.ok() || !client.ok() || !server.ok()) std::abort();
  std::unique_ptr<SocketStream> pusher = std::move(client).value();
  std::thread push([&] {
    while (pusher->Send(b.iov).ok()) {
    }
  });
  std::unique_ptr<Stream> stream;
  if (use_uring) {
    auto ring = UringStream::MakeRing({});
    if (ring.ok()) stream = std::move(UringStream::Create(std::move(server).value(), std::move(ring).value(), {})).value();
  } else {
    stream = std::make_unique<SocketStream>(std::move(server).value());
  }
  std::vector<std::byte> header(24), body(b.bytes - 24);
  Status st;
  for (auto _ : state) {
    if (!stream) break;
    st = stream->Recv(header);
    if (st.ok()) st = stream->Recv(body);
    if (!st.ok()) break;
  }
  if (!stream) state.SkipWithError("io_uring unavailable");
  if (!st.ok()) state.SkipWithError(st.ToString().c_str());
  SetRate(state, b.bytes);
  pusher->Shutdown();
  push.join();
}

// Arg: connections, each sending one batch per iteration from its own thread.
BENCHMARK(BM_MemcpyGather)->ArgName("conns")->Arg(1)->Arg(2)->UseRealTime();
BENCHMARK_CAPTURE(BM_Send, sockets, kSockets)->ArgName("conns")->Arg(1)->Arg(2)->UseRealTime();
BENCHMARK_CAPTURE(BM_Send, io_uring, kUring)->ArgName("conns")->Arg(1)->Arg(2)->UseRealTime();
BENCHMARK_CAPTURE(BM_Recv, sockets, false)->UseRealTime();
BENCHMARK_CAPTURE(BM_Recv, io_uring, true)->UseRealTime();

}  // namespace
}  // namespace xm
