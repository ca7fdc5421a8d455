#include "dirtylog/xen/qmp_client.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace xm::xen {

std::string QmpSocketPath(uint32_t domid) { return "/var/run/xen/qmp-libxl-" + std::to_string(domid); }

Result<QmpClient> QmpClient::Connect(const std::string& path, int timeout_ms) {
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return ErrnoError("qmp: socket", errno);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof addr.sun_path) return Error(Code::kInvalidArgument, "qmp: socket path too long: " + path);
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
    return ErrnoError("qmp: connect " + path, errno);
  return Handshake(std::move(fd), timeout_ms);
}

Result<QmpClient> QmpClient::Handshake(UniqueFd fd, int timeout_ms) {
  QmpClient c(std::move(fd), timeout_ms);
  XM_ASSIGN_OR_RETURN(nlohmann::json greeting, c.ReadMessage());
  if (!greeting.is_object() || !greeting.contains("QMP"))
    return Error(Code::kProtocol, "qmp: peer did not greet with a QMP banner");
  auto caps = c.Execute("qmp_capabilities");
  if (!caps.ok()) return std::move(caps).With("qmp: capabilities negotiation").status();
  return c;
}

Status QmpClient::Send(const nlohmann::json& msg) {
  std::string line = msg.dump() + "\r\n";
  size_t off = 0;
  while (off < line.size()) {
    ssize_t w = ::send(fd_.get(), line.data() + off, line.size() - off, MSG_NOSIGNAL);
    if (w < 0) {
      if (errno == EINTR) continue;
      return ErrnoError("qmp: send", errno);
    }
    off += static_cast<size_t>(w);
  }
  return {};
}

// One JSON message per line, as QEMU sends them.
Result<nlohmann::json> QmpClient::ReadMessage() {
  for (;;) {
    size_t nl = buf_.find('\n');
    if (nl != std::string::npos) {
      std::string line = buf_.substr(0, nl);
      buf_.erase(0, nl + 1);
      if (line.find_first_not_of(" \r\t") == std::string::npos) continue;
      auto j = nlohmann::json::parse(line, nullptr, false);
      if (j.is_discarded()) return Error(Code::kProtocol, "qmp: malformed message: " + line.substr(0, 120));
      return j;
    }
    pollfd p{fd_.get(), POLLIN, 0};
    int r = ::poll(&p, 1, timeout_ms_);
    if (r < 0) {
      if (errno == EINTR) continue;
      return ErrnoError("qmp: poll", errno);
    }
    if (r == 0) return Error(Code::kTimeout, "qmp: no answer within " + std::to_string(timeout_ms_) + " ms");
    char chunk[4096];
    ssize_t n = ::recv(fd_.get(), chunk, sizeof chunk, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoError("qmp: recv", errno);
    }
    if (n == 0) return Error(Code::kIo, "qmp: the device model closed the connection");
    buf_.append(chunk, static_cast<size_t>(n));
  }
}

Result<nlohmann::json> QmpClient::Execute(const std::string& command, const nlohmann::json& arguments) {
  uint64_t id = next_id_++;
  nlohmann::json msg = {{"execute", command}, {"id", id}};
  if (!arguments.is_null()) msg["arguments"] = arguments;
  XM_TRY(Send(msg));
  for (;;) {
    XM_ASSIGN_OR_RETURN(nlohmann::json reply, ReadMessage());
    if (!reply.is_object()) return Error(Code::kProtocol, "qmp: " + command + ": reply is not an object");
    if (reply.contains("event")) continue;  // asynchronous, not ours
    if (!reply.contains("id") || reply["id"] != id)
      return Error(Code::kProtocol, "qmp: " + command + ": reply to another command: " + reply.dump().substr(0, 120));
    if (reply.contains("error")) {
      const auto& e = reply["error"];
      return Error(Code::kIo, "qmp: " + command + ": " + e.value("class", std::string("error")) + ": " +
                                  e.value("desc", std::string("?")));
    }
    if (!reply.contains("return")) return Error(Code::kProtocol, "qmp: " + command + ": reply has no result");
    return reply["return"];
  }
}

}  // namespace xm::xen
