#include "migrate/receiver.h"

#include <unistd.h>
#include <xxhash.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <shared_mutex>
#include <thread>

#include "migrate/guest_memory.h"
#include "migrate/page_codec.h"
#include "migrate/page_encoder.h"
#include "migrate/session.h"
#include "transport/auth.h"
#include "transport/pages.h"
#include "transport/record.h"

namespace xm {
namespace {

using Clock = std::chrono::steady_clock;

double MsSince(Clock::time_point t) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t).count();
}

constexpr uint32_t kNoRound = UINT32_MAX;

}  // namespace

class Receiver::Impl {
 public:
  explicit Impl(ReceiverOptions o) : opts_(std::move(o)) {}
  ~Impl() { StopDataThreads(); }
  MigrationReport Run(Listener& listener);
  std::unique_ptr<Backend> TakeGuest() { return std::move(guest_); }

 private:
  // What one stream's receiving thread owns. Stream affinity (PROTOCOL.md §1)
  // means each pfn is only ever touched by one stream, so per-pfn state needs no lock.
  struct Lane {
    std::unique_ptr<Stream> stream;
    Record rec;
    PagesView view;
    EncodeCounts counts;
    std::atomic<uint64_t> batches{0};
    std::atomic<uint64_t> bytes{0};
  };

  Status Handshake();
  Status AcceptDataStreams(Listener& listener);
  Status Rounds(Commit& commit, VcpuState& vcpu);
  Status ApplyPages(uint32_t lane, std::span<const uint8_t> body);
  Status WaitForBatches(const std::vector<uint64_t>& want, std::string_view what);
  void DataLoop(uint32_t lane);
  void StopDataThreads();
  Status Handoff(const Commit& commit, const VcpuState& vcpu);
  void Emit(nlohmann::json e) {
    if (opts_.progress) opts_.progress(e);
  }

  ReceiverOptions opts_;
  MigrationReport report_;
  std::vector<std::unique_ptr<Lane>> lanes_;  // lane 0 is the control stream
  Stream* control_ = nullptr;
  std::vector<std::thread> data_threads_;
  std::atomic<bool> finishing_{false};
  std::mutex mu_;
  std::condition_variable cv_;
  Status data_error_;
  std::shared_mutex apply_mu_;          // shared: applying pages; exclusive: round-end hook
  std::vector<uint64_t> final_batches_;  // per stream, from the last ROUND_END

  std::unique_ptr<Backend> guest_;
  bool zero_fresh_ = false;  // untouched guest memory reads as zero
  Hello hello_, peer_hello_;
  CpuPolicy policy_;
  std::vector<uint64_t> hash_;    // hash of the page version we hold, per pfn
  std::vector<uint32_t> round_;   // round of that version (kNoRound = never received)
  std::vector<uint8_t> populated_;
  bool resumed_ = false;
  // When each ROUND_ACK went out. The source pauses the guest right after reading
  // the one before the final round's: that is where this side's downtime starts.
  std::vector<Clock::time_point> ack_at_;
  Clock::time_point commit_at_ = Clock::now();
  GuestProgress at_resume_;  // the guest's own view just before it first runs here
};

Receiver::Receiver(ReceiverOptions opts) : impl_(std::make_unique<Impl>(std::move(opts))) {}
Receiver::~Receiver() = default;
MigrationReport Receiver::Run(Listener& l) { return impl_->Run(l); }
std::unique_ptr<Backend> Receiver::TakeGuest() { return impl_->TakeGuest(); }

Status Receiver::Impl::Handshake() {
  Record rec;
  XM_TRY(ExpectHello(*control_, rec, "handshake", kPreAuthMaxBody));
  auto peer = DecodeHello(rec.body);
  if (!peer.ok()) {
    SendAbort(*control_, peer.status());
    return std::move(peer).With("handshake").status();
  }
  peer_hello_ = *peer;
  if (peer_hello_.role != Role::kSource) {
    Status st(Code::kProtocol, "peer is not a source (another receiver?)");
    SendAbort(*control_, st);
    return std::move(st).With("handshake");
  }
  if (peer_hello_.version_min > kProtocolVersion || peer_hello_.version_max < kProtocolVersion) {
    Status st(Code::kVersion, "xmotion protocol " + std::to_string(kProtocolVersion) + " here, the source speaks " +
                                  std::to_string(peer_hello_.version_min) + ".." +
                                  std::to_string(peer_hello_.version_max));
    SendAbort(*control_, st);
    return std::move(st).With("handshake");
  }
  hello_.role = Role::kDestination;
  hello_.features = peer_hello_.features & (kFeatureLz4 | kFeatureDelta | kFeatureDupRef);
  hello_.nonce = RandomNonce();
  hello_.session_id = peer_hello_.session_id;
  hello_.streams = std::clamp<uint32_t>(std::min(peer_hello_.streams, opts_.max_streams), 1, kMaxStreams);
  hello_.auth = opts_.key.empty() ? AuthMode::kNone : AuthMode::kHmacSha256;
  XM_TRY_CTX(WriteRecord(*control_, RecordType::kHello, EncodeHello(hello_)), "handshake");
  if (peer_hello_.auth != hello_.auth) {
    Status st(Code::kAuth, hello_.auth == AuthMode::kHmacSha256 ? "source sent no key; this receiver requires one"
                                                                 : "source wants authentication; this receiver has no key");
    SendAbort(*control_, st);
    return std::move(st).With("handshake");
  }
  if (hello_.auth == AuthMode::kHmacSha256) {
    XM_TRY(ExpectRecord(*control_, rec, RecordType::kAuth, "authentication", kPreAuthMaxBody));
    auto theirs = DecodeAuth(rec.body);
    if (!theirs.ok()) return std::move(theirs).With("authentication").status();
    Mac want = AuthMac(opts_.key, Role::kSource, hello_.session_id, peer_hello_.nonce, hello_.nonce);
    if (!MacEqual(theirs->mac, want)) {
      Status st(Code::kAuth, "source failed authentication (wrong key)");
      SendAbort(*control_, st);
      return std::move(st).With("authentication");
    }
    Auth mine{AuthMac(opts_.key, Role::kDestination, hello_.session_id, peer_hello_.nonce, hello_.nonce)};
    XM_TRY_CTX(WriteRecord(*control_, RecordType::kAuth, EncodeAuth(mine)), "authentication");
  }
  XM_TRY(ExpectRecord(*control_, rec, RecordType::kShape, "handshake"));
  auto shape = DecodeShape(rec.body);
  if (!shape.ok()) return std::move(shape).With("handshake").status();
  XM_TRY(ExpectRecord(*control_, rec, RecordType::kCpuPolicy, "handshake"));
  auto policy = DecodeCpuPolicy(rec.body);
  if (!policy.ok()) return std::move(policy).With("handshake").status();
  policy_ = *policy;
  report_.memory_bytes = shape->shape.memory_bytes();
  // A guest this host could never hold is refused before anything is allocated
  // for it. Memory is what is populated; the address space may be far larger
  // (HVM/PVH special pages sit just below 4 GiB), and the per-frame bookkeeping
  // (13 bytes a frame) is bounded on its own.
  uint64_t limit = opts_.max_guest_bytes ? opts_.max_guest_bytes
                                         : static_cast<uint64_t>(::sysconf(_SC_PHYS_PAGES)) * ::sysconf(_SC_PAGESIZE);
  if (shape->shape.memory_bytes() > limit || shape->shape.page_count > limit / 8 / 13) {
    Status st(Code::kIncompatible, "guest of " + std::to_string(shape->shape.memory_bytes() >> 20) + " MiB in " +
                                       std::to_string(shape->shape.page_count) +
                                       " page frames is larger than this host can hold (" + std::to_string(limit >> 20) +
                                       " MiB)");
    SendAbort(*control_, st);
    return std::move(st).With("handshake");
  }

  if (opts_.check_cpu) {
    Status st = opts_.check_cpu(policy_);
    if (!st.ok()) {
      SendAbort(*control_, st);
      return std::move(st).With("CPU check");
    }
  }
  auto guest = opts_.make_backend(shape->shape, shape->backend);
  if (!guest.ok()) {
    SendAbort(*control_, guest.status());
    return std::move(guest).With("create destination guest").status();
  }
  guest_ = std::move(guest).value();
  zero_fresh_ = guest_->DirectMemory() != nullptr && guest_->ZeroInitialized();
  report_.backend = std::string(guest_->name());
  const GuestShape& gs = guest_->shape();
  hash_.assign(gs.page_count, 0);
  round_.assign(gs.page_count, kNoRound);
  populated_.assign(gs.page_count, 0);
  for (const auto& r : gs.ranges) std::fill_n(populated_.begin() + static_cast<long>(r.first), r.count, 1);
  XM_TRY_CTX(WriteRecord(*control_, RecordType::kAccept, std::span<const uint8_t>()), "handshake");
  return {};
}

Status Receiver::Impl::AcceptDataStreams(Listener& listener) {
  const uint32_t n = hello_.streams;
  report_.streams = n;
  lanes_.resize(n);
  for (uint32_t joined = 1; joined < n; ++joined) {
    auto fd = listener.Accept(opts_.io_timeout_ms);
    if (!fd.ok()) return std::move(fd).With("waiting for data stream " + std::to_string(joined)).status();
    std::string why;
    auto s = MakeStream(std::move(fd).value(), opts_.transport, &why);
    if (!s.ok()) return std::move(s).status();
    (*s)->SetTimeoutMs(opts_.io_timeout_ms);
    Record rec;
    XM_TRY(ExpectRecord(**s, rec, RecordType::kJoin, "data stream", kPreAuthMaxBody));
    auto j = DecodeJoin(rec.body);
    if (!j.ok()) return j.status();
    if (j->session_id != hello_.session_id || j->stream_index == 0 || j->stream_index >= n || lanes_[j->stream_index])
      return Error(Code::kProtocol, "JOIN from " + (*s)->peer() + " for session/stream that is not expected here");
    if (hello_.auth == AuthMode::kHmacSha256 &&
        !MacEqual(j->mac, JoinMac(opts_.key, hello_.session_id, j->stream_index, peer_hello_.nonce, hello_.nonce)))
      return Error(Code::kAuth, "data stream " + std::to_string(j->stream_index) + " failed authentication");
    lanes_[j->stream_index] = std::make_unique<Lane>();
    lanes_[j->stream_index]->stream = std::move(s).value();
  }
  for (uint32_t i = 1; i < n; ++i) data_threads_.emplace_back([this, i] { DataLoop(i); });
  return {};
}

void Receiver::Impl::DataLoop(uint32_t lane) {
  Lane& l = *lanes_[lane];
  for (;;) {
    Status st = ReadRecord(*l.stream, l.rec);
    if (st.ok() && l.rec.type != RecordType::kPages)
      st = Error(Code::kProtocol, "unexpected " + std::string(RecordName(l.rec.type)) + " on a data stream");
    if (st.ok()) {
      std::shared_lock apply_lock(apply_mu_);
      st = ApplyPages(lane, l.rec.body);
    }
    std::lock_guard lock(mu_);
    if (!st.ok()) {
      if (!finishing_.load() && data_error_.ok()) {
        data_error_ = std::move(st).With("stream " + std::to_string(lane));
        control_->Shutdown();  // the control thread may be blocked reading: end the migration now
      }
      cv_.notify_all();
      return;
    }
    l.batches.fetch_add(1);
    l.bytes.fetch_add(l.rec.body.size() + kRecordHeaderSize);
    cv_.notify_all();
  }
}

void Receiver::Impl::StopDataThreads() {
  finishing_.store(true);
  for (auto& l : lanes_)
    if (l && l->stream && l.get() != lanes_[0].get()) l->stream->Shutdown();
  for (auto& t : data_threads_) t.join();
  data_threads_.clear();
}

Status Receiver::Impl::ApplyPages(uint32_t lane, std::span<const uint8_t> body) {
  Lane& l = *lanes_[lane];
  XM_TRY(ParsePages(body, l.view));
  const uint32_t round = l.view.round;
  const uint32_t nstreams = static_cast<uint32_t>(lanes_.size());
  std::byte* direct = guest_->DirectMemory();
  const uint32_t page_size = guest_->shape().page_size;
  for (const auto& d : l.view.descs) {
    if (d.pfn >= populated_.size() || !populated_[d.pfn])
      return Error(Code::kProtocol, "PAGES: pfn " + std::to_string(d.pfn) + " is outside the guest");
    if (StreamOfPfn(d.pfn, nstreams) != lane)
      return Error(Code::kProtocol, "PAGES: pfn " + std::to_string(d.pfn) + " arrived on the wrong stream");
  }
  MappedPages mapped;
  if (!direct) {
    std::vector<uint64_t> pfns;
    for (const auto& d : l.view.descs) pfns.push_back(d.pfn);
    XM_ASSIGN_OR_RETURN(mapped, guest_->MapPages(pfns, Access::kWrite));
  }
  EncodeCounts& c = l.counts;
  for (size_t i = 0; i < l.view.descs.size(); ++i) {
    const PageDesc& d = l.view.descs[i];
    if (round_[d.pfn] != kNoRound && round_[d.pfn] > round) continue;  // a newer version is already here
    std::byte* dest = direct ? direct + d.pfn * page_size : mapped.pages[i];
    const std::byte* dup = nullptr;
    MappedPages dup_map;
    auto enc = static_cast<PageEncoding>(d.encoding);
    if (enc == PageEncoding::kDelta && round_[d.pfn] == kNoRound)
      return Error(Code::kProtocol, "pfn " + std::to_string(d.pfn) + ": DELTA for a page never received");
    if (enc == PageEncoding::kDupRef) {
      uint64_t src = DupRefPfn(l.view.payloads[i]);
      if (src >= populated_.size() || !populated_[src] || StreamOfPfn(src, nstreams) != lane ||
          round_[src] == kNoRound || hash_[src] != d.hash)
        return Error(Code::kProtocol, "pfn " + std::to_string(d.pfn) + ": DUP_REF to pfn " + std::to_string(src) +
                                          ", which this destination does not hold with that content");
      if (direct) {
        dup = direct + src * page_size;
      } else {
        uint64_t one[1] = {src};
        XM_ASSIGN_OR_RETURN(dup_map, guest_->MapPages(one, Access::kRead));
        dup = dup_map.pages[0];
      }
    }
    if (enc == PageEncoding::kZero && zero_fresh_ && round_[d.pfn] == kNoRound) {
      // Never written: already zero, and not touching it keeps it unallocated.
      if (d.hash != ZeroPageHash())
        return Error(Code::kIntegrity, "pfn " + std::to_string(d.pfn) + ": page hash mismatch after decoding");
    } else {
      XM_TRY_CTX(DecodePage(d, l.view.payloads[i], dest, dup), "round " + std::to_string(round));
    }
    hash_[d.pfn] = d.hash;
    round_[d.pfn] = round;
    switch (enc) {
      case PageEncoding::kZero: ++c.zero; break;
      case PageEncoding::kRaw: ++c.raw; break;
      case PageEncoding::kLz4: ++c.lz4; break;
      case PageEncoding::kDelta: ++c.delta; break;
      case PageEncoding::kDupRef: ++c.duplicate; break;
    }
  }
  return {};
}

Status Receiver::Impl::WaitForBatches(const std::vector<uint64_t>& want, std::string_view what) {
  if (want.size() != lanes_.size())
    return Error(Code::kProtocol, std::string(what) + " names " + std::to_string(want.size()) + " streams, session has " +
                                      std::to_string(lanes_.size()));
  std::unique_lock lock(mu_);
  auto deadline = Clock::now() + std::chrono::milliseconds(opts_.io_timeout_ms > 0 ? opts_.io_timeout_ms : 3600000);
  for (;;) {
    if (!data_error_.ok()) return data_error_;
    bool all = true;
    for (size_t i = 0; i < want.size(); ++i) {
      // A data stream may already carry the next round's batches: at least is enough.
      all = all && lanes_[i]->batches.load() >= want[i];
    }
    if (all) return {};
    if (cv_.wait_until(lock, deadline) == std::cv_status::timeout)
      return Error(Code::kTimeout, std::string(what) + ": data streams stalled");
  }
}

Status Receiver::Impl::Rounds(Commit& commit, VcpuState& vcpu) {
  Lane& l0 = *lanes_[0];
  bool have_vcpu = false;
  uint32_t round = 0;
  uint64_t bytes_at_round_start = 0;
  auto round_start = Clock::now();
  for (;;) {
    XM_TRY(ReadControl(*control_, l0.rec, "round " + std::to_string(round)));
    Record& rec = l0.rec;
    switch (rec.type) {
      case RecordType::kPages: {
        if (have_vcpu) return Error(Code::kProtocol, "PAGES after VCPU_STATE");
        {
          std::shared_lock apply_lock(apply_mu_);
          XM_TRY(ApplyPages(0, rec.body));
        }
        std::lock_guard lock(mu_);
        l0.batches.fetch_add(1);
        l0.bytes.fetch_add(rec.body.size() + kRecordHeaderSize);
        break;
      }
      case RecordType::kRoundEnd: {
        auto re = DecodeRoundEnd(rec.body);
        if (!re.ok()) return std::move(re).status();
        XM_TRY(WaitForBatches(re->batches_per_stream, "ROUND_END " + std::to_string(re->round)));
        final_batches_ = re->batches_per_stream;
        uint64_t bytes = 0;
        for (auto& l : lanes_) bytes += l->bytes.load();
        RoundReport rr;
        rr.round = re->round;
        rr.pages_sent = re->pages;
        rr.bytes_wire = bytes - bytes_at_round_start;
        rr.ms = MsSince(round_start);
        report_.rounds.push_back(rr);
        bytes_at_round_start = bytes;
        Emit({{"event", "round"}, {"round", rr.round}, {"pages", rr.pages_sent}, {"bytes_wire", rr.bytes_wire}});
        {
          // Data streams may be ahead in the next round; the hook must not see half-written pages.
          std::unique_lock apply_lock(apply_mu_);
          XM_TRY_CTX(guest_->OnRoundEnd(re->round), "round " + std::to_string(re->round));
        }
        XM_TRY_CTX(WriteRecord(*control_, RecordType::kRoundAck, EncodeRoundAck(re->round)),
                   "round " + std::to_string(re->round));
        round = re->round + 1;
        round_start = Clock::now();
        ack_at_.push_back(round_start);
        break;
      }
      case RecordType::kVcpuState: {
        auto v = DecodeVcpuState(rec.body);
        if (!v.ok()) return std::move(v).status();
        vcpu = std::move(v).value();
        have_vcpu = true;
        break;
      }
      case RecordType::kCommit: {
        if (!have_vcpu) return Error(Code::kProtocol, "COMMIT before VCPU_STATE");
        auto c = DecodeCommit(rec.body);
        if (!c.ok()) return std::move(c).status();
        commit = *c;
        commit_at_ = Clock::now();
        return {};
      }
      default:
        return Error(Code::kProtocol, "unexpected " + std::string(RecordName(rec.type)) + " during pre-copy");
    }
  }
}

Status Receiver::Impl::Handoff(const Commit& commit, const VcpuState& vcpu) {
  StopDataThreads();  // the final ROUND_END was waited for: every batch is in
  if (!data_error_.ok()) return data_error_;
  for (size_t i = 0; i < lanes_.size(); ++i)
    if (i >= final_batches_.size() || lanes_[i]->batches.load() != final_batches_[i])
      return Error(Code::kProtocol, "COMMIT: stream " + std::to_string(i) + " carried batches the last ROUND_END did not count");
  EncodeCounts total;
  for (auto& l : lanes_) total += l->counts;
  report_.pages = total;
  for (auto& l : lanes_) report_.bytes_wire += l->bytes.load();
  // Every populated page must have arrived at least once.
  for (const auto& r : guest_->shape().ranges)
    for (uint64_t p = r.first; p < r.first + r.count; ++p)
      if (round_[p] == kNoRound)
        return Error(Code::kProtocol, "COMMIT: pfn " + std::to_string(p) + " was never sent");
  Digest128 mine = MemoryDigest(guest_->shape(), hash_);
  report_.digest = DigestHex(mine);
  if (commit.verify == VerifyMode::kFull) {
    report_.verify = "full";
    XM_TRY_CTX(CheckMemory(*guest_, hash_, "differs in memory from what was decoded into it"), "full verify");
  }
  if (mine != commit.digest)
    return Error(Code::kIntegrity, "COMMIT: memory digest " + report_.digest + " differs from the source's " +
                                       DigestHex(commit.digest));
  report_.digest_match = true;
  if (!opts_.dump_memory.empty()) XM_TRY_CTX(DumpMemory(*guest_, opts_.dump_memory), "dump memory");
  XM_TRY_CTX(guest_->LoadVcpuState(vcpu.blob), "load vCPU state");
  auto applied = guest_->ApplyCpuPolicy(policy_);
  if (!applied.ok()) return std::move(applied).With("apply CPU policy").status();
  if (opts_.check_applied_cpu) {
    std::vector<std::string> warnings;
    XM_TRY_CTX(opts_.check_applied_cpu(policy_, *applied, warnings), "apply CPU policy");
    if (!warnings.empty()) report_.guest = nlohmann::json{{"cpu_warnings", warnings}};
  }
  XM_TRY_CTX(WriteRecord(*control_, RecordType::kReady, EncodeReady({mine})), "handoff");
  auto ready_at = Clock::now();
  Record rec;
  control_->SetTimeoutMs(opts_.go_timeout_ms);
  XM_TRY(ExpectRecord(*control_, rec, RecordType::kGo, "handoff: waiting for GO"));
  XM_TRY_CTX(ExpectEmpty("GO", rec.body), "handoff");
  at_resume_ = guest_->Progress();
  XM_TRY_CTX(guest_->Resume(), "resume guest");
  resumed_ = true;
  // This side's own view of the downtime: from the last pre-copy ROUND_ACK (the
  // source pauses the guest as soon as it reads it) to the guest running here.
  // A migration with no pre-copy round to ack starts it at COMMIT (an underestimate).
  auto ms = [](Clock::time_point a, Clock::time_point b) {
    return std::chrono::duration<double, std::milli>(b - a).count();
  };
  auto now = Clock::now();
  Clock::time_point paused_at = ack_at_.size() >= 2 ? ack_at_[ack_at_.size() - 2] : commit_at_;
  report_.downtime.final_round_ms = ms(paused_at, commit_at_);
  report_.downtime.state_ms = ms(commit_at_, ready_at);
  report_.downtime.resume_ms = ms(ready_at, now);
  report_.downtime_ms = ms(paused_at, now);
  return {};
}

MigrationReport Receiver::Impl::Run(Listener& listener) {
  report_.role = "destination";
  auto start = Clock::now();
  auto body = [&]() -> Status {
    auto fd = listener.Accept(opts_.accept_timeout_ms);
    if (!fd.ok()) return std::move(fd).With("waiting for a source").status();
    std::string why;
    auto s = MakeStream(std::move(fd).value(), opts_.transport, &why);
    if (!s.ok()) return std::move(s).status();
    lanes_.push_back(std::make_unique<Lane>());
    lanes_[0]->stream = std::move(s).value();
    control_ = lanes_[0]->stream.get();
    control_->SetTimeoutMs(opts_.io_timeout_ms);
    report_.transport = std::string(control_->kind());
    if (!why.empty()) report_.transport_note = why;
    Emit({{"event", "phase"}, {"phase", "handshake"}, {"peer", control_->peer()}});
    start = Clock::now();
    XM_TRY(Handshake());
    XM_TRY(AcceptDataStreams(listener));
    Commit commit;
    VcpuState vcpu;
    XM_TRY(Rounds(commit, vcpu));
    return Handoff(commit, vcpu);
  };
  Status st = body();
  StopDataThreads();
  if (!st.ok() && !data_error_.ok()) st = data_error_;  // the root cause, not the control stream's shutdown
  report_.total_ms = MsSince(start);
  if (!st.ok()) {
    if (control_ && !resumed_) SendAbort(*control_, st);
    if (guest_) {
      guest_->Discard();
      guest_.reset();
      report_.destination_guest = GuestStateName(GuestState::kGone);
    }
    report_.result = st.code() == Code::kAborted ? "aborted" : "failed";
    report_.error = st.message();
    report_.exit_code = ExitCodeFor(st);
    return report_;
  }
  report_.result = "completed";
  report_.exit_code = kExitCompleted;
  // The guest runs here now. Tell the source (best effort: a lost DONE leaves the
  // source paused and asking, never running twice).
  std::string stats = report_.ToJson().dump();
  (void)WriteRecord(*control_, RecordType::kStats,
                    std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(stats.data()), stats.size()),
                    kRecordOptional);
  (void)WriteRecord(*control_, RecordType::kDone, std::span<const uint8_t>());
  auto resumed_at = Clock::now();
  if (opts_.linger_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(opts_.linger_ms));
  if (at_resume_.available) {
    GuestProgress after = guest_->Progress();
    // A guest that checks its own memory must finish one whole check here.
    auto deadline = Clock::now() + std::chrono::milliseconds(opts_.selfcheck_wait_ms);
    while (after.selfcheck && after.checks_passed + after.checks_failed == 0 && Clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      after = guest_->Progress();
    }
    nlohmann::json g = report_.guest.value_or(nlohmann::json::object());
    g["counter_at_resume"] = at_resume_.counter;
    g["counter_after"] = after.counter;
    g["observed_ms"] = MsSince(resumed_at);
    g["running"] = guest_->Running();
    if (!after.describe.empty()) g["says"] = after.describe;
    report_.guest = g;
    if (after.selfcheck) {
      bool passed = after.checks_failed == 0 && after.checks_passed >= 1 && after.counter > at_resume_.counter;
      report_.guest_selfcheck = nlohmann::json{{"counter_at_pause", at_resume_.counter},
                                               {"counter_after_resume", after.counter},
                                               {"checks_passed", after.checks_passed},
                                               {"checks_failed", after.checks_failed},
                                               {"status", passed ? "passed" : "failed"}};
    }
  }
  report_.destination_guest = GuestStateName(guest_->State());
  return report_;
}

}  // namespace xm
