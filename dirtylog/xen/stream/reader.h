// ReadStream: reads a Xen migration stream (xl, libxl or libxc framing) into
// memory and checks it as strictly as Xen's restore and verify-stream-v2 do:
// headers, record order (static data before memory, HVM_PARAMS/HVM_CONTEXT
// at the end of each consistent state), record sizes, padding, reserved bits,
// page types, the HVM context's own structure.
//
// It is xmotion's own judge of what its writer produced (round trips in tests)
// and a way to inspect a stream a real Xen wrote. Only x86 HVM/PVH streams:
// a PV stream is refused with a clear message.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "base/status.h"
#include "dirtylog/xen/stream/byte_io.h"
#include "dirtylog/xen/stream/cpu_policy.h"
#include "dirtylog/xen/stream/guest_state.h"
#include "dirtylog/xen/stream/writer.h"

namespace xm::xen {

struct ReadOptions {
  Framing framing = Framing::kLibxl;
  bool checkpointed = false;  // like libxl's restore, the reader is told; a CHECKPOINT otherwise is an error
};

// The guest a stream describes, as of its last consistent state.
class XenImage {
 public:
  Framing framing = Framing::kLibxl;
  uint32_t libxc_version = 0;
  uint32_t domain_type = 0;
  uint32_t xen_major = 0, xen_minor = 0;
  std::string xl_config_json;          // xl framing only
  std::optional<XenCpuPolicy> policy;  // absent when the stream has no policy records
  XenGuestState state;                 // TSC, params, HVM context, emulator records (the last ones seen)
  uint32_t checkpoints = 0;
  uint64_t page_records = 0;
  uint64_t page_versions = 0;          // pages with data, counting every round's copy
  uint64_t bytes = 0;                  // stream length

  // The last version of each page the stream carried.
  const uint8_t* Page(uint64_t pfn) const;
  size_t page_count() const { return index_.size(); }
  std::vector<uint64_t> Pfns() const;  // ascending
  // pfns the stream declared invalid (XTAB) and did not later fill.
  const std::vector<uint64_t>& invalid_pfns() const { return invalid_; }

  void StorePage(uint64_t pfn, const uint8_t* data);
  void MarkInvalid(uint64_t pfn);

 private:
  std::unordered_map<uint64_t, size_t> index_;  // pfn -> offset in arena_
  std::vector<uint8_t> arena_;
  std::vector<uint64_t> invalid_;
};

Result<XenImage> ReadStream(ByteSource& src, const ReadOptions& opts);

}  // namespace xm::xen
