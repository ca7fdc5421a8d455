// UniqueFd and Mapping: each owns exactly one resource and releases it exactly once.
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cerrno>
#include <cstring>

#include "base/mapping.h"
#include "base/unique_fd.h"

namespace xm {
namespace {

bool FdOpen(int fd) { return ::fcntl(fd, F_GETFD) != -1 || errno != EBADF; }

// Whether [addr, addr+len) is mapped in this process: msync fails with ENOMEM otherwise.
bool Mapped(void* addr, size_t len) { return ::msync(addr, len, MS_ASYNC) == 0; }

struct Pipe {
  int r = -1, w = -1;
  Pipe() {
    int fds[2];
    EXPECT_EQ(::pipe2(fds, O_CLOEXEC), 0);
    r = fds[0];
    w = fds[1];
  }
};

TEST(UniqueFd, DefaultIsInvalid) {
  UniqueFd fd;
  EXPECT_FALSE(fd.valid());
  EXPECT_EQ(fd.get(), -1);
}

TEST(UniqueFd, ClosesOnDestruction) {
  Pipe p;
  {
    UniqueFd a(p.r), b(p.w);
    EXPECT_TRUE(a.valid());
    EXPECT_TRUE(FdOpen(p.r));
  }
  EXPECT_FALSE(FdOpen(p.r));
  EXPECT_FALSE(FdOpen(p.w));
}

TEST(UniqueFd, MoveTransfersOwnership) {
  Pipe p;
  UniqueFd w(p.w);
  UniqueFd a(p.r);
  UniqueFd b(std::move(a));
  EXPECT_FALSE(a.valid());  // NOLINT(bugprone-use-after-move): checking the moved-from state
  EXPECT_EQ(b.get(), p.r);
  UniqueFd c;
  c = std::move(b);
  EXPECT_FALSE(b.valid());  // NOLINT(bugprone-use-after-move)
  EXPECT_EQ(c.get(), p.r);
  EXPECT_TRUE(FdOpen(p.r));
}

TEST(UniqueFd, MoveAssignClosesPreviousFd) {
  Pipe p1, p2;
  UniqueFd w1(p1.w), w2(p2.w);
  UniqueFd a(p1.r);
  a = UniqueFd(p2.r);
  EXPECT_FALSE(FdOpen(p1.r));
  EXPECT_EQ(a.get(), p2.r);
  EXPECT_TRUE(FdOpen(p2.r));
}

TEST(UniqueFd, SelfMoveKeepsFd) {
  Pipe p;
  UniqueFd w(p.w);
  UniqueFd a(p.r);
  UniqueFd& alias = a;
  a = std::move(alias);
  EXPECT_EQ(a.get(), p.r);
  EXPECT_TRUE(FdOpen(p.r));
}

TEST(UniqueFd, ReleaseGivesUpOwnership) {
  Pipe p;
  UniqueFd w(p.w);
  int raw;
  {
    UniqueFd a(p.r);
    raw = a.release();
    EXPECT_FALSE(a.valid());
  }
  EXPECT_EQ(raw, p.r);
  EXPECT_TRUE(FdOpen(raw));
  ::close(raw);
}

TEST(UniqueFd, ResetClosesAndAdopts) {
  Pipe p1, p2;
  UniqueFd w1(p1.w), w2(p2.w);
  UniqueFd a(p1.r);
  a.reset(p2.r);
  EXPECT_FALSE(FdOpen(p1.r));
  EXPECT_EQ(a.get(), p2.r);
  a.reset();
  EXPECT_FALSE(a.valid());
  EXPECT_FALSE(FdOpen(p2.r));
}

TEST(Mapping, AnonymousIsZeroedAndWritable) {
  const size_t len = 3 * 4096;
  auto m = Mapping::Anonymous(len);
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  ASSERT_TRUE(m->valid());
  EXPECT_EQ(m->size(), len);
  for (size_t i = 0; i < len; ++i) ASSERT_EQ(m->data()[i], std::byte{0}) << i;
  std::memset(m->data(), 0xAB, len);
  EXPECT_EQ(m->data()[len - 1], std::byte{0xAB});
}

TEST(Mapping, HugeTlbRefusesMoreThanThePoolHolds) {
  const HugePagePool pool = ReadHugePagePool();
  if (pool.page_bytes == 0) GTEST_SKIP() << "this kernel has no hugetlb pool";
  if (pool.overcommit > 0) GTEST_SKIP() << "vm.nr_overcommit_hugepages > 0: the kernel grows the pool on demand";
  // A few pages beyond what is free, in case a test in another process frees some meanwhile.
  auto m = Mapping::HugeTlb((pool.available() + 8) * pool.page_bytes);
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.status().code(), Code::kIncompatible) << m.status().ToString();
  EXPECT_NE(m.status().message().find("/proc/sys/vm/nr_hugepages"), std::string::npos) << m.status().ToString();
}

TEST(Mapping, HugeTlbIsZeroedWritableAndUnmappedWhole) {
  const HugePagePool pool = ReadHugePagePool();
  if (pool.available() < 2)
    GTEST_SKIP() << "the kernel's huge page pool has " << pool.available()
                 << " free pages; this test needs 2 and leaves /proc/sys/vm/nr_hugepages alone";
  // Not a whole number of huge pages: size() is what was asked, the unmap covers both.
  const size_t len = pool.page_bytes + 4096;
  void* addr;
  {
    auto m = Mapping::HugeTlb(len);
    ASSERT_TRUE(m.ok()) << m.status().ToString();
    EXPECT_EQ(m->size(), len);
    for (size_t i = 0; i < len; i += 512) ASSERT_EQ(m->data()[i], std::byte{0}) << i;
    std::memset(m->data(), 0xAB, len);
    EXPECT_EQ(m->data()[len - 1], std::byte{0xAB});
    addr = m->data();
    EXPECT_TRUE(Mapped(addr, 2 * pool.page_bytes));
  }
  EXPECT_FALSE(Mapped(addr, pool.page_bytes));
  EXPECT_FALSE(Mapped(static_cast<std::byte*>(addr) + pool.page_bytes, pool.page_bytes));
}

TEST(Mapping, UnmapsOnDestruction) {
  void* addr;
  {
    auto m = Mapping::Anonymous(4096);
    ASSERT_TRUE(m.ok());
    addr = m->data();
    EXPECT_TRUE(Mapped(addr, 4096));
  }
  EXPECT_FALSE(Mapped(addr, 4096));
}

TEST(Mapping, MoveTransfersOwnership) {
  auto m = Mapping::Anonymous(8192);
  ASSERT_TRUE(m.ok());
  void* addr = m->data();
  Mapping a = std::move(m).value();
  Mapping b(std::move(a));
  EXPECT_FALSE(a.valid());  // NOLINT(bugprone-use-after-move)
  EXPECT_EQ(a.size(), 0u);  // NOLINT(bugprone-use-after-move)
  EXPECT_EQ(b.data(), addr);
  EXPECT_EQ(b.size(), 8192u);
  EXPECT_TRUE(Mapped(addr, 8192));
  {
    Mapping c;
    c = std::move(b);
    EXPECT_FALSE(b.valid());  // NOLINT(bugprone-use-after-move)
    EXPECT_TRUE(Mapped(addr, 8192));
  }
  EXPECT_FALSE(Mapped(addr, 8192));
}

TEST(Mapping, MoveAssignUnmapsPrevious) {
  auto m1 = Mapping::Anonymous(4096);
  auto m2 = Mapping::Anonymous(4096);
  ASSERT_TRUE(m1.ok() && m2.ok());
  void* first = m1->data();
  Mapping a = std::move(m1).value();
  a = std::move(m2).value();
  EXPECT_FALSE(Mapped(first, 4096));
  EXPECT_TRUE(Mapped(a.data(), 4096));
}

TEST(Mapping, ResetUnmaps) {
  auto m = Mapping::Anonymous(4096);
  ASSERT_TRUE(m.ok());
  void* addr = m->data();
  m->reset();
  EXPECT_FALSE(m->valid());
  EXPECT_FALSE(Mapped(addr, 4096));
}

TEST(Mapping, ZeroLengthIsAnIoError) {
  auto m = Mapping::Anonymous(0);
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.status().code(), Code::kIo);
  EXPECT_NE(m.status().message().find("mmap 0 bytes"), std::string::npos) << m.status().message();
}

}  // namespace
}  // namespace xm
