// `xmotion cpu …` end to end: output and exit codes (0 compatible, 3 not,
// 2 bad input), run as a separate process like an operator would.
#include <sys/wait.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace {

using ::testing::HasSubstr;

struct CliRun {
  int code = -1;
  std::string out;
};

// Runs `xmotion cpu <args>` (args are shell words; stderr goes to stdout).
CliRun Cpu(const std::string& args) {
  const char* bin = std::getenv("XMOTION_BIN");
  EXPECT_NE(bin, nullptr) << "XMOTION_BIN not set";
  CliRun r;
  if (!bin) return r;
  std::string cmd = std::string("cd ") + XM_CPUMASK_TESTDATA + " && '" + bin + "' cpu " + args + " 2>&1";
  FILE* p = ::popen(cmd.c_str(), "r");
  if (!p) return r;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) r.out.append(buf, n);
  int status = ::pclose(p);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

TEST(CpuCli, HostPrintsAParseablePolicy) {
  CliRun r = Cpu("host");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_THAT(r.out, HasSubstr("vendor:"));
  CliRun line = Cpu("host --format xen");
  ASSERT_EQ(line.code, 0) << line.out;
  std::string policy = line.out.substr(0, line.out.find('\n'));
  // The host fits itself, given back as a string.
  CliRun check = Cpu("check --vm '" + policy + "' --host '" + policy + "'");
  EXPECT_EQ(check.code, 0) << check.out;
  CliRun json = Cpu("host --json");
  ASSERT_EQ(json.code, 0);
  auto j = nlohmann::json::parse(json.out);
  EXPECT_EQ(j["featureset"], policy.substr(policy.find(':') + 1));
}

TEST(CpuCli, LevelOfThreeIntelHosts) {
  CliRun r = Cpu("level haswell.fs skylake.fs icelake.fs");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_THAT(r.out, HasSubstr("pool of 3 hosts, GenuineIntel"));
  EXPECT_THAT(r.out, HasSubstr("haswell loses nothing"));
  EXPECT_THAT(r.out, HasSubstr("skylake loses 18 of"));
  EXPECT_THAT(r.out, HasSubstr("icelake loses 32 of"));
  CliRun j = Cpu("level --json haswell.fs skylake.fs icelake.fs");
  ASSERT_EQ(j.code, 0) << j.out;
  auto json = nlohmann::json::parse(j.out);
  EXPECT_TRUE(json["compatible"].get<bool>());
  EXPECT_EQ(json["hosts"][2]["name"], "icelake");
  EXPECT_EQ(json["hosts"][1]["loses"][0], "3dnowprefetch");
  EXPECT_EQ(json["level"]["vendor"], "GenuineIntel");
}

TEST(CpuCli, LevelLabelsAndInlineStrings) {
  CliRun r = Cpu("level old=intel:sse2,avx2 new=intel:sse2,avx2,avx512f");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_THAT(r.out, HasSubstr("new  loses 1 of 3:\n      avx512f"));
}

TEST(CpuCli, LevelAcrossVendorsIsIncompatible) {
  CliRun r = Cpu("level haswell.fs epyc-rome.fs");
  EXPECT_EQ(r.code, 3) << r.out;
  EXPECT_THAT(r.out, HasSubstr("different CPU vendors cannot share a pool"));
  EXPECT_THAT(r.out, HasSubstr("2=epyc-rome"));
}

TEST(CpuCli, BadInputExitsTwoAndNamesTheProblem) {
  CliRun r = Cpu("level intel:178bfbff:zz000000");
  EXPECT_EQ(r.code, 2) << r.out;
  EXPECT_THAT(r.out, HasSubstr("word 1 'zz000000' is not 8 hex digits"));
  r = Cpu("check --vm intel:avx513f --host skylake.fs");
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.out, HasSubstr("unknown CPU feature 'avx513f'"));
  r = Cpu("check --vm @missing.fs --host skylake.fs");
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.out, HasSubstr("missing.fs"));
  EXPECT_EQ(Cpu("check --vm skylake.fs").code, 2);  // --host is required
  EXPECT_EQ(Cpu("host --from nowhere").code, 2);
}

TEST(CpuCli, CheckExitCodes) {
  EXPECT_EQ(Cpu("check --vm haswell.fs --host skylake.fs").code, 0);
  CliRun r = Cpu("check --vm skylake.fs --host icelake.fs");
  EXPECT_EQ(r.code, 3);
  EXPECT_THAT(r.out, HasSubstr("incompatible: skylake cannot move to icelake: destination lacks mpx"));
  r = Cpu("check --json --vm icelake.fs --host skylake.fs");
  EXPECT_EQ(r.code, 3);
  auto j = nlohmann::json::parse(r.out);
  EXPECT_FALSE(j["compatible"].get<bool>());
  EXPECT_EQ(j["missing_on_host"].size(), 15u);
  r = Cpu("check --vm haswell.fs --host icelake.fs --pool-level intel:sse2,avx2");
  EXPECT_EQ(r.code, 3);
  EXPECT_THAT(r.out, HasSubstr("destination pool level lacks"));
  EXPECT_EQ(Cpu("check --vm epyc-rome.fs --host icelake.fs").code, 3);
}

TEST(CpuCli, CheckJoin) {
  CliRun r = Cpu("check-join --pool skylake.fs,icelake.fs --host haswell.fs --vms a=intel:sse2,avx2,b=intel:avx512f");
  EXPECT_EQ(r.code, 3) << r.out;
  EXPECT_THAT(r.out, HasSubstr("haswell can join"));
  EXPECT_THAT(r.out, HasSubstr("the pool level loses 17"));
  EXPECT_THAT(r.out, HasSubstr("VM a can still move to haswell"));
  EXPECT_THAT(r.out, HasSubstr("VM b could no longer move to haswell; it lacks 1:\n      avx512f"));

  r = Cpu("check-join --pool haswell.fs --pool skylake.fs --host icelake.fs --vms haswell.fs");
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_THAT(r.out, HasSubstr("the pool level keeps all"));

  r = Cpu("check-join --json --pool haswell.fs,skylake.fs --host epyc-rome.fs");
  EXPECT_EQ(r.code, 3);
  auto j = nlohmann::json::parse(r.out);
  EXPECT_FALSE(j["can_join"].get<bool>());
  EXPECT_THAT(j["error"].get<std::string>(), HasSubstr("different CPU vendors"));

  EXPECT_EQ(Cpu("check-join --pool haswell.fs,epyc-rome.fs --host skylake.fs").code, 2);
}

}  // namespace
