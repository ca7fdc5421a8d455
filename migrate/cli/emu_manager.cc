// `xmotion emu-manager`: a drop-in for the emu-manager binary xenopsd forks per
// migration (README "Installing for xenopsd"). Same single-dash long options
// (getopt_long_only), same control lines on -controlinfd/-controloutfd:
//
//   save (-mode save|hvm_save): prepare:xenguest → done (xenopsd has written
//   its Libxc header on -fd), then xmotion's engine migrates the guest over
//   -fd to an xmotion emu-manager restore; info:\b\b\b\bN progress; when the
//   engine stops the guest it asks xenopsd with suspend: and waits for done;
//   result:0 0 at the end.
//   restore (-mode restore|hvm_restore): waits for restore:xenguest (xenopsd
//   has read the stream up to its Libxc header), receives over -fd, answers
//   result:xenguest <store_mfn> <console_mfn>.
//   abort (or control input closing) at any point before the point of no
//   return cancels as `xmotion send`/`receive` do; the emu-manager then exits
//   0 without an error line, as the stock one. Failures: error:xenguest <why>.
//
// Rolling upgrades (README "xenopsd", emu_offer.h): a save starts Xen's own
// stream and offers xmotion in an optional record; an xmotion restore answers
// and both speak xmotion's protocol; a stock restore stays silent and the save
// writes the rest of Xen's stream (SendXenStream) for it. A restore facing a
// stock save (Xen's stream, no offer) refuses it with a clear error.
//
// What runs where: -backend sim (an xmotion extension, with -memory/-workload)
// runs the whole protocol here and in tests/emu; on Xen the save side opens the
// domain with xmotion's Xen backend, and the restore side fills the domain
// xenopsd created (-domid, with the -store_port/-console_port event channels
// xenopsd allocated) through libxc's restore, leaves it paused and answers the
// ring frames for xenopsd to introduce. With -xen-config/-xen-name instead
// (xmotion extensions xenopsd never passes) it builds the domain itself
// through libxl, for hosts without xenopsd. `scripts/xen-lab --emu` runs both
// on real Xen with tests/emu/xenopsd_driver.py.
#include <getopt.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <condition_variable>
#include <cstring>
#include <limits>
#include <mutex>
#include <optional>
#include <thread>

#include "base/log.h"
#include "base/units.h"
#include "dirtylog/forwarding_backend.h"
#include "dirtylog/workload.h"
#include "dirtylog/xen/stream/byte_io.h"
#include "migrate/cli/commands.h"
#include "migrate/cli/emu_offer.h"
#include "migrate/destination/receiver.h"
#include "migrate/source/engine.h"
#include "migrate/source/xen_stream_sender.h"

namespace xm::cli {
namespace {

// A non-negative decimal that fits T (fds, domids, ports); false for anything else.
template <typename T>
bool ParseNumber(const char* s, T& out) {
  char* end = nullptr;
  errno = 0;
  unsigned long long v = std::strtoull(s, &end, 10);
  if (!*s || *s == '-' || *end || errno != 0 || v > static_cast<unsigned long long>(std::numeric_limits<T>::max()))
    return false;
  out = static_cast<T>(v);
  return true;
}

struct EmuArgs {
  int control_out = -1, control_in = -1, fd = -1;
  std::string mode;
  std::string domid;
  bool live = false;
  std::vector<std::string> dm;
  // xmotion extensions (xenopsd never passes them).
  std::string backend = "xen";
  std::string memory = "256M";
  std::string workload;
  std::string report;
  // Restore on Xen without xenopsd (the nested-Xen lab, xl hosts): build the
  // domain from this libxl config under this name, left paused for the caller.
  std::string xen_config, xen_name;
  uint32_t store_port = 0, console_port = 0;
  // How long a save waits for the restore to answer xmotion's offer before it
  // takes the restore for a stock one (emu_offer.h).
  int offer_wait_ms = 10000;
};

// The control lines, both ways. One reader thread turns `abort` and a closed
// input into a cancel and hands every other line to whoever waits for one.
class EmuControl {
 public:
  EmuControl(int in, int out, Canceller& cancel) : in_(in), out_(out), cancel_(cancel) {
    reader_ = std::thread([this] { Read(); });
  }
  ~EmuControl() { reader_.detach(); }  // blocked in read(2) on xenopsd's fd; the process exits next

  void Say(const std::string& line) {
    std::lock_guard lock(write_mu_);
    std::string l = line + "\n";
    (void)!::write(out_, l.data(), l.size());
  }
  // The next line that is not `abort`, or kCancelled once aborted or closed.
  Result<std::string> NextLine(const std::string& waiting_for) {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return !lines_.empty() || closed_ || cancel_.requested(); });
    if (cancel_.requested()) return cancel_.CancelledStatus().With(waiting_for);
    if (lines_.empty()) return Error(Code::kAborted, "control input closed while waiting for " + waiting_for);
    std::string l = lines_.front();
    lines_.erase(lines_.begin());
    return l;
  }
  Status WaitDone(const std::string& after) {
    XM_ASSIGN_OR_RETURN(std::string l, NextLine("done after " + after));
    if (l != "done") return Error(Code::kProtocol, "xenopsd said '" + l + "' after " + after + ", want done");
    return {};
  }

 private:
  void Read() {
    std::string buf;
    char c[256];
    for (;;) {
      ssize_t n = ::read(in_, c, sizeof c);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      buf.append(c, static_cast<size_t>(n));
      for (size_t nl; (nl = buf.find('\n')) != std::string::npos;) {
        std::string line = buf.substr(0, nl);
        buf.erase(0, nl + 1);
        if (line == "abort") {
          if (cancel_.Request("xenopsd (abort)") == Canceller::Answer::kRefused)
            spdlog::warn("emu-manager: abort refused: {}", cancel_.refusal());
        } else {
          std::lock_guard lock(mu_);
          lines_.push_back(line);
        }
        cv_.notify_all();
      }
    }
    // xenopsd went away: as stock, that is an abort.
    (void)cancel_.Request("xenopsd (control input closed)");
    std::lock_guard lock(mu_);
    closed_ = true;
    cv_.notify_all();
  }

  int in_, out_;
  Canceller& cancel_;
  std::mutex mu_, write_mu_;
  std::condition_variable cv_;
  std::vector<std::string> lines_;
  bool closed_ = false;
  std::thread reader_;
};

// The guest is paused by the toolstack, not by xmotion: xenopsd suspends the
// domain (and saves QEMU) when told `suspend:`; the wrapped backend then pauses
// what it still runs itself (the sim guest).
class ToolstackSuspend final : public ForwardingBackend {
 public:
  ToolstackSuspend(std::unique_ptr<Backend> inner, EmuControl& control)
      : ForwardingBackend(std::move(inner)), control_(control) {}
  Status Pause() override {
    control_.Say("suspend:");
    XM_TRY(control_.WaitDone("suspend:"));
    return inner_->Pause();
  }
  // xenopsd destroys the source domain itself once the migration succeeded.
  Status Release() override { return {}; }

 private:
  EmuControl& control_;
};

// The one stream xenopsd handed over (-fd), as a Dialer/Acceptor for the engines.
class FdLink final : public Dialer, public Acceptor {
 public:
  explicit FdLink(int fd) : fd_(fd) {}
  Result<std::unique_ptr<Stream>> Dial(std::string*) override { return Take(); }
  Result<std::unique_ptr<Stream>> Accept(int, std::string*) override { return Take(); }

 private:
  Result<std::unique_ptr<Stream>> Take() {
    if (taken_) return Error(Code::kUnsupported, "emu-manager has one stream (-fd): no parallel streams");
    taken_ = true;
    int d = ::dup(fd_);
    if (d < 0) return ErrnoError("dup -fd", errno);
    // Plain sockets: they read exactly what a record asks, never ahead, so xenopsd
    // finds its next record right after ours.
    return std::unique_ptr<Stream>(std::make_unique<SocketStream>(UniqueFd(d)));
  }
  int fd_;
  bool taken_ = false;
};

bool IsDevNull(int fd) {
  struct stat a, b;
  return ::fstat(fd, &a) == 0 && ::stat("/dev/null", &b) == 0 && a.st_rdev == b.st_rdev && S_ISCHR(a.st_mode);
}

// xenopsd's progress line: the stock emu-manager's literal "\b\b\b\b" then a percentage.
ProgressFn InfoLines(EmuControl& control) {
  auto last = std::make_shared<int>(-1);
  return [&control, last](const nlohmann::json& e) {
    if (!e.contains("fraction")) return;
    int pct = static_cast<int>(e["fraction"].get<double>() * 100);
    if (pct == *last) return;
    *last = pct;
    control.Say("info:\\b\\b\\b\\b" + std::to_string(pct));
  };
}

// A libxc stream (a stock save) starts with its image header: 0xFFFFFFFFFFFFFFFF then "XENF".
bool PeekLibxcImageHeader(int fd) {
  uint8_t b[12];
  ssize_t n = ::recv(fd, b, sizeof b, MSG_PEEK | MSG_WAITALL);
  if (n != static_cast<ssize_t>(sizeof b)) return false;
  for (int i = 0; i < 8; ++i)
    if (b[i] != 0xff) return false;
  return std::memcmp(b + 8, "XENF", 4) == 0;
}

int Fail(EmuControl& control, const Status& st) {
  control.Say("error:xenguest " + st.message());
  spdlog::error("emu-manager: {}", st.message());
  return kExitFailed;
}

// The report of a save that never started xmotion's engine (it writes its own).
void WriteBareReport(const EmuArgs& a, const Backend& guest, const Status& st, bool cancelled, nlohmann::json more) {
  if (a.report.empty()) return;
  nlohmann::json rep = {{"schema", "xmotion-report/1"}, {"role", "source"}, {"backend", a.backend}};
  if (st.ok()) {
    rep["result"] = "completed";
  } else {
    rep.update({{"result", cancelled ? "cancelled" : "failed"}, {"error", st.message()},
                {"source_guest", guest.Running() ? "running" : "paused"}});
  }
  rep.update(more);
  (void)WriteReportFile(a.report, rep);
}

// The restore did not answer xmotion's offer: a stock one. Xen's own stream,
// continued on the writer that carries the offer.
int SaveAsXenStream(const EmuArgs& a, EmuControl& control, Canceller& cancel, Backend& guest, xen::StreamWriter& w) {
  Result<XenStreamResult> res = Error(Code::kUnsupported,
                                      "the restore did not answer xmotion's offer within " +
                                          std::to_string(a.offer_wait_ms) +
                                          " ms (a stock emu-manager?), and only a Xen guest can be written as Xen's "
                                          "own stream; the " + a.backend + " guest stays here");
  if (a.backend == "xen") {
    spdlog::info("emu-manager: no answer to xmotion's offer within {} ms: a stock restore; writing Xen's own stream",
                 a.offer_wait_ms);
    XenStreamSendOptions o;
    o.cancel = &cancel;
    o.on_round = [&](const XenStreamRound& r) {
      spdlog::info("emu-manager: Xen stream round {}{}: {} pages in {:.0f} ms, {} dirty", r.round,
                   r.final ? " (final)" : "", r.pages, r.ms, r.dirty_next);
    };
    res = SendXenStream(guest, w, o);
  }
  nlohmann::json more = {{"mode", "xen-stream"}, {"peer", "stock restore"}};
  if (res.ok())
    more.update({{"rounds", res->rounds}, {"pages", res->pages}, {"downtime_ms", res->downtime_ms},
                 {"page_bytes", w.stats().pages * 4096}});
  WriteBareReport(a, guest, res.status(), res.status().code() == Code::kCancelled && cancel.requested(), more);
  if (res.ok()) {
    control.Say("result:0 0");
    return kExitCompleted;
  }
  if (res.status().code() == Code::kCancelled && cancel.requested()) return kExitCompleted;
  return Fail(control, res.status());
}

int Save(const EmuArgs& a, EmuControl& control, Canceller& cancel) {
  BackendOptions bo;
  bo.backend = a.backend;
  bo.domain = a.domid;
  auto mem = ParseSize(a.memory);
  if (!mem.ok()) return Fail(control, mem.status());
  bo.memory_bytes = *mem;
  bo.workload = a.workload;
  auto guest = OpenSource(bo);
  if (!guest.ok()) return Fail(control, guest.status());
  // xenopsd writes its Libxc header on -fd between prepare:xenguest and done.
  control.Say("prepare:xenguest");
  if (Status st = control.WaitDone("prepare:xenguest"); !st.ok())
    return st.code() == Code::kCancelled ? kExitCompleted : Fail(control, st);
  ToolstackSuspend wrapped(std::move(guest).value(), control);
  // Which restore is on the other host (emu_offer.h).
  xen::FdSink sink(a.fd, "emu-manager -fd");
  xen::StreamOptions so;
  so.framing = xen::Framing::kLibxc;
  xen::StreamWriter xw(sink, so);
  std::optional<xen::XenCpuPolicy> policy;
  if (auto p = wrapped.GetCpuPolicy(); p.ok())
    if (auto xp = xen::XenPolicyFor(*p); xp.ok()) policy = std::move(xp).value();
  auto peer = emu::OfferXmotion(a.fd, xw, policy ? &*policy : nullptr, a.offer_wait_ms, &cancel);
  if (!peer.ok()) {
    const bool cancelled = peer.status().code() == Code::kCancelled && cancel.requested();
    WriteBareReport(a, wrapped, peer.status(), cancelled, {{"mode", "offer"}});
    return cancelled ? kExitCompleted : Fail(control, peer.status());
  }
  if (*peer == emu::Peer::kStock) return SaveAsXenStream(a, control, cancel, wrapped, xw);
  FdLink link(a.fd);
  SourceOptions o;
  o.to = HostPort{"emu-manager -fd", 0};
  o.dialer = &link;
  o.cancel = &cancel;
  o.transport = TransportKind::kSockets;
  // xenopsd's one stream cannot be dialled again: a break ends the migration.
  o.reconnect = 0;
  o.progress = InfoLines(control);
  SourceEngine engine(wrapped, o);
  MigrationReport r = engine.Run();
  if (!a.report.empty()) (void)WriteReportFile(a.report, r.ToJson());
  if (r.result == "completed") {
    control.Say("result:0 0");
    return kExitCompleted;
  }
  if (r.result == "cancelled" && cancel.requested()) {
    spdlog::info("emu-manager: {}", r.error);  // aborted by xenopsd: no error line, as stock
    return kExitCompleted;
  }
  return Fail(control, Status(Code::kIo, r.error));
}

int Restore(const EmuArgs& a, EmuControl& control, Canceller& cancel) {
  uint32_t into = 0;
  if (a.backend == "xen" && a.xen_config.empty()) {
    // The domain xenopsd created: the usual case.
    if (!ParseNumber(a.domid.c_str(), into) || into == 0)
      return Fail(control, Status(Code::kInvalidArgument, "restore needs the domain xenopsd created (-domid), got '" +
                                                              a.domid + "'"));
  }
  auto l = control.NextLine("restore:xenguest");
  if (!l.ok()) return l.status().code() == Code::kCancelled ? kExitCompleted : Fail(control, l.status());
  if (*l != "restore:xenguest") return Fail(control, Status(Code::kUnsupported, "xenopsd asked '" + *l + "'"));
  // After xenopsd's Libxc header: Xen's image header, then either xmotion's
  // offer (an xmotion save: answer it) or Xen's records (a stock save: refused).
  if (PeekLibxcImageHeader(a.fd))
    if (Status st = emu::AcceptXmotionOffer(a.fd, 60000); !st.ok()) return Fail(control, st);
  FdLink link(a.fd);
  ReceiverOptions o;
  o.cancel = &cancel;
  o.transport = TransportKind::kSockets;
  o.accept_timeout_ms = 1;  // the stream is already there
  o.resume_window_ms = 0;   // and no second one comes after a break
  BackendOptions bo;
  bo.backend = a.backend;
  bo.xen_config = a.xen_config;
  bo.xen_name = a.xen_name;
  bo.xen_domid = into;
  bo.xen_store_port = a.store_port;
  bo.xen_console_port = a.console_port;
  bo.xen_rings = std::make_shared<BackendOptions::XenRings>();
  // xenopsd unpauses the domain itself once everything (QEMU too) is restored.
  bo.xen_keep_paused = true;
  if (Status st = SetUpDestination(o, bo, "", ""); !st.ok()) return Fail(control, st);
  Receiver receiver(o);
  MigrationReport r = receiver.Run(static_cast<Acceptor&>(link));
  if (!a.report.empty()) (void)WriteReportFile(a.report, r.ToJson());
  if (r.result == "completed") {
    // xenopsd introduces the domain with these frames. A sim guest has none,
    // and a -xen-config domain was introduced by libxl, which built it: 0 0.
    control.Say("result:xenguest " + std::to_string(bo.xen_rings->store_mfn) + " " +
                std::to_string(bo.xen_rings->console_mfn));
    return kExitCompleted;
  }
  if (r.result == "cancelled" && cancel.requested()) return kExitCompleted;
  return Fail(control, Status(Code::kIo, r.error));
}

}  // namespace

int RunEmuManager(int argc, char** argv) {
  EmuArgs a;
  enum { kOut = 1, kIn, kFd, kMode, kDomid, kLive, kDm, kCompress, kStore, kConsole, kPnode, kFork, kDebug, kDebuglog,
         kBackend, kMemory, kWorkload, kReport, kXenConfig, kXenName, kOfferWait };
  static const option kOpts[] = {
      {"controloutfd", required_argument, nullptr, kOut}, {"controlinfd", required_argument, nullptr, kIn},
      {"fd", required_argument, nullptr, kFd},             {"mode", required_argument, nullptr, kMode},
      {"domid", required_argument, nullptr, kDomid},       {"live", required_argument, nullptr, kLive},
      {"dm", required_argument, nullptr, kDm},             {"compress", required_argument, nullptr, kCompress},
      {"store_port", required_argument, nullptr, kStore},  {"console_port", required_argument, nullptr, kConsole},
      {"mem_pnode", required_argument, nullptr, kPnode},   {"fork", required_argument, nullptr, kFork},
      {"debug", no_argument, nullptr, kDebug},             {"debuglog", required_argument, nullptr, kDebuglog},
      {"backend", required_argument, nullptr, kBackend},   {"memory", required_argument, nullptr, kMemory},
      {"workload", required_argument, nullptr, kWorkload}, {"report", required_argument, nullptr, kReport},
      {"xen-config", required_argument, nullptr, kXenConfig}, {"xen-name", required_argument, nullptr, kXenName},
      {"offer-wait-ms", required_argument, nullptr, kOfferWait},
      {nullptr, 0, nullptr, 0}};
  bool debug = false;
  optind = 1;
  for (int c; (c = getopt_long_only(argc, argv, "", kOpts, nullptr)) != -1;) {
    bool ok = true;
    switch (c) {
      case kOut: ok = ParseNumber(optarg, a.control_out); break;
      case kIn: ok = ParseNumber(optarg, a.control_in); break;
      case kFd: ok = ParseNumber(optarg, a.fd); break;
      case kMode: a.mode = optarg; break;
      case kDomid: a.domid = optarg; break;
      case kLive: a.live = std::string(optarg) == "true"; break;
      case kDm: a.dm.push_back(optarg); break;
      case kDebug: debug = true; break;
      case kDebuglog: debug = std::string(optarg) == "true"; break;
      case kBackend: a.backend = optarg; break;
      case kMemory: a.memory = optarg; break;
      case kWorkload: a.workload = optarg; break;
      case kReport: a.report = optarg; break;
      case kXenConfig: a.xen_config = optarg; break;
      case kXenName: a.xen_name = optarg; break;
      case kOfferWait: ok = ParseNumber(optarg, a.offer_wait_ms); break;
      case kStore: ok = ParseNumber(optarg, a.store_port); break;
      case kConsole: ok = ParseNumber(optarg, a.console_port); break;
      case kCompress: case kPnode: case kFork: break;  // xmotion compresses adaptively
      default: return kExitFailed;  // getopt said which; stock exits 1 too
    }
    if (!ok) {
      std::fprintf(stderr, "emu-manager: bad number '%s'\n", optarg);
      return kExitFailed;
    }
  }
  if (a.control_out < 0 || a.control_in < 0 || a.fd < 0 || a.mode.empty() || a.domid.empty()) {
    std::fprintf(stderr, "emu-manager: -controloutfd, -controlinfd, -fd, -mode and -domid are required\n");
    return kExitFailed;
  }
  std::signal(SIGPIPE, SIG_IGN);
  // xenopsd gives us /dev/null for stdio: then the log goes to syslog as <name>-<domid>.
  LogOptions log;
  log.level = debug ? "debug" : "info";
  if (IsDevNull(0) && IsDevNull(1) && IsDevNull(2)) {
    std::string base = argv[0];
    if (auto slash = base.rfind('/'); slash != std::string::npos) base = base.substr(slash + 1);
    log.syslog = true;
    log.syslog_ident = base + "-" + a.domid;
  }
  if (Status st = SetUpLogging(log); !st.ok()) return kExitFailed;
  Canceller cancel;
  EmuControl control(a.control_in, a.control_out, cancel);
  if (a.mode == "save" || a.mode == "hvm_save") {
    if (!a.live)
      return Fail(control, Status(Code::kUnsupported,
                                  "xmotion emu-manager migrates live to an xmotion peer; a non-live save (VM.suspend "
                                  "to a file) needs the stock emu-manager"));
    return Save(a, control, cancel);
  }
  if (a.mode == "restore" || a.mode == "hvm_restore") return Restore(a, control, cancel);
  return Fail(control, Status(Code::kInvalidArgument, "unknown -mode " + a.mode));
}

}  // namespace xm::cli
