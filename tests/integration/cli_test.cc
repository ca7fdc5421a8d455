// The CLI around a migration: --version names the protocol the binary really
// speaks; logging goes to stderr, a log file and syslog as asked.
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "tests/integration/process.h"
#include "transport/messages.h"

namespace xm::testing {
namespace {

// Runs `xmotion ARGS`; returns its stdout, and its exit status in *status.
std::string Stdout(const std::string& args, int* status) {
  std::string cmd = XmotionBin() + " " + args;
  FILE* p = ::popen(cmd.c_str(), "r");
  if (!p) return {};
  std::string out;
  char buf[256];
  while (size_t n = std::fread(buf, 1, sizeof buf, p)) out.append(buf, n);
  *status = ::pclose(p);
  return out;
}

TEST(IntegrationCli, VersionNamesTheProtocolSpoken) {
  int status = -1;
  std::string out = Stdout("--version", &status);
  EXPECT_EQ(status, 0);
  EXPECT_NE(out.find("(protocol " + std::to_string(kProtocolVersion) + ")"), std::string::npos) << out;
}

TEST(IntegrationCli, BackendsListsTheRegistry) {
  int status = -1;
  auto j = nlohmann::json::parse(Stdout("backends --json", &status), nullptr, false);
  EXPECT_EQ(status, 0);
  ASSERT_TRUE(j.is_array()) << j;
  std::vector<std::string> names;
  for (const auto& b : j) {
    names.push_back(b["name"]);
    if (b["name"] == "sim") {
      EXPECT_TRUE(b["usable"].get<bool>()) << b;
    }
    if (!b["usable"].get<bool>()) {
      EXPECT_FALSE(b["why_not"].get<std::string>().empty()) << b;
    }
  }
  EXPECT_EQ(names, (std::vector<std::string>{"sim", "kvm", "xen"}));
}

TEST(IntegrationCli, LogFileGetsTheErrorWithTimeAndLevel) {
  TempDir dir;
  Child s({XmotionBin(), "send", "--to", "127.0.0.1:1", "--backend", "sim", "--memory", "4M", "--quiet",
           "--log-file", dir.path("xmotion.log"), "--verbose"},
          false);
  EXPECT_EQ(s.Wait(), 5);  // nothing listens there: the wrong-peer code
  // stderr keeps its plain text; the file has the same line with time and level.
  EXPECT_NE(s.Stderr().find("xmotion send: connect 127.0.0.1:1"), std::string::npos) << s.Stderr();
  std::ifstream f(dir.path("xmotion.log"));
  std::string log((std::istreambuf_iterator<char>(f)), {});
  EXPECT_NE(log.find(" error xmotion send: connect 127.0.0.1:1"), std::string::npos) << log;
}

TEST(IntegrationCli, VerboseLogsTheSessionAndEveryRound) {
  TempDir dir;
  Child r({XmotionBin(), "receive", "--listen", "127.0.0.1:0", "--backend", "sim", "--accept-timeout", "30", "--quiet",
           "--log-file", dir.path("recv.log")},
          true);
  ASSERT_GT(r.port(), 0) << r.Stderr();
  Child s({XmotionBin(), "send", "--to", "127.0.0.1:" + std::to_string(r.port()), "--backend", "sim", "--memory",
           "8M", "--quiet", "--verbose"},
          false);
  EXPECT_EQ(s.Wait(), 0) << s.Stderr();
  EXPECT_EQ(r.Wait(), 0) << r.Stderr();
  EXPECT_NE(s.Stderr().find("send: session "), std::string::npos) << s.Stderr();
  EXPECT_NE(s.Stderr().find("send: round 0 sent"), std::string::npos) << s.Stderr();
  // Without --verbose, debug reaches only the log file.
  EXPECT_EQ(r.Stderr().find("receive: session "), std::string::npos) << r.Stderr();
  std::ifstream f(dir.path("recv.log"));
  std::string log((std::istreambuf_iterator<char>(f)), {});
  EXPECT_NE(log.find("debug receive: round 0 applied"), std::string::npos) << log;
}

}  // namespace
}  // namespace xm::testing
