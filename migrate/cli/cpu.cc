// `xmotion cpu …`: CPU featuresets, pool levelling and compatibility checks.
// (Being built under the cpumask issue; until then the subcommand says so.)
#include <cstdio>

#include "migrate/cli/commands.h"

namespace xm::cli {

void AddCpu(CLI::App& app, Runner& run) {
  CLI::App* cmd = app.add_subcommand("cpu", "CPU featuresets, pool levelling and compatibility checks");
  cmd->callback([&run] {
    run = [] {
      std::fprintf(stderr, "xmotion cpu: not built yet\n");
      return static_cast<int>(kExitUsage);
    };
  });
}

}  // namespace xm::cli
