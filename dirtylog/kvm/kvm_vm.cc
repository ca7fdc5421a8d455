#include "dirtylog/kvm/kvm_vm.h"

#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/mman.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "dirtylog/kvm/kvm_abi.h"

namespace xm::kvm {
namespace {

int RawIoctl(int fd, unsigned long req, void* arg) {
  int rc;
  do {
    rc = ::ioctl(fd, req, arg);
  } while (rc < 0 && errno == EINTR);
  return rc;
}

int RawIoctl(int fd, unsigned long req, unsigned long arg) {
  int rc;
  do {
    rc = ::ioctl(fd, req, arg);
  } while (rc < 0 && errno == EINTR);
  return rc;
}

// A kvm_cpuid2 / kvm_msrs buffer: header followed by `n` entries, 8-byte aligned.
template <typename Header, typename Entry>
struct VarBuf {
  explicit VarBuf(size_t n) : words((sizeof(Header) + n * sizeof(Entry) + 7) / 8, 0) {}
  Header* header() { return reinterpret_cast<Header*>(words.data()); }
  Entry* entries() { return reinterpret_cast<Entry*>(reinterpret_cast<char*>(words.data()) + sizeof(Header)); }
  std::vector<uint64_t> words;
};

std::string Hex(uint32_t v) {
  char b[16];
  std::snprintf(b, sizeof b, "0x%x", v);
  return b;
}

}  // namespace

Result<KvmSystem> KvmSystem::Open() {
  KvmSystem s;
  s.fd_.reset(::open("/dev/kvm", O_RDWR | O_CLOEXEC));
  if (!s.fd_.valid()) return ErrnoError("open /dev/kvm", errno);
  int api = RawIoctl(s.fd(), KVM_GET_API_VERSION, 0ul);
  if (api != KVM_API_VERSION)
    return Error(Code::kUnsupported, "/dev/kvm speaks API version " + std::to_string(api) + ", not " +
                                         std::to_string(KVM_API_VERSION));
  return s;
}

int KvmSystem::Check(long cap) const { return RawIoctl(fd(), KVM_CHECK_EXTENSION, static_cast<unsigned long>(cap)); }

Result<std::vector<kvm_cpuid_entry2>> KvmSystem::SupportedCpuid() const {
  for (size_t n = 64; n <= 4096; n *= 2) {
    VarBuf<CpuidHeader, kvm_cpuid_entry2> buf(n);
    buf.header()->nent = static_cast<uint32_t>(n);
    if (RawIoctl(fd(), kGetSupportedCpuid, buf.words.data()) == 0)
      return std::vector<kvm_cpuid_entry2>(buf.entries(), buf.entries() + buf.header()->nent);
    if (errno != E2BIG) return ErrnoError("KVM_GET_SUPPORTED_CPUID", errno);
  }
  return Error(Code::kInternal, "KVM_GET_SUPPORTED_CPUID: more than 4096 entries");
}

Result<std::vector<uint32_t>> KvmSystem::MsrIndexList() const {
  MsrListHeader probe{0};
  if (RawIoctl(fd(), kGetMsrIndexList, &probe) < 0 && errno != E2BIG)
    return ErrnoError("KVM_GET_MSR_INDEX_LIST", errno);
  VarBuf<MsrListHeader, uint32_t> buf(probe.nmsrs);
  buf.header()->nmsrs = probe.nmsrs;
  if (RawIoctl(fd(), kGetMsrIndexList, buf.words.data()) < 0) return ErrnoError("KVM_GET_MSR_INDEX_LIST", errno);
  return std::vector<uint32_t>(buf.entries(), buf.entries() + buf.header()->nmsrs);
}

Result<size_t> KvmSystem::VcpuMmapSize() const {
  int n = RawIoctl(fd(), KVM_GET_VCPU_MMAP_SIZE, 0ul);
  if (n < 0) return ErrnoError("KVM_GET_VCPU_MMAP_SIZE", errno);
  return static_cast<size_t>(n);
}

Result<KvmVm> KvmVm::Create(const KvmSystem& sys) {
  KvmVm vm;
  vm.fd_.reset(RawIoctl(sys.fd(), KVM_CREATE_VM, 0ul));
  if (!vm.fd_.valid()) return ErrnoError("KVM_CREATE_VM", errno);
  return vm;
}

int KvmVm::Check(long cap) const { return RawIoctl(fd(), KVM_CHECK_EXTENSION, static_cast<unsigned long>(cap)); }

Status KvmVm::EnableManualDirtyProtect() {
  kvm_enable_cap cap{};
  cap.cap = KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2;
  // Without KVM_DIRTY_LOG_INITIALLY_SET: enabling the log starts from a clean
  // bitmap, so the first fetch reports only pages written since.
  cap.args[0] = KVM_DIRTY_LOG_MANUAL_PROTECT_ENABLE;
  if (RawIoctl(fd(), KVM_ENABLE_CAP, &cap) < 0)
    return ErrnoError("KVM_ENABLE_CAP(MANUAL_DIRTY_LOG_PROTECT2)", errno);
  return {};
}

Status KvmVm::CreateIrqchip() {
  if (RawIoctl(fd(), KVM_CREATE_IRQCHIP, 0ul) < 0) return ErrnoError("KVM_CREATE_IRQCHIP", errno);
  return {};
}

Status KvmVm::SetMemory(uint32_t slot, uint64_t gpa, uint64_t size, void* host, bool log_dirty) {
  kvm_userspace_memory_region r{};
  r.slot = slot;
  r.flags = log_dirty ? KVM_MEM_LOG_DIRTY_PAGES : 0;
  r.guest_phys_addr = gpa;
  r.memory_size = size;
  r.userspace_addr = reinterpret_cast<uint64_t>(host);
  if (RawIoctl(fd(), KVM_SET_USER_MEMORY_REGION, &r) < 0)
    return ErrnoError(std::string("KVM_SET_USER_MEMORY_REGION (slot ") + std::to_string(slot) +
                          (log_dirty ? ", dirty log on)" : ")"),
                      errno);
  return {};
}

Status KvmVm::GetDirtyLog(uint32_t slot, uint64_t* bits) {
  kvm_dirty_log d{};
  d.slot = slot;
  d.dirty_bitmap = bits;
  if (RawIoctl(fd(), KVM_GET_DIRTY_LOG, &d) < 0) return ErrnoError("KVM_GET_DIRTY_LOG", errno);
  return {};
}

Status KvmVm::ClearDirtyLog(uint32_t slot, uint64_t first, uint64_t count, uint64_t* bits) {
  kvm_clear_dirty_log c{};
  c.slot = slot;
  c.first_page = first;
  c.num_pages = static_cast<uint32_t>(count);
  c.dirty_bitmap = bits;
  if (RawIoctl(fd(), KVM_CLEAR_DIRTY_LOG, &c) < 0) return ErrnoError("KVM_CLEAR_DIRTY_LOG", errno);
  return {};
}

Result<kvm_clock_data> KvmVm::GetClock() {
  kvm_clock_data c{};
  if (RawIoctl(fd(), KVM_GET_CLOCK, &c) < 0) return ErrnoError("KVM_GET_CLOCK", errno);
  return c;
}

Status KvmVm::SetClock(const kvm_clock_data& c) {
  kvm_clock_data in{};
  in.clock = c.clock;  // only the clock itself: flags from GET (e.g. TSC_STABLE) are not inputs
  if (RawIoctl(fd(), KVM_SET_CLOCK, &in) < 0) return ErrnoError("KVM_SET_CLOCK", errno);
  return {};
}

Result<kvm_irqchip> KvmVm::GetIrqchip(uint32_t chip_id) {
  kvm_irqchip c{};
  c.chip_id = chip_id;
  if (RawIoctl(fd(), KVM_GET_IRQCHIP, &c) < 0)
    return ErrnoError("KVM_GET_IRQCHIP (chip " + std::to_string(chip_id) + ")", errno);
  return c;
}

Status KvmVm::SetIrqchip(const kvm_irqchip& chip) {
  kvm_irqchip c = chip;
  if (RawIoctl(fd(), KVM_SET_IRQCHIP, &c) < 0)
    return ErrnoError("KVM_SET_IRQCHIP (chip " + std::to_string(chip.chip_id) + ")", errno);
  return {};
}

Result<KvmVcpu> KvmVcpu::Create(const KvmSystem& sys, const KvmVm& vm, uint32_t index) {
  KvmVcpu v;
  v.index_ = index;
  v.fd_.reset(RawIoctl(vm.fd(), KVM_CREATE_VCPU, static_cast<unsigned long>(index)));
  if (!v.fd_.valid()) return ErrnoError("KVM_CREATE_VCPU " + std::to_string(index), errno);
  XM_ASSIGN_OR_RETURN(size_t size, sys.VcpuMmapSize());
  void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, v.fd(), 0);
  if (p == MAP_FAILED) return ErrnoError("mmap kvm_run of vCPU " + std::to_string(index), errno);
  v.run_ = Mapping(p, size);
  return v;
}

Status KvmVcpu::Ioctl(unsigned long req, void* arg, const char* what) const {
  if (RawIoctl(fd(), req, arg) < 0) return ErrnoError(std::string(what) + " (vCPU " + std::to_string(index_) + ")", errno);
  return {};
}

Result<std::vector<kvm_cpuid_entry2>> KvmVcpu::GetCpuid() const {
  for (size_t n = 64; n <= 4096; n *= 2) {
    VarBuf<CpuidHeader, kvm_cpuid_entry2> buf(n);
    buf.header()->nent = static_cast<uint32_t>(n);
    if (RawIoctl(fd(), kGetCpuid2, buf.words.data()) == 0)
      return std::vector<kvm_cpuid_entry2>(buf.entries(), buf.entries() + buf.header()->nent);
    if (errno != E2BIG) return ErrnoError("KVM_GET_CPUID2 (vCPU " + std::to_string(index_) + ")", errno);
  }
  return Error(Code::kInternal, "KVM_GET_CPUID2: more than 4096 entries");
}

Status KvmVcpu::SetCpuid(const std::vector<kvm_cpuid_entry2>& entries) const {
  VarBuf<CpuidHeader, kvm_cpuid_entry2> buf(entries.size());
  buf.header()->nent = static_cast<uint32_t>(entries.size());
  if (!entries.empty()) std::memcpy(buf.entries(), entries.data(), entries.size() * sizeof(kvm_cpuid_entry2));
  return Ioctl(kSetCpuid2, buf.words.data(), "KVM_SET_CPUID2");
}

Status KvmVcpu::GetMsrs(std::vector<kvm_msr_entry>& entries) const {
  VarBuf<MsrsHeader, kvm_msr_entry> buf(entries.size());
  buf.header()->nmsrs = static_cast<uint32_t>(entries.size());
  for (size_t i = 0; i < entries.size(); ++i) buf.entries()[i].index = entries[i].index;
  int n = RawIoctl(fd(), kGetMsrs, buf.words.data());
  if (n < 0) return ErrnoError("KVM_GET_MSRS (vCPU " + std::to_string(index_) + ")", errno);
  if (static_cast<size_t>(n) != entries.size())
    return Error(Code::kIo, "KVM_GET_MSRS (vCPU " + std::to_string(index_) + "): read " + std::to_string(n) + " of " +
                                std::to_string(entries.size()) + " MSRs, stopped at MSR " +
                                Hex(entries[static_cast<size_t>(n)].index));
  for (size_t i = 0; i < entries.size(); ++i) entries[i].data = buf.entries()[i].data;
  return {};
}

Status KvmVcpu::SetMsrs(const std::vector<kvm_msr_entry>& entries) const {
  VarBuf<MsrsHeader, kvm_msr_entry> buf(entries.size());
  buf.header()->nmsrs = static_cast<uint32_t>(entries.size());
  if (!entries.empty()) std::memcpy(buf.entries(), entries.data(), entries.size() * sizeof(kvm_msr_entry));
  int n = RawIoctl(fd(), kSetMsrs, buf.words.data());
  if (n < 0) return ErrnoError("KVM_SET_MSRS (vCPU " + std::to_string(index_) + ")", errno);
  if (static_cast<size_t>(n) != entries.size())
    return Error(Code::kIncompatible, "KVM_SET_MSRS (vCPU " + std::to_string(index_) + "): wrote " + std::to_string(n) +
                                          " of " + std::to_string(entries.size()) + " MSRs, MSR " +
                                          Hex(entries[static_cast<size_t>(n)].index) + " was refused");
  return {};
}

Result<std::vector<uint8_t>> KvmVcpu::GetXsave(size_t size, bool xsave2) const {
  std::vector<uint8_t> area(std::max<size_t>(size, sizeof(XsaveRegion)));
  XM_TRY(Ioctl(xsave2 ? kGetXsave2 : kGetXsave, area.data(), xsave2 ? "KVM_GET_XSAVE2" : "KVM_GET_XSAVE"));
  return area;
}

Status KvmVcpu::SetXsave(const std::vector<uint8_t>& area) const {
  if (area.size() < sizeof(XsaveRegion))
    return Error(Code::kProtocol, "XSAVE area of " + std::to_string(area.size()) + " bytes is too small");
  std::vector<uint8_t> copy = area;  // KVM_SET_XSAVE reads the whole (possibly larger) area
  return Ioctl(kSetXsave, copy.data(), "KVM_SET_XSAVE");
}

Result<uint32_t> KvmVcpu::GetTscKhz() const {
  int khz = RawIoctl(fd(), KVM_GET_TSC_KHZ, 0ul);
  if (khz <= 0) return ErrnoError("KVM_GET_TSC_KHZ (vCPU " + std::to_string(index_) + ")", khz < 0 ? errno : EINVAL);
  return static_cast<uint32_t>(khz);
}

Status KvmVcpu::SetTscKhz(uint32_t khz) const {
  if (RawIoctl(fd(), KVM_SET_TSC_KHZ, static_cast<unsigned long>(khz)) < 0)
    return ErrnoError("KVM_SET_TSC_KHZ " + std::to_string(khz) + " (vCPU " + std::to_string(index_) + ")", errno);
  return {};
}

}  // namespace xm::kvm
