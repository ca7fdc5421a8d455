// VcpuRunner: one host thread per vCPU running KVM_RUN, and the run control
// the engine needs on top: pause (all vCPUs out of KVM_RUN, pending IO
// completed), resume, a duty-cycle throttle, and the payload's port-IO events.
//
// Stopping a vCPU that is inside KVM_RUN takes a signal: the requester sets the
// vCPU's kvm_run.immediate_exit and sends kKickSignal to its thread; the
// handler sets immediate_exit too, so a kick that lands just before KVM_RUN is
// not lost. Before parking, a vCPU thread enters KVM_RUN once more with
// immediate_exit=1, which completes an interrupted port-IO instruction so that
// the state saved afterwards is consistent. The throttle arms a per-thread
// timer that delivers the same signal at the end of each run window.
#pragma once

#include <pthread.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "base/status.h"
#include "dirtylog/kvm/kvm_vm.h"

namespace xm::kvm {

class VcpuRunner {
 public:
  // Called on the vCPU's thread for every payload event (XMG_EV_*); for
  // XMG_EV_SLEEP the runner sleeps itself after the call.
  using EventFn = std::function<void(uint32_t vcpu, uint8_t event)>;

  VcpuRunner(std::vector<KvmVcpu>& vcpus, uint64_t tsc_khz, std::function<uint64_t(uint32_t)> sleep_ticks,
             EventFn on_event);
  ~VcpuRunner();
  VcpuRunner(const VcpuRunner&) = delete;
  VcpuRunner& operator=(const VcpuRunner&) = delete;

  // Starts the threads (first call) or lets parked vCPUs run again.
  Status Resume();
  // Returns once every vCPU is parked outside KVM_RUN; the time it took.
  Result<std::chrono::nanoseconds> Pause();
  // Fraction of wall time the vCPUs may run, in (0, 1].
  void SetThrottle(double run_fraction);
  // Stops and joins the threads; the vCPUs never run again.
  void Stop();

  bool running() const { return started_ && !pause_requested_.load() && !stopped_; }
  // Set when a vCPU stopped for good: emulation failure, shutdown, guest panic.
  std::string fatal() const;

 private:
  void Loop(uint32_t i);
  // Enters KVM_RUN with immediate_exit=1 (completes pending IO), then waits
  // until resumed or stopped. Returns false when stopping.
  bool Park(uint32_t i);
  // Waits up to `d` unless a pause or stop comes first.
  void SleepFor(std::chrono::nanoseconds d);
  void Die(uint32_t i, const std::string& why);
  void Kick(uint32_t i);

  std::vector<KvmVcpu>& vcpus_;
  const uint64_t tsc_khz_;
  std::function<uint64_t(uint32_t)> sleep_ticks_;
  EventFn on_event_;

  std::vector<std::thread> threads_;
  std::vector<pthread_t> handles_;
  bool started_ = false;
  bool stopped_ = false;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::atomic<bool> pause_requested_{false};
  std::atomic<bool> stop_requested_{false};
  uint32_t parked_ = 0;  // under mu_
  uint32_t dead_ = 0;    // under mu_
  std::string fatal_;    // under mu_
  std::atomic<double> run_fraction_{1.0};
};

}  // namespace xm::kvm
