#include "dirtylog/xen/stream/tee.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>

#include "base/log.h"
#include "base/unique_fd.h"
#include "dirtylog/page_access.h"
#include "dirtylog/xen/stream/byte_io.h"
#include "dirtylog/xen/stream/feeder.h"
#include "dirtylog/xen/stream/guest_state.h"

namespace xm::xen {
namespace {

class XenStreamTee final : public Backend {
 public:
  XenStreamTee(std::unique_ptr<Backend> inner, TeeOptions opts, UniqueFd fd)
      : inner_(std::move(inner)), opts_(std::move(opts)), fd_(std::move(fd)), sink_(fd_.get(), "xen stream " + opts_.path) {}

  Status Start() {
    std::optional<XenCpuPolicy> policy;
    if (opts_.policy) {
      auto p = XenPolicyFor(*opts_.policy);
      if (!p.ok()) return std::move(p).With("xen stream: CPU policy").status();
      policy = std::move(p).value();
      policy_synthetic_ = policy->synthetic;
      leaf1_eax_ = Leaf1Eax(*policy);
    }
    StreamOptions so;
    so.framing = opts_.framing;
    auto f = StreamFeeder::Start(inner_->shape().page_count, sink_, so, policy ? &*policy : nullptr);
    if (!f.ok()) return std::move(f).With(opts_.path).status();
    feeder_ = std::move(f).value();
    return {};
  }

  std::string_view name() const override { return inner_->name(); }
  const GuestShape& shape() const override { return inner_->shape(); }

  Result<MappedPages> MapPages(std::span<const uint64_t> pfns, Access access) override {
    if (access == Access::kWrite) feeder_->Mark(pfns);
    return ReadInner(pfns, access);
  }
  // Hidden on purpose: pages written straight into memory could not be noted.
  // ZeroInitialized() stays false for the same reason: zero pages must be
  // written (and so noted) too, since Xen populates only what a stream carries.
  std::byte* DirectMemory() override { return nullptr; }

  Status EnableDirtyLog() override { return inner_->EnableDirtyLog(); }
  Status FetchDirty(DirtyBitmap& out) override { return inner_->FetchDirty(out); }
  Status DisableDirtyLog() override { return inner_->DisableDirtyLog(); }
  Status Pause() override { return inner_->Pause(); }
  Status SetThrottle(double f) override { return inner_->SetThrottle(f); }
  bool Running() const override { return inner_->Running(); }
  Result<std::vector<uint8_t>> SaveVcpuState() override { return inner_->SaveVcpuState(); }
  Result<CpuPolicy> GetCpuPolicy() override { return inner_->GetCpuPolicy(); }
  Status Release() override { return inner_->Release(); }
  GuestProgress Progress() override { return inner_->Progress(); }

  Status OnRoundEnd(uint32_t round) override {
    XM_TRY(inner_->OnRoundEnd(round));
    return feeder_->FlushRound(round, [this](std::span<const uint64_t> pfns) { return ReadInner(pfns, Access::kRead); });
  }

  Status LoadVcpuState(std::span<const uint8_t> blob) override {
    XM_TRY(inner_->LoadVcpuState(blob));
    if (opts_.source_backend == "xen" && IsGuestStateBlob(blob)) {
      auto st = DecodeGuestStateBlob(blob);
      if (!st.ok()) return std::move(st).With("xen stream").status();
      state_ = std::move(st).value();
    } else {
      state_ = SyntheticGuestState(inner_->shape().vcpus, leaf1_eax_);
    }
    return {};
  }

  Result<CpuPolicy> ApplyCpuPolicy(const CpuPolicy& policy) override {
    auto applied = inner_->ApplyCpuPolicy(policy);
    if (!applied.ok()) return applied;
    XM_TRY(FinishStream());
    return applied;
  }

  Status Resume() override {
    XM_TRY(FinishStream());
    return inner_->Resume();
  }

  void Discard() override {
    inner_->Discard();
    if (feeder_ && !feeder_->finished()) {
      fd_.reset();
      ::unlink(opts_.path.c_str());
      spdlog::warn("xmotion: xen stream: migration failed; removed the partial stream {}", opts_.path);
    }
  }

  std::string Summary() const {
    const StreamStats& s = feeder_->stats();
    std::string out = "xen stream " + opts_.path + " (" + std::string(FramingName(opts_.framing)) + ", libxc v3): " +
                      (feeder_->finished() ? "complete" : "INCOMPLETE") + ", " + std::to_string(feeder_->bytes()) +
                      " bytes, " + std::to_string(s.records) + " records, " + std::to_string(s.pages) + " pages in " +
                      std::to_string(s.page_records) + " PAGE_DATA records over " +
                      std::to_string(feeder_->rounds().size()) + " rounds";
    bool synth_ctx = state_ ? state_->synthetic : true;
    out += synth_ctx ? "; HVM context SYNTHETIC (source guest is '" + opts_.source_backend + "', not Xen)"
                     : "; HVM context from the Xen source";
    if (!opts_.policy) out += "; no CPU policy records";
    else if (policy_synthetic_) out += "; CPU policy SYNTHETIC (built from the featureset)";
    else out += "; CPU policy from the Xen source";
    return out;
  }

 private:
  Result<MappedPages> ReadInner(std::span<const uint64_t> pfns, Access access) {
    if (std::byte* mem = inner_->DirectMemory()) return MapLinear(mem, inner_->shape(), pfns, "xen stream tee");
    return inner_->MapPages(pfns, access);
  }

  Status FinishStream() {
    if (feeder_->finished()) return {};
    if (!state_) state_ = SyntheticGuestState(inner_->shape().vcpus, leaf1_eax_);
    XM_TRY_CTX(feeder_->Finish(*state_), opts_.path);
    // No fsync: the file is a copy for inspection, and syncing it would add
    // to the guest's downtime.
    if (::close(fd_.release()) != 0) return ErrnoError("xen stream " + opts_.path + ": close", errno);
    spdlog::info("xmotion: {}", Summary());
    return {};
  }

  std::unique_ptr<Backend> inner_;
  TeeOptions opts_;
  UniqueFd fd_;
  FdSink sink_;
  std::unique_ptr<StreamFeeder> feeder_;
  std::optional<XenGuestState> state_;
  bool policy_synthetic_ = false;
  uint32_t leaf1_eax_ = 0;

};

}  // namespace

Result<std::unique_ptr<Backend>> WrapWithXenStreamTee(std::unique_ptr<Backend> inner, TeeOptions opts) {
  if (inner->shape().page_size != kXenPageSize)
    return Error(Code::kUnsupported, "xen stream: guest page size " + std::to_string(inner->shape().page_size) +
                                         " (Xen streams use 4 KiB pages)");
  UniqueFd fd(::open(opts.path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  if (!fd.valid()) return ErrnoError("xen stream: open " + opts.path, errno);
  auto tee = std::make_unique<XenStreamTee>(std::move(inner), std::move(opts), std::move(fd));
  XM_TRY(tee->Start());
  return std::unique_ptr<Backend>(std::move(tee));
}

std::string XenStreamTeeSummary(const Backend& b) {
  if (const auto* t = dynamic_cast<const XenStreamTee*>(&b)) return t->Summary();
  return {};
}

}  // namespace xm::xen
