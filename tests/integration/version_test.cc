// The CLI around a migration: --version names the protocol the binary really
// speaks; logging goes to stderr, a log file and syslog as asked.
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <iterator>
#include <string>

#include "tests/integration/process.h"
#include "transport/messages.h"

namespace xm::testing {
namespace {

TEST(IntegrationCli, VersionNamesTheProtocolSpoken) {
  std::string cmd = XmotionBin() + " --version";
  FILE* p = ::popen(cmd.c_str(), "r");
  ASSERT_NE(p, nullptr);
  std::string out;
  char buf[256];
  while (size_t n = std::fread(buf, 1, sizeof buf, p)) out.append(buf, n);
  EXPECT_EQ(::pclose(p), 0);
  EXPECT_NE(out.find("(protocol " + std::to_string(kProtocolVersion) + ")"), std::string::npos) << out;
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
