// DomainGuard: destroys the destination domain if the receiver dies before the
// migration committed.
//
// A receiver killed mid-restore (SIGKILL, OOM, a crashed dom0 process) cannot
// clean up after itself, and the domain it was building stays behind paused:
// harmless to the guest (the source resumes it: no GO was sent), but it holds
// memory and a name until somebody runs `xl destroy`. The guard is a small
// child process in its own session, fed through a pipe that only the receiver
// holds: it learns the domain's name and, once the toolstack has built it, its
// domid; if the pipe closes before it was told "keep" (the domain was handed
// over), it destroys that domain with `xl destroy`. It survives the receiver
// because it is a separate process, and terminal signals because of setsid.
//
// The name is only used before the domid is known, and the Xen destination
// refuses to start when a domain of that name already exists, so the guard
// never destroys a domain it did not see being made.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>

#include "base/status.h"
#include "base/unique_fd.h"

namespace xm::xen {

class DomainGuard {
 public:
  // Starts the guard; `xl` is the toolstack command it runs on failure.
  static Result<DomainGuard> Start(const std::string& domain_name, const std::string& xl = "xl");

  DomainGuard() = default;
  DomainGuard(DomainGuard&&) noexcept;
  DomainGuard& operator=(DomainGuard&&) noexcept;
  // Without Keep(): the guard destroys the domain; waits for it either way.
  ~DomainGuard();

  Status SetDomid(uint32_t domid);
  // The domain is the control plane's now (running, or paused on purpose).
  Status Keep();
  // Closes the pipe and waits for the guard (and its `xl destroy`) to finish.
  void Close();

  bool active() const { return pid_ > 0; }

 private:
  Status Say(const std::string& line);

  UniqueFd wr_;
  pid_t pid_ = -1;
};

}  // namespace xm::xen
