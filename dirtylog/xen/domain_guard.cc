#include "dirtylog/xen/domain_guard.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <utility>
#include <vector>

extern char** environ;

namespace xm::xen {
namespace {

// POSIX sh, so it needs nothing but /bin/sh and the toolstack. "$1" is the
// domain name, "$2" the xl command. A domid learnt later wins over the name.
constexpr const char* kGuardScript = R"sh(
dom=""
while read -r what value; do
  case "$what" in
    domid) dom="$value" ;;
    keep) exit 0 ;;
  esac
done
if [ -z "$dom" ]; then
  dom=$("$2" domid "$1" 2>/dev/null) || exit 0
fi
# The toolstack may have torn its half-built domain down itself (xl restore
# does on EOF): then there is nothing to destroy and nothing to complain about.
"$2" list "$dom" >/dev/null 2>&1 || exit 0
echo "xmotion guard: the migration did not commit: destroying domain $dom ($1)" >&2
exec "$2" destroy "$dom"
)sh";

}  // namespace

Result<DomainGuard> DomainGuard::Start(const std::string& domain_name, const std::string& xl) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return ErrnoError("xen: domain guard pipe", errno);
  UniqueFd rd(fds[0]);
  DomainGuard g;
  g.wr_.reset(fds[1]);

  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, rd.get(), STDIN_FILENO);
  // Not the receiver's stdout: a control plane reading it until EOF must not
  // wait for the guard (stderr stays, for the one line it may print).
  posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  // Its own session: a Ctrl-C or SIGHUP meant for the receiver's terminal must
  // not take the guard down with it.
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSID);
  std::vector<std::string> args{"/bin/sh", "-c", kGuardScript, "xmotion-guard", domain_name, xl};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  int rc = posix_spawn(&g.pid_, "/bin/sh", &fa, &attr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) {
    g.pid_ = -1;
    return ErrnoError("xen: start the domain guard (/bin/sh)", rc);
  }
  XM_TRY(g.Say("name " + domain_name));
  return g;
}

DomainGuard::DomainGuard(DomainGuard&& o) noexcept : wr_(std::move(o.wr_)), pid_(std::exchange(o.pid_, -1)) {}

DomainGuard& DomainGuard::operator=(DomainGuard&& o) noexcept {
  if (this != &o) {
    Close();
    wr_ = std::move(o.wr_);
    pid_ = std::exchange(o.pid_, -1);
  }
  return *this;
}

DomainGuard::~DomainGuard() { Close(); }

Status DomainGuard::Say(const std::string& line) {
  if (!wr_.valid()) return Error(Code::kInternal, "xen: the domain guard is closed");
  std::string msg = line + "\n";
  // One short line on a pipe is written whole or not at all.
  ssize_t n;
  do {
    n = ::write(wr_.get(), msg.data(), msg.size());
  } while (n < 0 && errno == EINTR);
  if (n != static_cast<ssize_t>(msg.size())) return ErrnoError("xen: tell the domain guard '" + line + "'", errno);
  return {};
}

Status DomainGuard::SetDomid(uint32_t domid) { return Say("domid " + std::to_string(domid)); }

Status DomainGuard::Keep() {
  Status st = Say("keep");
  Close();
  return st;
}

void DomainGuard::Close() {
  wr_.reset();
  if (pid_ > 0) {
    int status = 0;
    while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
    pid_ = -1;
  }
}

}  // namespace xm::xen
