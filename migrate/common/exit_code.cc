#include "migrate/common/exit_code.h"

namespace xm {

int ExitCodeFor(const Status& st) {
  switch (st.code()) {
    case Code::kOk: return kExitCompleted;
    case Code::kInvalidArgument: return kExitUsage;
    case Code::kIncompatible: return kExitIncompatible;
    case Code::kAuth:
    case Code::kVersion: return kExitAuth;  // the wrong peer, whatever it is
    case Code::kCancelled: return kExitCancelled;
    default: return kExitFailed;
  }
}

}  // namespace xm
