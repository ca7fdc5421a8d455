#include "dirtylog/xen/xen_restore.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include "dirtylog/xen/xen_c_headers.h"

#include <atomic>
#include <functional>
#include <cerrno>
#include <thread>

#include "base/unique_fd.h"
#include "dirtylog/xen/xen_handles.h"

extern char** environ;

namespace {
constexpr uint32_t kNoDomid = static_cast<uint32_t>(INVALID_DOMID);
}

namespace xm::xen {
namespace {

Status MakePipe(UniqueFd& rd, UniqueFd& wr) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return ErrnoError("xen restore: pipe", errno);
  rd.reset(fds[0]);
  wr.reset(fds[1]);
  // Pages arrive in 4 MiB records; a bigger pipe lets the toolstack lag less.
  (void)::fcntl(wr.get(), F_SETPIPE_SZ, 1 << 20);
  return {};
}

void DestroyDomain(libxl_ctx* ctx, uint32_t domid) {
  if (domid != 0 && domid != kNoDomid) (void)libxl_domain_destroy(ctx, domid, nullptr);
}

// A toolstack restore that is one blocking library call in a thread of this
// process, reading the stream from a pipe (libxl's and libxc's): the pipe, the
// thread, whether the call has returned, and ending the stream.
class ThreadedRestore : public RestoreRunner {
 public:
  int stream_fd() const override { return wr_.get(); }
  bool Running() override { return thread_.joinable() && !returned_.load(); }

 protected:
  ~ThreadedRestore() override = default;
  // REQUIRES: the pipe is open (OpenPipe). Runs `call` (which reads rd_) in the thread.
  Status OpenPipe() {
    XM_ASSIGN_OR_RETURN(h_, XenHandles::Open());
    return MakePipe(rd_, wr_);
  }
  void Run(std::function<void()> call) {
    thread_ = std::thread([this, call = std::move(call)] {
      call();
      returned_ = true;
    });
  }
  // EOF on the pipe (the call then returns, finished or failed), and waits for it.
  void EndStream() {
    wr_.reset();
    if (thread_.joinable()) thread_.join();
  }

  std::unique_ptr<XenHandles> h_;
  UniqueFd rd_;

 private:
  UniqueFd wr_;
  std::thread thread_;
  std::atomic<bool> returned_{false};
};

class LibxlRestore final : public ThreadedRestore {
 public:
  // After a successful Finish() the domain belongs to the caller; only tidy up.
  ~LibxlRestore() override {
    if (!finished_) Abort();
    if (config_init_) libxl_domain_config_dispose(&config_);
  }
  Framing framing() const override { return Framing::kLibxl; }

  Status Start(const RestoreConfig& cfg) {
    XM_TRY(OpenPipe());
    libxl_domain_config_init(&config_);
    config_init_ = true;
    if (libxl_domain_config_from_json(h_->ctx(), &config_, cfg.json.c_str()) != 0)
      return Error(Code::kInvalidArgument, "xen restore: libxl rejects the domain config JSON");
    Run([this] {
      libxl_domain_restore_params params;
      libxl_domain_restore_params_init(&params);
      params.checkpointed_stream = LIBXL_CHECKPOINTED_STREAM_NONE;
      params.stream_version = 2;  // the libxl v2 stream
      uint32_t domid = kNoDomid;
      // Synchronous (no ao_how): returns when the stream has ended and the
      // domain exists, paused, with its devices.
      rc_ = libxl_domain_create_restore(h_->ctx(), &config_, &domid, rd_.get(), -1, &params, nullptr, nullptr);
      domid_ = domid;
      libxl_domain_restore_params_dispose(&params);
    });
    return {};
  }

  Result<uint32_t> Finish() override {
    EndStream();
    if (rc_ != 0) {
      DestroyDomain(h_->ctx(), domid_);
      domid_ = kNoDomid;
      return Error(Code::kIo, "xen restore: libxl_domain_create_restore failed (libxl error " + std::to_string(rc_) +
                                  "; see the libxl log above)");
    }
    finished_ = true;
    return domid_;
  }

  void Abort() override {
    EndStream();  // libxl's restore fails and cleans up its half-built domain
    if (h_ && domid_ != kNoDomid) DestroyDomain(h_->ctx(), domid_);
    domid_ = kNoDomid;
    finished_ = false;
  }

 private:
  libxl_domain_config config_{};
  bool config_init_ = false;
  int rc_ = 0;
  uint32_t domid_ = kNoDomid;
  bool finished_ = false;
};

class XlRestore final : public RestoreRunner {
 public:
  ~XlRestore() override {
    if (!finished_) Abort();
  }
  Framing framing() const override { return Framing::kXl; }
  int stream_fd() const override { return wr_.get(); }
  bool Running() override {
    if (pid_ <= 0) return false;
    int status = 0;
    pid_t r = ::waitpid(pid_, &status, WNOHANG);
    if (r == 0) return true;
    if (r == pid_) exit_status_ = status;
    pid_ = -1;
    return false;
  }

  Status Start(const RestoreConfig& cfg, const std::string& xl) {
    name_ = cfg.domain_name;
    XM_ASSIGN_OR_RETURN(h_, XenHandles::Open());
    UniqueFd rd;
    XM_TRY(MakePipe(rd, wr_));
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, rd.get(), 3);
    std::vector<std::string> args = XlRestoreArgv(xl, 3);
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    int rc = posix_spawnp(&pid_, argv[0], &fa, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) return ErrnoError("xen restore: spawn " + xl, rc);
    return {};
  }

  Result<uint32_t> Finish() override {
    wr_.reset();
    int status = Wait();
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
      return Error(Code::kIo, "xen restore: `xl restore` failed (status " + std::to_string(status) + "; see its output)");
    uint32_t domid = 0;
    if (libxl_name_to_domid(h_->ctx(), name_.c_str(), &domid) != 0)
      return Error(Code::kIo, "xen restore: xl finished but no domain named '" + name_ + "' exists");
    domid_ = domid;
    finished_ = true;
    return domid;
  }

  void Abort() override {
    wr_.reset();  // EOF: xl's restore fails and tears down what it built
    if (pid_ > 0) {
      // Give xl time to clean up after the EOF before forcing it.
      for (int i = 0; i < 300 && pid_ > 0; ++i) {
        int status = 0;
        pid_t r = ::waitpid(pid_, &status, WNOHANG);
        if (r == pid_ || (r < 0 && errno != EINTR)) pid_ = -1;
        else ::usleep(100 * 1000);
      }
      if (pid_ > 0) {
        ::kill(pid_, SIGKILL);
        Wait();
      }
    }
    uint32_t domid = domid_;
    if (h_ && domid == kNoDomid && !name_.empty()) (void)libxl_name_to_domid(h_->ctx(), name_.c_str(), &domid);
    if (h_ && domid != kNoDomid) DestroyDomain(h_->ctx(), domid);
    domid_ = kNoDomid;
  }

 private:
  int Wait() {
    int status = 0;
    if (pid_ <= 0) return exit_status_;  // reaped by Running(), or never started
    while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
    pid_ = -1;
    return status;
  }

  std::unique_ptr<XenHandles> h_;
  UniqueFd wr_;
  pid_t pid_ = -1;
  int exit_status_ = 0;
  std::string name_;
  uint32_t domid_ = kNoDomid;
  bool finished_ = false;
};

class LibxcRestore final : public ThreadedRestore {
 public:
  ~LibxcRestore() override {
    if (!finished_) Abort();
  }
  Framing framing() const override { return Framing::kLibxc; }
  uint64_t store_mfn() const override { return store_mfn_; }
  uint64_t console_mfn() const override { return console_mfn_; }

  Status Start(uint32_t domid, uint32_t store_port, uint32_t console_port) {
    domid_ = domid;
    XM_TRY(OpenPipe());
    Run([this, store_port, console_port] {
      // A plain stream calls no callback, but libxc reads the struct.
      restore_callbacks callbacks{};
      unsigned long store = 0, console = 0;
      rc_ = xc_domain_restore(h_->xch(), rd_.get(), domid_, store_port, &store, 0, console_port, &console, 0,
                              XC_STREAM_PLAIN, &callbacks, -1);
      errno_ = errno;
      store_mfn_ = store;
      console_mfn_ = console;
    });
    return {};
  }

  Result<uint32_t> Finish() override {
    EndStream();
    if (rc_ != 0)
      return ErrnoError("xen restore: xc_domain_restore into domain " + std::to_string(domid_) +
                            " failed (see libxc's log above)",
                        errno_);
    finished_ = true;
    return domid_;
  }

  void Abort() override {
    EndStream();  // libxc's restore fails; the domain stays the control plane's
    finished_ = false;
  }

 private:
  uint32_t domid_ = kNoDomid;
  int rc_ = 0;
  int errno_ = 0;
  uint64_t store_mfn_ = 0, console_mfn_ = 0;
  bool finished_ = false;
};

}  // namespace

Result<std::unique_ptr<RestoreRunner>> StartLibxcRestore(uint32_t domid, uint32_t store_port, uint32_t console_port) {
  auto r = std::make_unique<LibxcRestore>();
  XM_TRY(r->Start(domid, store_port, console_port));
  return std::unique_ptr<RestoreRunner>(std::move(r));
}

Result<std::unique_ptr<RestoreRunner>> StartLibxlRestore(const RestoreConfig& cfg) {
  auto r = std::make_unique<LibxlRestore>();
  XM_TRY(r->Start(cfg));
  return std::unique_ptr<RestoreRunner>(std::move(r));
}

Result<std::unique_ptr<RestoreRunner>> StartXlRestore(const RestoreConfig& cfg, const std::string& xl) {
  auto r = std::make_unique<XlRestore>();
  XM_TRY(r->Start(cfg, xl));
  return std::unique_ptr<RestoreRunner>(std::move(r));
}

}  // namespace xm::xen
