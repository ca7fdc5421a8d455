// KvmBackend: a real KVM virtual machine in this process, migrated by xmotion.
//
// Source mode boots the payload (guest_payload.S) in a fresh VM: it dirties its
// working set per a WorkloadSpec and checks its own memory (guest_abi.h). The
// destination mode creates an empty VM of the same shape whose vCPUs stay
// unstarted until Resume(), after the engine has filled memory, loaded the vCPU
// state blob (vcpu_state.h) and applied the CPU policy.
//
// Memory is one anonymous mapping registered as memslot 0; the dirty log is
// KVM_GET_DIRTY_LOG with KVM_CLEAR_DIRTY_LOG (manual protect) where KVM has it.
// The dirty ring is not used: on the PVM-based KVM these machines run it lost
// pages. Progress() is the guest's own word: its counter (from its status
// pages) and the passes it reported over port IO to *this* process.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "base/mapping.h"
#include "dirtylog/backend.h"
#include "dirtylog/kvm/guest_image.h"
#include "dirtylog/kvm/kvm_vm.h"
#include "dirtylog/kvm/vcpu_runner.h"
#include "dirtylog/kvm/vcpu_state.h"
#include "dirtylog/workload.h"

namespace xm {

struct KvmSourceOptions {
  uint64_t memory_bytes = 256ull << 20;
  WorkloadSpec workload;
  uint32_t vcpus = 1;
  // Installed with KVM_SET_CPUID2 before the first run; KVM's supported CPUID otherwise.
  std::optional<CpuPolicy> cpu_policy;
  uint32_t pass_interval_ms = 200;
};

// What the guest has said about itself, for reports and tests.
struct KvmGuestReport {
  struct Vcpu {
    kvm::GuestStatus status;      // its status page now
    uint32_t seen_cpuid[12] = {}; // CPUID words of its last BOOT/PASS event here
    bool reported = false;        // it sent at least one event to this process
    uint64_t passes_ok = 0;       // whole passes over its share that ran here and found nothing
    uint64_t passes_failed = 0;   // passes that found a bad page here (whole or not)
    bool partial_pass = false;    // a pass was under way when this copy first resumed
  };
  std::vector<Vcpu> vcpus;
  uint64_t counter = 0;           // sum over vCPUs
  uint64_t passes_ok = 0;         // whole-working-set checks: min over vCPUs of passes_ok
  uint64_t passes_failed = 0;     // sum over vCPUs
  uint64_t last_bad_page = ~0ull;// ws index of a page a failed pass found
  std::string fatal;             // why a vCPU stopped for good, if one did
};

class KvmBackend final : public Backend {
 public:
  // Whether /dev/kvm opens and KVM_CREATE_VM works here.
  static Status Usable();
  // What a guest of this host really gets: KVM's supported CPUID installed on a
  // scratch vCPU and read back. On the PVM-based KVM here the two differ a lot
  // (KVM_GET_SUPPORTED_CPUID lacks SSE3, POPCNT, AVX... that every vCPU then
  // sees anyway), and a source's policy is such a read-back, so this is what a
  // destination must compare it with.
  static Result<CpuPolicy> HostPolicy();
  static Result<std::unique_ptr<KvmBackend>> CreateSource(const KvmSourceOptions& opts);
  // `hugepages`: guest memory from the hugetlb pool (Mapping::HugeTlb; not
  // exercised on the development machine, which has no /dev/kvm).
  static Result<std::unique_ptr<KvmBackend>> CreateDestination(const GuestShape& shape, bool hugepages = false);
  ~KvmBackend() override;

  std::string_view name() const override { return "kvm"; }
  const GuestShape& shape() const override { return shape_; }
  Result<MappedPages> MapPages(std::span<const uint64_t> pfns, Access access) override;
  std::byte* DirectMemory() override { return mem_.data(); }
  // Anonymous memory a destination VM has never run on reads as zero.
  bool ZeroInitialized() const override { return true; }
  void PagesMaybeWritten(DirtyBitmap& out) override;

  Status EnableDirtyLog() override;
  Status FetchDirty(DirtyBitmap& out) override;
  Status DisableDirtyLog() override;

  Status Pause() override;
  Status Resume() override;
  Status SetThrottle(double run_fraction) override;
  bool Running() const override;
  // kCrashed once the vCPU hit a fatal exit (triple fault, internal error).
  GuestState State() const override;

  Result<std::vector<uint8_t>> SaveVcpuState() override;
  Status LoadVcpuState(std::span<const uint8_t> blob) override;

  Result<CpuPolicy> GetCpuPolicy() override;
  Result<CpuPolicy> ApplyCpuPolicy(const CpuPolicy& policy) override;

  void Discard() override;
  Status Release() override;
  // counter: the guest's own (sum over vCPUs, from its status pages, so a
  // destination shows the source's count before it first runs).
  // checks_passed: complete checks of the whole working set that ran in this
  // process and found nothing (every vCPU finished a pass over its share that
  // started here); checks_failed: passes here that found a bad page.
  GuestProgress Progress() override;

  KvmGuestReport GuestReport() const;
  // One line: "kvm guest (1 vCPU): counter 81234, 12 passes ok / 0 failed here, ...".
  std::string DescribeGuest() const;
  // How long each Pause() took to get every vCPU out of KVM_RUN.
  std::vector<std::chrono::nanoseconds> PauseLatencies() const;

 private:
  KvmBackend() = default;
  static Result<std::unique_ptr<KvmBackend>> CreateVm(const GuestShape& shape, bool hugepages);
  Status BootVcpu(uint32_t index);
  void OnGuestEvent(uint32_t vcpu, uint8_t event);

  GuestShape shape_;
  Mapping mem_;  // outlives the VM that maps it
  std::optional<kvm::KvmSystem> sys_;
  std::optional<kvm::KvmVm> vm_;
  std::vector<kvm::KvmVcpu> vcpus_;
  kvm::StateContext state_ctx_;
  std::unique_ptr<kvm::VcpuRunner> runner_;  // destroyed first: joins the vCPU threads

  bool manual_protect_ = false;
  bool logging_ = false;
  std::vector<uint64_t> dirty_words_;
  bool source_ = false;
  bool state_loaded_ = false;
  bool ever_ran_ = false;
  bool released_ = false;
  uint32_t tsc_khz_ = 0;
  std::vector<std::chrono::nanoseconds> pause_latencies_;

  mutable std::mutex report_mu_;  // guards the event-fed fields below
  uint64_t last_bad_page_ = ~0ull;
  std::vector<KvmGuestReport::Vcpu> seen_;
};

}  // namespace xm
