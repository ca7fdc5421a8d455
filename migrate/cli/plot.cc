// `xmotion plot`: a send report's rounds as a PNG or SVG chart, drawn by gnuplot.
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>

#include "base/log.h"
#include "migrate/cli/commands.h"
#include "migrate/common/report_plot.h"

extern char** environ;

namespace xm::cli {
namespace {

struct PlotArgs {
  std::string report;
  std::string out;
  std::string format;  // png | svg; default from the output's extension
};

Status WriteFile(const std::filesystem::path& p, const std::string& text) {
  std::ofstream f(p);
  f << text;
  f.close();
  if (!f) return Error(Code::kIo, "cannot write " + p.string());
  return {};
}

// Runs gnuplot on `script`, stderr to `log`; an exit status or a reason it could not start.
Status RunGnuplot(const std::filesystem::path& script, const std::filesystem::path& log) {
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, STDERR_FILENO, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
  std::string s = script.string();
  char* argv[] = {const_cast<char*>("gnuplot"), s.data(), nullptr};
  pid_t pid = 0;
  int err = posix_spawnp(&pid, "gnuplot", &fa, nullptr, argv, environ);
  posix_spawn_file_actions_destroy(&fa);
  if (err == ENOENT)
    return Error(Code::kUnsupported, "gnuplot is not installed (Debian: apt-get install gnuplot-nox)");
  if (err != 0) return ErrnoError("starting gnuplot", err);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return {};
  std::ifstream in(log);
  std::stringstream msg;
  msg << in.rdbuf();
  return Error(Code::kIo, "gnuplot failed: " + msg.str());
}

int RunPlot(const PlotArgs& a) {
  auto fail = [](int code, const std::string& msg) {
    spdlog::error("xmotion plot: {}", msg);
    return code;
  };
  std::string format = a.format;
  if (format.empty()) {
    std::string ext = std::filesystem::path(a.out).extension().string();
    if (ext == ".png" || ext == ".svg") format = ext.substr(1);
    else return fail(kExitUsage, "-o " + a.out + ": the file name must end in .png or .svg (or give --format)");
  }
  std::ifstream in(a.report);
  if (!in) return fail(kExitUsage, a.report + ": cannot read the report");
  nlohmann::json report = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
  if (report.is_discarded()) return fail(kExitUsage, a.report + ": not JSON (expected an xmotion send --report file)");
  std::error_code ec;
  auto out_dir = std::filesystem::absolute(a.out, ec).parent_path();
  if (ec || !std::filesystem::is_directory(out_dir))
    return fail(kExitUsage, "-o " + a.out + ": the folder " + out_dir.string() + " does not exist");
  std::string tmpl = (std::filesystem::temp_directory_path() / "xmotion-plot.XXXXXX").string();
  if (!::mkdtemp(tmpl.data())) return fail(kExitFailed, "cannot make a temporary folder");
  std::filesystem::path tmp = tmpl;
  struct Cleanup {
    std::filesystem::path p;
    ~Cleanup() {
      std::error_code e;
      std::filesystem::remove_all(p, e);
    }
  } cleanup{tmp};
  std::string out = std::filesystem::absolute(a.out).string();
  auto files = MakeRoundPlot(report, (tmp / "rounds.dat").string(), out, format);
  if (!files.ok()) return fail(kExitUsage, a.report + ": " + files.status().message());
  for (const Status& st : {WriteFile(tmp / "rounds.dat", files->data), WriteFile(tmp / "plot.gp", files->script)})
    if (!st.ok()) return fail(kExitFailed, st.message());
  if (Status st = RunGnuplot(tmp / "plot.gp", tmp / "gnuplot.log"); !st.ok()) return fail(kExitFailed, st.message());
  if (std::filesystem::file_size(out, ec) == 0 || ec) return fail(kExitFailed, "gnuplot wrote nothing to " + out);
  std::printf("wrote %s (%zu rounds)\n", a.out.c_str(), report["rounds"].size());
  return kExitCompleted;
}

}  // namespace

void AddPlot(CLI::App& app, Runner& run) {
  auto a = std::make_shared<PlotArgs>();
  CLI::App* cmd = app.add_subcommand("plot", "Draw a send report's rounds (pages, bytes, throttle, downtime) with gnuplot");
  cmd->add_option("report", a->report, "A report written by `xmotion send --report` (or demo's source side)")->required();
  cmd->add_option("-o,--output", a->out, "The chart to write: FILE.png or FILE.svg")->required();
  cmd->add_option("--format", a->format, "png or svg (default: from the output's extension)")->check(CLI::IsMember({"png", "svg"}));
  cmd->callback([&run, a] { run = [a] { return RunPlot(*a); }; });
}

}  // namespace xm::cli
