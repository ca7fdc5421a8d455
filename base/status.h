// Status and Result<T>: how errors travel in xmotion.
//
// Every fallible call returns a Status (no value) or Result<T> (a value or a
// Status). Errors carry a code the CLI maps to an exit code, and a message that
// grows context as it is passed up ("round 3: send pfn 0x1f2: connection reset").
// Exceptions are not used across module boundaries.
#pragma once

#include <cassert>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace xm {

enum class Code {
  kOk = 0,
  kInvalidArgument,  // bad user input (CLI, spec strings)
  kIo,               // a system call failed (socket, file, mmap)
  kProtocol,         // the peer sent something malformed or unexpected
  kVersion,          // peer speaks an incompatible protocol version
  kAuth,             // peer failed authentication
  kIncompatible,     // destination cannot host the guest (CPU, shape)
  kIntegrity,        // a hash or digest did not match
  kTimeout,
  kAborted,          // the peer or the operator aborted
  kUnsupported,      // the feature is not available here
  kInternal,
  kCancelled,         // the operator cancelled (signal, control line) before the point of no return
};

std::string_view CodeName(Code c);

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(Code code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status Ok() { return {}; }

  bool ok() const { return code_ == Code::kOk; }
  Code code() const { return code_; }
  const std::string& message() const { return message_; }

  // Prefixes the message with where it happened: "ctx: message".
  Status& With(std::string_view ctx) & {
    if (!ok()) message_ = std::string(ctx) + ": " + message_;
    return *this;
  }
  Status&& With(std::string_view ctx) && { return std::move(With(ctx)); }

  std::string ToString() const;

 private:
  Code code_ = Code::kOk;
  std::string message_;
};

inline Status Error(Code code, std::string message) { return {code, std::move(message)}; }
// errno-carrying I/O error: "what: strerror(errno)".
Status ErrnoError(std::string_view what, int err);

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}  // NOLINT: implicit by design
  Result(Status status) : v_(std::move(status)) { assert(!std::get<Status>(v_).ok()); }

  bool ok() const { return std::holds_alternative<T>(v_); }
  const Status& status() const {
    static const Status kOk;
    return ok() ? kOk : std::get<Status>(v_);
  }
  T& value() & { return std::get<T>(v_); }
  const T& value() const& { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }

  Result&& With(std::string_view ctx) && {
    if (!ok()) std::get<Status>(v_).With(ctx);
    return std::move(*this);
  }

 private:
  std::variant<T, Status> v_;
};

}  // namespace xm

#define XM_CONCAT_INNER(a, b) a##b
#define XM_CONCAT(a, b) XM_CONCAT_INNER(a, b)

// Returns the Status from the enclosing function if `expr` failed.
#define XM_TRY(expr)                              \
  do {                                            \
    ::xm::Status xm_try_status_ = (expr);         \
    if (!xm_try_status_.ok()) return xm_try_status_; \
  } while (0)

// Like XM_TRY, but adds context to the error first.
#define XM_TRY_CTX(expr, ctx)                                   \
  do {                                                          \
    ::xm::Status xm_try_status_ = (expr);                       \
    if (!xm_try_status_.ok()) return std::move(xm_try_status_).With(ctx); \
  } while (0)

// `XM_ASSIGN_OR_RETURN(auto x, MakeX());`
#define XM_ASSIGN_OR_RETURN(lhs, expr) XM_ASSIGN_OR_RETURN_IMPL(XM_CONCAT(xm_res_, __LINE__), lhs, expr)
#define XM_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                             \
  if (!tmp.ok()) return tmp.status();            \
  lhs = std::move(tmp).value()
