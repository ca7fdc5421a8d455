#include "migrate/common/exit_code.h"

namespace xm {

int ExitCodeFor(const Status& st) {
  switch (st.code()) {
    case Code::kOk: return kExitCompleted;
    case Code::kInvalidArgument: return kExitUsage;
    case Code::kIncompatible: return kExitIncompatible;
    case Code::kAuth: return kExitAuth;
    default: return kExitFailed;
  }
}

}  // namespace xm
