// `xmotion plot`: the gnuplot data and script made from a send report, and the
// command end to end (gnuplot from scripts/setup) writing a real PNG and SVG.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>

#include <sys/wait.h>
#include <unistd.h>

#include "migrate/common/report_plot.h"

namespace xm {
namespace {

nlohmann::json ThreeRounds() {
  return nlohmann::json{
      {"role", "source"},
      {"result", "completed"},
      {"memory_bytes", 256ull << 20},
      {"total_ms", 812.5},
      {"downtime_ms", 12.5},
      {"downtime_target_ms", 300.0},
      {"rounds",
       {{{"round", 0}, {"dirty_pages", 65536}, {"pages_sent", 65536}, {"bytes_wire", 200u << 20}, {"ms", 500.0},
         {"throttle", 1.0}, {"dirty_next", 4000}, {"predicted_downtime_ms", 400.0}},
        {{"round", 1}, {"dirty_pages", 4000}, {"pages_sent", 3900}, {"bytes_wire", 15u << 20}, {"ms", 40.0},
         {"throttle", 0.5}, {"dirty_next", 300}, {"predicted_downtime_ms", 9.0}},
        {{"round", 2}, {"dirty_pages", 300}, {"pages_sent", 300}, {"bytes_wire", 1u << 20}, {"ms", 8.0},
         {"throttle", 0.5}}}}};
}

TEST(ReportPlot, OneDataLinePerRoundWithThePredictionWhereThereIsOne) {
  auto f = MakeRoundPlot(ThreeRounds(), "/t/r.dat", "/t/out.png", "png");
  ASSERT_TRUE(f.ok()) << f.status().ToString();
  EXPECT_NE(f->data.find("0 65536 65536 200 500 100 400\n"), std::string::npos) << f->data;
  EXPECT_NE(f->data.find("1 4000 3900 15 40 50 9\n"), std::string::npos) << f->data;
  EXPECT_NE(f->data.find("2 300 300 1 8 50 NaN\n"), std::string::npos) << f->data;
  EXPECT_NE(f->script.find("set terminal pngcairo"), std::string::npos);
  EXPECT_NE(f->script.find("set output \"/t/out.png\""), std::string::npos);
  EXPECT_NE(f->script.find("target 300 ms"), std::string::npos);
  EXPECT_NE(f->script.find("actual 12.5 ms"), std::string::npos);
  auto svg = MakeRoundPlot(ThreeRounds(), "/t/r.dat", "/t/out.svg", "svg");
  ASSERT_TRUE(svg.ok());
  EXPECT_NE(svg->script.find("set terminal svg"), std::string::npos);
}

TEST(ReportPlot, FileNamesAreQuotedLiterally) {
  auto f = MakeRoundPlot(ThreeRounds(), "/t/a\"b.dat", "/t/x\\y.png", "png");
  ASSERT_TRUE(f.ok());
  EXPECT_NE(f->script.find("\"/t/a\\\"b.dat\""), std::string::npos) << f->script;
  EXPECT_NE(f->script.find("\"/t/x\\\\y.png\""), std::string::npos) << f->script;
}

TEST(ReportPlot, RefusesWhatItCannotDraw) {
  nlohmann::json dst = ThreeRounds();
  dst["role"] = "destination";
  auto r = MakeRoundPlot(dst, "d", "o.png", "png");
  EXPECT_EQ(r.status().code(), Code::kInvalidArgument);
  EXPECT_NE(r.status().message().find("source"), std::string::npos);
  nlohmann::json none = ThreeRounds();
  none["rounds"] = nlohmann::json::array();
  EXPECT_NE(MakeRoundPlot(none, "d", "o.png", "png").status().message().find("no rounds"), std::string::npos);
  EXPECT_FALSE(MakeRoundPlot(ThreeRounds(), "d", "o.gif", "gif").ok());
  EXPECT_FALSE(MakeRoundPlot(nlohmann::json::array(), "d", "o.png", "png").ok());
}

std::string Shell(const std::string& cmd) {
  std::string out;
  FILE* p = ::popen((cmd + " 2>&1").c_str(), "r");
  char buf[512];
  while (p && std::fgets(buf, sizeof buf, p)) out += buf;
  int rc = p ? ::pclose(p) : -1;
  return std::to_string(WEXITSTATUS(rc)) + ":" + out;
}

TEST(ReportPlot, TheCommandWritesAPngAndAnSvg) {
  const char* bin = std::getenv("XMOTION_BIN");
  ASSERT_NE(bin, nullptr) << "ctest sets XMOTION_BIN";
  auto dir = std::filesystem::temp_directory_path() / ("xm-plot-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  std::ofstream(dir / "send.json") << ThreeRounds().dump();
  std::string out = Shell(std::string(bin) + " plot " + (dir / "send.json").string() + " -o " + (dir / "r.png").string());
  ASSERT_EQ(out.substr(0, 2), "0:") << out;
  std::ifstream png(dir / "r.png", std::ios::binary);
  char magic[8] = {};
  png.read(magic, 8);
  EXPECT_EQ(std::string(magic + 1, 3), "PNG");
  EXPECT_GT(std::filesystem::file_size(dir / "r.png"), 10000u);
  out = Shell(std::string(bin) + " plot " + (dir / "send.json").string() + " -o " + (dir / "r.svg").string());
  ASSERT_EQ(out.substr(0, 2), "0:") << out;
  std::ifstream svg(dir / "r.svg");
  std::string text((std::istreambuf_iterator<char>(svg)), {});
  EXPECT_NE(text.find("<svg"), std::string::npos);
  // Usage errors: exit 2 with one line naming the problem.
  out = Shell(std::string(bin) + " plot " + (dir / "send.json").string() + " -o " + (dir / "r.gif").string());
  EXPECT_EQ(out.substr(0, 2), "2:") << out;
  EXPECT_NE(out.find(".png or .svg"), std::string::npos) << out;
  out = Shell(std::string(bin) + " plot /nonexistent.json -o " + (dir / "r.png").string());
  EXPECT_EQ(out.substr(0, 2), "2:") << out;
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace xm
