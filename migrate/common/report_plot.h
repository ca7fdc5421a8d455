// ReportPlot: a send report's rounds as a gnuplot chart (`xmotion plot`).
//
// gnuplot (Debian's gnuplot-nox) draws it: it writes PNG and SVG from one
// script, runs headless, and is one package in every Debian release, where a
// C++ plotting library would add a build dependency for one command. This file
// turns the report into gnuplot's data and script (pure, tested); the CLI runs
// gnuplot on them.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "base/status.h"

namespace xm {

struct PlotFiles {
  std::string data;    // one line per round, whitespace-separated columns
  std::string script;  // gnuplot commands; reads `data_path`, writes `out_path`
};

// REQUIRES: `report` is a source report (role "source") with at least one round.
// `format` is "png" or "svg". Returns kInvalidArgument naming what is missing.
Result<PlotFiles> MakeRoundPlot(const nlohmann::json& report, const std::string& data_path,
                                const std::string& out_path, const std::string& format);

}  // namespace xm
