// Logging: every message xmotion writes for people goes through spdlog's
// default logger, set up once by the CLI (SetUpLogging). Messages keep their
// plain "xmotion send: ..." text on stderr; a log file and syslog get the same
// messages with time and level, for a control plane that collects them.
//
// Levels: error = the command failed; warn = it goes on, but something was
// lost or skipped; info = results and phases; debug (--verbose) = detail for
// whoever debugs a migration. Before SetUpLogging (library tests) spdlog's
// defaults apply.
//
// Thread-safety: SetUpLogging before any thread logs; logging from any thread.
#pragma once

#include <string>

#include <spdlog/spdlog.h>

#include "base/status.h"

namespace xm {

struct LogOptions {
  std::string level = "info";  // error | warn | info | debug (--verbose); what reaches stderr
  std::string file;            // also append every message, debug included, here
  bool syslog = false;         // also send info and above to syslog (facility daemon)
  std::string syslog_ident = "xmotion";
};

// Replaces spdlog's default logger. kInvalidArgument for an unknown level or a
// log file that cannot be opened.
Status SetUpLogging(const LogOptions& opts);

}  // namespace xm
