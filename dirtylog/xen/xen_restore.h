// RestoreRunner: the toolstack half of a Xen destination. It owns a pipe; the
// destination writes Xen's stream into it, round by round, while the
// toolstack on the other end builds the domain — its memory as PAGE_DATA
// arrives, its devices from the config — and leaves it paused.
//
//   libxl  libxl_domain_create_restore() in a thread of this process, reading
//          a libxl-framed stream (the config is handed over as a struct)
//   xl     `xl restore -p /proc/self/fd/3` as a child, reading an xl-framed stream
//          (the config travels in the xl header, as with `xl migrate`); xl
//          then keeps its usual background process watching the domain
//   libxc  xc_domain_restore() in a thread of this process, into a domain the
//          control plane created (xenopsd: emu-manager -domid), reading the
//          bare libxc stream: no config and no devices (the control plane adds
//          them); it reports the xenstore and console ring frames it found
//
// Needs a Xen dom0; exercised only in the nested-Xen lab.
#pragma once

#include <memory>
#include <string>

#include "base/status.h"
#include "dirtylog/xen/restore_config.h"
#include "dirtylog/xen/stream/writer.h"

namespace xm::xen {

class RestoreRunner {
 public:
  virtual ~RestoreRunner() = default;
  virtual Framing framing() const = 0;
  // Where the stream goes.
  virtual int stream_fd() const = 0;
  // The toolstack is still restoring (has not failed, nor finished).
  virtual bool Running() = 0;
  // The stream is complete: closes the pipe and waits until the toolstack has
  // built the domain (paused). Returns its domid.
  virtual Result<uint32_t> Finish() = 0;
  // The migration failed: stop the toolstack and destroy whatever it built
  // (libxc: the domain is the control plane's, left for it to destroy).
  virtual void Abort() = 0;
  // After Finish(): the guest's xenstore and console ring frames (libxc only;
  // libxl and xl introduce the domain themselves).
  virtual uint64_t store_mfn() const { return 0; }
  virtual uint64_t console_mfn() const { return 0; }
};

Result<std::unique_ptr<RestoreRunner>> StartLibxlRestore(const RestoreConfig& cfg);
Result<std::unique_ptr<RestoreRunner>> StartXlRestore(const RestoreConfig& cfg, const std::string& xl = "xl");
// REQUIRES: domain `domid` exists (empty, paused) with its memory limit set;
// the two ports are unbound event channels for dom0 (xenopsd allocates them).
Result<std::unique_ptr<RestoreRunner>> StartLibxcRestore(uint32_t domid, uint32_t store_port, uint32_t console_port);

}  // namespace xm::xen
