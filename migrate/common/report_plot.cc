#include "migrate/common/report_plot.h"

#include <cstdio>
#include <sstream>

namespace xm {
namespace {

// gnuplot reads its strings in double quotes: keep file names and titles literal.
std::string Quoted(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

std::string Num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.6g", v);
  return buf;
}

}  // namespace

Result<PlotFiles> MakeRoundPlot(const nlohmann::json& report, const std::string& data_path,
                                const std::string& out_path, const std::string& format) {
  if (format != "png" && format != "svg")
    return Error(Code::kInvalidArgument, "plot format must be png or svg, not '" + format + "'");
  if (!report.is_object()) return Error(Code::kInvalidArgument, "the report is not a JSON object");
  if (report.value("role", "") != "source")
    return Error(Code::kInvalidArgument, "a per-round chart needs a send (source) report, this one has role '" +
                                             report.value("role", std::string("?")) + "'");
  if (!report.contains("rounds") || !report["rounds"].is_array() || report["rounds"].empty())
    return Error(Code::kInvalidArgument, "the report has no rounds (the migration failed before pre-copy)");

  PlotFiles f;
  std::ostringstream d;
  d << "# round dirty_pages pages_sent wire_MiB ms throttle_pct predicted_downtime_ms\n";
  for (const auto& r : report["rounds"]) {
    if (!r.is_object() || !r.contains("round")) return Error(Code::kInvalidArgument, "a round without a number");
    double predicted = r.contains("predicted_downtime_ms") && r["predicted_downtime_ms"].is_number()
                           ? r["predicted_downtime_ms"].get<double>()
                           : -1;
    d << r.value("round", 0u) << ' ' << r.value("dirty_pages", 0ull) << ' ' << r.value("pages_sent", 0ull) << ' '
      << Num(static_cast<double>(r.value("bytes_wire", 0ull)) / (1 << 20)) << ' ' << Num(r.value("ms", 0.0)) << ' '
      << Num(100.0 * r.value("throttle", 1.0)) << ' ' << (predicted < 0 ? std::string("NaN") : Num(predicted))
      << '\n';
  }
  f.data = d.str();

  double downtime = report.value("downtime_ms", 0.0);
  double target = report.value("downtime_target_ms", 0.0);
  size_t last = report["rounds"].size() - 1;
  double last_round = report["rounds"][last].value("round", 0u);
  char title[256];
  std::snprintf(title, sizeof title, "xmotion send: %s, %.0f MiB guest, %.2f s total, %.1f ms downtime, %zu rounds",
                report.value("result", std::string("?")).c_str(),
                static_cast<double>(report.value("memory_bytes", 0ull)) / (1 << 20), report.value("total_ms", 0.0) / 1000,
                downtime, report["rounds"].size());

  std::ostringstream s;
  if (format == "png")
    s << "set terminal pngcairo size 1100,1000 font \"sans,10\"\n";
  else
    s << "set terminal svg size 1100,1000 dynamic font \"sans,10\"\n";
  s << "set output " << Quoted(out_path) << "\n"
    << "set datafile missing \"NaN\"\n"
    << "set multiplot layout 3,1 title " << Quoted(title) << "\n"
    << "set grid ytics\nset key outside right top\nset xlabel \"round\"\nset xtics 1\n"
    << "set style fill solid 0.5 border -1\nset boxwidth 0.4 relative\n"
    << "set xrange [-0.5:" << Num(last_round + 0.5) << "]\n"
    // 1: how much each round had to send and sent.
    << "set title \"pages per round\"\nset ylabel \"pages\"\nset format y \"%.0s%c\"\n"
    << "plot " << Quoted(data_path) << " using ($1-0.2):2 with boxes title \"dirty (to send)\", \\\n"
    << "     '' using ($1+0.2):3 with boxes title \"sent (not unchanged)\"\n"
    // 2: bytes on the wire and the guest's throttle.
    << "set title \"on the wire\"\nset ylabel \"MiB\"\nset format y \"%g\"\n"
    << "set y2label \"guest run time %\"\nset y2range [0:105]\nset y2tics\n"
    << "plot " << Quoted(data_path) << " using 1:4 with boxes title \"MiB sent\", \\\n"
    << "     '' using 1:6 axes x1y2 with linespoints lw 2 title \"throttle (run %)\"\n"
    << "unset y2label\nunset y2tics\n"
    // 3: what the policy predicted for stopping after each round, the target, what it was.
    << "set title \"downtime: predicted after each round vs target and actual\"\nset ylabel \"ms\"\n"
    << "set logscale y\n";
  char actual_label[64];
  std::snprintf(actual_label, sizeof actual_label, "actual %.1f ms", downtime);
  s << "plot " << Quoted(data_path) << " using 1:($7 > 0 ? $7 : NaN) with linespoints lw 2 title \"predicted if stopped\"";
  if (target > 0) s << ", \\\n     " << Num(target) << " with lines dt 2 lw 2 title " << Quoted("target " + Num(target) + " ms");
  s << ", \\\n     '+' using (" << Num(last_round) << "):(" << Num(downtime > 0 ? downtime : 0.01)
    << ") every ::0::0 with points pt 7 ps 2 title " << Quoted(actual_label) << "\n"
    << "unset multiplot\n";
  f.script = s.str();
  return f;
}

}  // namespace xm
