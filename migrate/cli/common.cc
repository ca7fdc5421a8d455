#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <iostream>

#include "base/log.h"
#include "base/units.h"
#include "dirtylog/workload.h"
#include "migrate/cli/cancel_watch.h"
#include "migrate/cli/commands.h"
#include "transport/auth.h"
#include "transport/secure.h"

namespace xm::cli {

void AddBackendOptions(CLI::App& cmd, CommonOptions& o) {
  cmd.add_option("--backend", o.backend.backend, "Hypervisor backend: " + BackendNamesText())->capture_default_str();
  cmd.add_option("--memory", o.memory, "Guest memory for sim/kvm guests (e.g. 1G)")->capture_default_str();
  cmd.add_option("--workload", o.backend.workload,
                 "How the guest dirties memory: ws=SIZE,hot=SIZE,rate=SIZE/s[,fill=random|mixed]; "
                 "sizes in K/M/G or % of memory; omitted parts are 0 (idle)");
  cmd.add_option("--domain", o.backend.domain,
                 "xen: the domain to migrate (name or id); sim/kvm (send): a label naming the guest for the source "
                 "guard (one send per guest)");
  cmd.add_option("--key-file", o.key_file,
                 "Pre-shared key (both sides): TLS 1.3 with a PSK derived from it authenticates and encrypts every "
                 "stream");
  cmd.add_option("--tls-cert", o.tls_cert, "This host's certificate (PEM), instead of a pre-shared key");
  cmd.add_option("--tls-key", o.tls_key, "The private key of --tls-cert (PEM)");
  cmd.add_option("--tls-ca", o.tls_ca, "The CA (PEM) that signed the peer's certificate");
  cmd.add_flag("--no-encrypt", o.no_encrypt,
               "With a key or certificate: authenticate and MAC every record but do not encrypt (both sides)");
  cmd.add_option("--report", o.report, "Write the JSON report to this file");
  cmd.add_option("--progress", o.progress, "Progress output: auto, human, json (lines on stdout) or none")
      ->check(CLI::IsMember({"auto", "human", "json", "none"}))
      ->capture_default_str();
  cmd.add_flag("--quiet", o.quiet, "Print no summary (errors still go to stderr)");
  cmd.add_option("--control-fd", o.control_fd,
                 "Read control lines from this inherited fd: 'abort' cancels the migration before GO (answers "
                 "are written back to it)");
  cmd.add_option("--transport", o.transport,
                 "auto (io_uring, falling back to plain sockets where it cannot be set up), io_uring or sockets")
      ->check(CLI::IsMember({"auto", "io_uring", "uring", "sockets"}))
      ->capture_default_str();
}

void AddHugepagesFlag(CLI::App& cmd, BackendOptions& o) {
  cmd.add_flag("--hugepages", o.hugepages,
               "Destination guest memory from the kernel's hugetlb pool (sim, kvm): the pool "
               "(/proc/sys/vm/nr_hugepages) must hold the whole guest, else the guest is refused; never a silent "
               "fallback to 4 KiB pages");
}

Status FinishBackendOptions(CommonOptions& o) {
  auto mem = ParseSize(o.memory);
  if (!mem.ok()) return std::move(mem).With("--memory").status();
  if (*mem == 0 || *mem % 4096 != 0) return Error(Code::kInvalidArgument, "--memory must be a non-zero multiple of 4 KiB");
  o.backend.memory_bytes = *mem;
  if (o.backend.hugepages) {
    auto info = FindBackend(o.backend.backend);
    if (info.ok() && !(*info)->caps.direct_memory)
      return Error(Code::kInvalidArgument, "--hugepages: the " + o.backend.backend +
                                               " backend's guest memory is the hypervisor's, not this process's");
  }
  // Everything the command will need is checked now, before a guest is built or
  // a peer contacted: a mistake costs a second, not a migration.
  if (!o.backend.workload.empty()) {
    auto w = ParseWorkload(o.backend.workload, o.backend.memory_bytes);
    if (!w.ok()) return std::move(w).With("--workload").status();
  }
  if (!o.report.empty()) {
    std::filesystem::path p = std::filesystem::absolute(o.report);
    if (!std::filesystem::is_directory(p.parent_path()))
      return Error(Code::kInvalidArgument, "--report " + o.report + ": the folder " + p.parent_path().string() +
                                               " does not exist");
    // The report is written as a temporary file renamed into place: try exactly that
    // (access() says yes to root everywhere, /proc included).
    std::string probe = (p.parent_path() / ".xmotion-report-XXXXXX").string();
    int fd = ::mkstemp(probe.data());
    if (fd < 0)
      return Error(Code::kInvalidArgument, "--report " + o.report + ": cannot create files in " +
                                               p.parent_path().string() + " (" + std::strerror(errno) + ")");
    ::close(fd);
    ::unlink(probe.c_str());
  }
  if (!o.key_file.empty()) {
    auto key = LoadKey(o);
    if (!key.ok()) return std::move(key).With("--key-file").status();
  }
  if ((!o.tls_key.empty() || !o.tls_ca.empty()) && o.tls_cert.empty())
    return Error(Code::kInvalidArgument, "--tls-key and --tls-ca go with --tls-cert");
  if (!o.tls_cert.empty()) {
    SecurityOptions so = SecurityFrom(o);
    auto ctx = SecureContext::Create(so, Role::kSource);  // loads and checks the files
    if (!ctx.ok()) return ctx.status();
  }
  if (o.no_encrypt && o.key_file.empty() && o.tls_cert.empty())
    return Error(Code::kInvalidArgument, "--no-encrypt needs --key-file or --tls-cert: it keeps their integrity check");
  return {};
}

SecurityOptions SecurityFrom(const CommonOptions& o) {
  SecurityOptions so;
  so.cert_file = o.tls_cert;
  so.key_file = o.tls_key;
  so.ca_file = o.tls_ca;
  so.encrypt = !o.no_encrypt;
  return so;
}

Result<std::vector<uint8_t>> LoadKey(const CommonOptions& o) {
  if (o.key_file.empty()) return std::vector<uint8_t>{};
  return LoadKeyFile(o.key_file);
}

namespace {

// One line for a terminal, redrawn in place: phase, bar, percent, rate, ETA, predicted downtime.
std::string BarLine(const std::string& who, const nlohmann::json& e) {
  constexpr int kWidth = 24;
  double f = e.value("fraction", 0.0);
  int filled = static_cast<int>(f * kWidth);
  std::string bar(static_cast<size_t>(filled), '#');
  bar.resize(kWidth, '.');
  char line[256];
  std::string eta = e.contains("eta_s") && e["eta_s"].is_number()
                        ? std::to_string(static_cast<int>(e["eta_s"].get<double>() + 0.5)) + " s"
                        : std::string("?");
  std::snprintf(line, sizeof line, "%s %-11s [%s] %5.1f%%  %7.0f Mbit/s  ETA %s  downtime ~%.0f ms", who.c_str(),
                e.value("phase", "").c_str(), bar.c_str(), 100 * f, e.value("mbps", 0.0), eta.c_str(),
                e.value("expected_downtime_ms", 0.0));
  return line;
}

}  // namespace

ProgressFn MakeProgress(const std::string& mode_in, const std::string& who) {
  std::string mode = mode_in;
  const bool tty = ::isatty(STDERR_FILENO);
  if (mode == "auto") mode = tty ? "human" : "none";
  if (mode == "none") return {};
  if (mode == "json") return [](const nlohmann::json& e) { std::cout << e.dump() << std::endl; };
  // Human: a bar redrawn in place on a terminal; phases and rounds as log lines.
  auto bar_shown = std::make_shared<bool>(false);
  return [who, tty, bar_shown](const nlohmann::json& e) {
    std::string ev = e.value("event", "");
    if (ev == "transfer") {
      if (!tty) return;
      std::fprintf(stderr, "\r\033[K%s", BarLine(who, e).c_str());
      std::fflush(stderr);
      *bar_shown = true;
      return;
    }
    if (*bar_shown) {
      std::fprintf(stderr, "\r\033[K");
      *bar_shown = false;
    }
    if (ev == "phase") {
      spdlog::info("{}: {}{}", who, e.value("phase", ""),
                   e.contains("peer") ? " with " + e["peer"].get<std::string>() : std::string());
    } else if (ev == "round" && e.contains("dirty_pages")) {
      spdlog::info("{}: round {}: {} pages, {} in {:.0f} ms{}", who, e.value("iteration", 0u), e.value("pages", 0ull),
                   FormatBytes(e.value("bytes", 0ull)), e.value("ms", 0.0),
                   e.contains("decision") ? " — " + e["decision"].get<std::string>() : std::string());
    }
  };
}

std::unique_ptr<CancelWatch> WatchForCancel(Canceller& cancel, const CommonOptions& o, const std::string& who) {
  auto w = CancelWatch::Start(cancel, o.control_fd, who);
  if (!w.ok()) {
    spdlog::error("{}: cannot watch for cancel: {}", who, w.status().message());
    return nullptr;
  }
  return std::move(w).value();
}

std::string ExitCodeHelp() {
  struct Row {
    int code;
    const char* meaning;
  };
  static constexpr Row kRows[] = {
      {kExitCompleted, "completed (send/receive/demo), compatible (cpu check), chart written (plot)"},
      {kExitFailed, "failed before GO: the source guest runs on, the destination copy is discarded"},
      {kExitUsage, "usage: a bad argument or input file; nothing was started"},
      {kExitIncompatible, "incompatible: the destination cannot host the guest (CPU features, size)"},
      {kExitOutcomeUnknown, "GO was sent but DONE never came: the guest is paused here; ask the destination"},
      {kExitAuth, "wrong peer: authentication failed, or the peer is not xmotion / speaks another protocol"},
      {kExitCancelled, "cancelled (signal, control line, or the peer's cancel) before GO: as 1, on purpose"},
      {kExitBusy, "send: the guest is already being migrated (the holder's pid is named); nothing was started"},
  };
  std::string out = "Exit codes (every command):\n";
  for (const Row& r : kRows) out += "  " + std::to_string(r.code) + "  " + r.meaning + "\n";
  return out;
}

int Finish(const MigrationReport& r, const CommonOptions& o) {
  const std::string& report_path = o.report;
  const std::string& progress = o.progress;
  nlohmann::json j = r.ToJson();
  if (!report_path.empty()) {
    Status st = WriteReportFile(report_path, j);
    if (!st.ok()) spdlog::error("xmotion: {}", st.message());
  }
  if (progress == "json") {
    std::cout << StampEvent("report", r.role, "done", {{"report", j}}).dump() << std::endl;
  } else if (!o.quiet) {
    std::cout << r.Summary() << std::flush;
  }
  if (r.result != "completed") spdlog::error("xmotion {}: {}", r.role == "source" ? "send" : "receive", r.error);
  return r.exit_code;
}

}  // namespace xm::cli
