// The process exit codes of send, receive and demo (README "Exit codes"), and
// how an error maps to one. A control plane acts on these, so they never change.
#pragma once

#include "base/status.h"

namespace xm {

enum ExitCode : int {
  kExitCompleted = 0,
  kExitFailed = 1,          // failed before GO; source guest running, destination discarded
  kExitUsage = 2,           // bad command line or input file
  kExitIncompatible = 3,    // destination cannot host the guest (CPU features, shape)
  kExitOutcomeUnknown = 4,  // GO sent but DONE not received: guest paused on source, ask the destination
  kExitAuth = 5,            // authentication failed or wrong peer
  kExitCancelled = 6,       // cancelled by the operator before GO (either side): as kExitFailed, on purpose
  kExitBusy = 7,            // the guest is already being migrated by another xmotion (source guard)
};

// kExitOutcomeUnknown is never derived from a Status: only the source knows it
// wrote GO.
int ExitCodeFor(const Status& st);

}  // namespace xm
