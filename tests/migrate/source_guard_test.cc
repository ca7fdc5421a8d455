// SourceGuard: a second holder is refused with the first one's pid, and a
// holder that dies (even by SIGKILL) never blocks the next one.
#include "migrate/common/source_guard.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>

namespace xm {
namespace {

class SourceGuardTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/xm-guard-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = std::string(tmpl) + "/run";  // created by Acquire
  }
  void TearDown() override { std::filesystem::remove_all(std::filesystem::path(dir_).parent_path()); }
  std::string dir_;
};

// Forks a child that takes the guard for `key`, tells us through a pipe, then
// waits to be killed.
pid_t HolderProcess(const std::string& dir, const std::string& key) {
  int p[2];
  if (::pipe(p) != 0) return -1;
  pid_t pid = ::fork();
  if (pid == 0) {
    pid_t h;
    auto g = SourceGuard::Acquire(dir, key, &h);
    char c = g.ok() ? 'y' : 'n';
    (void)!::write(p[1], &c, 1);
    for (;;) ::pause();
  }
  ::close(p[1]);
  char c = 0;
  (void)!::read(p[0], &c, 1);
  ::close(p[0]);
  return c == 'y' ? pid : -1;
}

TEST_F(SourceGuardTest, SecondHolderIsRefusedWithThePid) {
  pid_t child = HolderProcess(dir_, "xen-7");
  ASSERT_GT(child, 0);
  pid_t holder = -1;
  auto g = SourceGuard::Acquire(dir_, "xen-7", &holder);
  EXPECT_FALSE(g.ok());
  EXPECT_EQ(holder, child);
  EXPECT_NE(g.status().message().find("pid " + std::to_string(child)), std::string::npos) << g.status().message();
  // Another guest is not affected.
  pid_t other = -1;
  EXPECT_TRUE(SourceGuard::Acquire(dir_, "xen-8", &other).ok());
  // A crashed holder leaves the file, but not the lock.
  ::kill(child, SIGKILL);
  ::waitpid(child, nullptr, 0);
  EXPECT_TRUE(std::filesystem::exists(dir_ + "/xen-7.lock"));
  auto again = SourceGuard::Acquire(dir_, "xen-7", &holder);
  ASSERT_TRUE(again.ok()) << again.status().message();
  EXPECT_EQ(holder, -1);
}

TEST_F(SourceGuardTest, ReleasedWhenTheGuardGoes) {
  pid_t holder = -1;
  {
    auto g = SourceGuard::Acquire(dir_, "sim-a", &holder);
    ASSERT_TRUE(g.ok());
  }
  EXPECT_TRUE(SourceGuard::Acquire(dir_, "sim-a", &holder).ok());
}

TEST_F(SourceGuardTest, KeyCannotEscapeTheFolder) {
  pid_t holder = 0;
  EXPECT_FALSE(SourceGuard::Acquire(dir_, "../etc/x", &holder).ok());
  EXPECT_FALSE(SourceGuard::Acquire(dir_, "", &holder).ok());
}

}  // namespace
}  // namespace xm
