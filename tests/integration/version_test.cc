// `xmotion --version` names the protocol the binary really speaks.
#include <gtest/gtest.h>

#include <cstdio>
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

}  // namespace
}  // namespace xm::testing
