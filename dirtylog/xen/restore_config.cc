#include "dirtylog/xen/restore_config.h"

#include <nlohmann/json.hpp>

namespace xm::xen {

Result<RestoreConfig> PrepareRestoreConfig(std::string_view config_json, const std::string& new_name) {
  auto j = nlohmann::json::parse(config_json, nullptr, false);
  if (j.is_discarded() || !j.is_object())
    return Error(Code::kInvalidArgument, "xen config: not a JSON object (want libxl's domain config JSON)");
  if (!j.contains("c_info") || !j["c_info"].is_object())
    return Error(Code::kInvalidArgument, "xen config: no c_info section (is this libxl JSON, not an xl.cfg file?)");
  auto& c = j["c_info"];
  std::string type = c.value("type", std::string());
  if (type == "pv")
    return Error(Code::kUnsupported, "xen config: a PV guest; xmotion restores HVM and PVH guests only");
  if (type != "hvm" && type != "pvh")
    return Error(Code::kInvalidArgument, "xen config: c_info.type is '" + type + "', want \"hvm\" or \"pvh\"");
  if (!new_name.empty()) c["name"] = new_name;
  std::string name = c.value("name", std::string());
  if (name.empty()) return Error(Code::kInvalidArgument, "xen config: the domain has no name (set --xen-name)");
  // A domid carried over from the source would be reused on this host; let Xen pick.
  if (c.contains("domid")) c.erase("domid");
  return RestoreConfig{j.dump(), name, type};
}

std::vector<std::string> XlRestoreArgv(const std::string& xl, int stream_fd) {
  return {xl, "restore", "-p", "/proc/self/fd/" + std::to_string(stream_fd)};
}

}  // namespace xm::xen
