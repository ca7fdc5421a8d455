#include "migrate/cli/cancel_watch.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "base/log.h"

namespace xm::cli {

Result<std::unique_ptr<CancelWatch>> CancelWatch::Start(Canceller& cancel, int control_fd, std::string who) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  if (int e = pthread_sigmask(SIG_BLOCK, &set, nullptr); e != 0) return ErrnoError("block SIGINT/SIGTERM", e);
  UniqueFd sigfd(::signalfd(-1, &set, SFD_CLOEXEC));
  if (!sigfd.valid()) return ErrnoError("signalfd", errno);
  UniqueFd stopfd(::eventfd(0, EFD_CLOEXEC));
  if (!stopfd.valid()) return ErrnoError("eventfd", errno);
  if (control_fd >= 0 && ::fcntl(control_fd, F_GETFD) < 0)
    return Error(Code::kInvalidArgument, "--control-fd " + std::to_string(control_fd) + " is not an open descriptor");
  return std::unique_ptr<CancelWatch>(
      new CancelWatch(cancel, std::move(sigfd), std::move(stopfd), control_fd, std::move(who)));
}

CancelWatch::CancelWatch(Canceller& c, UniqueFd sigfd, UniqueFd stopfd, int control_fd, std::string who)
    : cancel_(c), sigfd_(std::move(sigfd)), stopfd_(std::move(stopfd)), control_fd_(control_fd),
      who_(std::move(who)) {
  thread_ = std::thread([this] { Loop(); });
}

CancelWatch::~CancelWatch() {
  uint64_t one = 1;
  (void)!::write(stopfd_.get(), &one, sizeof one);
  thread_.join();
}

void CancelWatch::Ask(const std::string& by, int reply_fd) {
  std::string reply;
  switch (cancel_.Request(by)) {
    case Canceller::Answer::kAccepted:
      spdlog::warn("{}: {}: cancelling (the source guest keeps running; the destination discards its copy)", who_, by);
      reply = "cancelling\n";
      break;
    case Canceller::Answer::kAlreadyCancelled:
      spdlog::warn("{}: {}: already cancelling", who_, by);
      reply = "already cancelled\n";
      break;
    case Canceller::Answer::kRefused:
      spdlog::warn("{}: {}: {}", who_, by, cancel_.refusal());
      reply = "refused: " + cancel_.refusal() + "\n";
      break;
  }
  if (reply_fd >= 0) (void)!::write(reply_fd, reply.data(), reply.size());  // best effort: may be read-only
}

void CancelWatch::Loop() {
  std::string line;
  int control = control_fd_;
  for (;;) {
    pollfd p[3] = {{stopfd_.get(), POLLIN, 0}, {sigfd_.get(), POLLIN, 0}, {control, POLLIN, 0}};
    int n = ::poll(p, control >= 0 ? 3 : 2, -1);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 || p[0].revents) return;
    if (p[1].revents & POLLIN) {
      signalfd_siginfo si;
      if (::read(sigfd_.get(), &si, sizeof si) == static_cast<ssize_t>(sizeof si))
        Ask(si.ssi_signo == SIGINT ? "SIGINT" : "SIGTERM", -1);
    }
    if (control >= 0 && p[2].revents) {
      char buf[256];
      ssize_t got = ::read(control, buf, sizeof buf);
      if (got < 0 && (errno == EINTR || errno == EAGAIN)) continue;
      if (got <= 0) {
        control = -1;  // the control plane closed it: a cancel can still come by signal
        continue;
      }
      line.append(buf, static_cast<size_t>(got));
      for (size_t nl; (nl = line.find('\n')) != std::string::npos;) {
        std::string cmd = line.substr(0, nl);
        line.erase(0, nl + 1);
        if (!cmd.empty() && cmd.back() == '\r') cmd.pop_back();
        if (cmd == "abort") {
          Ask("control line 'abort'", control);
        } else if (!cmd.empty()) {
          spdlog::warn("{}: control fd: unknown command '{}'", who_, cmd);
          std::string reply = "error: unknown command " + cmd + "\n";
          (void)!::write(control, reply.data(), reply.size());
        }
      }
      if (line.size() > 4096) line.clear();  // no line is that long: drop garbage
    }
  }
}

}  // namespace xm::cli
