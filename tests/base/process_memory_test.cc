// The reports' overhead figures come from the kernel's accounting: memory the
// process touches shows, memory that is the guest's (mincore-resident in the
// guest's mapping) does not.
#include "base/process_memory.h"

#include <gtest/gtest.h>
#include <sys/mman.h>

#include <chrono>
#include <cstring>
#include <thread>
#include <vector>

namespace xm {
namespace {

constexpr size_t kMiB = 1 << 20;

TEST(ProcessMemory, ResidentAndPeakAreRead) {
  EXPECT_GT(ResidentBytes(), 0u);
  EXPECT_GE(PeakResidentBytes(), ResidentBytes() / 2);  // both from /proc/self/status
}

TEST(ProcessMemory, AnEarlierPeakIsForgottenOnReset) {
  {
    std::vector<char> big(96 * kMiB);
    std::memset(big.data(), 1, big.size());
  }
  ASSERT_TRUE(ResetPeakResident());
  const uint64_t base = ResidentBytes();
  EXPECT_LT(OverheadSince(base, nullptr, 0), 32 * kMiB);
}

TEST(ProcessMemory, TouchedMemoryCountsAsOverhead) {
  const uint64_t base = ResidentBytes();
  std::vector<char> buf(48 * kMiB);
  std::memset(buf.data(), 1, buf.size());
  EXPECT_GE(OverheadSince(base, nullptr, 0), 40 * kMiB);
}

TEST(ProcessMemory, TheGuestsOwnMappingIsNotOverhead) {
  const size_t len = 64 * kMiB;
  void* guest = ::mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(guest, MAP_FAILED);
  EXPECT_LT(ResidentBytesIn(guest, len), kMiB);
  const uint64_t base = ResidentBytes();
  std::memset(guest, 7, len);
  EXPECT_GE(ResidentBytesIn(guest, len), len - kMiB);
  // Touching 64 MiB of guest is not the migration's overhead...
  EXPECT_LT(OverheadSince(base, guest, len), 16 * kMiB);
  // ...but without saying where the guest is, it would be.
  EXPECT_GE(OverheadSince(base, nullptr, 0), 56 * kMiB);
  ::munmap(guest, len);
}

// CPU the process burns shows up (a busy loop until it does, with a deadline),
// and a blocked process adds next to none.
TEST(ProcessMemory, CpuTimeCountsWorkNotWaiting) {
  const double start = ProcessCpuMs();
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  volatile uint64_t spin = 0;
  while (ProcessCpuMs() - start < 50 && std::chrono::steady_clock::now() < deadline) spin = spin + 1;
  EXPECT_GE(ProcessCpuMs() - start, 50.0);
  const double before_sleep = ProcessCpuMs();
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_LT(ProcessCpuMs() - before_sleep, 100.0);
}

}  // namespace
}  // namespace xm
