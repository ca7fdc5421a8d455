// UringRing: sole owner of one io_uring instance, plus what the running kernel
// offers on it.
//
// Creating the ring is the step that fails on hosts where io_uring cannot be used
// (no io_uring before Linux 5.1, e.g. 4.19 dom0 kernels: ENOSYS;
// kernel.io_uring_disabled or a seccomp filter: EPERM; locked-memory limit:
// ENOMEM), so the transport factory tries it first and falls back to plain
// sockets with the reason this returns. Setting XMOTION_DISABLE_IO_URING=1 makes
// Create fail exactly as on a kernel without io_uring, so tests and operators can
// force the fallback.
#pragma once

#include <liburing.h>

#include <string>

#include "base/status.h"

namespace xm {

inline constexpr const char* kDisableUringEnv = "XMOTION_DISABLE_IO_URING";

// What the kernel supports, found by probing the ring.
struct UringCaps {
  // Linked sends stay in order only if the kernel retries short sends itself
  // (MSG_WAITALL on io_uring sends) and so breaks the link when one still ends
  // short. That arrived before IORING_OP_SEND_ZC (Linux 6.0), so support for
  // that opcode (which xmotion does not use) is the witness.
  bool ordered_links = false;
};

class UringRing {
 public:
  // `entries` submission slots; the completion queue gets 4x as many because
  // zero-copy sends post two completions each.
  static Result<UringRing> Create(unsigned entries);

  UringRing() = default;
  UringRing(const UringRing&) = delete;
  UringRing& operator=(const UringRing&) = delete;
  UringRing(UringRing&& o) noexcept;
  UringRing& operator=(UringRing&& o) noexcept;
  ~UringRing() { reset(); }

  io_uring* get() { return &ring_; }
  const UringCaps& caps() const { return caps_; }
  unsigned sq_entries() const { return sq_entries_; }
  bool valid() const { return live_; }
  void reset();

 private:
  io_uring ring_{};
  bool live_ = false;
  unsigned sq_entries_ = 0;
  UringCaps caps_;
};

}  // namespace xm
