#include "dirtylog/kvm/vcpu_runner.h"

#include <signal.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "dirtylog/kvm/guest_abi.h"

namespace xm::kvm {
namespace {

using Clock = std::chrono::steady_clock;
constexpr auto kThrottlePeriod = std::chrono::milliseconds(10);
constexpr auto kMaxGuestSleep = std::chrono::milliseconds(20);

// The vCPU this thread runs: the kick handler flips its immediate_exit.
__attribute__((tls_model("initial-exec"))) thread_local kvm_run* tls_run = nullptr;

int KickSignal() { return SIGRTMIN + 5; }

void OnKick(int) {
  if (kvm_run* r = tls_run) r->immediate_exit = 1;
}

void InstallKickHandler() {
  static std::once_flag once;
  std::call_once(once, [] {
    struct sigaction sa {};
    sa.sa_handler = OnKick;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0;  // no SA_RESTART: KVM_RUN must come back with EINTR
    ::sigaction(KickSignal(), &sa, nullptr);
  });
}

// A one-shot timer that sends the kick signal to the calling thread.
class ThreadTimer {
 public:
  ThreadTimer() {
    sigevent sev{};
    sev.sigev_notify = SIGEV_THREAD_ID;
    sev.sigev_signo = KickSignal();
    sev._sigev_un._tid = static_cast<pid_t>(::syscall(SYS_gettid));
    ok_ = ::timer_create(CLOCK_MONOTONIC, &sev, &id_) == 0;
  }
  ~ThreadTimer() {
    if (ok_) ::timer_delete(id_);
  }
  void Arm(std::chrono::nanoseconds d) {
    if (!ok_) return;
    itimerspec its{};
    its.it_value.tv_sec = static_cast<time_t>(d.count() / 1000000000);
    its.it_value.tv_nsec = static_cast<long>(d.count() % 1000000000);
    if (its.it_value.tv_sec == 0 && its.it_value.tv_nsec == 0) its.it_value.tv_nsec = 1;
    ::timer_settime(id_, 0, &its, nullptr);
  }
  void Disarm() {
    if (!ok_) return;
    itimerspec its{};
    ::timer_settime(id_, 0, &its, nullptr);
  }

 private:
  timer_t id_{};
  bool ok_ = false;
};

std::string Hex(uint64_t v) {
  char b[24];
  std::snprintf(b, sizeof b, "0x%llx", static_cast<unsigned long long>(v));
  return b;
}

std::string Where(const KvmVcpu& v) {
  auto regs = v.Get<kvm_regs>(KVM_GET_REGS, "KVM_GET_REGS");
  return regs.ok() ? " at rip " + Hex(regs->rip) : "";
}

}  // namespace

VcpuRunner::VcpuRunner(std::vector<KvmVcpu>& vcpus, uint64_t tsc_khz, std::function<uint64_t(uint32_t)> sleep_ticks,
                       EventFn on_event)
    : vcpus_(vcpus), tsc_khz_(tsc_khz ? tsc_khz : 1000000), sleep_ticks_(std::move(sleep_ticks)),
      on_event_(std::move(on_event)) {
  InstallKickHandler();
}

VcpuRunner::~VcpuRunner() { Stop(); }

Status VcpuRunner::Resume() {
  if (stopped_) return Error(Code::kInternal, "kvm: the vCPUs were stopped for good");
  if (!started_) {
    pause_requested_.store(false);
    started_ = true;
    for (uint32_t i = 0; i < vcpus_.size(); ++i) threads_.emplace_back([this, i] { Loop(i); });
    return {};
  }
  {
    std::lock_guard lk(mu_);
    pause_requested_.store(false);
  }
  cv_.notify_all();
  return {};
}

Result<std::chrono::nanoseconds> VcpuRunner::Pause() {
  auto t0 = Clock::now();
  {
    // Under the lock, and notified: a vCPU thread sleeping for the guest (or
    // for the throttle) waits on cv_, which a signal does not wake.
    std::lock_guard lk(mu_);
    pause_requested_.store(true);
  }
  if (!started_ || stopped_) return std::chrono::nanoseconds(0);
  cv_.notify_all();
  for (uint32_t i = 0; i < vcpus_.size(); ++i) Kick(i);
  std::unique_lock lk(mu_);
  cv_.wait(lk, [&] { return parked_ + dead_ == vcpus_.size(); });
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - t0);
}

void VcpuRunner::SetThrottle(double run_fraction) {
  run_fraction_.store(run_fraction);
  // Running vCPUs pick the new duty cycle up at their next exit; make one happen.
  if (started_ && !stopped_)
    for (uint32_t i = 0; i < vcpus_.size(); ++i) Kick(i);
}

void VcpuRunner::Stop() {
  if (stopped_) return;
  stopped_ = true;
  if (!started_) return;
  {
    std::lock_guard lk(mu_);
    stop_requested_.store(true);
  }
  cv_.notify_all();
  for (uint32_t i = 0; i < vcpus_.size(); ++i) Kick(i);
  for (auto& t : threads_) t.join();
}

std::string VcpuRunner::fatal() const {
  std::lock_guard lk(mu_);
  return fatal_;
}

void VcpuRunner::Kick(uint32_t i) {
  vcpus_[i].run()->immediate_exit = 1;
  ::pthread_kill(threads_[i].native_handle(), KickSignal());
}

void VcpuRunner::SleepFor(std::chrono::nanoseconds d) {
  std::unique_lock lk(mu_);
  cv_.wait_for(lk, d, [&] { return pause_requested_.load() || stop_requested_.load(); });
}

void VcpuRunner::Die(uint32_t i, const std::string& why) {
  {
    std::lock_guard lk(mu_);
    ++dead_;
    if (fatal_.empty()) fatal_ = "vCPU " + std::to_string(i) + ": " + why;
  }
  cv_.notify_all();
}

bool VcpuRunner::Park(uint32_t i) {
  KvmVcpu& v = vcpus_[i];
  kvm_run* run = v.run();
  run->immediate_exit = 1;
  // Completes an instruction the last exit left half done (port IO) without
  // running any further guest code.
  if (::ioctl(v.fd(), KVM_RUN, 0) == 0 || (errno != EINTR && errno != EAGAIN)) {
    Die(i, "KVM_RUN with immediate_exit did not return EINTR (" + std::string(std::strerror(errno)) + ")");
    return false;
  }
  std::unique_lock lk(mu_);
  ++parked_;
  cv_.notify_all();
  cv_.wait(lk, [&] { return !pause_requested_.load() || stop_requested_.load(); });
  --parked_;
  return !stop_requested_.load();
}

void VcpuRunner::Loop(uint32_t i) {
  KvmVcpu& v = vcpus_[i];
  kvm_run* run = v.run();
  tls_run = run;
  ThreadTimer timer;
  bool in_window = false;  // throttled: inside a run window whose end the timer signals
  Clock::time_point window_end;

  for (;;) {
    if (stop_requested_.load()) break;
    if (pause_requested_.load()) {
      timer.Disarm();
      in_window = false;
      if (!Park(i)) break;
      continue;
    }
    // Reset first, then look at the flags: a kick after this line leaves
    // immediate_exit set, one before it left a flag this thread now sees.
    run->immediate_exit = 0;
    if (pause_requested_.load() || stop_requested_.load()) continue;

    double frac = run_fraction_.load();
    if (frac < 1.0) {
      auto now = Clock::now();
      if (!in_window) {
        auto on = std::chrono::duration_cast<Clock::duration>(kThrottlePeriod * frac);
        window_end = now + on;
        in_window = true;
        timer.Arm(on);
      } else if (now >= window_end) {
        in_window = false;
        SleepFor(std::chrono::duration_cast<std::chrono::nanoseconds>(kThrottlePeriod * (1.0 - frac)));
        continue;
      }
    } else if (in_window) {
      timer.Disarm();
      in_window = false;
    }

    if (::ioctl(v.fd(), KVM_RUN, 0) < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      Die(i, std::string("KVM_RUN: ") + std::strerror(errno));
      break;
    }
    switch (run->exit_reason) {
      case KVM_EXIT_IO: {
        const auto& io = run->io;
        if (io.port != XMG_PORT_EVENT || io.direction != KVM_EXIT_IO_OUT || io.size != 1 || io.count != 1) {
          Die(i, "unexpected port IO " + Hex(io.port) + (io.direction == KVM_EXIT_IO_OUT ? " out" : " in") + Where(v));
          return;
        }
        uint8_t ev = *(reinterpret_cast<const uint8_t*>(run) + io.data_offset);
        on_event_(i, ev);
        if (ev == XMG_EV_SLEEP) {
          uint64_t ticks = sleep_ticks_(i);
          auto d = std::chrono::nanoseconds(ticks * 1000000 / tsc_khz_);
          SleepFor(std::min<std::chrono::nanoseconds>(d, kMaxGuestSleep));
        } else if (ev == XMG_EV_PANIC) {
          Die(i, "the guest payload gave up (bad parameters)");
          return;
        }
        break;
      }
      case KVM_EXIT_INTR:
        break;
      case KVM_EXIT_HLT:
        Die(i, "the guest halted" + Where(v));
        return;
      case KVM_EXIT_SHUTDOWN:
        Die(i, "the guest shut down (triple fault)" + Where(v));
        return;
      case KVM_EXIT_INTERNAL_ERROR:
        Die(i, "KVM internal error, suberror " + std::to_string(run->internal.suberror) +
                   (run->internal.suberror == KVM_INTERNAL_ERROR_EMULATION ? " (instruction emulation failed)" : "") +
                   Where(v));
        return;
      case KVM_EXIT_FAIL_ENTRY:
        Die(i, "VM entry failed, reason " + Hex(run->fail_entry.hardware_entry_failure_reason));
        return;
      case KVM_EXIT_MMIO:
        Die(i, "unexpected MMIO at " + Hex(run->mmio.phys_addr) + Where(v));
        return;
      default:
        Die(i, "unexpected exit reason " + std::to_string(run->exit_reason) + Where(v));
        return;
    }
  }
}

}  // namespace xm::kvm
