#include "migrate/common/source_guard.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <filesystem>

namespace xm {

std::string SourceGuard::DefaultDir() {
  const char* d = std::getenv("XMOTION_RUN_DIR");
  return d && *d ? d : "/run/xmotion";
}

Result<SourceGuard> SourceGuard::Acquire(const std::string& dir, const std::string& key, pid_t* holder) {
  *holder = -1;
  if (key.empty() || key.find('/') != std::string::npos || key[0] == '.')
    return Error(Code::kInvalidArgument, "source guard: bad key '" + key + "'");
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return Error(Code::kIo, "source guard: create " + dir + ": " + ec.message());
  SourceGuard g;
  g.path_ = dir + "/" + key + ".lock";
  g.fd_ = UniqueFd(::open(g.path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644));
  if (!g.fd_.valid()) return ErrnoError("source guard: open " + g.path_, errno);
  if (::flock(g.fd_.get(), LOCK_EX | LOCK_NB) != 0) {
    if (errno != EWOULDBLOCK) return ErrnoError("source guard: lock " + g.path_, errno);
    char buf[32] = {};
    ssize_t n = ::pread(g.fd_.get(), buf, sizeof buf - 1, 0);
    *holder = n > 0 ? static_cast<pid_t>(std::atol(buf)) : 0;
    return Error(Code::kAborted, "this guest (" + key + ") is already being migrated by " +
                                     (*holder > 0 ? "pid " + std::to_string(*holder) : std::string("another process")) +
                                     " (it holds " + g.path_ + ")");
  }
  std::string pid = std::to_string(::getpid()) + "\n";
  if (::ftruncate(g.fd_.get(), 0) != 0 || ::pwrite(g.fd_.get(), pid.data(), pid.size(), 0) != static_cast<ssize_t>(pid.size()))
    return ErrnoError("source guard: write " + g.path_, errno);
  return g;
}

}  // namespace xm
