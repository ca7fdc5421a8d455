#include "tests/support/in_process_migration.h"

#include <sys/socket.h>

#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>

#include "dirtylog/sim/sim_backend.h"
#include "dirtylog/workload.h"

namespace xm::testing {
namespace {

// Both ends of the link: Dial makes a socketpair, keeps one end and queues the
// other for Accept, each behind the faults chosen for its stream index.
class SocketpairLink final : public Dialer, public Acceptor {
 public:
  SocketpairLink(std::map<uint32_t, StreamFaults> source_sends, std::map<uint32_t, StreamFaults> destination_sends)
      : source_sends_(std::move(source_sends)), destination_sends_(std::move(destination_sends)) {}

  Result<std::unique_ptr<Stream>> Dial(std::string*) override {
    int fds[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) return ErrnoError("socketpair", errno);
    std::lock_guard lock(mu_);
    const uint32_t index = dialed_++;
    queue_.push_back(Wrap(std::make_unique<SocketStream>(UniqueFd(fds[1])), destination_sends_, index));
    cv_.notify_all();
    return Wrap(std::make_unique<SocketStream>(UniqueFd(fds[0])), source_sends_, index);
  }

  Result<std::unique_ptr<Stream>> Accept(int timeout_ms, std::string*) override {
    std::unique_lock lock(mu_);
    auto ready = [&] { return !queue_.empty(); };
    if (timeout_ms > 0) {
      if (!cv_.wait_for(lock, std::chrono::milliseconds(timeout_ms), ready))
        return Error(Code::kTimeout, "no stream within " + std::to_string(timeout_ms) + " ms");
    } else {
      cv_.wait(lock, ready);
    }
    auto s = std::move(queue_.front());
    queue_.pop_front();
    return s;
  }

 private:
  static std::unique_ptr<Stream> Wrap(std::unique_ptr<Stream> s, const std::map<uint32_t, StreamFaults>& faults,
                                      uint32_t index) {
    auto f = faults.find(index);
    if (f == faults.end()) return s;
    return std::make_unique<FaultyStream>(std::move(s), f->second);
  }

  std::map<uint32_t, StreamFaults> source_sends_, destination_sends_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::unique_ptr<Stream>> queue_;
  uint32_t dialed_ = 0;
};

}  // namespace

InProcessResult RunInProcessMigration(InProcessOptions opts) {
  InProcessResult out;
  auto spec = ParseWorkload(opts.workload, opts.memory_bytes);
  if (!spec.ok()) {
    out.source.error = spec.status().ToString();
    return out;
  }
  // A fixed policy: the harness tests the engine, not this host's CPU.
  CpuPolicy policy{"GenuineIntel", {}, "none", {}};
  auto sim = SimBackend::CreateSource(opts.memory_bytes, *spec, policy);
  if (!sim.ok()) {
    out.source.error = sim.status().ToString();
    return out;
  }
  out.source_guest = std::make_unique<FaultyBackend>(std::move(sim).value(), opts.source_backend);

  SocketpairLink link(opts.source_sends, opts.destination_sends);
  ReceiverOptions ro = opts.destination;
  // A source that never dials or a peer that went quiet must end the test, not hang it.
  if (ro.accept_timeout_ms == 0) ro.accept_timeout_ms = 10000;
  ro.make_backend = [faults = opts.destination_backend](const GuestShape& shape,
                                                        std::string_view) -> Result<std::unique_ptr<Backend>> {
    XM_ASSIGN_OR_RETURN(auto b, SimBackend::CreateDestination(shape));
    return std::unique_ptr<Backend>(std::make_unique<FaultyBackend>(std::move(b), faults));
  };
  std::thread destination([&] {
    // Destroyed as soon as it returns, as a receiver process exits: its streams
    // close, and a source still sending sees the end instead of a full buffer.
    Receiver receiver(ro);
    out.destination = receiver.Run(static_cast<Acceptor&>(link));
    out.destination_guest = receiver.TakeGuest();
  });

  SourceOptions so = opts.source;
  so.to = HostPort{"in-process", 0};
  so.dialer = &link;
  {
    // Destroyed before the join: its streams close, so the receiver sees the end.
    SourceEngine engine(*out.source_guest, so);
    out.source = engine.Run();
  }
  destination.join();
  return out;
}

}  // namespace xm::testing
