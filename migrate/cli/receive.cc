// `xmotion receive`: accept one migrating guest on this host.
#include <unistd.h>

#include <cstdio>
#include <memory>
#include <optional>
#include <string>

#include "base/log.h"
#include "migrate/cli/commands.h"
#include "migrate/destination/receiver.h"

namespace xm::cli {
namespace {

struct ReceiveArgs {
  CommonOptions common;
  std::string listen = "0.0.0.0:7470";
  int ready_fd = -1;
  int accept_timeout_s = 0;
  int io_timeout_s = 60;
  int handoff_timeout_s = 60;
  int resume_window_s = 60;
  int resume_window_closed_s = 10;
  int linger_ms = 0;
  int selfcheck_wait_s = 0;
  std::string dump_memory;
  std::string host_featureset;
  std::string pool_level;
};

int RunReceive(ReceiveArgs& a) {
  Status st = FinishBackendOptions(a.common);
  auto hp = ParseHostPort(a.listen);
  auto key = LoadKey(a.common);
  auto transport = ParseTransportKind(a.common.transport);
  for (const Status& s : {st, hp.status(), key.status(), transport.status()}) {
    if (!s.ok()) {
      spdlog::error("xmotion receive: {}", s.message());
      return kExitUsage;
    }
  }
  Canceller cancel;
  auto watch = WatchForCancel(cancel, a.common, "xmotion receive");
  auto listener = Listener::Bind(*hp);
  if (!listener.ok()) {
    spdlog::error("xmotion receive: {}", listener.status().message());
    return kExitFailed;
  }
  if (a.ready_fd >= 0) {
    // Tells a parent (xmotion demo, a control plane) the port we listen on.
    std::string line = std::to_string(listener->port()) + "\n";
    (void)!::write(a.ready_fd, line.data(), line.size());
    ::close(a.ready_fd);
  }
  ReceiverOptions o;
  o.key = *key;
  o.security = SecurityFrom(a.common);
  o.transport = *transport;
  o.accept_timeout_ms = a.accept_timeout_s * 1000;
  o.io_timeout_ms = a.io_timeout_s * 1000;
  o.go_timeout_ms = a.handoff_timeout_s * 1000;
  o.resume_window_ms = a.resume_window_s * 1000;
  o.resume_window_closed_ms = a.resume_window_closed_s * 1000;
  o.linger_ms = a.linger_ms;
  o.selfcheck_wait_ms = a.selfcheck_wait_s * 1000;
  o.dump_memory = a.dump_memory;
  o.progress = MakeProgress(a.common.progress, "receive");
  o.cancel = &cancel;
  if (Status st = SetUpDestination(o, a.common.backend, a.host_featureset, a.pool_level); !st.ok()) {
    spdlog::error("xmotion receive: {}", st.message());
    return st.code() == Code::kInvalidArgument ? kExitUsage : kExitFailed;
  }
  Receiver receiver(o);
  MigrationReport r = receiver.Run(*listener);
  return Finish(r, a.common);
}

}  // namespace

void AddReceive(CLI::App& app, Runner& run) {
  auto a = std::make_shared<ReceiveArgs>();
  CLI::App* cmd = app.add_subcommand("receive", "Accept one live-migrating guest on this host");
  cmd->add_option("--listen", a->listen, "Address to listen on, HOST:PORT (port 0 = any free port)")
      ->capture_default_str();
  AddBackendOptions(*cmd, a->common);
  AddHugepagesFlag(*cmd, a->common.backend);
  cmd->add_option("--accept-timeout", a->accept_timeout_s, "Seconds to wait for a source (0 = forever)");
  cmd->add_option("--io-timeout", a->io_timeout_s, "Seconds without progress before giving up")
      ->check(CLI::Range(1, 86400))
      ->capture_default_str();
  cmd->add_option("--handoff-timeout", a->handoff_timeout_s, "Seconds to wait for GO once READY is sent")
      ->check(CLI::Range(1, 86400))
      ->capture_default_str();
  cmd->add_option("--resume-window", a->resume_window_s,
                  "Seconds to hold the partial guest after the connection breaks, for the source to reconnect "
                  "(0 = discard at once)")
      ->check(CLI::Range(0, 86400))
      ->capture_default_str();
  cmd->add_option("--resume-window-closed", a->resume_window_closed_s,
                  "Seconds to hold it instead (if shorter) when the source's end closed the connection (its "
                  "process died; a live source reconnects within a second)")
      ->check(CLI::Range(0, 86400))
      ->capture_default_str();
  cmd->add_option("--run-after", a->linger_ms,
                  "Milliseconds to keep the resumed guest running here before exiting (sim/kvm guests live in "
                  "this process)");
  cmd->add_option("--host-featureset", a->host_featureset,
                  "Use this CPU policy as the host's instead of detecting it (see cpumask/README.md for the forms)");
  cmd->add_option("--pool-level", a->pool_level,
                  "Cross-pool migration: the guest must also fit this pool level featureset");
  cmd->add_option("--wait-selfcheck", a->selfcheck_wait_s,
                  "After resume, wait up to this many seconds for the guest's own memory check to pass once "
                  "(guests that check themselves, e.g. the KVM demo guest)");
  cmd->add_option("--ready-fd", a->ready_fd, "Write the listening port and a newline to this fd once listening");
  cmd->add_option("--xen-stream-out", a->common.backend.xen_stream_out,
                  "Also write the received guest as Xen's libxl migration stream to FILE (any backend; check it with "
                  "Xen's verify-stream-v2 -f libxl)");
  cmd->add_option("--xen-config", a->common.backend.xen_config,
                  "xen: libxl domain config (JSON) to restore the domain with")
      ->group("Xen destination");
  cmd->add_option("--xen-name", a->common.backend.xen_name, "xen: name of the new domain (default: the config's)")
      ->group("Xen destination");
  cmd->add_flag("--xen-keep-paused", a->common.backend.xen_keep_paused,
                "xen: leave the new domain paused after GO (the control plane unpauses it)")
      ->group("Xen destination");
  cmd->add_option("--xen-restore-via", a->common.backend.xen_restore_via,
                  "xen: libxl (libxl_domain_create_restore in process) or xl (`xl restore -p` reading a pipe)")
      ->check(CLI::IsMember({"libxl", "xl"}))
      ->group("Xen destination");
  cmd->add_option("--dump-memory", a->dump_memory, "Testing: write guest memory to FILE after verify, before resume")
      ->group("Testing");
  cmd->callback([&run, a] { run = [a] { return RunReceive(*a); }; });
}

}  // namespace xm::cli
