// SendPipeline: moves one round's dirty pages from guest memory onto the wire.
//
//   engine thread ──regions──▶ encoder workers ──batches──▶ one sender per stream
//
// The engine hands out 2 MiB regions of the dirty bitmap; W workers snapshot,
// classify and compress each region into a PAGES batch (PageEncoder); each
// stream's sender thread writes batches to its connection. A region always goes
// to the same stream (PROTOCOL.md stream affinity). A bounded pool of batch
// buffers gives backpressure, so memory stays fixed however fast the guest dirties.
// A compression governor watches each codec's throughput and ratio and the
// wire's rate, and picks per batch: no compression, LZ4 or zstd at a level.
#pragma once

#include <memory>
#include <span>
#include <vector>

#include "dirtylog/backend.h"
#include "migrate/common/cancel.h"
#include "migrate/common/page_codec.h"
#include "migrate/common/report.h"
#include "transport/messages.h"
#include "transport/stream.h"

namespace xm {

struct PipelineOptions {
  uint32_t workers = 0;             // 0 = one per online CPU
  bool compress = true;             // allow compression (the governor still decides)
  uint64_t codecs = kFeatureLz4 | kFeatureZstd;  // the methods allowed (HELLO feature bits)
  bool adaptive = true;             // let the governor choose; false: always the first method
  bool record_streams = true;       // compress a batch's pages of one method as one stream (PROTOCOL.md §4)
  uint64_t delta_cache_bytes = 256ull << 20;
  uint32_t dup_index_entries = 1u << 16;
  // An accepted cancel ends the round between regions; batches already being
  // written finish, so every stream stays at a record boundary. Not owned.
  const Canceller* cancel = nullptr;
};

struct PipelineRound {
  uint64_t pages_sent = 0;    // descriptors on the wire (unchanged pages excluded)
  uint64_t bytes_wire = 0;
  EncodeCounts counts;
  bool compression = true;    // the governor's decision when the round ended
  // Where the round's time went, summed over threads: mapping guest pages,
  // encoding them (snapshot, hash, classify, compress), writing records.
  double map_ms = 0, encode_ms = 0, write_ms = 0;
};

// Thread-safety: SendRound and the accessors are called from one thread (the
// engine's); the pipeline's own threads touch nothing the caller can see.
class SendPipeline {
 public:
  // `streams[0]` is the control stream; the pipeline only writes PAGES to them
  // and only inside SendRound, so the engine may use stream 0 between rounds.
  SendPipeline(Backend& backend, std::vector<Stream*> streams, PipelineOptions opts);
  ~SendPipeline();

  // Sends every populated pfn set in `pages`, as round `round`. Blocks until all
  // batches are written; the first error of any thread ends the round, and every
  // later call returns it. Round 0 sends the pages the backend knows nothing
  // wrote (Backend::PagesMaybeWritten) as ZERO without reading them.
  // REQUIRES: rounds are numbered upwards; `pages` is as large as the guest;
  // the backend's dirty log is on before round 0. `last`: the final round (the
  // guest paused, no round after it), which keeps no new per-page state.
  Status SendRound(uint32_t round, const DirtyBitmap& pages, PipelineRound& out, bool last = false);

  // After a broken connection. Detach stops the pipeline's threads and forgets
  // the (dead) streams; Attach resumes on new ones, counting batches from zero
  // as the destination's new lanes do. Per-pfn state (hashes, delta bases, dup
  // index) survives: what the destination acknowledged is never sent again.
  // REQUIRES: no SendRound running; Attach gets as many streams as before.
  void Detach();
  void Attach(std::vector<Stream*> streams);
  // Whether the error that ended the last round came from writing to a stream
  // (the link broke) rather than from the guest (a map failed).
  bool link_failed() const;
  // Pfns written (or being written when it broke) in the current round, all attempts.
  const DirtyBitmap& sent_this_round() const;
  // The destination holds none of the pfns sent this round that are not in
  // `applied`: send them again in full. Returns how many.
  uint64_t ForgetUnapplied(const DirtyBitmap& applied);
  // Page bytes (descriptors and payloads) sent again for pfns ForgetUnapplied named.
  uint64_t resent_bytes() const;

  std::span<const uint64_t> last_hash() const;
  std::vector<uint64_t> batches_per_stream() const;
  // Source-side memory the pipeline holds beyond guest memory (hash table, dup
  // index, batch buffers, delta cache as filled).
  uint64_t overhead_bytes() const;
  uint32_t workers() const;
  // Live counters for a progress meter; any thread. Pages the workers have
  // handled (sent or found unchanged), and bytes written, over all rounds.
  uint64_t pages_done() const;
  uint64_t bytes_wire() const;

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace xm
