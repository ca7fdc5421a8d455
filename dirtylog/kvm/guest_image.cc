#include "dirtylog/kvm/guest_image.h"

#include <algorithm>
#include <cstring>

#include "base/units.h"
#include "dirtylog/kvm/guest_abi.h"

extern "C" {
extern const unsigned char xm_kvm_guest_start[];
extern const unsigned char xm_kvm_guest_end[];
}

namespace xm::kvm {
namespace {

uint64_t AlignUp(uint64_t v, uint64_t a) { return (v + a - 1) / a * a; }

void Put64(std::byte* mem, uint64_t gpa, uint64_t v) { std::memcpy(mem + gpa, &v, sizeof v); }

uint64_t Load64(const std::byte* mem, uint64_t gpa) {
  return __atomic_load_n(reinterpret_cast<const uint64_t*>(mem + gpa), __ATOMIC_RELAXED);
}

uint64_t Word(const std::byte* page, unsigned i) {
  uint64_t w;
  std::memcpy(&w, page + i * 8, 8);
  return w;
}

}  // namespace

Result<GuestLayout> PlanGuest(uint64_t memory_bytes, const WorkloadSpec& spec, uint32_t vcpus) {
  if (vcpus == 0 || vcpus > XMG_MAX_VCPUS)
    return Error(Code::kInvalidArgument, "kvm: " + std::to_string(vcpus) + " vCPUs requested; the payload runs 1 to " +
                                             std::to_string(XMG_MAX_VCPUS));
  if (memory_bytes % kGuestPage != 0 || memory_bytes > kMaxGuestMemory)
    return Error(Code::kInvalidArgument, "kvm: guest memory must be a multiple of 4 KiB and at most " +
                                             FormatBytes(kMaxGuestMemory) + " (the APIC windows lie above)");
  GuestLayout l;
  l.memory_bytes = memory_bytes;
  l.vcpus = vcpus;
  l.fill_pages = spec.ws_bytes / kGuestPage;
  l.hot_pages = spec.hot_bytes / kGuestPage;
  l.ws_pages = std::max(l.fill_pages, l.hot_pages);
  l.fp_gpa = XMG_TABLES_GPA;
  l.sum_gpa = AlignUp(l.fp_gpa + 8 * l.ws_pages, kGuestPage);
  l.ws_gpa = AlignUp(l.sum_gpa + 8 * l.ws_pages, XMG_WS_ALIGN);
  uint64_t need = l.ws_gpa + l.ws_pages * kGuestPage;
  if (need > memory_bytes)
    return Error(Code::kInvalidArgument,
                 "kvm: a working set of " + FormatBytes(l.ws_pages * kGuestPage) + " needs " + FormatBytes(need) +
                     " of guest memory with the payload's page tables, code and check tables (" +
                     FormatBytes(l.ws_gpa) + "); the guest has " + FormatBytes(memory_bytes));
  const uint64_t cold = l.ws_pages - l.hot_pages;
  for (uint32_t v = 0; v < vcpus; ++v) {
    GuestShare s;
    s.hot_first = l.hot_pages * v / vcpus;
    s.hot_count = l.hot_pages * (v + 1) / vcpus - s.hot_first;
    s.cold_first = l.hot_pages + cold * v / vcpus;
    s.cold_count = l.hot_pages + cold * (v + 1) / vcpus - s.cold_first;
    l.shares.push_back(s);
  }
  return l;
}

uint64_t GuestEntry() { return XMG_CODE_GPA; }
uint64_t GuestStackTop(uint32_t v) { return XMG_STACK_TOP - uint64_t{0x1000} * v; }

void BuildGuest(std::byte* mem, const GuestLayout& l, const WorkloadSpec& spec, const GuestTiming& t) {
  // Identity map of 0..4 GiB in 2 MiB pages. Accessed and dirty are preset so
  // the page walker never writes the tables: they stay out of the dirty log.
  constexpr uint64_t kTable = 0x23;  // present, writable, accessed
  constexpr uint64_t kLarge = 0xe3;  // present, writable, accessed, dirty, 2 MiB
  Put64(mem, XMG_PML4_GPA, XMG_PDPT_GPA | kTable);
  for (uint64_t i = 0; i < 4; ++i) {
    uint64_t pd = XMG_PD_GPA + i * kGuestPage;
    Put64(mem, XMG_PDPT_GPA + 8 * i, pd | kTable);
    for (uint64_t j = 0; j < 512; ++j) Put64(mem, pd + 8 * j, ((i * 512 + j) << 21) | kLarge);
  }

  const size_t code = static_cast<size_t>(xm_kvm_guest_end - xm_kvm_guest_start);
  static_assert(XMG_CODE_GPA + XMG_CODE_MAX <= XMG_STACK_TOP - 0x1000 * XMG_MAX_VCPUS);
  std::memcpy(mem + XMG_CODE_GPA, xm_kvm_guest_start, std::min<size_t>(code, XMG_CODE_MAX));

  const uint64_t tsc_hz = uint64_t{t.tsc_khz} * 1000;
  const uint64_t ms = t.tsc_khz;  // TSC ticks per millisecond
  uint32_t writers = 0;
  for (const auto& s : l.shares) writers += s.hot_count > 0;
  uint64_t tpp = 0;
  if (spec.rate_bytes_per_s && writers) tpp = std::max<uint64_t>(1, tsc_hz * kGuestPage * writers / spec.rate_bytes_per_s);

  Put64(mem, XMG_PARAMS_GPA + XMG_P_MAGIC, XMG_MAGIC);
  Put64(mem, XMG_PARAMS_GPA + XMG_P_VERSION, XMG_VERSION);
  Put64(mem, XMG_PARAMS_GPA + XMG_P_NVCPUS, l.vcpus);
  Put64(mem, XMG_PARAMS_GPA + XMG_P_TSC_KHZ, t.tsc_khz);
  Put64(mem, XMG_PARAMS_GPA + XMG_P_WS_GPA, l.ws_gpa);
  Put64(mem, XMG_PARAMS_GPA + XMG_P_FP_GPA, l.fp_gpa);
  Put64(mem, XMG_PARAMS_GPA + XMG_P_SUM_GPA, l.sum_gpa);
  Put64(mem, XMG_PARAMS_GPA + XMG_P_PASS_INTERVAL, ms * t.pass_interval_ms);
  Put64(mem, XMG_PARAMS_GPA + XMG_P_CATCHUP, std::max<uint64_t>(20 * ms, 2 * XMG_WRITE_SLICE_PACED * tpp));
  Put64(mem, XMG_PARAMS_GPA + XMG_P_MAX_SLEEP, 10 * ms);
  for (uint32_t v = 0; v < l.vcpus; ++v) {
    const auto& s = l.shares[v];
    uint64_t b = XMG_PARAMS_GPA + XMG_P_VCPU + 64 * v;
    Put64(mem, b + XMG_V_HOT_FIRST, s.hot_first);
    Put64(mem, b + XMG_V_HOT_COUNT, s.hot_count);
    Put64(mem, b + XMG_V_COLD_FIRST, s.cold_first);
    Put64(mem, b + XMG_V_COLD_COUNT, s.cold_count);
    Put64(mem, b + XMG_V_TSC_PER_PAGE, s.hot_count ? tpp : 0);
    Put64(mem, XMG_STATUS_GPA + kGuestPage * v + XMG_S_LAST_BAD, ~0ull);
  }

  // The working set and its reference values. Hot page k of a share starts
  // with the stamp it would carry had the writer already done one lap before
  // the counter reached 0 (k + 1 - H, mod 2^64), which is what the payload's
  // stamp formula expects, and the stamp is left out of the references.
  std::vector<uint64_t> stamp(l.ws_pages, 0);
  std::vector<bool> is_hot(l.ws_pages, false);
  for (const auto& s : l.shares)
    for (uint64_t k = 0; k < s.hot_count; ++k) {
      stamp[s.hot_first + k] = k + 1 - s.hot_count;
      is_hot[s.hot_first + k] = true;
    }
  for (uint64_t i = 0; i < l.ws_pages; ++i) {
    std::byte* page = mem + l.ws_gpa + i * kGuestPage;
    if (i < l.fill_pages) FillPage(spec.fill, i, page, kGuestPage);
    if (is_hot[i]) std::memcpy(page, &stamp[i], 8);
    uint64_t sum = 0;
    for (unsigned w = 0; w < 512; ++w) sum += Word(page, w);
    uint64_t fp = Word(page, 0) + Word(page, XMG_FP_OFF1 / 8) + Word(page, XMG_FP_OFF2 / 8);
    Put64(mem, l.fp_gpa + 8 * i, fp - stamp[i]);
    Put64(mem, l.sum_gpa + 8 * i, sum - stamp[i]);
  }
}

std::string GuestStatus::vendor() const {
  char v[13] = {};
  std::memcpy(v, &cpuid[0], 4);  // ebx, edx, ecx
  std::memcpy(v + 4, &cpuid[1], 4);
  std::memcpy(v + 8, &cpuid[2], 4);
  return v;
}

bool HasGuestParams(const std::byte* mem, uint64_t memory_bytes, uint32_t* vcpus) {
  if (memory_bytes < XMG_PARAMS_GPA + kGuestPage) return false;
  if (Load64(mem, XMG_PARAMS_GPA + XMG_P_MAGIC) != XMG_MAGIC) return false;
  if (Load64(mem, XMG_PARAMS_GPA + XMG_P_VERSION) != XMG_VERSION) return false;
  uint64_t n = Load64(mem, XMG_PARAMS_GPA + XMG_P_NVCPUS);
  if (n == 0 || n > XMG_MAX_VCPUS) return false;
  if (vcpus) *vcpus = static_cast<uint32_t>(n);
  return true;
}

GuestStatus ReadGuestStatus(const std::byte* mem, uint32_t vcpu) {
  const uint64_t b = XMG_STATUS_GPA + kGuestPage * vcpu;
  GuestStatus s;
  s.counter = Load64(mem, b + XMG_S_COUNTER);
  s.passes_ok = Load64(mem, b + XMG_S_PASSES_OK);
  s.passes_bad = Load64(mem, b + XMG_S_PASSES_BAD);
  s.last_result = Load64(mem, b + XMG_S_LAST_RESULT);
  s.last_bad = Load64(mem, b + XMG_S_LAST_BAD);
  s.deep_pages = Load64(mem, b + XMG_S_DEEP_PAGES);
  s.check_pos = Load64(mem, b + XMG_S_CHECK_POS);
  s.panic = Load64(mem, b + XMG_S_PANIC);
  for (unsigned i = 0; i < 12; ++i)
    s.cpuid[i] = __atomic_load_n(reinterpret_cast<const uint32_t*>(mem + b + XMG_S_CPUID + 4 * i), __ATOMIC_RELAXED);
  return s;
}

uint64_t ReadSleepTicks(const std::byte* mem, uint32_t vcpu) {
  return Load64(mem, XMG_STATUS_GPA + kGuestPage * vcpu + XMG_S_SLEEP);
}

uint64_t ReadTscKhz(const std::byte* mem) { return Load64(mem, XMG_PARAMS_GPA + XMG_P_TSC_KHZ); }

}  // namespace xm::kvm
