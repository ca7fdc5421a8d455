#include "migrate/source/pipeline.h"

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>

#include "base/zeroed_array.h"
#include "dirtylog/page_access.h"
#include "migrate/source/delta_cache.h"
#include "migrate/source/dup_index.h"
#include "migrate/source/page_encoder.h"
#include "transport/record.h"

namespace xm {
namespace {

using Clock = std::chrono::steady_clock;
constexpr uint64_t kRegionPages = 512;  // PROTOCOL.md stream affinity: pfn >> 9
constexpr size_t kRegionWords = kRegionPages / 64;

// A worker's unit: the dirty pages of one or more regions of one stream. A
// sparse round gathers many regions into one chunk, so a backend that maps
// guest memory per call (Xen's foreign mapping: a hypercall, page-table
// updates and an munmap, ~2 ms each under the lab's TCG) pays per ~512 pages,
// not per region with one dirty page in it.
struct Region {
  uint64_t index = 0;
  uint64_t words[kRegionWords] = {};
};
struct Chunk {
  uint32_t stream = 0;
  uint64_t pages = 0;
  std::vector<Region> regions;
};
constexpr uint64_t kChunkPages = kRegionPages;

uint64_t NowNs() {
  return static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch()).count());
}

}  // namespace

class SendPipeline::Impl {
 public:
  Impl(Backend& b, std::vector<Stream*> streams, PipelineOptions o);
  ~Impl();
  Status SendRound(uint32_t round, const DirtyBitmap& pages, PipelineRound& out, bool last);

  Backend& backend_;
  std::vector<Stream*> streams_;
  PipelineOptions opts_;
  uint32_t nworkers_;
  uint32_t nstreams_;
  ZeroedArray<uint64_t> last_hash_;  // spans the gfn space: only the populated frames are faulted in
  DirtyBitmap populated_;
  DeltaCache delta_;
  DupIndex dup_;
  CodecStats stats_;
  RoundContext ctx_;

  std::mutex mu_;
  // One condition per kind of wait, so that handing over a chunk or a batch
  // wakes only a thread that can use it: one shared condition would wake every
  // worker and sender for each batch, thousands of useless context switches
  // per GiB on a machine where the migration is CPU-bound.
  std::condition_variable chunk_cv_;  // workers: a chunk is queued (or stop)
  std::condition_variable space_cv_;  // engine: room in the chunk queue, outstanding_ reached 0, or an error
  std::condition_variable free_cv_;   // workers: a batch buffer is free (or stop/failure)
  std::vector<std::condition_variable> send_cv_;  // sender s: its queue is not empty (or stop)
  std::deque<Chunk> chunks_;
  size_t max_chunks_ = 64;
  std::vector<std::deque<BatchBuilder*>> send_q_;
  std::vector<std::unique_ptr<BatchBuilder>> batches_;
  std::vector<BatchBuilder*> free_;
  uint64_t outstanding_ = 0;  // batches and empty chunks not yet finished this round
  Status error_;
  bool stop_ = false;

  std::vector<PageEncoder> encoders_;
  std::vector<EncodeCounts> worker_counts_;
  std::vector<std::atomic<uint64_t>> batches_sent_;
  std::atomic<uint64_t> bytes_wire_{0}, pages_sent_{0}, sender_busy_ns_{0}, pages_done_{0};
  std::atomic<uint64_t> map_ns_{0}, encode_ns_{0};
  std::vector<std::thread> threads_;

  // Governor: per codec choice, the counters at its last estimate and what that
  // estimate found (CPU ns per raw byte over all workers, out/in).
  struct Snapshot {
    uint64_t in = 0, out = 0, ns = 0;
  };
  std::vector<Snapshot> est_at_;
  std::vector<CodecEstimate> est_;
  uint64_t g_wire_ = 0, g_busy_ = 0;

  std::atomic<bool> failed_{false};
  std::atomic<int> sending_{0};
  bool link_failed_ = false;  // under mu_: error_ came from a stream
  // Resuming after a break (ForgetUnapplied).
  DirtyBitmap sent_, unknown_;
  // Round 0: pages nothing wrote before the dirty log was on (ctx_.known_zero).
  DirtyBitmap known_zero_;
  bool known_zero_ready_ = false;
  uint32_t sent_round_ = UINT32_MAX;
  std::atomic<uint64_t> resent_bytes_{0};

  void StartThreads() {
    for (uint32_t i = 0; i < nworkers_; ++i) threads_.emplace_back([this, i] { WorkerLoop(i); });
    for (uint32_t s = 0; s < nstreams_; ++s) threads_.emplace_back([this, s] { SenderLoop(s); });
  }
  void StopThreads();

  void Fail(Status st, bool link = false) {
    std::lock_guard lock(mu_);
    if (error_.ok()) {
      error_ = std::move(st);
      link_failed_ = link;
    }
    failed_.store(true);
    NotifyEveryone();
  }
  void NotifyEveryone() {
    chunk_cv_.notify_all();
    space_cv_.notify_all();
    free_cv_.notify_all();
    for (auto& cv : send_cv_) cv.notify_all();
  }
  void WorkerLoop(uint32_t id);
  void SenderLoop(uint32_t stream);
  BatchBuilder* AcquireBatch();
  void Dispatch(BatchBuilder* b);
  void Govern();
};

SendPipeline::Impl::Impl(Backend& b, std::vector<Stream*> streams, PipelineOptions o)
    : backend_(b),
      streams_(std::move(streams)),
      opts_(o),
      nworkers_(o.workers ? o.workers : std::max(1u, std::thread::hardware_concurrency())),
      nstreams_(static_cast<uint32_t>(streams_.size())),
      delta_(o.delta_cache_bytes),
      dup_(o.dup_index_entries),
      send_cv_(streams_.size()),
      batches_sent_(streams_.size()) {
  const GuestShape& shape = backend_.shape();
  last_hash_ = ZeroedArray<uint64_t>(shape.page_count);
  populated_.Resize(shape.page_count);
  populated_.SetRanges(shape.ranges);
  ctx_.streams = nstreams_;
  ctx_.last_hash = last_hash_.span();
  ctx_.delta = &delta_;
  ctx_.dup = &dup_;
  ctx_.choices = CodecChoices(opts_.compress ? opts_.codecs : 0);
  // --no-adaptive: the first method (LZ4) always, and nothing else is probed.
  if (ctx_.choices.size() > (opts_.adaptive ? CodecStats::kMaxChoices : 2))
    ctx_.choices.resize(opts_.adaptive ? CodecStats::kMaxChoices : 2);
  ctx_.choice = ctx_.choices.size() > 1 ? 1 : 0;  // the cheapest method until measured otherwise
  ctx_.record_streams = opts_.record_streams;
  est_.resize(ctx_.choices.size());
  est_at_.resize(ctx_.choices.size());
  sent_.Resize(shape.page_count);
  unknown_.Resize(shape.page_count);
  ctx_.unknown = &unknown_;
  send_q_.resize(nstreams_);
  encoders_.resize(nworkers_);
  worker_counts_.resize(nworkers_);
  // One batch per worker being filled, one per stream being sent, one spare each
  // side so neither stage waits on the other in steady state.
  size_t nbatches = nworkers_ + 2 * nstreams_;
  for (size_t i = 0; i < nbatches; ++i) {
    batches_.push_back(std::make_unique<BatchBuilder>());
    free_.push_back(batches_.back().get());
  }
  StartThreads();
}

SendPipeline::Impl::~Impl() { StopThreads(); }

void SendPipeline::Impl::StopThreads() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
    NotifyEveryone();
  }
  // A batch being written is let finish (a cancel still sends ABORT after it,
  // at a record boundary), but a sender stuck writing to a dead or stalled
  // peer would keep us from joining.
  for (int i = 0; i < 200 && sending_.load() > 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  if (failed_.load() && sending_.load() > 0)
    for (Stream* s : streams_) s->Shutdown();
  for (auto& t : threads_) t.join();
  threads_.clear();
}

BatchBuilder* SendPipeline::Impl::AcquireBatch() {
  std::unique_lock lock(mu_);
  free_cv_.wait(lock, [&] { return stop_ || failed_.load() || !free_.empty(); });
  if (stop_ || failed_.load()) return nullptr;
  BatchBuilder* b = free_.back();
  free_.pop_back();
  return b;
}

void SendPipeline::Impl::Dispatch(BatchBuilder* b) {
  std::lock_guard lock(mu_);
  ++outstanding_;
  send_q_[b->stream].push_back(b);
  send_cv_[b->stream].notify_one();
}

void SendPipeline::Impl::WorkerLoop(uint32_t id) {
  PageEncoder& enc = encoders_[id];
  PageAccess pages(backend_);
  std::vector<uint64_t> pfns;
  pfns.reserve(2 * kRegionPages);
  for (;;) {
    Chunk chunk;
    {
      std::unique_lock lock(mu_);
      chunk_cv_.wait(lock, [&] { return stop_ || !chunks_.empty(); });
      if (stop_) return;
      chunk = std::move(chunks_.front());
      chunks_.pop_front();
      space_cv_.notify_one();
    }
    pfns.clear();
    for (const Region& r : chunk.regions)
      for (size_t w = 0; w < kRegionWords; ++w)
        for (uint64_t v = r.words[w]; v; v &= v - 1)
          pfns.push_back(r.index * kRegionPages + w * 64 + static_cast<uint64_t>(__builtin_ctzll(v)));
    bool ok = !failed_.load();
    const uint64_t t_map = NowNs();
    if (ok) {
      if (Status st = pages.Map(pfns, Access::kRead); !st.ok()) {
        Fail(std::move(st).With("map pfn " + std::to_string(pfns.front())));
        ok = false;
      }
    }
    const uint32_t stream = chunk.stream;
    const uint64_t t_encode = NowNs();
    map_ns_.fetch_add(t_encode - t_map, std::memory_order_relaxed);
    BatchBuilder* b = nullptr;
    for (size_t i = 0; ok && i < pfns.size(); ++i) {
      if (!b) {
        if (!(b = AcquireBatch())) break;
        b->Reset(ctx_.round);
        b->stream = stream;
        enc.StartBatch(ctx_);
      }
      enc.Encode(ctx_, pfns[i], pages.page(i), *b, worker_counts_[id], stats_);
      if (b->full()) {
        Dispatch(b);
        b = nullptr;
      }
    }
    pages_done_.fetch_add(pfns.size(), std::memory_order_relaxed);
    encode_ns_.fetch_add(NowNs() - t_encode, std::memory_order_relaxed);  // waits for a free batch included
    std::lock_guard lock(mu_);
    if (b && b->count() > 0) {
      ++outstanding_;
      send_q_[b->stream].push_back(b);
      send_cv_[b->stream].notify_one();
    } else if (b) {
      free_.push_back(b);  // every page was unchanged
      free_cv_.notify_one();
    }
    if (--outstanding_ == 0) space_cv_.notify_one();  // the chunk itself
  }
}

void SendPipeline::Impl::SenderLoop(uint32_t s) {
  for (;;) {
    BatchBuilder* b;
    {
      std::unique_lock lock(mu_);
      send_cv_[s].wait(lock, [&] { return stop_ || !send_q_[s].empty(); });
      if (stop_) return;
      b = send_q_[s].front();
      send_q_[s].pop_front();
    }
    if (!failed_.load()) {
      // Once a write starts, its pages may reach the destination: only the
      // destination can say, after a break, whether they did.
      uint64_t resent = 0;
      for (uint32_t i = 0; i < b->count(); ++i) {
        const PageDesc d = b->desc(i);
        sent_.Set(d.pfn);
        if (unknown_.Test(d.pfn)) resent += sizeof(PageDesc) + d.payload_len;
      }
      resent_bytes_.fetch_add(resent, std::memory_order_relaxed);
      uint64_t t0 = NowNs();
      sending_.fetch_add(1);
      Status st = WriteRecord(*streams_[s], RecordType::kPages, b->Body());
      sending_.fetch_sub(1);
      sender_busy_ns_.fetch_add(NowNs() - t0, std::memory_order_relaxed);
      if (!st.ok()) {
        Fail(std::move(st).With("stream " + std::to_string(s)), /*link=*/true);
      } else {
        batches_sent_[s].fetch_add(1, std::memory_order_relaxed);
        bytes_wire_.fetch_add(b->body_bytes() + kRecordHeaderSize, std::memory_order_relaxed);
        pages_sent_.fetch_add(b->count(), std::memory_order_relaxed);
      }
    }
    std::lock_guard lock(mu_);
    free_.push_back(b);
    free_cv_.notify_one();
    if (--outstanding_ == 0) space_cv_.notify_one();
  }
}

// Re-estimates each choice from what the workers measured since the last
// estimate, and the link's rate from the senders' busy time; then ChooseCodec.
void SendPipeline::Impl::Govern() {
  if (ctx_.choices.size() <= 1 || !opts_.adaptive) return;
  uint64_t wire = bytes_wire_.load(), busy = sender_busy_ns_.load();
  uint64_t d_wire = wire - g_wire_, d_busy = busy - g_busy_;
  if (d_busy < 1000000) return;  // not enough evidence of the link yet
  for (size_t i = 1; i < est_.size(); ++i) {
    const CodecStats::PerChoice& s = stats_.by_choice[i];
    Snapshot& at = est_at_[i];
    CodecEstimate& e = est_[i];
    uint64_t in = s.in.load(), out = s.out.load(), ns = s.ns.load();
    // Probes give each choice a batch in 32 or so: 256 KiB is a quarter of one.
    if (in - at.in < (256u << 10) || ns == at.ns) continue;
    e.ns_per_byte = static_cast<double>(ns - at.ns) / static_cast<double>(in - at.in) / nworkers_;
    e.ratio = static_cast<double>(out - at.out) / static_cast<double>(in - at.in);
    e.known = true;
    at = {in, out, ns};
  }
  if (!est_[ctx_.choice.load()].known && ctx_.choice.load() != 0) return;  // judge the current one first
  g_wire_ = wire, g_busy_ = busy;
  double wire_rate = static_cast<double>(d_wire) / (static_cast<double>(d_busy) / nstreams_);  // bytes/ns
  ctx_.choice.store(ChooseCodec(est_, wire_rate), std::memory_order_relaxed);
}

Status SendPipeline::Impl::SendRound(uint32_t round, const DirtyBitmap& pages, PipelineRound& out, bool last) {
  {
    std::lock_guard lock(mu_);
    if (!error_.ok()) return error_;
    if (round != sent_round_) {
      sent_.ClearAll();
      sent_round_ = round;
    }
    ctx_.round = round;
    ctx_.last = last;
    ctx_.sending = &pages;
    if (round == 0 && !known_zero_ready_) {
      // Asked once the dirty log is on: a page written after this answer is
      // logged and goes again in round 1, so sending it as ZERO now is safe.
      DirtyBitmap maybe(pages.size());
      backend_.PagesMaybeWritten(maybe);
      known_zero_.Resize(pages.size());
      known_zero_.SetAll();
      known_zero_.AndNot(maybe);
      known_zero_ready_ = true;
    }
    ctx_.known_zero = round == 0 ? &known_zero_ : nullptr;
    for (auto& c : worker_counts_) c = EncodeCounts{};
  }
  uint64_t wire0 = bytes_wire_.load(), pages0 = pages_sent_.load();
  const uint64_t map0 = map_ns_.load(), encode0 = encode_ns_.load(), write0 = sender_busy_ns_.load();
  const size_t nregions = (pages.size() + kRegionPages - 1) / kRegionPages;
  const size_t nwords = pages.words();
  auto last_govern = Clock::now();
  std::vector<Chunk> pending(nstreams_);  // per stream: regions gathered so far
  auto hand_out = [&](Chunk& c) -> bool {
    // An accepted cancel ends the round here; batches already queued still go out whole.
    if (opts_.cancel && opts_.cancel->requested()) {
      Fail(opts_.cancel->CancelledStatus());
      return false;
    }
    std::unique_lock lock(mu_);
    space_cv_.wait(lock, [&] { return !error_.ok() || chunks_.size() < max_chunks_; });
    if (!error_.ok()) return false;
    chunks_.push_back(std::move(c));
    c = Chunk{};
    ++outstanding_;
    chunk_cv_.notify_one();
    if (Clock::now() - last_govern > std::chrono::milliseconds(20)) {
      lock.unlock();
      Govern();
      last_govern = Clock::now();
    }
    return true;
  };
  bool handing = true;
  for (size_t r = 0; r < nregions && handing; ++r) {
    Region reg;
    reg.index = r;
    uint64_t n = 0;
    for (size_t w = 0; w < kRegionWords && r * kRegionWords + w < nwords; ++w) {
      reg.words[w] = pages.Word(r * kRegionWords + w) & populated_.Word(r * kRegionWords + w);
      n += static_cast<uint64_t>(__builtin_popcountll(reg.words[w]));
    }
    if (n == 0) continue;
    Chunk& c = pending[r % nstreams_];
    c.stream = static_cast<uint32_t>(r % nstreams_);
    c.pages += n;
    c.regions.push_back(reg);
    if (c.pages >= kChunkPages) handing = hand_out(c);
  }
  for (Chunk& c : pending)
    if (handing && c.pages > 0) handing = hand_out(c);
  {
    std::unique_lock lock(mu_);
    // Even after an error: workers may still read this round's bitmap.
    while (outstanding_ > 0) {
      space_cv_.wait_for(lock, std::chrono::milliseconds(20));
      lock.unlock();
      Govern();
      lock.lock();
    }
    if (!error_.ok()) return error_;
  }
  unknown_.ClearAll();  // sent again in full: the destination holds them now
  // Workers are idle: pages sent in full this round become DUP_REF targets.
  for (auto& enc : encoders_) {
    for (const auto& [h, pfn] : enc.sent_contents()) dup_.Insert(h, pfn);
    enc.sent_contents().clear();
  }
  out.bytes_wire = bytes_wire_.load() - wire0;
  out.pages_sent = pages_sent_.load() - pages0;
  out.counts = EncodeCounts{};
  for (const auto& c : worker_counts_) out.counts += c;
  out.compression = ctx_.choice.load() != 0;
  out.map_ms = static_cast<double>(map_ns_.load() - map0) / 1e6;
  out.encode_ms = static_cast<double>(encode_ns_.load() - encode0) / 1e6;
  out.write_ms = static_cast<double>(sender_busy_ns_.load() - write0) / 1e6;
  return {};
}

SendPipeline::SendPipeline(Backend& backend, std::vector<Stream*> streams, PipelineOptions opts)
    : impl_(std::make_unique<Impl>(backend, std::move(streams), opts)) {}
SendPipeline::~SendPipeline() = default;

Status SendPipeline::SendRound(uint32_t round, const DirtyBitmap& pages, PipelineRound& out, bool last) {
  return impl_->SendRound(round, pages, out, last);
}
void SendPipeline::Detach() {
  Impl& i = *impl_;
  // The streams are dead or about to be dropped: unblock any sender on them.
  for (Stream* s : i.streams_) s->Shutdown();
  i.StopThreads();
  for (auto& q : i.send_q_) {
    for (BatchBuilder* b : q) i.free_.push_back(b);
    q.clear();
  }
  i.chunks_.clear();
  i.outstanding_ = 0;
  i.streams_.clear();
}

void SendPipeline::Attach(std::vector<Stream*> streams) {
  Impl& i = *impl_;
  i.streams_ = std::move(streams);
  for (auto& b : i.batches_sent_) b.store(0);
  i.error_ = Status();
  i.link_failed_ = false;
  i.failed_.store(false);
  i.stop_ = false;
  i.StartThreads();
}

bool SendPipeline::link_failed() const {
  std::lock_guard lock(impl_->mu_);
  return impl_->link_failed_;
}

const DirtyBitmap& SendPipeline::sent_this_round() const { return impl_->sent_; }

uint64_t SendPipeline::ForgetUnapplied(const DirtyBitmap& applied) {
  Impl& i = *impl_;
  uint64_t n = 0;
  i.sent_.ForEach([&](uint64_t pfn) {
    if (applied.Test(pfn)) return;
    i.unknown_.Set(pfn);
    i.delta_.Drop(pfn);
    ++n;
  });
  return n;
}

uint64_t SendPipeline::resent_bytes() const { return impl_->resent_bytes_.load(); }

std::span<const uint64_t> SendPipeline::last_hash() const { return impl_->last_hash_.span(); }
std::vector<uint64_t> SendPipeline::batches_per_stream() const {
  std::vector<uint64_t> v;
  for (const auto& b : impl_->batches_sent_) v.push_back(b.load());
  return v;
}
uint64_t SendPipeline::overhead_bytes() const {
  const Impl& i = *impl_;
  uint64_t batches = i.batches_.size() * (size_t{BatchBuilder::kMaxBatchPages} * (kMaxPayload + sizeof(PageDesc)) + 2 * kPageSize);
  uint64_t streams = 0;
  for (const PageEncoder& e : i.encoders_) streams += e.stream_memory_bytes();
  // The hash table spans the gfn space, but only populated frames' entries are ever written (ZeroedArray).
  return i.backend_.shape().populated_pages() * sizeof(uint64_t) + (i.populated_.words() + i.known_zero_.words()) * 8 +
         i.dup_.memory_bytes() + batches + streams +
         const_cast<DeltaCache&>(i.delta_).pages() * DeltaCache::kBytesPerPage;
}
uint32_t SendPipeline::workers() const { return impl_->nworkers_; }
uint64_t SendPipeline::pages_done() const { return impl_->pages_done_.load(std::memory_order_relaxed); }
uint64_t SendPipeline::bytes_wire() const { return impl_->bytes_wire_.load(std::memory_order_relaxed); }

}  // namespace xm
