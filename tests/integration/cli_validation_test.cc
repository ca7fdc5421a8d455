// Every argument and file is checked before anything starts: a wrong one is
// exit 2 within a second or two, with one line naming the argument.
#include <chrono>

#include <gtest/gtest.h>

#include "tests/integration/process.h"

namespace xm::testing {
namespace {

struct Bad {
  std::vector<std::string> args;
  const char* names;  // what the one line must name
};

TEST(CliValidation, BadArgumentsAreRefusedAtOnceWithOneLineNamingThem) {
  TempDir dir;
  const std::vector<Bad> bad = {
      {{"demo", "--report", "/nonexistent-dir/r.json"}, "--report /nonexistent-dir/r.json"},
      {{"demo", "--workload", "ws=bogus"}, "--workload"},
      {{"demo", "--key-file", dir.path("no-such-key")}, "--key-file"},
      {{"demo", "--backend", "vmware"}, "--backend vmware"},
      {{"demo", "--memory", "12X"}, "--memory"},
      {{"send", "--to", "127.0.0.1:9", "--backend", "vmware"}, "--backend vmware"},
      {{"send", "--to", "127.0.0.1:9", "--workload", "hot=2G", "--memory", "64M"}, "--workload"},
      {{"send", "--to", "127.0.0.1:9", "--report", "/proc/r.json"}, "--report /proc/r.json"},
      {{"receive", "--listen", "127.0.0.1:0", "--report", "/nonexistent-dir/r.json"}, "--report"},
  };
  for (const Bad& b : bad) {
    std::vector<std::string> argv = {XmotionBin()};
    argv.insert(argv.end(), b.args.begin(), b.args.end());
    std::string shown;
    for (const auto& a : b.args) shown += a + " ";
    SCOPED_TRACE(shown);
    auto t0 = std::chrono::steady_clock::now();
    Child c(argv, false);
    EXPECT_EQ(c.Wait(), 2);
    EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(3));
    std::string err = c.Stderr();
    EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 1) << err;
    EXPECT_NE(err.find(b.names), std::string::npos) << err;
  }
}

}  // namespace
}  // namespace xm::testing
