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
#include <functional>
#include <string_view>
#include <memory>

#include "dirtylog/forwarding_backend.h"

namespace xm {

struct BackendFaults {
  // 1-based call numbers that fail (0 = never).
  uint64_t fail_map_at = 0;
  uint64_t fail_pause_at = 0;
  uint64_t fail_resume_at = 0;
  uint64_t fail_fetch_dirty_at = 0;
  bool hide_direct_memory = false;
  // Called before each counted call with its name and 1-based number, on the
  // caller's thread: a test acts at an exact point (e.g. cancels while the
  // engine is in a given phase). Empty = nothing.
  std::function<void(std::string_view call, uint64_t nth)> before_call;
  // A dirty log that misses a page: every FetchDirty forgets this pfn was
  // written (what --verify full's dirty_log_misses must catch). The page is
  // also changed just before the pause, so it always differs from its last
  // copy however the guest's writer thread was scheduled.
  uint64_t drop_dirty_pfn = UINT64_MAX;
  // A page every FetchDirty reports written, as if the guest wrote it all the
  // time: no round is empty however the guest's writer thread is scheduled
  // (tests that fail the nth map of a later round count on that round).
  uint64_t always_dirty_pfn = UINT64_MAX;
  // Fails every counted call it returns true for (besides the fail_*_at
  // numbers): a test fails calls from a point on (e.g. every map once the
  // guest is paused). Called on the caller's thread, from several at once for
  // MapPages: it must be thread-safe. Empty = never.
  std::function<bool(std::string_view call, uint64_t nth)> fail_if;
};

class FaultyBackend final : public ForwardingBackend {
 public:
  FaultyBackend(std::unique_ptr<Backend> inner, BackendFaults faults);

  Result<MappedPages> MapPages(std::span<const uint64_t> pfns, Access access) override;
  std::byte* DirectMemory() override { return faults_.hide_direct_memory ? nullptr : inner_->DirectMemory(); }
  Status FetchDirty(DirtyBitmap& out) override;
  Status Pause() override;
  Status Resume() override;

  Result<std::vector<uint8_t>> SaveVcpuState() override;
  Status LoadVcpuState(std::span<const uint8_t> blob) override;
  Result<CpuPolicy> GetCpuPolicy() override {
    Hook("GetCpuPolicy", policies_);
    return inner_->GetCpuPolicy();
  }
  Status OnRoundEnd(uint32_t round) override {
    Hook("OnRoundEnd", round_ends_);
    return inner_->OnRoundEnd(round);
  }

  uint64_t map_calls() const { return maps_.load(); }

 private:
  // Counts the call and runs faults_.before_call; returns its number.
  uint64_t Hook(std::string_view call, std::atomic<uint64_t>& counter) {
    uint64_t n = counter.fetch_add(1) + 1;
    if (faults_.before_call) faults_.before_call(call, n);
    return n;
  }
  // Counts the call; the injected failure if call `at` (or faults_.fail_if) says it fails.
  Status Check(const char* call, std::atomic<uint64_t>& counter, uint64_t at);

  const BackendFaults faults_;
  std::atomic<uint64_t> maps_{0}, pauses_{0}, resumes_{0}, fetches_{0};
  std::atomic<uint64_t> saves_{0}, loads_{0}, policies_{0}, round_ends_{0};
};

}  // namespace xm
