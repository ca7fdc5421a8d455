// Thin RAII owners of /dev/kvm, a VM and its vCPUs: each method is one ioctl
// (or a short fixed sequence of them) with the errno turned into a Status that
// names the ioctl. Policy — what to save, in which order, when to run — lives
// in the callers (vcpu_state, vcpu_thread, kvm_backend).
#pragma once

#include <linux/kvm.h>

#include <cstdint>
#include <string>
#include <vector>

#include "base/mapping.h"
#include "base/status.h"
#include "base/unique_fd.h"

namespace xm::kvm {

// /dev/kvm: capabilities and what KVM can give a guest.
class KvmSystem {
 public:
  static Result<KvmSystem> Open();

  int fd() const { return fd_.get(); }
  // KVM_CHECK_EXTENSION; <= 0 means absent.
  int Check(long cap) const;
  Result<std::vector<kvm_cpuid_entry2>> SupportedCpuid() const;
  // KVM_GET_MSR_INDEX_LIST: the MSRs KVM saves/restores for a vCPU.
  Result<std::vector<uint32_t>> MsrIndexList() const;
  Result<size_t> VcpuMmapSize() const;

 private:
  UniqueFd fd_;
};

class KvmVm {
 public:
  static Result<KvmVm> Create(const KvmSystem& sys);

  int fd() const { return fd_.get(); }
  int Check(long cap) const;  // on the VM fd (some answers are per VM)

  Status EnableManualDirtyProtect();
  Status CreateIrqchip();
  // Slot 0 covers guest-physical [0, size) with host memory at `host`.
  Status SetMemory(uint32_t slot, uint64_t gpa, uint64_t size, void* host, bool log_dirty);
  // KVM_GET_DIRTY_LOG for the slot into `bits` (one bit per page).
  Status GetDirtyLog(uint32_t slot, uint64_t* bits);
  // KVM_CLEAR_DIRTY_LOG: re-protects and clears the pages set in `bits`, for
  // pages [first, first + count) of the slot (first a multiple of 64).
  Status ClearDirtyLog(uint32_t slot, uint64_t first, uint64_t count, uint64_t* bits);

  Result<kvm_clock_data> GetClock();
  Status SetClock(const kvm_clock_data& c);
  Result<kvm_irqchip> GetIrqchip(uint32_t chip_id);
  Status SetIrqchip(const kvm_irqchip& chip);

 private:
  UniqueFd fd_;
};

class KvmVcpu {
 public:
  static Result<KvmVcpu> Create(const KvmSystem& sys, const KvmVm& vm, uint32_t index);

  int fd() const { return fd_.get(); }
  uint32_t index() const { return index_; }
  kvm_run* run() const { return reinterpret_cast<kvm_run*>(run_.data()); }

  // Generic fixed-size get/set: `what` names the ioctl in errors.
  template <typename T>
  Result<T> Get(unsigned long req, const char* what) const {
    T v{};
    XM_TRY(Ioctl(req, &v, what));
    return v;
  }
  template <typename T>
  Status Set(unsigned long req, const T& v, const char* what) const {
    return Ioctl(req, const_cast<T*>(&v), what);
  }

  Result<std::vector<kvm_cpuid_entry2>> GetCpuid() const;
  Status SetCpuid(const std::vector<kvm_cpuid_entry2>& entries) const;
  // KVM_GET_MSRS / KVM_SET_MSRS for `entries` (index filled in); fails unless
  // KVM processed every one, naming the first it stopped at.
  Status GetMsrs(std::vector<kvm_msr_entry>& entries) const;
  Status SetMsrs(const std::vector<kvm_msr_entry>& entries) const;
  // XSAVE area of `size` bytes (KVM_GET_XSAVE2 when size > 4096 or `xsave2`).
  Result<std::vector<uint8_t>> GetXsave(size_t size, bool xsave2) const;
  Status SetXsave(const std::vector<uint8_t>& area) const;
  Result<uint32_t> GetTscKhz() const;
  Status SetTscKhz(uint32_t khz) const;

 private:
  Status Ioctl(unsigned long req, void* arg, const char* what) const;

  UniqueFd fd_;
  Mapping run_;
  uint32_t index_ = 0;
};

}  // namespace xm::kvm
