#include "base/log.h"

#include <syslog.h>

#include <memory>
#include <vector>

#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/sinks/syslog_sink.h>

namespace xm {

Status SetUpLogging(const LogOptions& opts) {
  spdlog::level::level_enum stderr_level;
  if (opts.level == "error") stderr_level = spdlog::level::err;
  else if (opts.level == "warn") stderr_level = spdlog::level::warn;
  else if (opts.level == "info") stderr_level = spdlog::level::info;
  else if (opts.level == "debug") stderr_level = spdlog::level::debug;
  else return Error(Code::kInvalidArgument, "log level '" + opts.level + "': use error, warn, info or debug");

  std::vector<spdlog::sink_ptr> sinks;
  // Plain text on stderr: what people and scripts have always read there.
  auto err = std::make_shared<spdlog::sinks::stderr_sink_mt>();
  err->set_pattern("%v");
  err->set_level(stderr_level);
  sinks.push_back(err);
  if (!opts.file.empty()) {
    try {
      auto file = std::make_shared<spdlog::sinks::basic_file_sink_mt>(opts.file);
      file->set_pattern("%Y-%m-%dT%H:%M:%S.%e %P %l %v");
      file->set_level(spdlog::level::debug);
      sinks.push_back(file);
    } catch (const spdlog::spdlog_ex& e) {
      return Error(Code::kInvalidArgument, "--log-file " + opts.file + ": " + e.what());
    }
  }
  if (opts.syslog) {
    auto sys = std::make_shared<spdlog::sinks::syslog_sink_mt>(opts.syslog_ident, LOG_PID, LOG_DAEMON, true);
    sys->set_pattern("%v");
    sys->set_level(spdlog::level::info);
    sinks.push_back(sys);
  }
  auto logger = std::make_shared<spdlog::logger>("xmotion", sinks.begin(), sinks.end());
  logger->set_level(spdlog::level::debug);
  logger->flush_on(spdlog::level::debug);  // a dying process must not lose its last words
  spdlog::set_default_logger(logger);
  return {};
}

}  // namespace xm
