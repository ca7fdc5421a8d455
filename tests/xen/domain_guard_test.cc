// The destination's domain guard against a stand-in `xl` that records what it
// was asked to do: the guard's own process logic is real (a /bin/sh child in
// its own session, a pipe, EOF when the receiver goes); only the toolstack is
// a script, because destroying a domain needs a Xen dom0 (the nested-Xen lab
// runs the real one).
#include "dirtylog/xen/domain_guard.h"

#include <gtest/gtest.h>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

namespace xm::xen {
namespace {

namespace fs = std::filesystem;

class DomainGuardTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("xm-guard-" + std::to_string(::getpid()) + "-" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
    log_ = dir_ / "xl.log";
    xl_ = dir_ / "xl";
    std::ofstream(xl_) << "#!/bin/sh\necho \"$@\" >> '" << log_.string() << "'\n"
                       << "[ \"$1\" = domid ] && [ \"$2\" = known ] && echo 42\n"
                       << "[ \"$1\" = domid ] && [ \"$2\" != known ] && exit 1\n"
                       << "[ \"$1\" = list ] && [ \"$2\" = 13 ] && exit 1\nexit 0\n";
    fs::permissions(xl_, fs::perms::owner_all);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string Log() const {
    std::ifstream f(log_);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
  }

  fs::path dir_, log_, xl_;
};

TEST_F(DomainGuardTest, KeptDomainIsLeftAlone) {
  auto g = DomainGuard::Start("guest", xl_.string());
  ASSERT_TRUE(g.ok()) << g.status().ToString();
  ASSERT_TRUE(g->SetDomid(7).ok());
  ASSERT_TRUE(g->Keep().ok());
  EXPECT_FALSE(g->active());
  EXPECT_EQ(Log(), "");
}

TEST_F(DomainGuardTest, DroppedGuardDestroysTheDomidItWasTold) {
  {
    auto g = DomainGuard::Start("guest", xl_.string());
    ASSERT_TRUE(g.ok()) << g.status().ToString();
    ASSERT_TRUE(g->SetDomid(7).ok());
  }  // the destructor waits for the guard
  EXPECT_EQ(Log(), "list 7\ndestroy 7\n");
}

TEST_F(DomainGuardTest, ADomainAlreadyGoneIsNotDestroyedAgain) {
  {
    auto g = DomainGuard::Start("guest", xl_.string());
    ASSERT_TRUE(g.ok()) << g.status().ToString();
    ASSERT_TRUE(g->SetDomid(13).ok());  // the stand-in xl no longer lists 13
  }
  EXPECT_EQ(Log(), "list 13\n");
}

TEST_F(DomainGuardTest, BeforeTheDomidItDestroysByName) {
  {
    auto g = DomainGuard::Start("known", xl_.string());
    ASSERT_TRUE(g.ok()) << g.status().ToString();
  }
  EXPECT_EQ(Log(), "domid known\nlist 42\ndestroy 42\n");
}

TEST_F(DomainGuardTest, NoDomainOfThatNameMeansNothingToDestroy) {
  {
    auto g = DomainGuard::Start("never-built", xl_.string());
    ASSERT_TRUE(g.ok()) << g.status().ToString();
  }
  EXPECT_EQ(Log(), "domid never-built\n");
}

// What the lab's abort step does to a receiver: SIGKILL, no destructor runs.
TEST_F(DomainGuardTest, OutlivesAKilledReceiver) {
  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    auto g = DomainGuard::Start("guest", xl_.string());
    if (!g.ok() || !g->SetDomid(9).ok()) ::_exit(3);
    ::kill(::getpid(), SIGKILL);
    ::_exit(4);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << status;
  // The orphaned guard runs on its own; give it a generous bound.
  for (int i = 0; i < 200 && Log().find("destroy") == std::string::npos; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_EQ(Log(), "list 9\ndestroy 9\n");
}

}  // namespace
}  // namespace xm::xen
