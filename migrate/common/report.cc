#include "migrate/common/report.h"

#include <cerrno>
#include <cstdio>
#include <fstream>

#include "base/units.h"

namespace xm {

nlohmann::json MigrationReport::ToJson() const {
  nlohmann::json j;
  j["schema"] = kReportSchema;
  j["role"] = role;
  j["result"] = result;
  if (result != "completed") j["error"] = error;
  j["exit_code"] = exit_code;
  j["backend"] = backend;
  j["total_ms"] = total_ms;
  j["downtime_ms"] = downtime_ms;
  j["downtime"] = {{"pause_ms", downtime.pause_ms},
                   {"final_round_ms", downtime.final_round_ms},
                   {"state_ms", downtime.state_ms},
                   {"restore_ms", downtime.restore_ms},
                   {"unpause_ms", downtime.unpause_ms},
                   {"handoff_ms", downtime.handoff_ms},
                   {"go_to_running_ms", downtime.go_to_running_ms},
                   {"cpu_ms", downtime.cpu_ms}};
  if (downtime_target_ms > 0) j["downtime_target_ms"] = downtime_target_ms;
  j["memory_bytes"] = memory_bytes;
  j["bytes_wire"] = bytes_wire;
  nlohmann::json rs = nlohmann::json::array();
  for (const auto& r : rounds) {
    nlohmann::json jr{{"round", r.round},
                      {"dirty_pages", r.dirty_pages},
                      {"pages_sent", r.pages_sent},
                      {"bytes_wire", r.bytes_wire},
                      {"ms", r.ms},
                      {"fetch_ms", r.fetch_ms},
                      {"compression", r.compression},
                      {"throttle", r.throttle}};
    if (r.predicted_downtime_ms) {
      jr["dirty_next"] = r.dirty_next;
      jr["predicted_downtime_ms"] = *r.predicted_downtime_ms;
    }
    rs.push_back(jr);
  }
  j["rounds"] = rs;
  j["pages"] = {{"zero", pages.zero},   {"unchanged", pages.unchanged}, {"duplicate", pages.duplicate},
                {"delta", pages.delta}, {"lz4", pages.lz4},             {"zstd", pages.zstd},
                {"raw", pages.raw}};
  j["digest_match"] = digest_match;
  if (!digest.empty()) j["digest"] = digest;
  j["transport"] = transport;
  if (!transport_note.empty()) j["transport_note"] = transport_note;
  nlohmann::json enc{{"mode", encryption.mode}, {"auth", encryption.auth}, {"kernel", encryption.kernel}};
  if (!encryption.cipher.empty()) enc["cipher"] = encryption.cipher;
  if (!encryption.mac.empty()) enc["mac"] = encryption.mac;
  if (!encryption.implementation.empty()) enc["implementation"] = encryption.implementation;
  if (!encryption.kernel_note.empty()) enc["kernel_note"] = encryption.kernel_note;
  j["encryption"] = enc;
  if (source_overhead_bytes) j["source_overhead_bytes"] = source_overhead_bytes;
  if (role == "source") j["source_peak_overhead_bytes"] = source_peak_overhead_bytes;
  if (role == "destination") j["destination_overhead_bytes"] = destination_overhead_bytes;
  if (!guest_memory.empty()) j["guest_memory"] = guest_memory;
  j["streams"] = streams;
  j["record_streams"] = record_streams;
  j["verify"] = verify;
  if (!source_guest.empty()) j["source_guest"] = source_guest;
  if (!destination_guest.empty()) j["destination_guest"] = destination_guest;
  if (guest) j["guest"] = *guest;
  if (guest_selfcheck) j["guest_selfcheck"] = *guest_selfcheck;
  if (peer) j["peer"] = *peer;
  if (!cancelled_phase.empty()) j["cancelled_phase"] = cancelled_phase;
  if (cancelled_round) j["cancelled_round"] = *cancelled_round;
  if (!phase.empty()) j["phase"] = phase;
  if (!last_record.empty()) j["last_record"] = last_record;
  j["reconnects"] = reconnects;
  j["bytes_resent"] = bytes_resent;
  nlohmann::json bs = nlohmann::json::array();
  for (const auto& b : breaks) bs.push_back({{"phase", b.phase}, {"at_ms", b.at_ms}, {"error", b.error}});
  j["breaks"] = bs;
  if (dirty_log_misses) j["dirty_log_misses"] = *dirty_log_misses;
  return j;
}

void MigrationReport::SetFailure(const Status& st, const std::string& phase, std::optional<uint32_t> round) {
  error = st.message();
  result = st.code() == Code::kCancelled ? "cancelled" : st.code() == Code::kAborted ? "aborted" : "failed";
  if (st.code() != Code::kCancelled) return;
  cancelled_phase = phase;
  cancelled_round = round;
}

std::string MigrationReport::Summary() const {
  std::string s;
  char line[256];
  s += role + ": " + result + (error.empty() ? "" : " — " + error) + "\n";
  if (rounds.empty()) return s;
  s += " round   dirty pages    pages sent    wire bytes        ms\n";
  for (const auto& r : rounds) {
    std::snprintf(line, sizeof line, " %5u %13llu %13llu %13s %9.1f%s\n", r.round,
                  static_cast<unsigned long long>(r.dirty_pages), static_cast<unsigned long long>(r.pages_sent),
                  FormatBytes(r.bytes_wire).c_str(), r.ms, r.throttle < 1.0 ? " (throttled)" : "");
    s += line;
  }
  std::snprintf(line, sizeof line,
                " total %.1f ms, downtime %.1f ms (pause %.1f ms, final round %.1f ms, state+verify+restore %.1f ms, handoff %.1f ms)\n",
                total_ms, downtime_ms, downtime.pause_ms, downtime.final_round_ms, downtime.state_ms,
                downtime.handoff_ms);
  s += line;
  std::snprintf(line, sizeof line, " memory %s, on the wire %s (%.1f%%), %s x%u, digest %s\n",
                FormatBytes(memory_bytes).c_str(), FormatBytes(bytes_wire).c_str(),
                memory_bytes ? 100.0 * static_cast<double>(bytes_wire) / static_cast<double>(memory_bytes) : 0.0,
                transport.c_str(), streams, digest_match ? "match" : "NOT verified");
  s += line;
  if (encryption.mode == "none")
    s += " encryption: NONE (no --key-file): the stream was readable and writable on the way\n";
  else
    s += " encryption: " + encryption.mode + " (" + encryption.cipher +
         (encryption.mac.empty() ? "" : ", records under " + encryption.mac) + ", " + encryption.auth + ", " +
         (encryption.kernel ? "kernel" : "user space") +
         (encryption.implementation.empty() || encryption.kernel ? "" : ": " + encryption.implementation) + ")\n";
  std::snprintf(line, sizeof line, " pages: zero %llu, unchanged %llu, duplicate %llu, delta %llu, lz4 %llu, zstd %llu, raw %llu\n",
                static_cast<unsigned long long>(pages.zero), static_cast<unsigned long long>(pages.unchanged),
                static_cast<unsigned long long>(pages.duplicate), static_cast<unsigned long long>(pages.delta),
                static_cast<unsigned long long>(pages.lz4), static_cast<unsigned long long>(pages.zstd),
                static_cast<unsigned long long>(pages.raw));
  s += line;
  if (!breaks.empty()) {
    std::snprintf(line, sizeof line, " %zu connection break(s), %u reconnect(s), %s sent again\n", breaks.size(),
                  reconnects, FormatBytes(bytes_resent).c_str());
    s += line;
    for (const auto& b : breaks) s += "   in " + b.phase + " at " + std::to_string(static_cast<long long>(b.at_ms)) +
                                      " ms: " + b.error + "\n";
  }
  return s;
}

Status WriteReportFile(const std::string& path, const nlohmann::json& j) {
  std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    if (!out) return ErrnoError("write report " + tmp, errno);
    out << j.dump(2) << "\n";
    out.flush();
    if (!out) return ErrnoError("write report " + tmp + " (disk full?)", errno);
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) return ErrnoError("rename report to " + path, errno);
  return {};
}

}  // namespace xm
