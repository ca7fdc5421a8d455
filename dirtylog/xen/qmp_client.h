// QmpClient: the few QMP commands xmotion sends to a Xen HVM guest's device
// model (upstream QEMU), over libxl's per-domain socket
// /var/run/xen/qmp-libxl-<domid>.
//
// Why: QEMU writes into guest memory itself (emulated DMA, VRAM) and Xen's
// log-dirty does not see those writes unless QEMU is told to report them
// (`xen-set-global-dirty-log`), as libxl does for `xl migrate`. Without it the
// last rounds could miss pages QEMU wrote. PVH guests have no device model.
//
// The protocol logic (greeting, capabilities, command/response matching,
// skipping asynchronous events) is tested against a scripted peer; talking to
// a real QEMU happens only in the nested-Xen lab.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "base/status.h"
#include "base/unique_fd.h"

namespace xm::xen {

std::string QmpSocketPath(uint32_t domid);

class QmpClient {
 public:
  // Takes a connected stream socket; reads the greeting, negotiates capabilities.
  static Result<QmpClient> Handshake(UniqueFd fd, int timeout_ms);
  static Result<QmpClient> Connect(const std::string& path, int timeout_ms);

  // Runs one command; returns its "return" value or the error QEMU gave.
  Result<nlohmann::json> Execute(const std::string& command, const nlohmann::json& arguments = nullptr);

 private:
  QmpClient(UniqueFd fd, int timeout_ms) : fd_(std::move(fd)), timeout_ms_(timeout_ms) {}
  Result<nlohmann::json> ReadMessage();
  Status Send(const nlohmann::json& msg);

  UniqueFd fd_;
  int timeout_ms_;
  std::string buf_;
  uint64_t next_id_ = 1;
};

}  // namespace xm::xen
