// xmotion: live migration of virtual machines. See README.md.
#include <csignal>
#include <cstdio>

#include <spdlog/spdlog.h>

#include "migrate/cli/commands.h"

int main(int argc, char** argv) {
  std::signal(SIGPIPE, SIG_IGN);  // a dead peer must be an error code, not a dead process
  spdlog::set_pattern("%^%l%$ %v");
  CLI::App app{"xmotion: live migration of virtual machines (the XenMotion data path)"};
  app.require_subcommand(1);
  app.footer(xm::cli::ExitCodeHelp());
  app.set_version_flag("--version", "xmotion 0.1 (protocol 1)");
  xm::cli::Runner run;
  xm::cli::AddSend(app, run);
  xm::cli::AddReceive(app, run);
  xm::cli::AddDemo(app, run);
  xm::cli::AddCpu(app, run);
  xm::cli::AddPlot(app, run);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? 0 : xm::kExitUsage;
  }
  return run ? run() : xm::kExitUsage;
}
