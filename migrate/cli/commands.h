// The xmotion subcommands. Each registers its options on the CLI11 app and
// returns a runner the main function calls after parsing.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include <CLI/CLI.hpp>

#include "dirtylog/registry.h"
#include "migrate/cli/cancel_watch.h"
#include "migrate/common/cancel.h"
#include "migrate/common/exit_code.h"
#include "migrate/common/progress.h"
#include "migrate/common/report.h"
#include "migrate/destination/receiver.h"
#include "transport/stream_factory.h"

namespace xm::cli {

using Runner = std::function<int()>;

void AddSend(CLI::App& app, Runner& run);
void AddReceive(CLI::App& app, Runner& run);
void AddDemo(CLI::App& app, Runner& run);
void AddCpu(CLI::App& app, Runner& run);
void AddBackends(CLI::App& app, Runner& run);
void AddPlot(CLI::App& app, Runner& run);
// `xmotion emu-manager ARGS`: xenopsd's option syntax (single-dash long options),
// so it is parsed before CLI11 sees the command line (emu_manager.cc).
int RunEmuManager(int argc, char** argv);

// Options every migrating command shares (guest, policy, progress).
struct CommonOptions {
  BackendOptions backend;
  std::string memory = "256M";
  std::string key_file;
  std::string tls_cert, tls_key, tls_ca;  // PEM files: certificates instead of a pre-shared key
  bool no_encrypt = false;                // integrity only (keyed MAC), no secrecy
  std::string report;
  std::string progress = "auto";  // auto | human | json | none
  bool quiet = false;             // no summary on stdout (the caller reads --report)
  std::string transport = "auto"; // auto | io_uring | sockets
  int control_fd = -1;            // `abort` lines cancel (cancel_watch.h)
};
void AddBackendOptions(CLI::App& cmd, CommonOptions& o);
// --hugepages, for the commands that build a destination guest (receive, demo).
void AddHugepagesFlag(CLI::App& cmd, BackendOptions& o);
// Parses sizes and checks the backend; returns a usage error otherwise.
Status FinishBackendOptions(CommonOptions& o);
Result<std::vector<uint8_t>> LoadKey(const CommonOptions& o);
// The TLS/MAC settings of the command line (their `psk` is left to `key`).
SecurityOptions SecurityFrom(const CommonOptions& o);
// The progress sink for --progress: JSON lines on stdout, a bar redrawn on a
// terminal, log lines, or nothing. `who` is "send" or "receive".
ProgressFn MakeProgress(const std::string& mode, const std::string& who);
// Starts watching SIGINT/SIGTERM and --control-fd for `cancel`; logs and
// returns nullptr (signals then kill as usual) when it cannot.
// REQUIRES: called before the command starts any thread.
std::unique_ptr<CancelWatch> WatchForCancel(Canceller& cancel, const CommonOptions& o, const std::string& who);
// The destination half every receiving command shares (receive, emu-manager):
// the guest's CPU policy is checked against this host's (`host_featureset`, or
// the backend's view of this host when empty) and `pool_level` before any page
// moves, and again once the hypervisor applied it; the source's policy is kept
// for the backend factory (a Xen stream carries it before any page); where
// guests live outside this process (Xen), the hypervisor's free memory bounds
// the guest. A bad featureset or level is kInvalidArgument.
Status SetUpDestination(ReceiverOptions& o, const BackendOptions& bo, const std::string& host_featureset,
                        const std::string& pool_level);
// The exit-code table every command uses, for --help (README "Exit codes").
std::string ExitCodeHelp();
// Prints the summary and writes --report; returns the exit code.
int Finish(const MigrationReport& r, const CommonOptions& o);

}  // namespace xm::cli
