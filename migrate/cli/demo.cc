// `xmotion demo`: a whole live migration on this machine — a receiver and a
// sender, two processes on 127.0.0.1 — with both sides' reports.
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "base/log.h"
#include "base/units.h"
#include "migrate/cli/commands.h"
#include "migrate/common/report.h"

extern char** environ;

namespace xm::cli {
namespace {

struct DemoArgs {
  CommonOptions common;
  std::vector<std::string> send_extra;
  std::string downtime = "300";
  bool no_compress = false;
  std::string verify = "incremental";
  int run_after_ms = 500;
  std::string host_featureset;
  std::string pool_level;
};

std::string SelfExe() {
  std::error_code ec;
  auto p = std::filesystem::read_symlink("/proc/self/exe", ec);
  return ec ? "xmotion" : p.string();
}

Result<pid_t> Spawn(const std::vector<std::string>& args, int ready_fd) {
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  if (ready_fd >= 0) posix_spawn_file_actions_adddup2(&fa, ready_fd, 3);
  std::vector<char*> argv;
  for (const auto& s : args) argv.push_back(const_cast<char*>(s.c_str()));
  argv.push_back(nullptr);
  pid_t pid = 0;
  int rc = posix_spawn(&pid, argv[0], &fa, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0) return ErrnoError("spawn " + args[0], rc);
  return pid;
}

int Wait(pid_t pid) {
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  return 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}

nlohmann::json ReadJson(const std::string& path) {
  std::ifstream in(path);
  if (!in) return nullptr;
  auto j = nlohmann::json::parse(in, nullptr, false);
  return j.is_discarded() ? nlohmann::json(nullptr) : j;
}

void PrintGuest(const char* who, const nlohmann::json& r) {
  if (!r.is_object() || !r.contains("guest")) return;
  const nlohmann::json& g = r["guest"];
  if (g.contains("says")) std::printf("%s guest says: %s\n", who, g["says"].get<std::string>().c_str());
  nlohmann::json rest = g;
  rest.erase("says");
  std::printf("%s guest: %s\n", who, rest.dump().c_str());
  if (r.contains("guest_selfcheck")) std::printf("%s guest self-check: %s\n", who, r["guest_selfcheck"].dump().c_str());
}

// The usable backend that starts its own guest with the highest demo priority
// (the KVM guest checks itself; the sim guest runs anywhere).
std::string DefaultDemoBackend() {
  const BackendInfo* best = nullptr;
  for (const BackendInfo* b : Backends())
    if (b->caps.built && b->caps.demo_priority > 0 && (!best || b->caps.demo_priority > best->caps.demo_priority) &&
        b->usable().ok())
      best = b;
  return std::string(best ? best->name : Backends().front()->name);
}

// Both reports in one table: each side's own measurements, with units.
void PrintSideBySide(const nlohmann::json& src, const nlohmann::json& dst) {
  if (!src.is_object() || !dst.is_object()) return;
  auto ms = [](const nlohmann::json& r, const char* k) {
    char b[32];
    std::snprintf(b, sizeof b, "%.1f ms", r.value(k, 0.0));
    return std::string(b);
  };
  auto part = [](const nlohmann::json& r, const char* k) {
    char b[32];
    std::snprintf(b, sizeof b, "%.1f ms", r.value("downtime", nlohmann::json::object()).value(k, 0.0));
    return std::string(b);
  };
  auto str = [](const nlohmann::json& r, const char* k) {
    if (!r.contains(k)) return std::string("-");
    return r[k].is_string() ? r[k].get<std::string>() : r[k].dump();
  };
  struct Row {
    const char* what;
    std::string s, d;
  };
  const Row rows[] = {
      {"result", str(src, "result"), str(dst, "result")},
      {"total", ms(src, "total_ms"), ms(dst, "total_ms")},
      {"downtime (own view)", ms(src, "downtime_ms"), ms(dst, "downtime_ms")},
      {"  final round", part(src, "final_round_ms"), part(dst, "final_round_ms")},
      {"  state + verify", part(src, "state_ms"), part(dst, "state_ms")},
      {"  restore", part(src, "restore_ms"), part(dst, "restore_ms")},
      {"  unpause", part(src, "unpause_ms"), part(dst, "unpause_ms")},
      {"  handoff", part(src, "handoff_ms"), part(dst, "handoff_ms")},
      {"on the wire", FormatBytes(src.value("bytes_wire", 0ull)), FormatBytes(dst.value("bytes_wire", 0ull))},
      {"rounds", std::to_string(src.value("rounds", nlohmann::json::array()).size()),
       std::to_string(dst.value("rounds", nlohmann::json::array()).size())},
      {"digest match", str(src, "digest_match"), str(dst, "digest_match")},
      {"guest", str(src, "source_guest"), str(dst, "destination_guest")},
  };
  std::printf("\n== side by side ==\n%-22s %-22s %-22s\n", "", "source", "destination");
  for (const Row& r : rows) std::printf("%-22s %-22s %-22s\n", r.what, r.s.c_str(), r.d.c_str());
  std::printf("(the source times downtime from its pause; the destination from the last pre-copy ROUND_ACK,\n"
              " after which the source pauses, to the guest running there)\n");
}

int RunDemo(DemoArgs& a) {
  if (a.common.backend.backend.empty()) a.common.backend.backend = DefaultDemoBackend();
  Status st = FinishBackendOptions(a.common);
  if (!st.ok()) {
    spdlog::error("xmotion demo: {}", st.message());
    return kExitUsage;
  }
  if (Status u = BackendUsable(a.common.backend.backend); !u.ok()) {
    spdlog::error("xmotion demo: {}", u.message());
    return kExitUsage;
  }
  char dir_tmpl[] = "/tmp/xmotion-demo-XXXXXX";
  if (!::mkdtemp(dir_tmpl)) {
    spdlog::error("xmotion demo: mkdtemp: {}", std::strerror(errno));
    return kExitFailed;
  }
  std::string dir = dir_tmpl;
  std::string exe = SelfExe();
  std::string recv_report = dir + "/receiver.json", send_report = dir + "/sender.json";
  const auto& b = a.common;
  std::vector<std::string> guest_args = {"--backend", b.backend.backend, "--memory", b.memory, "--transport",
                                         b.transport};
  if (!b.key_file.empty()) guest_args.insert(guest_args.end(), {"--key-file", b.key_file});
  for (const auto& [flag, file] : {std::pair{"--tls-cert", b.tls_cert}, {"--tls-key", b.tls_key}, {"--tls-ca", b.tls_ca}})
    if (!file.empty()) guest_args.insert(guest_args.end(), {flag, file});
  if (b.no_encrypt) guest_args.push_back("--no-encrypt");

  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) {
    spdlog::error("xmotion demo: pipe: {}", std::strerror(errno));
    return kExitFailed;
  }
  std::vector<std::string> rargs = {exe, "receive", "--listen", "127.0.0.1:0", "--ready-fd", "3", "--report",
                                    recv_report, "--progress", "none", "--quiet", "--accept-timeout", "60",
                                    "--run-after", std::to_string(a.run_after_ms)};
  rargs.insert(rargs.end(), guest_args.begin(), guest_args.end());
  // A self-checking guest (KVM) must pass one whole memory check on the destination.
  if (auto info = FindBackend(b.backend.backend); info.ok() && (*info)->caps.guest_selfcheck)
    rargs.insert(rargs.end(), {"--wait-selfcheck", "60"});
  if (!a.host_featureset.empty()) rargs.insert(rargs.end(), {"--host-featureset", a.host_featureset});
  if (!a.pool_level.empty()) rargs.insert(rargs.end(), {"--pool-level", a.pool_level});
  if (!b.backend.xen_stream_out.empty()) rargs.insert(rargs.end(), {"--xen-stream-out", b.backend.xen_stream_out});
  if (b.backend.hugepages) rargs.push_back("--hugepages");
  auto rpid = Spawn(rargs, fds[1]);
  ::close(fds[1]);
  if (!rpid.ok()) {
    spdlog::error("xmotion demo: {}", rpid.status().message());
    return kExitFailed;
  }
  char buf[16] = {};
  ssize_t n = ::read(fds[0], buf, sizeof buf - 1);
  ::close(fds[0]);
  if (n <= 0) {
    spdlog::error("xmotion demo: receiver did not start (exit {})", Wait(*rpid));
    return kExitFailed;
  }
  std::string port = std::string(buf, static_cast<size_t>(n));
  while (!port.empty() && port.back() == '\n') port.pop_back();
  std::printf("xmotion demo: %s guest, %s, workload '%s'; receiver pid %d on 127.0.0.1:%s\n",
              b.backend.backend.c_str(), b.memory.c_str(), b.backend.workload.c_str(), static_cast<int>(*rpid),
              port.c_str());
  std::fflush(stdout);

  std::vector<std::string> sargs = {exe, "send", "--to", "127.0.0.1:" + port, "--report", send_report, "--progress",
                                    b.progress, "--quiet", "--downtime-target", a.downtime, "--verify", a.verify};
  if (!b.backend.workload.empty()) sargs.insert(sargs.end(), {"--workload", b.backend.workload});
  if (a.no_compress) sargs.push_back("--no-compress");
  sargs.insert(sargs.end(), guest_args.begin(), guest_args.end());
  sargs.insert(sargs.end(), a.send_extra.begin(), a.send_extra.end());
  auto spid = Spawn(sargs, -1);
  if (!spid.ok()) {
    ::kill(*rpid, SIGTERM);
    Wait(*rpid);
    spdlog::error("xmotion demo: {}", spid.status().message());
    return kExitFailed;
  }
  int send_rc = Wait(*spid);
  int recv_rc = Wait(*rpid);

  nlohmann::json sender = ReadJson(send_report), receiver = ReadJson(recv_report);
  MigrationReport shown;
  if (sender.is_object()) {
    std::printf("\n== source (xmotion send, exit %d) ==\n", send_rc);
    std::printf("%s", sender.value("result", "?") == "completed" ? "" : ("error: " + sender.value("error", "") + "\n").c_str());
  }
  nlohmann::json combined = sender.is_object() ? sender : nlohmann::json{{"result", "failed"}, {"error", "sender wrote no report"}};
  combined["destination"] = receiver;
  if (receiver.is_object() && receiver.contains("guest_selfcheck")) combined["guest_selfcheck"] = receiver["guest_selfcheck"];
  if (sender.is_object()) {
    // Reuse the report's own table for the terminal.
    shown.role = "source";
    shown.result = sender.value("result", "failed");
    shown.error = sender.value("error", "");
    shown.total_ms = sender.value("total_ms", 0.0);
    shown.downtime_ms = sender.value("downtime_ms", 0.0);
    shown.memory_bytes = sender.value("memory_bytes", 0ull);
    shown.bytes_wire = sender.value("bytes_wire", 0ull);
    shown.digest_match = sender.value("digest_match", false);
    shown.transport = sender.value("transport", "");
    shown.streams = sender.value("streams", 1u);
    auto d = sender.value("downtime", nlohmann::json::object());
    shown.downtime = {d.value("pause_ms", 0.0),   d.value("final_round_ms", 0.0), d.value("state_ms", 0.0),
                      d.value("restore_ms", 0.0), d.value("unpause_ms", 0.0),     d.value("handoff_ms", 0.0)};
    auto p = sender.value("pages", nlohmann::json::object());
    shown.pages = {p.value("zero", 0ull), p.value("unchanged", 0ull), p.value("duplicate", 0ull),
                   p.value("delta", 0ull), p.value("lz4", 0ull),      p.value("zstd", 0ull),
                   p.value("raw", 0ull)};
    for (const auto& r : sender.value("rounds", nlohmann::json::array())) {
      RoundReport rr{r.value("round", 0u), r.value("dirty_pages", 0ull), r.value("pages_sent", 0ull),
                     r.value("bytes_wire", 0ull), r.value("ms", 0.0), r.value("compression", true),
                     r.value("throttle", 1.0), r.value("fetch_ms", 0.0), r.value("dirty_next", 0ull), std::nullopt};
      if (r.contains("predicted_downtime_ms")) rr.predicted_downtime_ms = r.value("predicted_downtime_ms", 0.0);
      shown.rounds.push_back(rr);
    }
    std::printf("%s", shown.Summary().c_str());
    PrintGuest("source", sender);
  }
  std::printf("\n== destination (xmotion receive, exit %d) ==\n", recv_rc);
  if (receiver.is_object()) {
    std::printf("destination: %s%s\n", receiver.value("result", "?").c_str(),
                receiver.value("result", "") == "completed" ? "" : (" — " + receiver.value("error", "")).c_str());
    PrintGuest("destination", receiver);
  } else {
    std::printf("destination wrote no report\n");
  }
  PrintSideBySide(sender, receiver);
  if (!b.report.empty()) {
    Status ws = WriteReportFile(b.report, combined);
    if (!ws.ok()) spdlog::error("xmotion demo: {}", ws.message());
  }
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
  if (send_rc != 0) return send_rc;
  return recv_rc;
}

}  // namespace

void AddDemo(CLI::App& app, Runner& run) {
  auto a = std::make_shared<DemoArgs>();
  a->common.backend.backend = "";
  a->common.memory = "1G";
  a->common.backend.workload = "ws=75%,hot=64M,rate=100M/s";
  CLI::App* cmd = app.add_subcommand("demo", "Migrate a guest between two local processes and show what happened");
  AddBackendOptions(*cmd, a->common);
  AddHugepagesFlag(*cmd, a->common.backend);
  cmd->add_option("--downtime-target", a->downtime, "Downtime target in ms")->capture_default_str();
  cmd->add_flag("--no-compress", a->no_compress, "Send pages raw");
  cmd->add_option("--verify", a->verify, "incremental or full")->check(CLI::IsMember({"incremental", "full"}));
  cmd->add_option("--run-after", a->run_after_ms, "Milliseconds the destination guest runs before the demo ends")
      ->capture_default_str();
  cmd->add_option("--xen-stream-out", a->common.backend.xen_stream_out,
                  "Have the receiver also write the guest as Xen's libxl migration stream to FILE "
                  "(check it with Xen's verify-stream-v2 -f libxl)");
  cmd->add_option("--host-featureset", a->host_featureset,
                  "The destination's CPU featureset, replacing the detected one (test incompatible hosts)");
  cmd->add_option("--pool-level", a->pool_level, "Cross-pool: the pool level the guest must also fit");
  cmd->add_option("--send-arg", a->send_extra, "Extra argument passed to the sender (repeatable)");
  cmd->callback([&run, a] { run = [a] { return RunDemo(*a); }; });
}

}  // namespace xm::cli
