// The pure logic around the Xen toolstack: QMP conversations (against a
// scripted peer on a socketpair, not QEMU), the restore config, the xl command
// line, and what the factory says on a host without Xen.
#include <gtest/gtest.h>

#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <thread>

#include "dirtylog/registry.h"
#include "dirtylog/xen/qmp_client.h"
#include "dirtylog/xen/restore_config.h"
#include "dirtylog/xen/xen_factory.h"

namespace xm::xen {
namespace {

// Plays QEMU's side: sends the banner, then for each expected command checks it
// and answers with the scripted lines.
struct Script {
  std::vector<std::pair<std::string, std::vector<std::string>>> steps;  // command -> lines to answer
};

std::string ReadLine(int fd) {
  std::string line;
  char c;
  while (::read(fd, &c, 1) == 1) {
    if (c == '\n') break;
    line.push_back(c);
  }
  return line;
}

void Serve(int fd, Script s, std::vector<nlohmann::json>* seen) {
  std::string banner = R"({"QMP": {"version": {"qemu": {"major": 7}}, "capabilities": []}})" "\r\n";
  (void)!::write(fd, banner.data(), banner.size());
  for (auto& [cmd, lines] : s.steps) {
    auto msg = nlohmann::json::parse(ReadLine(fd), nullptr, false);
    seen->push_back(msg);
    for (auto line : lines) {
      if (msg.is_object() && msg.contains("id")) {
        auto pos = line.find("ID");
        if (pos != std::string::npos) line.replace(pos, 2, msg["id"].dump());
      }
      line += "\r\n";
      (void)!::write(fd, line.data(), line.size());
    }
  }
}

TEST(XenQmp, EnablesLogDirtySkippingEvents) {
  int sv[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
  std::vector<nlohmann::json> seen;
  Script s{{{"qmp_capabilities", {R"({"return": {}, "id": ID})"}},
            {"xen-set-global-dirty-log",
             {R"({"event": "RTC_CHANGE", "data": {"offset": 1}})", R"({"return": {}, "id": ID})"}}}};
  std::thread peer(Serve, sv[1], s, &seen);
  auto c = QmpClient::Handshake(UniqueFd(sv[0]), 2000);
  ASSERT_TRUE(c.ok()) << c.status().message();
  auto r = c->Execute("xen-set-global-dirty-log", {{"enable", true}});
  EXPECT_TRUE(r.ok()) << r.status().message();
  peer.join();
  ::close(sv[1]);
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen[0]["execute"], "qmp_capabilities");
  EXPECT_EQ(seen[1]["execute"], "xen-set-global-dirty-log");
  EXPECT_EQ(seen[1]["arguments"]["enable"], true);
}

TEST(XenQmp, ReportsQemusErrorAndSilence) {
  int sv[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
  std::vector<nlohmann::json> seen;
  Script s{{{"qmp_capabilities", {R"({"return": {}, "id": ID})"}},
            {"xen-set-global-dirty-log",
             {R"({"error": {"class": "GenericError", "desc": "not a Xen guest"}, "id": ID})"}},
            {"query-status", {}}}};
  std::thread peer(Serve, sv[1], s, &seen);
  auto c = QmpClient::Handshake(UniqueFd(sv[0]), 300);
  ASSERT_TRUE(c.ok()) << c.status().message();
  auto r = c->Execute("xen-set-global-dirty-log", {{"enable", true}});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("not a Xen guest"), std::string::npos) << r.status().message();
  auto t = c->Execute("query-status");  // the peer never answers
  EXPECT_EQ(t.status().code(), Code::kTimeout);
  peer.join();
  ::close(sv[1]);
}

TEST(XenQmp, RefusesAPeerThatIsNotQmp) {
  int sv[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
  std::string hello = "SSH-2.0-OpenSSH\r\n";
  (void)!::write(sv[1], hello.data(), hello.size());
  auto c = QmpClient::Handshake(UniqueFd(sv[0]), 1000);
  EXPECT_FALSE(c.ok());
  ::close(sv[1]);
}

TEST(XenRestoreConfig, RenamesAndDropsTheSourceDomid) {
  auto c = PrepareRestoreConfig(R"({"c_info":{"type":"hvm","name":"web","domid":7},"b_info":{"max_memkb":1048576}})",
                                "web--incoming");
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_EQ(c->domain_name, "web--incoming");
  EXPECT_EQ(c->type, "hvm");
  auto j = nlohmann::json::parse(c->json);
  EXPECT_EQ(j["c_info"]["name"], "web--incoming");
  EXPECT_FALSE(j["c_info"].contains("domid"));
  EXPECT_EQ(j["b_info"]["max_memkb"], 1048576);
  auto keep = PrepareRestoreConfig(R"({"c_info":{"type":"pvh","name":"db"}})", "");
  ASSERT_TRUE(keep.ok());
  EXPECT_EQ(keep->domain_name, "db");
}

TEST(XenRestoreConfig, RefusesPvAndNonLibxlConfigs) {
  EXPECT_EQ(PrepareRestoreConfig(R"({"c_info":{"type":"pv","name":"x"}})", "").status().code(), Code::kUnsupported);
  EXPECT_FALSE(PrepareRestoreConfig("name = \"x\"\nmemory = 512\n", "").ok());  // an xl.cfg, not JSON
  EXPECT_FALSE(PrepareRestoreConfig(R"({"b_info":{}})", "").ok());
  EXPECT_FALSE(PrepareRestoreConfig(R"({"c_info":{"type":"hvm"}})", "").ok());  // no name
}

TEST(XenRestoreConfig, XlCommandLine) {
  EXPECT_EQ(XlRestoreArgv("xl", 3), (std::vector<std::string>{"xl", "restore", "-p", "/proc/self/fd/3"}));
}

TEST(XenFactory, SaysWhyXenIsNotUsableHere) {
  if (std::filesystem::exists("/proc/xen/capabilities"))
    GTEST_SKIP() << "this host runs under Xen; the no-Xen message is not what it would say";
  Status st = xm::BackendUsable("xen");
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.code(), Code::kUnsupported);
  if (BackendBuilt()) {
    EXPECT_NE(st.message().find("no Xen hypervisor"), std::string::npos) << st.message();
    auto names = xm::AvailableBackends();
    EXPECT_NE(std::find(names.begin(), names.end(), "xen"), names.end());
  } else {
    EXPECT_NE(st.message().find("libxen-dev"), std::string::npos) << st.message();
  }
  BackendOptions o;
  o.backend = "xen";
  o.domain = "vm1";
  EXPECT_EQ(xm::OpenSource(o).status().code(), Code::kUnsupported);
  GuestShape shape{4096, 16, {{0, 16}}, 1};
  EXPECT_EQ(xm::CreateDestination(o, shape, "xen").status().code(), Code::kUnsupported);
}

}  // namespace
}  // namespace xm::xen
