// ZeroedArray: zeros without writing them, so a per-frame table over a sparse
// gfn space costs memory only where frames are written.
#include "base/zeroed_array.h"

#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <utility>
#include <vector>

namespace xm {
namespace {

// Resident bytes of [p, p + len) by mincore: exact, whatever mapping it shares a VMA with.
size_t Resident(const void* p, size_t len) {
  const size_t page = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
  std::vector<unsigned char> v((len + page - 1) / page);
  if (::mincore(const_cast<void*>(p), len, v.data()) != 0) return SIZE_MAX;
  size_t n = 0;
  for (unsigned char c : v) n += c & 1;
  return n * page;
}

TEST(ZeroedArray, ReadsZeroAndKeepsWhatIsWritten) {
  ZeroedArray<uint64_t> a(1 << 20);
  ASSERT_EQ(a.size(), size_t{1} << 20);
  EXPECT_EQ(a[0], 0u);
  EXPECT_EQ(a[a.size() - 1], 0u);
  a[12345] = 0xfeedu;
  EXPECT_EQ(a.span()[12345], 0xfeedu);
  EXPECT_EQ(a[12344], 0u);
}

// A 1M-frame table (a 128 MiB PVH guest's gfn space) with 32K frames written
// in one block: only that block's pages are resident, not the 8 MiB a filled
// std::vector would fault in.
TEST(ZeroedArray, OnlyWrittenPagesBecomeResident) {
  ZeroedArray<uint64_t> a(1 << 20);
  const size_t bytes = a.size() * sizeof(uint64_t);
  EXPECT_EQ(Resident(a.data(), bytes), 0u);
  for (size_t i = 0; i < 32768; ++i) a[i] = i + 1;
  const size_t resident = Resident(a.data(), bytes);
  EXPECT_GE(resident, 32768 * sizeof(uint64_t));
  // With THP always, up to two 2 MiB pages; never the 8 MiB a filled vector faults in.
  EXPECT_LE(resident, size_t{4} << 20);
}

TEST(ZeroedArray, MovesLeaveTheSourceEmpty) {
  ZeroedArray<uint32_t> a(1000);
  a[7] = 7;
  ZeroedArray<uint32_t> b = std::move(a);
  EXPECT_EQ(a.size(), 0u);  // NOLINT(bugprone-use-after-move): the moved-from state is the point
  ASSERT_EQ(b.size(), 1000u);
  EXPECT_EQ(b[7], 7u);
  ZeroedArray<uint32_t> empty;
  EXPECT_EQ(empty.size(), 0u);
  EXPECT_TRUE(empty.span().empty());
  empty = std::move(b);  // assignment takes the memory over too
  EXPECT_EQ(b.size(), 0u);  // NOLINT(bugprone-use-after-move)
  ASSERT_EQ(empty.size(), 1000u);
  EXPECT_EQ(empty[7], 7u);
}

}  // namespace
}  // namespace xm
