#include "transport/uring_ring.h"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string_view>
#include <utility>

namespace xm {
namespace {

// Why io_uring_queue_init failed, in words an operator can act on.
std::string ExplainInitErrno(int err) {
  std::string text = std::strerror(err);
  switch (err) {
    case ENOSYS: return text + " (kernel without io_uring, e.g. Linux < 5.1)";
    case EPERM: return text + " (io_uring disabled by kernel.io_uring_disabled or a seccomp filter)";
    case ENOMEM: return text + " (locked-memory limit too low for the ring: raise RLIMIT_MEMLOCK)";
    case EINVAL: return text + " (kernel rejected the ring parameters; too old?)";
    default: return text;
  }
}

bool EnvDisablesUring() {
  const char* v = std::getenv(kDisableUringEnv);
  return v && *v && std::string_view(v) != "0";
}

struct ProbeDeleter {
  void operator()(io_uring_probe* p) const { io_uring_free_probe(p); }
};

}  // namespace

Result<UringRing> UringRing::Create(unsigned entries) {
  if (EnvDisablesUring())
    return Error(Code::kUnsupported, std::string("io_uring_queue_init: ") + ExplainInitErrno(ENOSYS) + " [forced by " +
                                         kDisableUringEnv + "=1]");
  UringRing r;
  io_uring_params p{};
  p.flags = IORING_SETUP_CQSIZE;
  p.cq_entries = entries * 4;
  int rc = io_uring_queue_init_params(entries, &r.ring_, &p);
  if (rc < 0) return Error(Code::kUnsupported, "io_uring_queue_init: " + ExplainInitErrno(-rc));
  r.live_ = true;
  r.sq_entries_ = p.sq_entries;

  // Without these the transport would need slow paths nobody could test here:
  // NODROP (5.5) so completions are never lost, EXT_ARG (5.11) so waits can time
  // out without spending a submission slot.
  if (!(p.features & IORING_FEAT_NODROP) || !(p.features & IORING_FEAT_EXT_ARG))
    return Error(Code::kUnsupported, "io_uring on this kernel lacks IORING_FEAT_NODROP/EXT_ARG (Linux < 5.11)");
  std::unique_ptr<io_uring_probe, ProbeDeleter> probe(io_uring_get_probe_ring(&r.ring_));
  if (!probe) return Error(Code::kUnsupported, "io_uring opcode probe failed (Linux < 5.6)");
  struct Need {
    int op;
    const char* name;
  };
  for (Need n : {Need{IORING_OP_SEND, "SEND"}, Need{IORING_OP_RECV, "RECV"}, Need{IORING_OP_SENDMSG, "SENDMSG"},
                 Need{IORING_OP_LINK_TIMEOUT, "LINK_TIMEOUT"}, Need{IORING_OP_ASYNC_CANCEL, "ASYNC_CANCEL"}}) {
    if (!io_uring_opcode_supported(probe.get(), n.op))
      return Error(Code::kUnsupported, std::string("io_uring on this kernel lacks IORING_OP_") + n.name);
  }
  r.caps_.ordered_links = io_uring_opcode_supported(probe.get(), IORING_OP_SEND_ZC);
  return r;
}

UringRing::UringRing(UringRing&& o) noexcept
    : ring_(o.ring_), live_(std::exchange(o.live_, false)), sq_entries_(o.sq_entries_), caps_(o.caps_) {}

UringRing& UringRing::operator=(UringRing&& o) noexcept {
  if (this != &o) {
    reset();
    ring_ = o.ring_;
    live_ = std::exchange(o.live_, false);
    sq_entries_ = o.sq_entries_;
    caps_ = o.caps_;
  }
  return *this;
}

void UringRing::reset() {
  if (live_) io_uring_queue_exit(&ring_);
  live_ = false;
}

}  // namespace xm
