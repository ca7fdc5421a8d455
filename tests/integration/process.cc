#include "tests/integration/process.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

extern char** environ;

namespace xm::testing {

std::string XmotionBin() {
  const char* p = std::getenv("XMOTION_BIN");
  return p ? p : "xmotion";
}

Child::Child(std::vector<std::string> args, bool want_port, const std::string& stdout_path, int pass_fd) {
  char tmpl[] = "/tmp/xm-child-err-XXXXXX";
  int err_fd = ::mkstemp(tmpl);
  err_path_ = tmpl;
  int fds[2] = {-1, -1};
  if (want_port && ::pipe2(fds, O_CLOEXEC) != 0) throw std::runtime_error("pipe");
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, err_fd, 2);
  if (!stdout_path.empty())
    posix_spawn_file_actions_addopen(&fa, 1, stdout_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (pass_fd >= 0) posix_spawn_file_actions_adddup2(&fa, pass_fd, 4);
  if (want_port) {
    posix_spawn_file_actions_adddup2(&fa, fds[1], 3);
    args.insert(args.end(), {"--ready-fd", "3"});
  }
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  if (posix_spawn(&pid_, argv[0], &fa, nullptr, argv.data(), environ) != 0)
    throw std::runtime_error("spawn " + args[0]);
  posix_spawn_file_actions_destroy(&fa);
  ::close(err_fd);
  if (want_port) {
    ::close(fds[1]);
    char buf[16] = {};
    ssize_t n = ::read(fds[0], buf, sizeof buf - 1);
    ::close(fds[0]);
    port_ = n > 0 ? std::atoi(buf) : -1;
  }
}

Child::~Child() {
  if (exit_code_ < 0 && pid_ > 0) {
    ::kill(pid_, SIGKILL);
    Wait();
  }
  ::unlink(err_path_.c_str());
}

int Child::Wait() {
  if (exit_code_ >= 0) return exit_code_;
  int status = 0;
  while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
  }
  exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return exit_code_;
}

void Child::Kill(int sig) { ::kill(pid_, sig); }

std::string Child::Stderr() {
  std::ifstream in(err_path_);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

TempDir::TempDir() {
  char tmpl[] = "/tmp/xm-test-XXXXXX";
  dir_ = ::mkdtemp(tmpl);
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(dir_, ec);
}

nlohmann::json ReadJsonFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return nullptr;
  auto j = nlohmann::json::parse(in, nullptr, false);
  return j.is_discarded() ? nlohmann::json(nullptr) : j;
}

PairRun WaitForPair(Child& receiver, Child& sender, const TempDir& dir) {
  PairRun o;
  o.send_rc = sender.Wait();
  o.recv_rc = receiver.Wait();
  o.send = ReadJsonFile(dir.path("send.json"));
  o.recv = ReadJsonFile(dir.path("recv.json"));
  o.send_err = sender.Stderr();
  o.recv_err = receiver.Stderr();
  return o;
}

namespace {

uint64_t RssBytes(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::stoull(line.substr(6)) * 1024;
  return 0;
}

}  // namespace

bool WaitForRssGrowth(pid_t pid, uint64_t bytes, int timeout_ms) {
  // Growth, not a level: under ASan a process starts with tens of MiB of shadow
  // memory, which must not pass for guest memory that arrived.
  const uint64_t base = RssBytes(pid);
  for (int waited = 0; waited < timeout_ms; ++waited) {
    if (RssBytes(pid) >= base + bytes) return true;
    ::usleep(1000);
  }
  return false;
}

bool SameFile(const std::string& a, const std::string& b, std::string* why) {
  int fa = ::open(a.c_str(), O_RDONLY), fb = ::open(b.c_str(), O_RDONLY);
  struct stat sa{}, sb{};
  bool ok = fa >= 0 && fb >= 0 && ::fstat(fa, &sa) == 0 && ::fstat(fb, &sb) == 0;
  if (!ok) {
    *why = "cannot open " + a + " or " + b;
  } else if (sa.st_size != sb.st_size) {
    ok = false;
    *why = "sizes differ: " + std::to_string(sa.st_size) + " vs " + std::to_string(sb.st_size);
  } else if (sa.st_size > 0) {
    auto* pa = static_cast<const unsigned char*>(::mmap(nullptr, sa.st_size, PROT_READ, MAP_PRIVATE, fa, 0));
    auto* pb = static_cast<const unsigned char*>(::mmap(nullptr, sb.st_size, PROT_READ, MAP_PRIVATE, fb, 0));
    if (std::memcmp(pa, pb, sa.st_size) != 0) {
      ok = false;
      size_t i = 0;
      while (pa[i] == pb[i]) ++i;
      *why = "first difference at byte " + std::to_string(i) + " (pfn " + std::to_string(i / 4096) + ")";
    }
    ::munmap(const_cast<unsigned char*>(pa), sa.st_size);
    ::munmap(const_cast<unsigned char*>(pb), sb.st_size);
  }
  if (fa >= 0) ::close(fa);
  if (fb >= 0) ::close(fb);
  return ok;
}

}  // namespace xm::testing
