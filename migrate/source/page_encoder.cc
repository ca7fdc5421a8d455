#include "migrate/source/page_encoder.h"

#include <chrono>
#include <cstring>

#include "migrate/common/delta.h"

namespace xm {
namespace {

constexpr uint32_t kProbeEvery = 32;
// A delta is sent only when it is much smaller than the page.
constexpr size_t kMaxDelta = kPageSize / 4;

}  // namespace

PageEncoder::PageEncoder() : scratch_(MaxLz4Payload()), base_(kPageSize), batch_dups_(kBatchDupSlots) {}

bool PageEncoder::TryDup() {
  if (dup_active()) return true;
  return ++dup_probe_counter_ % kDupProbeEvery == 0;
}

bool PageEncoder::TryLz4(const RoundContext& ctx) {
  if (!ctx.lz4_allowed) return false;
  // Off (link faster than the compressor) or recently useless (incompressible
  // memory): still probe now and then, so the governor's numbers stay current.
  bool losing = recent_tries_ >= 32 && recent_wins_ * 8 < recent_tries_;
  if (ctx.compress.load(std::memory_order_relaxed) && !losing) return true;
  return ++probe_counter_ % kProbeEvery == 0;
}

void PageEncoder::Encode(const RoundContext& ctx, uint64_t pfn, const std::byte* page, BatchBuilder& batch,
                         EncodeCounts& counts, CodecStats& stats) {
  std::vector<uint64_t>& last_hash = *ctx.last_hash;
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
    ctx.delta->Put(pfn, slot);
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
  if (TryLz4(ctx)) {
    auto t0 = std::chrono::steady_clock::now();
    uint32_t n = CompressInPlace(slot, scratch_.data());
    auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - t0).count();
    stats.lz4_in.fetch_add(kPageSize, std::memory_order_relaxed);
    stats.lz4_out.fetch_add(n, std::memory_order_relaxed);
    stats.lz4_ns.fetch_add(static_cast<uint64_t>(ns), std::memory_order_relaxed);
    if (++recent_tries_ > 256) {
      recent_tries_ /= 2;
      recent_wins_ /= 2;
    }
    if (n < kPageSize) {
      ++recent_wins_;
      d.encoding = static_cast<uint8_t>(PageEncoding::kLz4);
      d.payload_len = n;
    }
  }
  ++(d.encoding == static_cast<uint8_t>(PageEncoding::kLz4) ? counts.lz4 : counts.raw);
  batch.Commit(d);
}

}  // namespace xm
