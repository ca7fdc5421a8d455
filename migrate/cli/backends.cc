// `xmotion backends`: the registry's table (dirtylog/registry.h), and whether
// each backend can run on this host now.
#include <cstdio>
#include <memory>
#include <string>

#include "migrate/cli/commands.h"

namespace xm::cli {
namespace {

int RunBackends(bool json) {
  nlohmann::json all = nlohmann::json::array();
  for (const BackendInfo* b : Backends()) {
    Status usable = b->caps.built ? b->usable() : Error(Code::kUnsupported, "not built into this xmotion");
    if (json) {
      all.push_back({{"name", b->name},
                     {"summary", b->summary},
                     {"built", b->caps.built},
                     {"usable", usable.ok()},
                     {"why_not", usable.ok() ? "" : usable.message()},
                     {"starts_guest", b->caps.starts_guest},
                     {"direct_memory", b->caps.direct_memory},
                     {"guest_selfcheck", b->caps.guest_selfcheck}});
      continue;
    }
    std::printf("%-5s %s\n      %s\n", std::string(b->name).c_str(), std::string(b->summary).c_str(),
                usable.ok() ? "usable here" : usable.message().c_str());
  }
  if (json) std::printf("%s\n", all.dump(2).c_str());
  return kExitCompleted;
}

}  // namespace

void AddBackends(CLI::App& app, Runner& run) {
  auto json = std::make_shared<bool>(false);
  CLI::App* cmd = app.add_subcommand("backends", "List the hypervisor backends and whether each can run here");
  cmd->add_flag("--json", *json, "Print the table as JSON");
  cmd->callback([&run, json] { run = [json] { return RunBackends(*json); }; });
}

}  // namespace xm::cli
