// What a Xen destination hands to the toolstack before the stream: the libxl
// domain config (JSON, as xl embeds it in its save files and `xl migrate`
// sends it), adjusted for the restore, and the `xl restore` command line.
// Pure logic, tested without Xen.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"

namespace xm::xen {

struct RestoreConfig {
  std::string json;         // the config to restore with
  std::string domain_name;  // c_info.name after renaming
  std::string type;         // "hvm" or "pvh"
};

// Checks the config describes an HVM or PVH guest (PV is refused, as on the
// source) and renames the domain when `new_name` is set.
Result<RestoreConfig> PrepareRestoreConfig(std::string_view config_json, const std::string& new_name);

// `xl restore -p /proc/self/fd/<fd>` (not /dev/fd, which only exists where
// udev or systemd made the link: the lab's busybox-booted dom0 has none): xl reads the xl-framed stream (its header holds
// the config) from the pipe, builds the domain and its devices, leaves it
// paused, and keeps a background xl watching it as for any xl-created domain.
std::vector<std::string> XlRestoreArgv(const std::string& xl, int stream_fd);

}  // namespace xm::xen
