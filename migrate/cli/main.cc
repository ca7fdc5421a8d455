// xmotion: live migration of virtual machines. See README.md and DESIGN.md.
#include <csignal>
#include <string>

#include "base/log.h"
#include "migrate/cli/commands.h"
#include "transport/messages.h"

int main(int argc, char** argv) {
  std::signal(SIGPIPE, SIG_IGN);  // a dead peer must be an error code, not a dead process
  if (argc > 1 && std::string(argv[1]) == "emu-manager") return xm::cli::RunEmuManager(argc - 1, argv + 1);
  CLI::App app{"xmotion: live migration of virtual machines (the XenMotion data path)"};
  app.require_subcommand(1);
  app.footer(xm::cli::ExitCodeHelp());
  app.fallthrough();  // the logging options below may follow the subcommand
  app.set_version_flag("--version", "xmotion 0.1 (protocol " + std::to_string(xm::kProtocolVersion) + ")");
  xm::LogOptions log;
  bool verbose = false;
  app.add_flag("--verbose", verbose, "Log detail for debugging (same as --log-level debug)");
  app.add_option("--log-level", log.level, "What reaches stderr: error, warn, info or debug")
      ->check(CLI::IsMember({"error", "warn", "info", "debug"}))
      ->capture_default_str();
  app.add_option("--log-file", log.file, "Also append every log message, with time and level, to FILE");
  app.add_flag("--syslog", log.syslog, "Also log to syslog (for a control plane that collects it)");
  xm::cli::Runner run;
  xm::cli::AddSend(app, run);
  xm::cli::AddReceive(app, run);
  xm::cli::AddDemo(app, run);
  xm::cli::AddCpu(app, run);
  xm::cli::AddBackends(app, run);
  xm::cli::AddPlot(app, run);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? 0 : xm::kExitUsage;
  }
  if (verbose) log.level = "debug";
  if (xm::Status st = xm::SetUpLogging(log); !st.ok()) {
    spdlog::error("xmotion: {}", st.message());
    return xm::kExitUsage;
  }
  return run ? run() : xm::kExitUsage;
}
