// SourceGuard: at most one `xmotion send` per guest per host. Two migrations
// of one guest would fight over its dirty log and pause state, and the second
// GO would hand a guest away that already left.
//
// The guard is an exclusive flock on <dir>/<key>.lock (dir: $XMOTION_RUN_DIR,
// else /run/xmotion; key: backend and guest id, e.g. "xen-7"), with the
// holder's pid written inside for the refusal message. The kernel drops a
// flock when its process dies, however it dies, so a crashed sender's guard
// never blocks the next one; a stale file is just reused.
//
// Thread-safety: a SourceGuard is a value owned by one thread.
#pragma once

#include <sys/types.h>

#include <string>

#include "base/status.h"
#include "base/unique_fd.h"

namespace xm {

class SourceGuard {
 public:
  // Where guards live: $XMOTION_RUN_DIR, else /run/xmotion.
  static std::string DefaultDir();
  // Takes the guard for `key` in `dir` (created if missing). When another live
  // process holds it, fails naming that pid and sets *holder to it (0 if it had
  // not written its pid yet); other failures leave *holder at -1.
  static Result<SourceGuard> Acquire(const std::string& dir, const std::string& key, pid_t* holder);

  SourceGuard() = default;
  SourceGuard(SourceGuard&&) = default;
  SourceGuard& operator=(SourceGuard&&) = default;
  const std::string& path() const { return path_; }

 private:
  UniqueFd fd_;  // holds the flock
  std::string path_;
};

}  // namespace xm
