// SimBackend: a synthetic guest in this process's memory, for tests and benchmarks.
//
// Memory is anonymous zeroed RAM, allocated by the first write, never before:
// a destination page nothing sends stays unallocated. A workload thread
// (WorkloadSpec) plays the guest's vCPU and marks every page it writes in an exact dirty bitmap, written
// after the data, as a hypervisor's log would. The "vCPU state" is the workload's
// own state (spec, counter, cursor), so a destination continues where the source
// paused. This is a simulation: it exercises the engine, not a hypervisor.
#pragma once

#include <atomic>
#include <mutex>
#include <thread>

#include "base/mapping.h"
#include "dirtylog/backend.h"
#include "dirtylog/workload.h"

namespace xm {

class SimBackend final : public Backend {
 public:
  // A running source guest: memory filled per `spec`, workload started.
  static Result<std::unique_ptr<SimBackend>> CreateSource(uint64_t memory_bytes, const WorkloadSpec& spec,
                                                          CpuPolicy policy);
  // An empty, paused destination guest of `shape`; `hugepages`: its memory
  // from the hugetlb pool (Mapping::HugeTlb).
  static Result<std::unique_ptr<SimBackend>> CreateDestination(const GuestShape& shape, bool hugepages = false);
  ~SimBackend() override;

  std::string_view name() const override { return "sim"; }
  const GuestShape& shape() const override { return shape_; }
  Result<MappedPages> MapPages(std::span<const uint64_t> pfns, Access access) override;
  std::byte* DirectMemory() override { return mem_.data(); }
  bool ZeroInitialized() const override { return true; }
  void PagesMaybeWritten(DirtyBitmap& out) override;

  Status EnableDirtyLog() override;
  Status FetchDirty(DirtyBitmap& out) override;
  Status DisableDirtyLog() override;

  Status Pause() override;
  Status Resume() override;
  Status SetThrottle(double run_fraction) override;
  bool Running() const override { return running_; }

  Result<std::vector<uint8_t>> SaveVcpuState() override;
  Status LoadVcpuState(std::span<const uint8_t> blob) override;

  Result<CpuPolicy> GetCpuPolicy() override { return policy_; }
  Result<CpuPolicy> ApplyCpuPolicy(const CpuPolicy& policy) override;

  Status Release() override;
  GuestProgress Progress() override;

  const WorkloadSpec& workload() const { return spec_; }

 private:
  SimBackend() = default;
  static Result<std::unique_ptr<SimBackend>> Create(const GuestShape& shape, bool hugepages);
  void StartWorkload();
  void StopWorkload();
  void WorkloadLoop();

  GuestShape shape_;
  Mapping mem_;
  WorkloadSpec spec_;
  CpuPolicy policy_;

  DirtyBitmap log_;
  std::atomic<bool> logging_{false};

  std::thread worker_;
  std::atomic<bool> stop_{false};
  bool running_ = false;
  bool released_ = false;
  std::atomic<double> run_fraction_{1.0};
  // Workload "registers": survive pause/resume and migrate in the vCPU blob.
  std::atomic<uint64_t> counter_{0};
  uint64_t cursor_ = 0;
};

}  // namespace xm
