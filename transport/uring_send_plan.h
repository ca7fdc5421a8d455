// How a gathered send is cut into io_uring send operations, and how an
// operation that completed short is resumed.
//
// Kept apart from UringStream because it is pure bookkeeping: the tests drive
// short sends through it directly, which a loopback socket will not produce on
// demand.
#pragma once

#include <sys/uio.h>

#include <cstddef>
#include <span>
#include <vector>

namespace xm {

struct SendPlanLimits {
  size_t max_iov = 1024;        // iovecs per sendmsg (the kernel's UIO_MAXIOV)
  size_t max_bytes = 1 << 20;   // bytes per operation: each completion is progress
};

// One send SQE: a run of iovecs.
struct SendOp {
  std::vector<iovec> iov;

  size_t bytes() const;
  // Drops the first `n` bytes (n <= bytes()), after the kernel sent only those.
  void Consume(size_t n);
};

// Appends the operations that send `in` in order to `out`: adjacent iovecs that
// are contiguous in memory are merged, empty ones dropped, runs are cut at
// max_iov / max_bytes.
void PlanSends(std::span<const iovec> in, const SendPlanLimits& limits, std::vector<SendOp>* out);

}  // namespace xm
