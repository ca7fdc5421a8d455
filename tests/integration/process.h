// Test helper: runs xmotion as a real child process (receiver or sender), with
// its stderr captured and, for receivers, the listening port read back.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace xm::testing {

std::string XmotionBin();

class Child {
 public:
  // Starts `args` (args[0] is the program). With `want_port`, the child gets
  // `--ready-fd 3` semantics: we read the port it listens on. `stdout_path`:
  // the child's stdout goes to this file (else it is inherited); `pass_fd`:
  // handed to the child as fd 4 (e.g. for --control-fd 4).
  Child(std::vector<std::string> args, bool want_port, const std::string& stdout_path = "", int pass_fd = -1);
  ~Child();
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;

  int port() const { return port_; }
  pid_t pid() const { return pid_; }
  // Waits for exit; returns the exit code (128+signal when killed).
  int Wait();
  void Kill(int sig);
  // Everything the child wrote to stderr (after Wait()).
  std::string Stderr();

 private:
  pid_t pid_ = -1;
  int port_ = -1;
  int exit_code_ = -1;
  std::string err_path_;
};

// A fresh temporary directory, removed on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  std::string path(const std::string& name) const { return dir_ + "/" + name; }

 private:
  std::string dir_;
};

nlohmann::json ReadJsonFile(const std::string& path);

// Both ends of one migration once both exited: exit codes, reports (send.json
// and recv.json in `dir`) and stderr.
struct PairRun {
  int send_rc = -1, recv_rc = -1;
  nlohmann::json send, recv;
  std::string send_err, recv_err;
};
PairRun WaitForPair(Child& receiver, Child& sender, const TempDir& dir);
// Waits until process `pid` has `bytes` more resident (VmRSS) than when called. A
// receiver's RSS grows as guest pages land, so this is a deterministic "pre-copy
// is under way".
bool WaitForRssGrowth(pid_t pid, uint64_t bytes, int timeout_ms);
// True when both files exist and have identical bytes; `why` says where they differ.
bool SameFile(const std::string& a, const std::string& b, std::string* why);

}  // namespace xm::testing
