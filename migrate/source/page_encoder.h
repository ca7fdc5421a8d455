// PageEncoder: the source's per-worker page classifier (DESIGN.md §3), the
// mirror of the destination's PageApplier. For each
// dirty page it decides, in this order: zero, unchanged since last sent,
// XOR delta against the last sent version, duplicate of a page the destination
// holds, compressed (the batch's codec choice), raw — and appends the result to a batch.
//
// Per-pfn state (last sent hash, delta base) belongs to whichever worker holds
// the pfn's region this round, so workers never share a pfn; the dup index is
// read-only during a round and grows between rounds (see DupIndex). Like
// compression, the dup index is adaptive: a worker that has found no duplicate in a long run
// of pages (random or encrypted memory) only probes one page in kDupProbeEvery,
// until a probe finds one.
#pragma once

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdint>
#include <span>
#include <vector>

#include "dirtylog/bitmap.h"
#include "migrate/source/delta_cache.h"
#include "migrate/source/dup_index.h"
#include "migrate/common/page_codec.h"
#include "transport/messages.h"

namespace xm {

// What one round shares with every worker.
struct RoundContext {
  uint32_t round = 0;
  bool last = false;  // the final round: the guest is paused and no round follows
  uint32_t streams = 1;
  const DirtyBitmap* sending = nullptr;  // pfns sent this round (never DUP_REF targets)
  std::span<uint64_t> last_hash;  // per pfn: the hash of the version the destination holds (0: none)
  DeltaCache* delta = nullptr;
  const DupIndex* dup = nullptr;
  // After a broken connection: pfns whose copy at the destination is unknown
  // (sent, never applied). Never "unchanged", never a delta; read-only in a round.
  const DirtyBitmap* unknown = nullptr;
  // Pages that read as zero without being read (the complement of
  // Backend::PagesMaybeWritten when the round started); null: read every page.
  const DirtyBitmap* known_zero = nullptr;
  // The session's codec choices (CodecChoices: index 0 sends raw) and the
  // governor's pick, which changes mid-round; a worker reads it once per batch.
  // One choice only (--no-compress): no compression, not even probes.
  std::vector<CodecChoice> choices = CodecChoices(kFeatureLz4);
  std::atomic<uint32_t> choice{1};
  // The session has RECORD_STREAMS: a batch's pages of one method form a stream.
  bool record_streams = false;
};

// Measurements the compression governor reads (summed over workers), by choice.
struct CodecStats {
  static constexpr size_t kMaxChoices = 8;
  struct PerChoice {
    std::atomic<uint64_t> in{0}, out{0}, ns{0};
  };
  std::array<PerChoice, kMaxChoices> by_choice;
};

// What the governor knows of one codec choice: CPU ns per raw byte over all
// workers, and output / input. Unknown choices are not chosen.
struct CodecEstimate {
  double ns_per_byte = 0, ratio = 1;
  bool known = false;
};
// The choice (index into `est`, 0 = none) that moves a raw byte soonest over a
// link of `wire_bytes_per_ns` (DESIGN.md §3, codec choice). est[0] is ignored.
uint32_t ChooseCodec(std::span<const CodecEstimate> est, double wire_bytes_per_ns);

// Thread-safety: one encoder per worker thread; RoundContext is shared
// read-only except for the atomics and the per-pfn slots of the worker's region.
class PageEncoder {
 public:
  PageEncoder();
  // Encodes `page` (live guest memory) for `pfn` into `batch`.
  // REQUIRES: `batch` has room for one more page; no other worker holds `pfn`'s region.
  void Encode(const RoundContext& ctx, uint64_t pfn, const std::byte* page, BatchBuilder& batch, EncodeCounts& counts,
              CodecStats& stats);
  // Pages sent in full this round, for the dup index after the round.
  std::vector<std::pair<Hash128, uint64_t>>& sent_contents() { return sent_contents_; }
  // Call when a batch is started: in-batch duplicates can only refer within it,
  // its record streams begin, and it is compressed with the governor's choice of
  // this moment, or (one batch in kProbeEvery, never in the final round) with
  // another choice to measure it.
  void StartBatch(const RoundContext& ctx);
  // Memory the encoder's record streams hold (RecordCodec::memory_bytes).
  // REQUIRES: no Encode running (between rounds).
  size_t stream_memory_bytes() const { return codec_.memory_bytes(); }
  // Whether the next dup lookup would be a full one (false: probing only).
  bool dup_active() const { return dup_misses_ < kDupIdleAfter; }
  // Dup adaptivity: after this many lookups in a row without a hit, probe only.
  static constexpr uint32_t kDupIdleAfter = 8192;
  static constexpr uint32_t kDupProbeEvery = 32;

 private:
  // The choice (index into ctx.choices) for the next compressible page.
  uint32_t PickChoice() const;
  bool TryDup();
  // In-batch duplicates: direct-mapped by the hash's low bits, reset per batch
  // by the generation (a lost entry only loses a dedup chance).
  struct BatchDup {
    Hash128 h;
    uint64_t pfn = 0;
    uint32_t gen = 0;
  };
  static constexpr size_t kBatchDupSlots = 512;

  std::vector<uint8_t> scratch_;
  std::vector<std::byte> base_;
  std::vector<std::pair<Hash128, uint64_t>> sent_contents_;
  std::vector<BatchDup> batch_dups_;
  uint32_t batch_gen_ = 1;
  uint32_t dup_misses_ = 0, dup_probe_counter_ = 0;
  uint32_t batch_choice_ = 0;
  // One batch in kProbeEvery tries another choice (round robin), so the governor
  // keeps measuring what it does not use; compression that stops paying on this
  // worker's pages (incompressible memory) falls back to those probes alone.
  // Whole batches, not single pages: a record stream has one level per method.
  static constexpr uint32_t kProbeEvery = 32;
  uint32_t probe_counter_ = 0;
  bool probing_ = false;
  uint32_t recent_tries_ = 0, recent_wins_ = 0;
  RecordCodec codec_;
};

}  // namespace xm
