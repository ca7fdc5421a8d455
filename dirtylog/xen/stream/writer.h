// StreamWriter: writes a guest as Xen's own migration stream, progressively.
//
// The stream is produced in the order a live migration learns things, so it
// can be fed to a restoring libxl while the migration is still running:
//   Begin(policy)        image/domain headers, CPU policy, STATIC_DATA_END
//   AddPages(...)        PAGE_DATA records: round 0 everything, later rounds the
//                        pages that changed (Xen's receiver keeps the last copy)
//   Finish(state)        TSC_INFO, HVM_PARAMS, HVM_CONTEXT, END, then the libxl
//                        emulator records and END
// A checkpointed (Remus/COLO-style) stream instead ends each consistent state
// with Checkpoint(state) — the same tail, then libxc CHECKPOINT and libxl
// CHECKPOINT_END — and is closed with FinishCheckpointed().
//
// Framings (StreamOptions::framing): the bare libxc stream (what
// xc_domain_save writes), the libxl stream wrapping it (what libxl's restore
// reads), or the xl save-file format (xl header + domain config JSON + libxl
// stream; what `xl restore` reads). Only x86 HVM/PVH guests (domain type HVM).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

#include "base/status.h"
#include "dirtylog/xen/stream/byte_io.h"
#include "dirtylog/xen/stream/cpu_policy.h"
#include "dirtylog/xen/stream/guest_state.h"
#include "dirtylog/xen/stream/records.h"

namespace xm::xen {

enum class Framing { kLibxc, kLibxl, kXl };
std::string_view FramingName(Framing f);

struct StreamOptions {
  Framing framing = Framing::kLibxl;
  uint32_t libxc_version = 3;  // 2 or 3; v2 cannot carry the CPU policy
  uint32_t xen_major = 4;      // the domain header's "saved by Xen" version
  uint32_t xen_minor = 17;
  bool checkpointed = false;
  std::string xl_config_json;  // kXl: libxl domain config as JSON (empty: the restorer supplies one)
};

struct StreamStats {
  uint64_t records = 0;       // libxc and libxl records
  uint64_t page_records = 0;  // PAGE_DATA
  uint64_t pages = 0;         // pages with data
  uint64_t invalid_pfns = 0;  // XTAB entries
  uint64_t checkpoints = 0;
};

class StreamWriter {
 public:
  StreamWriter(ByteSink& sink, StreamOptions opts);

  // Headers and static data. `policy` may be null: the stream then carries no
  // policy and Xen's restore falls back to the domain's default one.
  Status Begin(const XenCpuPolicy* policy);
  // PAGE_DATA for pfns[i] with 4 KiB of data at pages[i]; splits into records
  // of at most kMaxPagesPerRecord pages.
  Status AddPages(std::span<const uint64_t> pfns, std::span<const std::byte* const> pages);
  // An optional record (type bit 31 set: Xen's restore skips it), after Begin().
  Status AddOptionalRecord(uint32_t type, std::span<const uint8_t> body);
  // pfns that are holes (XTAB: no data), e.g. ballooned out since an earlier round.
  Status AddInvalidPfns(std::span<const uint64_t> pfns);
  // Checkpointed streams: everything so far is one consistent guest state.
  Status Checkpoint(const XenGuestState& state);
  // Ends a plain stream with the guest's final state.
  Status Finish(const XenGuestState& state);
  // Ends a checkpointed stream; the last call before it must be Checkpoint().
  Status FinishCheckpointed();

  const StreamStats& stats() const { return stats_; }
  const StreamOptions& options() const { return opts_; }
  bool finished() const { return phase_ == Phase::kDone; }

 private:
  enum class Phase { kNew, kBody, kDone, kFailed };
  Status Check(Phase want, std::string_view what);
  Status Put(std::span<const iovec> iov);
  Status Record(uint32_t type, std::span<const uint8_t> body);
  Status PageRecord(std::span<const uint64_t> pfn_words, std::span<const std::byte* const> pages);
  Status Tail(const XenGuestState& state);
  Status EmulatorRecords(const XenGuestState& state);

  ByteSink& sink_;
  StreamOptions opts_;
  StreamStats stats_;
  Phase phase_ = Phase::kNew;
  bool dirty_since_checkpoint_ = false;
};

}  // namespace xm::xen
