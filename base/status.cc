#include "base/status.h"

#include <cstring>

namespace xm {

std::string_view CodeName(Code c) {
  switch (c) {
    case Code::kOk: return "ok";
    case Code::kInvalidArgument: return "invalid-argument";
    case Code::kIo: return "io";
    case Code::kProtocol: return "protocol";
    case Code::kVersion: return "version";
    case Code::kAuth: return "auth";
    case Code::kIncompatible: return "incompatible";
    case Code::kIntegrity: return "integrity";
    case Code::kTimeout: return "timeout";
    case Code::kAborted: return "aborted";
    case Code::kUnsupported: return "unsupported";
    case Code::kInternal: return "internal";
    case Code::kCancelled: return "cancelled";
  }
  return "unknown";
}

std::string Status::ToString() const {
  if (ok()) return "ok";
  return std::string(CodeName(code_)) + ": " + message_;
}

Status ErrnoError(std::string_view what, int err) {
  return Status(Code::kIo, std::string(what) + ": " + std::strerror(err));
}

}  // namespace xm
