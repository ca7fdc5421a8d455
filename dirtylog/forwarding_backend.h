// ForwardingBackend: a Backend that hands every call to a wrapped one, for
// wrappers that change a few calls and must pass the rest through untouched
// (FaultyBackend; emu-manager's pause through the toolstack).
//
// Thread-safety: as the wrapped backend.
#pragma once

#include <memory>

#include "dirtylog/backend.h"

namespace xm {

class ForwardingBackend : public Backend {
 public:
  explicit ForwardingBackend(std::unique_ptr<Backend> inner) : inner_(std::move(inner)) {}

  std::string_view name() const override { return inner_->name(); }
  const GuestShape& shape() const override { return inner_->shape(); }
  std::string guest_id() const override { return inner_->guest_id(); }
  Result<MappedPages> MapPages(std::span<const uint64_t> pfns, Access access) override {
    return inner_->MapPages(pfns, access);
  }
  std::byte* DirectMemory() override { return inner_->DirectMemory(); }
  bool ZeroInitialized() const override { return inner_->ZeroInitialized(); }
  void PagesMaybeWritten(DirtyBitmap& out) override { inner_->PagesMaybeWritten(out); }

  Status EnableDirtyLog() override { return inner_->EnableDirtyLog(); }
  Status FetchDirty(DirtyBitmap& out) override { return inner_->FetchDirty(out); }
  Status DisableDirtyLog() override { return inner_->DisableDirtyLog(); }

  Status Pause() override { return inner_->Pause(); }
  Status Resume() override { return inner_->Resume(); }
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

 protected:
  std::unique_ptr<Backend> inner_;
};

}  // namespace xm
