#include "dirtylog/sim/sim_backend.h"
#include "dirtylog/page_access.h"

#include <pthread.h>
#include <sys/mman.h>

#include <chrono>
#include <cstring>

namespace xm {
namespace {

constexpr uint32_t kVcpuBlobMagic = 0x4d495358;  // "XSIM"
constexpr uint32_t kVcpuBlobVersion = 1;

template <typename T>
void Put(std::vector<uint8_t>& out, T v) {
  const auto* p = reinterpret_cast<const uint8_t*>(&v);
  out.insert(out.end(), p, p + sizeof v);
}

template <typename T>
bool Get(std::span<const uint8_t>& in, T& v) {
  if (in.size() < sizeof v) return false;
  std::memcpy(&v, in.data(), sizeof v);
  in = in.subspan(sizeof v);
  return true;
}

}  // namespace

Result<std::unique_ptr<SimBackend>> SimBackend::CreateSource(uint64_t memory_bytes, const WorkloadSpec& spec,
                                                             CpuPolicy policy) {
  if (memory_bytes == 0 || memory_bytes % kPageSize != 0)
    return Error(Code::kInvalidArgument, "sim: memory must be a non-zero multiple of 4 KiB");
  if (spec.ws_bytes > memory_bytes || spec.hot_bytes > memory_bytes)
    return Error(Code::kInvalidArgument, "sim: workload is larger than guest memory");
  GuestShape shape;
  shape.page_size = kPageSize;
  shape.page_count = memory_bytes / kPageSize;
  shape.ranges = {{0, shape.page_count}};
  shape.vcpus = 1;
  auto b = Create(shape, false);
  if (!b.ok()) return b.status();
  auto& sim = *b;
  sim->spec_ = spec;
  sim->policy_ = std::move(policy);
  uint64_t ws_pages = spec.ws_bytes / kPageSize;
  for (uint64_t pfn = 0; pfn < ws_pages; ++pfn)
    FillPage(spec.fill, pfn, sim->mem_.data() + pfn * kPageSize, kPageSize);
  sim->StartWorkload();
  return b;
}

Result<std::unique_ptr<SimBackend>> SimBackend::CreateDestination(const GuestShape& shape, bool hugepages) {
  // Nothing is faulted in ahead: each page is allocated by the first write the
  // receiver makes to it, a page the source sends as ZERO never is. An earlier
  // version faulted the whole guest in from a background thread; on a 1 GiB
  // random guest that measured the same (0.89-0.97 CPU s/GiB both ways, 2
  // cores), and on an idle guest it spent a second of CPU on memory nothing
  // would ever write, competing with the receiver.
  return Create(shape, hugepages);
}

Result<std::unique_ptr<SimBackend>> SimBackend::Create(const GuestShape& shape, bool hugepages) {
  if (shape.page_size != kPageSize)
    return Error(Code::kIncompatible, "sim: page size " + std::to_string(shape.page_size) + " not supported (4096 only)");
  if (shape.page_count == 0 || shape.page_count > (uint64_t{1} << 40) / kPageSize)
    return Error(Code::kIncompatible, "sim: guest of " + std::to_string(shape.page_count) + " pages not supported");
  std::unique_ptr<SimBackend> b(new SimBackend());
  b->shape_ = shape;
  auto mem = hugepages ? Mapping::HugeTlb(shape.page_count * kPageSize) : Mapping::Anonymous(shape.page_count * kPageSize);
  if (!mem.ok()) return std::move(mem).With("sim: guest memory").status();
  b->mem_ = std::move(mem).value();
  b->log_.Resize(shape.page_count);
  return b;
}

SimBackend::~SimBackend() { StopWorkload(); }

void SimBackend::PagesMaybeWritten(DirtyBitmap& out) { PagesTouched(mem_.data(), shape_.page_count, out); }

Result<MappedPages> SimBackend::MapPages(std::span<const uint64_t> pfns, Access) {
  return MapLinear(mem_.data(), shape_, pfns, "sim");
}

Status SimBackend::EnableDirtyLog() {
  log_.ClearAll();
  logging_.store(true, std::memory_order_release);
  return {};
}

Status SimBackend::FetchDirty(DirtyBitmap& out) {
  if (!logging_.load()) return Error(Code::kInternal, "sim: dirty log not enabled");
  log_.FetchAndClearInto(out);
  return {};
}

Status SimBackend::DisableDirtyLog() {
  logging_.store(false, std::memory_order_release);
  return {};
}

Status SimBackend::Pause() {
  StopWorkload();
  return {};
}

Status SimBackend::Resume() {
  if (released_) return Error(Code::kInternal, "sim: guest was released to the destination; it must not run here");
  StartWorkload();
  return {};
}

Status SimBackend::SetThrottle(double run_fraction) {
  if (!(run_fraction > 0.0 && run_fraction <= 1.0))
    return Error(Code::kInvalidArgument, "sim: throttle fraction must be in (0, 1]");
  run_fraction_.store(run_fraction);
  return {};
}

void SimBackend::StartWorkload() {
  if (running_) return;
  stop_.store(false);
  running_ = true;
  worker_ = std::thread([this] { WorkloadLoop(); });
}

void SimBackend::StopWorkload() {
  if (!running_) return;
  stop_.store(true);
  worker_.join();
  running_ = false;
}

void SimBackend::WorkloadLoop() {
  // The guest's own CPU time, told apart from the migration's (bench/scenarios).
  ::pthread_setname_np(::pthread_self(), "xm-sim-guest");
  using Clock = std::chrono::steady_clock;
  const uint64_t hot_pages = std::min(spec_.hot_bytes / kPageSize, shape_.page_count);
  if (hot_pages == 0) {
    while (!stop_.load(std::memory_order_relaxed)) std::this_thread::sleep_for(std::chrono::milliseconds(2));
    return;
  }
  const double pages_per_s = spec_.rate_bytes_per_s ? static_cast<double>(spec_.rate_bytes_per_s) / kPageSize : 0.0;
  auto start = Clock::now();
  uint64_t written = 0;
  auto period_start = start;
  constexpr auto kPeriod = std::chrono::milliseconds(10);
  while (!stop_.load(std::memory_order_relaxed)) {
    // A slice of work between checks of pacing, throttle and stop.
    for (int i = 0; i < 64; ++i) {
      uint64_t pfn = cursor_;
      cursor_ = cursor_ + 1 == hot_pages ? 0 : cursor_ + 1;
      uint64_t value = counter_.load(std::memory_order_relaxed) + 1;
      std::memcpy(mem_.data() + pfn * kPageSize, &value, sizeof value);
      counter_.store(value, std::memory_order_relaxed);
      // Data first, then the bit (release): a fetch that sees the bit sees the data.
      if (logging_.load(std::memory_order_relaxed)) log_.Set(pfn);
    }
    written += 64;
    auto now = Clock::now();
    if (pages_per_s > 0) {
      double due_s = static_cast<double>(written) / pages_per_s;
      auto due = start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(due_s));
      if (due > now) {
        std::this_thread::sleep_until(std::min(due, now + std::chrono::milliseconds(5)));
      } else if (now - due > std::chrono::milliseconds(20)) {
        // Fell behind (throttled, or starved of CPU): the rate is a cap, so
        // forget the backlog instead of catching up at full speed.
        start += (now - due) - std::chrono::milliseconds(20);
      }
    }
    double frac = run_fraction_.load(std::memory_order_relaxed);
    if (frac < 1.0) {
      if (now - period_start >= std::chrono::duration_cast<Clock::duration>(kPeriod * frac)) {
        const auto stopped = Clock::now();
        std::this_thread::sleep_until(period_start + kPeriod);
        period_start = Clock::now();
        // Stopped time earns no writes: the rate caps the guest while it
        // runs. (Counting it as backlog made a throttled guest write at full
        // speed in each slot it ran: faster than unthrottled, so a guest
        // dirtying faster than the link never converged.)
        start += period_start - stopped;
      }
    } else if (now - period_start >= kPeriod) {
      period_start = now;
    }
  }
}

Result<std::vector<uint8_t>> SimBackend::SaveVcpuState() {
  if (running_) return Error(Code::kInternal, "sim: vCPU state saved while running");
  std::vector<uint8_t> out;
  Put(out, kVcpuBlobMagic);
  Put(out, kVcpuBlobVersion);
  Put(out, spec_.ws_bytes);
  Put(out, spec_.hot_bytes);
  Put(out, spec_.rate_bytes_per_s);
  Put(out, static_cast<uint8_t>(spec_.fill));
  Put(out, counter_.load());
  Put(out, cursor_);
  return out;
}

Status SimBackend::LoadVcpuState(std::span<const uint8_t> blob) {
  uint32_t magic = 0, version = 0;
  uint8_t fill = 0;
  WorkloadSpec spec;
  uint64_t counter = 0, cursor = 0;
  if (!Get(blob, magic) || magic != kVcpuBlobMagic)
    return Error(Code::kIncompatible, "sim: vCPU state is not from a sim guest");
  if (!Get(blob, version) || version != kVcpuBlobVersion)
    return Error(Code::kVersion, "sim: vCPU state version " + std::to_string(version) + " not supported");
  if (!Get(blob, spec.ws_bytes) || !Get(blob, spec.hot_bytes) || !Get(blob, spec.rate_bytes_per_s) ||
      !Get(blob, fill) || !Get(blob, counter) || !Get(blob, cursor) || !blob.empty() || fill > 1)
    return Error(Code::kProtocol, "sim: malformed vCPU state");
  spec.fill = static_cast<Fill>(fill);
  uint64_t mem = shape_.memory_bytes();
  if (spec.ws_bytes > mem || spec.hot_bytes > mem || cursor >= std::max<uint64_t>(1, spec.hot_bytes / kPageSize))
    return Error(Code::kProtocol, "sim: vCPU state does not fit this guest");
  spec_ = spec;
  counter_.store(counter);
  cursor_ = cursor;
  return {};
}

Result<CpuPolicy> SimBackend::ApplyCpuPolicy(const CpuPolicy& policy) {
  policy_ = policy;
  return policy_;
}

Status SimBackend::Release() {
  StopWorkload();
  released_ = true;
  return {};
}

GuestProgress SimBackend::Progress() {
  GuestProgress p;
  p.available = true;
  p.counter = counter_.load(std::memory_order_relaxed);
  return p;
}

}  // namespace xm
