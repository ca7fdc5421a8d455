#include "migrate/source/page_encoder.h"

#include <algorithm>
#include <chrono>
#include <cstring>

#include "migrate/common/delta.h"

namespace xm {
namespace {

// A delta is sent only when it is much smaller than the page.
constexpr size_t kMaxDelta = kPageSize / 4;

}  // namespace

PageEncoder::PageEncoder() : scratch_(kMaxPayload), base_(kPageSize), batch_dups_(kBatchDupSlots) {}

bool PageEncoder::TryDup() {
  if (dup_active()) return true;
  return ++dup_probe_counter_ % kDupProbeEvery == 0;
}

// A method costs max(its CPU time per byte, its ratio / wire rate), sending raw
// 1 / wire rate. So on a link slower than the compressors the smallest output
// wins, and a costlier level wins only while the CPU time it adds stays hidden
// behind the link: the level follows the spare CPU.
uint32_t ChooseCodec(std::span<const CodecEstimate> est, double wire_bytes_per_ns) {
  uint32_t best = 0;
  double t_best = 1.0 / wire_bytes_per_ns;
  for (size_t i = 1; i < est.size(); ++i) {
    if (!est[i].known) continue;
    double t = std::max(est[i].ns_per_byte, est[i].ratio / wire_bytes_per_ns);
    if (t < t_best) best = static_cast<uint32_t>(i), t_best = t;
  }
  return best;
}

void PageEncoder::StartBatch(const RoundContext& ctx) {
  const auto n = static_cast<uint32_t>(ctx.choices.size());
  batch_choice_ = std::min<uint32_t>(ctx.choice.load(std::memory_order_relaxed), n - 1);
  // No probe in the final round: the guest is paused, a probe batch of a slow
  // choice would lengthen the downtime, and no round follows to use what it measured.
  probing_ = !ctx.last && n > 1 && ++probe_counter_ % kProbeEvery == 0;
  if (probing_) batch_choice_ = 1 + (probe_counter_ / kProbeEvery) % (n - 1);
  codec_.BeginRecord(ctx.record_streams);
  if (++batch_gen_ == 0) {  // wrapped: forget every slot for real
    batch_dups_.assign(kBatchDupSlots, BatchDup{});
    batch_gen_ = 1;
  }
}

uint32_t PageEncoder::PickChoice() const {
  bool losing = recent_tries_ >= 32 && recent_wins_ * 8 < recent_tries_;
  return losing && !probing_ ? 0 : batch_choice_;
}

void PageEncoder::Encode(const RoundContext& ctx, uint64_t pfn, const std::byte* page, BatchBuilder& batch,
                         EncodeCounts& counts, CodecStats& stats) {
  const std::span<uint64_t> last_hash = ctx.last_hash;
  std::byte* slot = batch.NextSlot();
  // A page nothing ever wrote is not read: no fault, no copy, no scan.
  const bool known_zero = ctx.known_zero && ctx.known_zero->Test(pfn);
  if (!known_zero) std::memcpy(slot, page, kPageSize);  // the snapshot: everything below reads only this copy
  PageDesc d;
  d.pfn = pfn;
  const bool zero = known_zero || IsZeroPage(slot);
  // One hash pass per page: its low half is the page hash, all of it the dup key.
  const Hash128 full = zero ? Hash128{} : PageHash128(slot);
  d.hash = zero ? ZeroPageHash() : full.lo;
  const bool known = !(ctx.unknown && ctx.unknown->Test(pfn));
  if (ctx.round > 0 && known && last_hash[pfn] == d.hash) {
    ++counts.unchanged;  // dirty, but the destination already holds exactly this
    return;
  }
  last_hash[pfn] = d.hash;
  if (zero) {
    d.encoding = static_cast<uint8_t>(PageEncoding::kZero);
    if (ctx.delta) ctx.delta->Drop(pfn);
    ++counts.zero;
    batch.Commit(d);
    return;
  }
  // Re-dirtied page: delta against the version the destination holds.
  if (ctx.round > 0 && ctx.delta && ctx.delta->enabled()) {
    bool have_base = ctx.delta->Get(pfn, base_.data());
    // The last round only refreshes bases it has: no round follows to use a
    // new entry, and a new entry's buffer is fresh memory whose first touch is
    // a page fault (~10 us natively, ~0.1 ms in the nested lab) in the downtime.
    if (have_base || !ctx.last) ctx.delta->Put(pfn, slot);
    if (have_base) {
      size_t n = EncodeDelta(base_.data(), slot, scratch_.data(), kMaxDelta);
      if (n > 0) {
        std::memcpy(slot, scratch_.data(), n);
        d.encoding = static_cast<uint8_t>(PageEncoding::kDelta);
        d.payload_len = static_cast<uint32_t>(n);
        ++counts.delta;
        batch.Commit(d);
        return;
      }
    }
  }
  if (ctx.dup && ctx.dup->enabled() && TryDup()) {
    const Hash128& h = full;
    uint64_t target = UINT64_MAX;
    BatchDup& slot_dup = batch_dups_[h.lo % kBatchDupSlots];
    if (slot_dup.gen == batch_gen_ && slot_dup.h == h) target = slot_dup.pfn;  // earlier in this very record
    if (target == UINT64_MAX) {
      if (auto found = ctx.dup->Find(h); found && *found != pfn && StreamOfPfn(*found, ctx.streams) ==
                                                                       StreamOfPfn(pfn, ctx.streams) &&
                                         !ctx.sending->Test(*found) && last_hash[*found] == d.hash)
        target = *found;
    }
    if (target != UINT64_MAX) {
      dup_misses_ = 0;
      std::memcpy(slot, &target, sizeof target);
      d.encoding = static_cast<uint8_t>(PageEncoding::kDupRef);
      d.payload_len = sizeof target;
      ++counts.duplicate;
      batch.Commit(d);
      return;
    }
    if (dup_misses_ < kDupIdleAfter) ++dup_misses_;
    slot_dup = {h, pfn, batch_gen_};
    sent_contents_.emplace_back(h, pfn);
  }
  d.encoding = static_cast<uint8_t>(PageEncoding::kRaw);
  d.payload_len = kPageSize;
  if (uint32_t choice = PickChoice(); choice != 0) {
    const CodecChoice& c = ctx.choices[choice];
    auto t0 = std::chrono::steady_clock::now();
    uint32_t n = codec_.Compress(c, slot, scratch_.data());
    auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - t0).count();
    CodecStats::PerChoice& s = stats.by_choice[choice];
    s.in.fetch_add(kPageSize, std::memory_order_relaxed);
    s.ns.fetch_add(static_cast<uint64_t>(ns), std::memory_order_relaxed);
    if (++recent_tries_ > 256) {
      recent_tries_ /= 2;
      recent_wins_ /= 2;
    }
    if (n != 0) {
      if (n < kMaxWorthwhilePayload) ++recent_wins_;
      d.encoding = static_cast<uint8_t>(c.method->encoding);
      d.payload_len = n;
    }
    // Raw bytes count as sent whole: the governor weighs what crossed the wire.
    s.out.fetch_add(d.payload_len, std::memory_order_relaxed);
  }
  ++*CountOf(counts, static_cast<PageEncoding>(d.encoding));
  batch.Commit(d);
}

}  // namespace xm
