// SimBackend: the synthetic guest the engine is tested against must behave like
// the reference workload (issue 2): filled working set, one counter per hot page,
// an exact dirty log, pause/resume, and vCPU state that moves to a destination.
//
// Waits are on conditions with generous deadlines, never on durations, so a
// loaded machine only makes the tests slower, not wrong.
#include "dirtylog/sim/sim_backend.h"

#include "base/mapping.h"

#include <gtest/gtest.h>

#include <sys/mman.h>

#include <chrono>
#include <cmath>
#include <cstring>
#include <thread>
#include <vector>

namespace xm {
namespace {

constexpr uint32_t kPage = 4096;
constexpr uint64_t kMiB = 1ull << 20;

using Clock = std::chrono::steady_clock;

// Polls `pred` until it holds or 30 s pass.
template <typename Pred>
bool WaitUntil(Pred pred) {
  auto deadline = Clock::now() + std::chrono::seconds(30);
  while (!pred()) {
    if (Clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return true;
}

std::unique_ptr<SimBackend> Source(uint64_t mem, std::string_view workload) {
  auto spec = ParseWorkload(workload, mem);
  EXPECT_TRUE(spec.ok()) << spec.status().ToString();
  CpuPolicy policy;
  policy.vendor = "GenuineIntel";
  policy.format = "none";
  auto b = SimBackend::CreateSource(mem, *spec, policy);
  EXPECT_TRUE(b.ok()) << b.status().ToString();
  return b.ok() ? std::move(b).value() : nullptr;
}

uint64_t Counter(Backend& b) { return b.Progress().counter; }

bool AdvanceBy(Backend& b, uint64_t n) {
  uint64_t start = Counter(b);
  return WaitUntil([&] { return Counter(b) >= start + n; });
}

std::vector<std::byte> Expected(Fill fill, uint64_t pfn) {
  std::vector<std::byte> p(kPage);
  FillPage(fill, pfn, p.data(), kPage);
  return p;
}

// The counter value page `p` of `hot` pages holds after `counter` writes that
// started at `cursor0` with value `first`: writes go round-robin over the hot pages.
uint64_t LastValueOnPage(uint64_t p, uint64_t hot, uint64_t counter) {
  // Value v (1-based) lands on page (v - 1) mod hot.
  return counter - ((counter - 1 - p) % hot);
}

// Checks the whole memory of a paused guest whose workload started from a fresh
// source: hot pages hold their last counter value over the fill, the rest the fill.
void ExpectWorkloadMemory(Backend& b, Fill fill, uint64_t ws_pages, uint64_t hot_pages, uint64_t counter) {
  ASSERT_GE(counter, hot_pages) << "every hot page must have been written";
  const std::byte* mem = b.DirectMemory();
  for (uint64_t pfn = 0; pfn < b.shape().page_count; ++pfn) {
    std::vector<std::byte> want = pfn < ws_pages ? Expected(fill, pfn) : std::vector<std::byte>(kPage);
    if (pfn < hot_pages) {
      uint64_t v = LastValueOnPage(pfn, hot_pages, counter);
      std::memcpy(want.data(), &v, 8);
    }
    ASSERT_EQ(std::memcmp(mem + pfn * kPage, want.data(), kPage), 0) << "pfn " << pfn;
  }
}

TEST(SimBackend, SourceShapeAndWorkingSetFill) {
  for (Fill fill : {Fill::kRandom, Fill::kMixed}) {
    auto b = Source(16 * kMiB, fill == Fill::kMixed ? "ws=8M,fill=mixed" : "ws=8M");
    ASSERT_TRUE(b);
    EXPECT_EQ(b->name(), "sim");
    EXPECT_EQ(b->shape().page_size, kPage);
    EXPECT_EQ(b->shape().page_count, 4096u);
    ASSERT_EQ(b->shape().ranges.size(), 1u);
    EXPECT_EQ(b->shape().ranges[0].first, 0u);
    EXPECT_EQ(b->shape().ranges[0].count, 4096u);
    EXPECT_EQ(b->shape().vcpus, 1u);
    EXPECT_EQ(b->shape().memory_bytes(), 16 * kMiB);
    EXPECT_TRUE(b->Running());
    // hot=0: the guest runs but writes nothing.
    ExpectWorkloadMemory(*b, fill, 2048, 0, 0);
    EXPECT_EQ(Counter(*b), 0u);
    EXPECT_TRUE(b->Progress().available);
  }
}

TEST(SimBackend, BadSourceArguments) {
  WorkloadSpec idle;
  for (uint64_t mem : {0ull, 4095ull, 4097ull}) {
    auto b = SimBackend::CreateSource(mem, idle, {});
    ASSERT_FALSE(b.ok()) << mem;
    EXPECT_EQ(b.status().code(), Code::kInvalidArgument);
  }
  WorkloadSpec big;
  big.ws_bytes = 2 * kMiB;
  EXPECT_FALSE(SimBackend::CreateSource(kMiB, big, {}).ok());
  big = {};
  big.hot_bytes = 2 * kMiB;
  EXPECT_FALSE(SimBackend::CreateSource(kMiB, big, {}).ok());
}

TEST(SimBackend, BadDestinationShapes) {
  GuestShape s;
  s.page_count = 16;
  s.ranges = {{0, 16}};
  s.page_size = 8192;
  EXPECT_EQ(SimBackend::CreateDestination(s).status().code(), Code::kIncompatible);
  s.page_size = kPage;
  s.page_count = 0;
  EXPECT_EQ(SimBackend::CreateDestination(s).status().code(), Code::kIncompatible);
  s.page_count = (1ull << 28) + 1;  // over 1 TiB
  EXPECT_EQ(SimBackend::CreateDestination(s).status().code(), Code::kIncompatible);
}

// A destination allocates only what is written: memory no page reached stays
// unallocated (an idle guest's zero pages cost nothing there), and what is
// written reads back. PagesMaybeWritten names every written page and none of
// the untouched end (with huge pages a write allocates its 2 MiB around it).
TEST(SimBackend, DestinationAllocatesOnlyWhatIsWritten) {
  GuestShape s;
  s.page_size = kPage;
  s.page_count = 64 * kMiB / kPage;
  s.ranges = {{0, s.page_count}};
  auto d = SimBackend::CreateDestination(s);
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  std::byte* mem = (*d)->DirectMemory();
  const uint64_t written_end = 8 * kMiB / kPage;  // writes land in the first 8 MiB only
  for (uint64_t pfn = 0; pfn < written_end; pfn += 97) std::memset(mem + pfn * kPage, 0x5A, kPage);
  DirtyBitmap maybe(s.page_count);
  (*d)->PagesMaybeWritten(maybe);
  for (uint64_t pfn = 0; pfn < written_end; pfn += 97) EXPECT_TRUE(maybe.Test(pfn)) << "pfn " << pfn;
  for (uint64_t pfn = 2 * written_end; pfn < s.page_count; ++pfn) ASSERT_FALSE(maybe.Test(pfn)) << "pfn " << pfn;
  std::vector<unsigned char> resident(s.page_count);
  ASSERT_EQ(::mincore(mem, s.page_count * kPage, resident.data()), 0);
  for (uint64_t pfn = 2 * written_end; pfn < s.page_count; ++pfn)
    ASSERT_FALSE(resident[pfn] & 1) << "pfn " << pfn << " was allocated though nothing wrote near it";
  for (uint64_t pfn = 0; pfn < written_end; ++pfn) {
    const std::byte want = pfn % 97 == 0 ? std::byte{0x5A} : std::byte{0};
    const std::byte* p = mem + pfn * kPage;
    ASSERT_EQ(p[0], want) << "pfn " << pfn;
    ASSERT_EQ(p[kPage - 1], want) << "pfn " << pfn;
  }
}

// --hugepages: the destination's memory comes from the hugetlb pool, or the
// guest is refused with the pool's figures, never given 4 KiB pages instead.
TEST(SimBackend, DestinationOnHugePagesOrRefused) {
  const HugePagePool pool = ReadHugePagePool();
  if (pool.page_bytes == 0) GTEST_SKIP() << "this kernel has no hugetlb pool";
  GuestShape s;
  s.page_size = kPage;
  if (pool.overcommit == 0) {
    s.page_count = (pool.available() + 8) * pool.page_bytes / kPage;
    s.ranges = {{0, s.page_count}};
    auto big = SimBackend::CreateDestination(s, true);
    ASSERT_FALSE(big.ok());
    EXPECT_EQ(big.status().code(), Code::kIncompatible);
    EXPECT_NE(big.status().message().find("sim: guest memory"), std::string::npos) << big.status().ToString();
    EXPECT_NE(big.status().message().find("nr_hugepages"), std::string::npos) << big.status().ToString();
  }
  if (pool.available() < 2)
    GTEST_SKIP() << "the kernel's huge page pool has " << pool.available()
                 << " free pages; the rest of this test needs 2 and leaves /proc/sys/vm/nr_hugepages alone";
  s.page_count = 2 * pool.page_bytes / kPage;
  s.ranges = {{0, s.page_count}};
  auto d = SimBackend::CreateDestination(s, true);
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  std::byte* mem = (*d)->DirectMemory();
  for (uint64_t pfn = 0; pfn < s.page_count; pfn += 61) std::memset(mem + pfn * kPage, 0x5A, kPage);
  for (uint64_t pfn = 0; pfn < s.page_count; ++pfn)
    ASSERT_EQ(mem[pfn * kPage + kPage - 1], pfn % 61 == 0 ? std::byte{0x5A} : std::byte{0}) << "pfn " << pfn;
}

// A source names its filled working set (and what its workload writes) as
// maybe written, and not the memory beyond it that nothing ever wrote.
TEST(SimBackend, SourceNamesItsWorkingSetAsMaybeWritten) {
  auto b = Source(64 * kMiB, "ws=8M,hot=4M");
  ASSERT_TRUE(b);
  DirtyBitmap maybe(b->shape().page_count);
  b->PagesMaybeWritten(maybe);
  for (uint64_t pfn = 0; pfn < 8 * kMiB / kPage; ++pfn) ASSERT_TRUE(maybe.Test(pfn)) << "pfn " << pfn;
  for (uint64_t pfn = 16 * kMiB / kPage; pfn < b->shape().page_count; ++pfn)
    ASSERT_FALSE(maybe.Test(pfn)) << "pfn " << pfn;
}

TEST(SimBackend, WorkloadWritesCountersAndLogsExactlyTheHotPages) {
  auto b = Source(4 * kMiB, "ws=4M,hot=64K");  // 16 hot pages of 1024
  ASSERT_TRUE(b);
  DirtyBitmap dirty(b->shape().page_count);
  EXPECT_EQ(b->FetchDirty(dirty).code(), Code::kInternal) << "fetch before enable must fail";
  ASSERT_TRUE(b->EnableDirtyLog().ok());
  ASSERT_TRUE(AdvanceBy(*b, 1000));
  ASSERT_TRUE(b->Pause().ok());
  ASSERT_TRUE(b->FetchDirty(dirty).ok());
  std::vector<uint64_t> bits;
  dirty.ForEach([&](uint64_t bit) { bits.push_back(bit); });
  std::vector<uint64_t> hot(16);
  for (uint64_t i = 0; i < 16; ++i) hot[i] = i;
  EXPECT_EQ(bits, hot);
  ExpectWorkloadMemory(*b, Fill::kRandom, 1024, 16, Counter(*b));
  // Fetching cleared the log.
  DirtyBitmap again(b->shape().page_count);
  ASSERT_TRUE(b->FetchDirty(again).ok());
  EXPECT_EQ(again.Count(), 0u);
  ASSERT_TRUE(b->DisableDirtyLog().ok());
  EXPECT_FALSE(b->FetchDirty(again).ok());
}

TEST(SimBackend, WriteAfterAFetchShowsUpInTheNextFetch) {
  auto b = Source(kMiB, "ws=1M,hot=128K");  // 32 hot pages
  ASSERT_TRUE(b);
  ASSERT_TRUE(b->EnableDirtyLog().ok());
  ASSERT_TRUE(AdvanceBy(*b, 100));
  DirtyBitmap first(b->shape().page_count), second(b->shape().page_count);
  ASSERT_TRUE(b->FetchDirty(first).ok());  // while the guest runs
  // Two more laps after the fetch returned: every hot page was written since.
  ASSERT_TRUE(AdvanceBy(*b, 64));
  ASSERT_TRUE(b->Pause().ok());
  ASSERT_TRUE(b->FetchDirty(second).ok());
  EXPECT_EQ(second.Count(), 32u);
  uint64_t outside = 0;
  second.ForEach([&](uint64_t bit) { outside += bit >= 32; });
  first.ForEach([&](uint64_t bit) { outside += bit >= 32; });
  EXPECT_EQ(outside, 0u);
}

TEST(SimBackend, PauseStopsTheCounterAndResumeRestartsIt) {
  auto b = Source(kMiB, "hot=64K");
  ASSERT_TRUE(b);
  ASSERT_TRUE(AdvanceBy(*b, 100));
  ASSERT_TRUE(b->Pause().ok());
  EXPECT_FALSE(b->Running());
  uint64_t paused = Counter(*b);
  std::vector<std::byte> snapshot(b->DirectMemory(), b->DirectMemory() + 16 * kPage);
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_EQ(Counter(*b), paused);
  EXPECT_EQ(std::memcmp(snapshot.data(), b->DirectMemory(), snapshot.size()), 0);
  ASSERT_TRUE(b->Pause().ok());  // idempotent
  ASSERT_TRUE(b->Resume().ok());
  EXPECT_TRUE(b->Running());
  ASSERT_TRUE(AdvanceBy(*b, 100));
  EXPECT_GT(Counter(*b), paused);
  ASSERT_TRUE(b->Pause().ok());
  ExpectWorkloadMemory(*b, Fill::kRandom, 0, 16, Counter(*b));
}

TEST(SimBackend, VcpuStateContinuesTheCounterOnADestination) {
  auto src = Source(kMiB, "ws=1M,hot=32K,fill=mixed");  // 8 hot pages
  ASSERT_TRUE(src);
  ASSERT_TRUE(AdvanceBy(*src, 100));
  EXPECT_EQ(src->SaveVcpuState().status().code(), Code::kInternal) << "saving a running guest must fail";
  ASSERT_TRUE(src->Pause().ok());
  auto blob = src->SaveVcpuState();
  ASSERT_TRUE(blob.ok());
  const uint64_t at_pause = Counter(*src);

  auto dst = SimBackend::CreateDestination(src->shape());
  ASSERT_TRUE(dst.ok());
  EXPECT_FALSE((*dst)->Running());
  // Move memory the way the receiver does: through MapPages.
  std::vector<uint64_t> pfns(src->shape().page_count);
  for (uint64_t i = 0; i < pfns.size(); ++i) pfns[i] = i;
  auto mapped = (*dst)->MapPages(pfns, Access::kWrite);
  ASSERT_TRUE(mapped.ok());
  for (uint64_t pfn : pfns) std::memcpy(mapped->pages[pfn], src->DirectMemory() + pfn * kPage, kPage);

  ASSERT_TRUE((*dst)->LoadVcpuState(*blob).ok());
  EXPECT_EQ(Counter(**dst), at_pause);
  EXPECT_EQ((*dst)->workload(), src->workload());
  ASSERT_TRUE((*dst)->Resume().ok());
  ASSERT_TRUE(AdvanceBy(**dst, 100));
  ASSERT_TRUE((*dst)->Pause().ok());
  // The cursor moved too: memory looks as if the source had never stopped.
  ExpectWorkloadMemory(**dst, Fill::kMixed, 256, 8, Counter(**dst));
  EXPECT_EQ(Counter(*src), at_pause);
}

// Blob layout (sim-v1): magic u32, version u32, ws u64, hot u64, rate u64, fill u8, counter u64, cursor u64.
constexpr size_t kVersionAt = 4, kWsAt = 8, kFillAt = 32, kCursorAt = 41, kBlobSize = 49;

TEST(SimBackend, MalformedVcpuBlobsRejected) {
  auto src = Source(kMiB, "hot=32K");
  ASSERT_TRUE(src);
  ASSERT_TRUE(AdvanceBy(*src, 10));
  ASSERT_TRUE(src->Pause().ok());
  auto saved = src->SaveVcpuState();
  ASSERT_TRUE(saved.ok());
  const std::vector<uint8_t> good = *saved;
  ASSERT_EQ(good.size(), kBlobSize);

  auto dst = SimBackend::CreateDestination(src->shape());
  ASSERT_TRUE(dst.ok());
  auto expect_code = [&](std::vector<uint8_t> blob, Code code, const char* what) {
    Status st = (*dst)->LoadVcpuState(blob);
    EXPECT_EQ(st.code(), code) << what << ": " << st.ToString();
    EXPECT_EQ(Counter(**dst), 0u) << what << ": a refused blob must not change the guest";
  };
  auto patched = [&](size_t at, const void* v, size_t n) {
    std::vector<uint8_t> b = good;
    std::memcpy(b.data() + at, v, n);
    return b;
  };
  expect_code({}, Code::kIncompatible, "empty");
  expect_code(patched(0, "KVM!", 4), Code::kIncompatible, "magic");
  uint32_t v2 = 2;
  expect_code(patched(kVersionAt, &v2, 4), Code::kVersion, "version");
  for (size_t n = 8; n < good.size(); ++n)
    expect_code(std::vector<uint8_t>(good.begin(), good.begin() + static_cast<long>(n)), Code::kProtocol, "truncated");
  std::vector<uint8_t> longer = good;
  longer.push_back(0);
  expect_code(longer, Code::kProtocol, "trailing byte");
  uint8_t fill2 = 2;
  expect_code(patched(kFillAt, &fill2, 1), Code::kProtocol, "fill");
  uint64_t huge = 2 * kMiB;
  expect_code(patched(kWsAt, &huge, 8), Code::kProtocol, "ws larger than the guest");
  uint64_t cursor = 8;  // hot=32K is 8 pages: cursor 0..7
  expect_code(patched(kCursorAt, &cursor, 8), Code::kProtocol, "cursor outside the hot pages");
  EXPECT_TRUE((*dst)->LoadVcpuState(good).ok());
}

TEST(SimBackend, ThrottleArguments) {
  auto b = Source(kMiB, "");
  ASSERT_TRUE(b);
  for (double bad : {0.0, -0.5, 1.01, 2.0, std::nan("")})
    EXPECT_EQ(b->SetThrottle(bad).code(), Code::kInvalidArgument) << bad;
  EXPECT_TRUE(b->SetThrottle(1.0).ok());
  EXPECT_TRUE(b->SetThrottle(0.01).ok());
}

TEST(SimBackend, ThrottleSlowsTheCounter) {
  // Loose by design: at 2% duty the guest should manage far less than half of
  // what it does unthrottled over equally long, interleaved windows. Only a
  // machine that starves the unthrottled window of >95% of its CPU breaks this.
  auto b = Source(kMiB, "hot=1M");
  ASSERT_TRUE(b);
  uint64_t full = 0, slow = 0;
  for (int rep = 0; rep < 3; ++rep) {
    for (double frac : {1.0, 0.02}) {
      ASSERT_TRUE(b->SetThrottle(frac).ok());
      std::this_thread::sleep_for(std::chrono::milliseconds(15));  // let one throttle period pass
      uint64_t c0 = Counter(*b);
      std::this_thread::sleep_for(std::chrono::milliseconds(60));
      (frac == 1.0 ? full : slow) += Counter(*b) - c0;
    }
  }
  ASSERT_TRUE(b->Pause().ok());
  EXPECT_GT(full, 0u);
  EXPECT_LT(slow * 2, full) << "throttled " << slow << " vs unthrottled " << full;
}

// A rate-capped guest throttled to 10% writes well under its cap: time spent
// stopped must not turn into a backlog written at full speed when it runs.
// An upper bound, so a loaded machine only makes it pass more easily.
TEST(SimBackend, ThrottledRateCappedGuestStaysUnderItsRate) {
  // 102400 pages/s unthrottled: a 64-page slice of writes is 0.6 ms of it,
  // well inside the 1 ms of each 10 ms period a 10% throttle lets it run.
  auto b = Source(4 * kMiB, "hot=4M,rate=400M/s");
  ASSERT_TRUE(b);
  ASSERT_TRUE(b->SetThrottle(0.1).ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(30));
  const uint64_t c0 = Counter(*b);
  const auto t0 = Clock::now();
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  const uint64_t written = Counter(*b) - c0;
  const double s = std::chrono::duration<double>(Clock::now() - t0).count();
  ASSERT_TRUE(b->Pause().ok());
  EXPECT_LT(static_cast<double>(written), 0.5 * 102400 * s) << written << " pages in " << s << " s";
}

TEST(SimBackend, MapPagesPointsIntoGuestMemory) {
  auto b = Source(kMiB, "");
  ASSERT_TRUE(b);
  const uint64_t pfns[] = {0, 7, 255};
  auto m = b->MapPages(pfns, Access::kRead);
  ASSERT_TRUE(m.ok());
  ASSERT_EQ(m->pages.size(), 3u);
  for (size_t i = 0; i < 3; ++i) EXPECT_EQ(m->pages[i], b->DirectMemory() + pfns[i] * kPage);
  const uint64_t outside[] = {1, 256};
  EXPECT_FALSE(b->MapPages(outside, Access::kRead).ok());
}

TEST(SimBackend, ReleasedGuestNeverRunsAgain) {
  auto b = Source(kMiB, "hot=4K");
  ASSERT_TRUE(b);
  ASSERT_TRUE(b->Release().ok());
  EXPECT_FALSE(b->Running());
  EXPECT_EQ(b->Resume().code(), Code::kInternal);
  EXPECT_FALSE(b->Running());
}

TEST(SimBackend, CpuPolicyIsStored) {
  auto b = Source(kMiB, "");
  ASSERT_TRUE(b);
  EXPECT_EQ(b->GetCpuPolicy()->vendor, "GenuineIntel");
  CpuPolicy p;
  p.vendor = "AuthenticAMD";
  p.featureset = {1, 2, 3};
  auto applied = b->ApplyCpuPolicy(p);
  ASSERT_TRUE(applied.ok());
  EXPECT_EQ(applied->featureset, p.featureset);
  EXPECT_EQ(b->GetCpuPolicy()->vendor, "AuthenticAMD");
}

}  // namespace
}  // namespace xm
