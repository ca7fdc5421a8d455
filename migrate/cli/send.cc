// `xmotion send`: migrate a guest away from this host.
#include <cstdio>
#include <memory>
#include <optional>

#include "base/log.h"
#include "base/units.h"
#include "migrate/cli/commands.h"
#include "migrate/common/source_guard.h"
#include "migrate/source/engine.h"

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
  int handoff_timeout_s = 120;
  uint32_t reconnect = 3;
  uint32_t streams = 1;
  uint32_t workers = 0;
  std::string delta_cache = "256M";
  uint32_t dup_index = 1u << 16;
  bool no_adaptive = false;
  bool no_record_streams = false;
};

int RunSend(SendArgs& a) {
  Status st = FinishBackendOptions(a.common);
  auto hp = ParseHostPort(a.to);
  auto key = LoadKey(a.common);
  auto transport = ParseTransportKind(a.common.transport);
  auto delta = ParseSize(a.delta_cache);
  for (const Status& s : {st, hp.status(), key.status(), transport.status(), delta.status()}) {
    if (!s.ok()) {
      spdlog::error("xmotion send: {}", s.message());
      return kExitUsage;
    }
  }
  SourceOptions o;
  o.to = *hp;
  o.key = *key;
  o.security = SecurityFrom(a.common);
  o.compress = !a.no_compress;
  o.policy.downtime_target_ms = a.downtime_ms;
  o.policy.max_rounds = a.max_rounds;
  o.policy.max_precopy_s = a.max_precopy_s;
  o.policy.auto_converge = !a.no_auto_converge;
  o.verify = a.verify == "full" ? VerifyMode::kFull : VerifyMode::kIncremental;
  o.dump_at_pause = a.dump_at_pause;
  o.io_timeout_ms = a.io_timeout_s * 1000;
  o.handoff_timeout_ms = a.handoff_timeout_s * 1000;
  o.reconnect = a.reconnect;
  o.progress = MakeProgress(a.common.progress, "send");
  o.streams = a.streams;
  o.transport = *transport;
  o.pipeline.workers = a.workers;
  o.pipeline.delta_cache_bytes = *delta;
  o.pipeline.dup_index_entries = a.dup_index;
  o.pipeline.adaptive = !a.no_adaptive;
  o.pipeline.record_streams = !a.no_record_streams;
  Canceller cancel;
  auto watch = WatchForCancel(cancel, a.common, "xmotion send");
  o.cancel = &cancel;
  auto guest = OpenSource(a.common.backend);
  if (!guest.ok()) {
    spdlog::error("xmotion send: {}", guest.status().message());
    return guest.status().code() == Code::kInvalidArgument ? kExitUsage : kExitFailed;
  }
  // One migration per guest: a hypervisor's guest by its id (Xen: the domid),
  // an in-process guest by its --domain label if it has one.
  std::optional<SourceGuard> guard;
  const std::string id = (*guest)->guest_id();
  if (!id.empty() || !a.common.backend.domain.empty()) {
    pid_t holder = -1;
    auto g = SourceGuard::Acquire(SourceGuard::DefaultDir(),
                                  a.common.backend.backend + "-" + (id.empty() ? a.common.backend.domain : id), &holder);
    if (g.ok()) {
      guard = std::move(g).value();
    } else if (holder >= 0) {
      spdlog::error("xmotion send: {}", g.status().message());
      return kExitBusy;
    } else if (!id.empty()) {
      spdlog::error("xmotion send: {} (refusing to migrate a guest another send could be migrating too)",
                    g.status().message());
      return kExitFailed;
    } else {
      spdlog::warn("xmotion send: {}; going on without the guard (an in-process guest)", g.status().message());
    }
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
  cmd->add_option("--downtime-target", a->downtime_ms, "Downtime ceiling in ms (below it, pre-copy goes on while rounds still cut the rest)")
      ->capture_default_str();
  cmd->add_option("--max-rounds", a->max_rounds, "Pre-copy rounds before stop-and-copy regardless")
      ->check(CLI::Range(1u, 100000u))
      ->capture_default_str();
  cmd->add_option("--max-precopy", a->max_precopy_s, "Seconds of pre-copy before stop-and-copy (0 = no limit)");
  cmd->add_flag("--no-compress", a->no_compress, "Send pages raw (no LZ4 or zstd)");
  cmd->add_flag("--no-adaptive", a->no_adaptive,
                "Always LZ4 (by default each batch gets none, LZ4 or zstd by the measured link rate and CPU cost)");
  cmd->add_flag("--no-record-streams", a->no_record_streams,
                "Compress every page alone, as with a peer that predates record streams (by default a batch's "
                "pages of one method are one LZ4 or zstd stream: smaller and, for zstd, faster)");
  cmd->add_option("--streams", a->streams, "Parallel TCP connections")->check(CLI::Range(1u, 16u))->capture_default_str();
  cmd->add_option("--workers", a->workers, "Page classify/compress threads (0 = one per CPU)")->capture_default_str();
  cmd->add_option("--delta-cache", a->delta_cache,
                  "Memory for last-sent versions of re-dirtied pages, sent as XOR deltas (0 = off)")
      ->capture_default_str();
  cmd->add_option("--dup-index", a->dup_index, "Entries in the duplicate-page index (0 = off)")->capture_default_str();
  cmd->add_flag("--no-auto-converge", a->no_auto_converge, "Never throttle the guest");
  cmd->add_option("--verify", a->verify,
                  "incremental: digest of page hashes as sent; full: also rehash all memory while paused "
                  "(proves the dirty log, costs downtime)")
      ->check(CLI::IsMember({"incremental", "full"}))
      ->capture_default_str();
  cmd->add_option("--io-timeout", a->io_timeout_s,
                  "Seconds without progress before giving up (each wait on the network, and each reconnect's attempts "
                  "together)")
      ->check(CLI::Range(1, 86400))
      ->capture_default_str();
  cmd->add_option("--handoff-timeout", a->handoff_timeout_s,
                  "Seconds the destination may take to apply a round (plus 1 s per 20 MiB of it), to answer READY "
                  "and DONE")
      ->check(CLI::Range(1, 86400))
      ->capture_default_str();
  cmd->add_option("--reconnect", a->reconnect,
                  "Attempts to reconnect and resume after a connection breaks before the vCPU state is sent (0 = "
                  "fail at once)")
      ->check(CLI::Range(0u, 100u))
      ->capture_default_str();
  cmd->add_option("--dump-at-pause", a->dump_at_pause, "Testing: write guest memory to FILE while paused")
      ->group("Testing");
  cmd->callback([&run, a] { run = [a] { return RunSend(*a); }; });
}

}  // namespace xm::cli
