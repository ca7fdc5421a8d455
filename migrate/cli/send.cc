// `xmotion send`: migrate a guest away from this host.
#include <cstdio>
#include <memory>

#include "migrate/cli/commands.h"

namespace xm::cli {
namespace {

struct SendArgs {
  CommonOptions common;
  std::string to;
  double downtime_ms = 300;
  uint32_t max_rounds = 30;
  double max_precopy_s = 0;
  bool no_compress = false;
  bool no_auto_converge = false;
  std::string verify = "incremental";
  std::string dump_at_pause;
  int io_timeout_s = 60;
};

int RunSend(SendArgs& a) {
  Status st = FinishBackendOptions(a.common);
  auto hp = ParseHostPort(a.to);
  auto key = LoadKey(a.common);
  if (!st.ok() || !hp.ok() || !key.ok()) {
    std::fprintf(stderr, "xmotion send: %s\n",
                 (!st.ok() ? st : !hp.ok() ? hp.status() : key.status()).message().c_str());
    return kExitUsage;
  }
  SourceOptions o;
  o.to = *hp;
  o.key = *key;
  o.compress = !a.no_compress;
  o.policy.downtime_target_ms = a.downtime_ms;
  o.policy.max_rounds = a.max_rounds;
  o.policy.max_precopy_s = a.max_precopy_s;
  o.policy.auto_converge = !a.no_auto_converge;
  o.verify = a.verify == "full" ? VerifyMode::kFull : VerifyMode::kIncremental;
  o.dump_at_pause = a.dump_at_pause;
  o.io_timeout_ms = a.io_timeout_s * 1000;
  o.progress = MakeProgress(a.common.progress, "send");
  auto guest = OpenSource(a.common.backend);
  if (!guest.ok()) {
    std::fprintf(stderr, "xmotion send: %s\n", guest.status().message().c_str());
    return guest.status().code() == Code::kInvalidArgument ? kExitUsage : kExitFailed;
  }
  SourceEngine engine(**guest, o);
  MigrationReport r = engine.Run();
  return Finish(r, a.common);
}

}  // namespace

void AddSend(CLI::App& app, Runner& run) {
  auto a = std::make_shared<SendArgs>();
  CLI::App* cmd = app.add_subcommand("send", "Live-migrate a guest from this host to a receiver");
  cmd->add_option("--to", a->to, "Receiver address HOST:PORT")->required();
  AddBackendOptions(*cmd, a->common);
  cmd->add_option("--downtime-target", a->downtime_ms, "Stop-and-copy when the rest fits this many ms")
      ->capture_default_str();
  cmd->add_option("--max-rounds", a->max_rounds, "Pre-copy rounds before stop-and-copy regardless")
      ->check(CLI::Range(1u, 1000u))
      ->capture_default_str();
  cmd->add_option("--max-precopy", a->max_precopy_s, "Seconds of pre-copy before stop-and-copy (0 = no limit)");
  cmd->add_flag("--no-compress", a->no_compress, "Send pages raw (no LZ4)");
  cmd->add_flag("--no-auto-converge", a->no_auto_converge, "Never throttle the guest");
  cmd->add_option("--verify", a->verify,
                  "incremental: digest of page hashes as sent; full: also rehash all memory while paused "
                  "(proves the dirty log, costs downtime)")
      ->check(CLI::IsMember({"incremental", "full"}))
      ->capture_default_str();
  cmd->add_option("--io-timeout", a->io_timeout_s, "Seconds without progress before giving up")->capture_default_str();
  cmd->add_option("--dump-at-pause", a->dump_at_pause, "Testing: write guest memory to FILE while paused")
      ->group("Testing");
  cmd->callback([&run, a] { run = [a] { return RunSend(*a); }; });
}

}  // namespace xm::cli
