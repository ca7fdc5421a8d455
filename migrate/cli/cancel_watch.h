// CancelWatch: turns SIGINT/SIGTERM and `abort` lines on a control fd into
// Canceller requests, on a thread of its own: the signals are blocked and read
// through a signalfd, so no work ever runs in a signal handler, and a second
// signal after a refused cancel is refused again instead of killing the
// process mid-handoff.
//
// Control fd protocol (README "Cancelling"): lines in, `abort` cancels; each
// line is answered on the same fd when it is writable: `cancelling`,
// `refused: <why>`, `already cancelled` or `error: unknown command <line>`.
// End of file on the fd only stops listening to it.
//
// REQUIRES: Start() is called before the process starts any thread, so that
// every thread inherits the blocked signals. Thread-safety: the Canceller is
// the only thing shared.
#pragma once

#include <memory>
#include <string>
#include <thread>

#include "base/status.h"
#include "base/unique_fd.h"
#include "migrate/common/cancel.h"

namespace xm::cli {

class CancelWatch {
 public:
  // `who` prefixes log lines ("xmotion send"). control_fd < 0: signals only.
  static Result<std::unique_ptr<CancelWatch>> Start(Canceller& cancel, int control_fd, std::string who);
  ~CancelWatch();

 private:
  CancelWatch(Canceller& c, UniqueFd sigfd, UniqueFd stopfd, int control_fd, std::string who);
  void Loop();
  void Ask(const std::string& by, int reply_fd);

  Canceller& cancel_;
  UniqueFd sigfd_, stopfd_;
  int control_fd_;
  std::string who_;
  std::thread thread_;
};

}  // namespace xm::cli
