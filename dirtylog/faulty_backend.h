// FaultyBackend: a Backend wrapper that fails a chosen call, so tests can make
// the hypervisor misbehave at an exact point of a migration (the n-th MapPages,
// the first Pause, a Resume). Everything else goes to the wrapped backend.
//
// With hide_direct_memory the wrapper reports no DirectMemory(), which sends a
// sim or kvm guest's pages through MapPages: the path a foreign-mapped (Xen)
// guest takes, exercised without Xen.
//
// Thread-safety: as the wrapped backend; the call counters are atomic, so
// concurrent MapPages calls are counted exactly once each.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>

#include "dirtylog/backend.h"

namespace xm {

struct BackendFaults {
  // 1-based call numbers that fail (0 = never).
  uint64_t fail_map_at = 0;
  uint64_t fail_pause_at = 0;
  uint64_t fail_resume_at = 0;
  uint64_t fail_fetch_dirty_at = 0;
  bool hide_direct_memory = false;
  // A dirty log that misses a page: every FetchDirty forgets this pfn was
  // written (what --verify full's dirty_log_misses must catch).
  uint64_t drop_dirty_pfn = UINT64_MAX;
};

class FaultyBackend final : public Backend {
 public:
  FaultyBackend(std::unique_ptr<Backend> inner, BackendFaults faults);

  std::string_view name() const override { return inner_->name(); }
  const GuestShape& shape() const override { return inner_->shape(); }
  Result<MappedPages> MapPages(std::span<const uint64_t> pfns, Access access) override;
  std::byte* DirectMemory() override { return faults_.hide_direct_memory ? nullptr : inner_->DirectMemory(); }
  bool ZeroInitialized() const override { return inner_->ZeroInitialized(); }
  void PagesMaybeWritten(DirtyBitmap& out) override { inner_->PagesMaybeWritten(out); }

  Status EnableDirtyLog() override { return inner_->EnableDirtyLog(); }
  Status FetchDirty(DirtyBitmap& out) override;
  Status DisableDirtyLog() override { return inner_->DisableDirtyLog(); }

  Status Pause() override;
  Status Resume() override;
  Status SetThrottle(double run_fraction) override { return inner_->SetThrottle(run_fraction); }
  bool Running() const override { return inner_->Running(); }
  GuestState State() const override { return inner_->State(); }

  Result<std::vector<uint8_t>> SaveVcpuState() override { return inner_->SaveVcpuState(); }
  Status LoadVcpuState(std::span<const uint8_t> blob) override { return inner_->LoadVcpuState(blob); }
  Result<CpuPolicy> GetCpuPolicy() override { return inner_->GetCpuPolicy(); }
  Result<CpuPolicy> ApplyCpuPolicy(const CpuPolicy& policy) override { return inner_->ApplyCpuPolicy(policy); }

  Status OnRoundEnd(uint32_t round) override { return inner_->OnRoundEnd(round); }
  void Discard() override { inner_->Discard(); }
  Status Release() override { return inner_->Release(); }
  GuestProgress Progress() override { return inner_->Progress(); }

  Backend& inner() { return *inner_; }
  uint64_t map_calls() const { return maps_.load(); }

 private:
  std::unique_ptr<Backend> inner_;
  const BackendFaults faults_;
  std::atomic<uint64_t> maps_{0}, pauses_{0}, resumes_{0}, fetches_{0};
};

}  // namespace xm
