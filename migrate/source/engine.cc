#include "migrate/source/engine.h"

#include <fcntl.h>
#include <unistd.h>
#include <xxhash.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <functional>
#include <optional>
#include <thread>

#include "base/log.h"
#include "base/process_memory.h"
#include "base/unique_fd.h"
#include "migrate/common/clock.h"
#include "migrate/common/guest_memory.h"
#include "migrate/common/negotiate.h"
#include "migrate/common/page_codec.h"
#include "migrate/common/control.h"
#include "migrate/source/transfer_meter.h"
#include "transport/auth.h"
#include "transport/record.h"

namespace xm {

constexpr int kHelloTimeoutMs = 10000;
class SourceEngine::Impl {
 public:
  Impl(Backend& b, SourceOptions o)
      : backend_(b), opts_(std::move(o)), policy_(opts_.policy), progress_(opts_.progress, "source") {}
  ~Impl() {
    if (opts_.cancel) opts_.cancel->SetInterrupt({});
  }

  MigrationReport Run();

 private:
  Status Connect(int timeout_ms);
  Status Handshake(uint64_t resume_session, uint32_t round, int timeout_ms);
  Status OpenDataStreams();
  // `meanwhile`, if set, runs once the round's last record is out and before
  // its ROUND_ACK is awaited: local work that overlaps the destination's apply.
  Status SendRound(uint32_t round, const DirtyBitmap& pages, RoundReport& rr,
                   const std::function<void()>& meanwhile = {});
  // SendRound, carried over broken connections (--reconnect).
  Status SendRoundResuming(uint32_t round, const DirtyBitmap& pages, RoundReport& rr,
                           const std::function<void()>& meanwhile = {});
  Result<ResumeState> Reconnect(uint32_t round, const Status& why);
  Status StopAndCopy(uint32_t round, DirtyBitmap& dirty);
  // Names the phase for progress events and for a cancel that lands in it.
  void EnterPhase(const std::string& phase, nlohmann::json fields = nlohmann::json::object()) {
    progress_.Phase(phase, std::move(fields));
    if (opts_.cancel) opts_.cancel->SetPhase(phase);
  }
  Status CheckCancel() const {
    if (opts_.cancel && opts_.cancel->requested()) return opts_.cancel->CancelledStatus();
    return {};
  }
  // Reads the next control record, which must be `want`; remembers it for the report.
  Status Expect(Record& rec, RecordType want, const std::string& phase);
  void Phase(std::string p) { report_.phase = std::move(p); }
  // An event for the progress stream (schema, time and phase added there).
  void Emit(nlohmann::json event) {
    const std::string name = event.value("event", "event");
    event.erase("event");
    progress_.Emit(name, std::move(event));
  }

  Backend& backend_;
  SourceOptions opts_;
  Policy policy_;
  MigrationReport report_;
  std::unique_ptr<TcpDialer> tcp_;  // when no dialer was given
  Dialer* dialer_ = nullptr;
  std::unique_ptr<SecureContext> secure_;  // every stream goes through it
  std::unique_ptr<Stream> control_;
  std::vector<std::unique_ptr<Stream>> data_;  // streams 1..n-1
  std::unique_ptr<SendPipeline> pipeline_;
  Session session_;
  ProgressEmitter progress_;
  std::unique_ptr<TransferMeter> meter_;  // exists once the pipeline does
  Clock::time_point start_;
  bool paused_ = false;
  bool go_written_ = false;
  bool link_broke_ = false;  // the last SendRound failed because a connection did
};

// One round as a progress event (PROGRESS.md "round").
static nlohmann::json RoundEvent(const RoundReport& rr, bool final) {
  nlohmann::json e{{"iteration", rr.round}, {"dirty_pages", rr.dirty_pages}, {"pages", rr.pages_sent},
                   {"bytes", rr.bytes_wire}, {"ms", rr.ms}, {"final", final}};
  if (!final) e["dirty_next"] = rr.dirty_next;
  if (rr.predicted_downtime_ms) e["expected_downtime_ms"] = *rr.predicted_downtime_ms;
  return e;
}

SourceEngine::SourceEngine(Backend& backend, SourceOptions opts)
    : impl_(std::make_unique<Impl>(backend, std::move(opts))) {}
SourceEngine::~SourceEngine() = default;
MigrationReport SourceEngine::Run() { return impl_->Run(); }

Status SourceEngine::Impl::Connect(int timeout_ms) {
  if (opts_.dialer) {
    dialer_ = opts_.dialer;
  } else {
    tcp_ = std::make_unique<TcpDialer>(opts_.to, timeout_ms, opts_.transport);
    dialer_ = tcp_.get();
  }
  SecurityOptions so = opts_.security;
  so.psk = opts_.key;
  so.handshake_timeout_ms = std::min(opts_.io_timeout_ms, kHelloTimeoutMs);
  XM_ASSIGN_OR_RETURN(secure_, SecureContext::Create(so, Role::kSource));
  std::string why;
  auto s = dialer_->Dial(&why);
  if (!s.ok() && s.status().message().find("refused") != std::string::npos)
    return NoReceiverListens(s.status(), opts_.to.ToString());
  if (!s.ok()) return std::move(s).status();
  XM_ASSIGN_OR_RETURN(control_, secure_->Secure(std::move(s).value()));
  report_.encryption = secure_->info();
  control_->SetTimeoutMs(opts_.io_timeout_ms);
  // A cancel wakes whatever read the engine is blocked in; ABORT still goes out.
  if (opts_.cancel) opts_.cancel->SetInterrupt([c = control_.get()] { c->InterruptRecv(); });
  report_.transport = std::string(control_->kind());
  if (!why.empty()) report_.transport_note = why;
  return {};
}

Status SourceEngine::Impl::OpenDataStreams() {
  for (uint32_t i = 1; i < session_.streams; ++i) {
    std::string why;
    auto s = dialer_->Dial(&why);
    if (!s.ok()) return std::move(s).With("open stream " + std::to_string(i)).status();
    s = secure_->Secure(std::move(s).value());
    if (!s.ok()) return std::move(s).With("open stream " + std::to_string(i)).status();
    (*s)->SetTimeoutMs(opts_.io_timeout_ms);
    Join j;
    j.session_id = session_.id();
    j.stream_index = i;
    if (session_.authenticated) j.mac = session_.JoinMacFor(opts_.key, i);
    XM_TRY_CTX(WriteRecord(**s, RecordType::kJoin, EncodeJoin(j)), "stream " + std::to_string(i));
    data_.push_back(std::move(s).value());
  }
  report_.streams = session_.streams;
  std::vector<Stream*> all{control_.get()};
  for (auto& d : data_) all.push_back(d.get());
  if (pipeline_) {
    pipeline_->Attach(std::move(all));  // after a reconnect: same pipeline state, new streams
    return {};
  }
  PipelineOptions po = opts_.pipeline;
  po.cancel = opts_.cancel;
  po.codecs &= session_.features;
  po.compress = opts_.compress && po.codecs != 0;
  po.record_streams = po.record_streams && (session_.features & kFeatureRecordStreams);
  report_.record_streams = po.record_streams;
  if (!(session_.features & kFeatureDelta)) po.delta_cache_bytes = 0;
  if (!(session_.features & kFeatureDupRef)) po.dup_index_entries = 0;
  pipeline_ = std::make_unique<SendPipeline>(backend_, std::move(all), po);
  meter_ = std::make_unique<TransferMeter>(progress_, *pipeline_, backend_.shape().memory_bytes(),
                                           opts_.policy.downtime_target_ms);
  return {};
}

Status SourceEngine::Impl::Handshake(uint64_t resume_session, uint32_t round, int timeout_ms) {
  NegotiateOptions no;
  no.role = Role::kSource;
  no.key = opts_.key;
  no.features = (opts_.compress ? kFeatureLz4 | kFeatureZstd : 0) | kFeatureDelta | kFeatureDupRef |
                (opts_.compress && opts_.pipeline.record_streams ? kFeatureRecordStreams : 0);
  no.streams = opts_.streams;
  no.peer = opts_.to.ToString();
  no.hello_timeout_ms = std::min(timeout_ms, kHelloTimeoutMs);
  no.io_timeout_ms = timeout_ms;
  no.resume_session = resume_session;
  no.resume_round = round;
  auto offer = [this]() -> Result<std::pair<Shape, CpuPolicy>> {
    auto policy = backend_.GetCpuPolicy();
    if (!policy.ok()) return std::move(policy).With("read guest CPU policy").status();
    return std::pair{Shape{backend_.shape(), std::string(backend_.name())}, std::move(policy).value()};
  };
  control_->SetTimeoutMs(timeout_ms);
  const uint32_t streams_before = session_.streams;
  const uint64_t features_before = session_.features;
  XM_ASSIGN_OR_RETURN(session_, Negotiate(*control_, no, offer, nullptr));
  control_->SetTimeoutMs(opts_.io_timeout_ms);
  if (resume_session && session_.streams != streams_before)
    return Error(Code::kProtocol, "resume: the receiver now accepts " + std::to_string(session_.streams) +
                                      " streams, the session had " + std::to_string(streams_before));
  // The pipeline, and with it what it encodes (deltas, dup refs, codecs, record
  // streams), carries over a resume: the features it was built for must too.
  if (resume_session && session_.features != features_before)
    return Error(Code::kProtocol, fmt::format("resume: the receiver now agrees to features {:#x}, the session had {:#x}",
                                              session_.features, features_before));
  report_.last_record = resume_session ? "RESUME_STATE" : "ACCEPT";
  spdlog::debug("send: session {:016x} with {}: {} streams, features {:#x}, {}", session_.id(), control_->peer(),
                session_.streams, session_.features, session_.authenticated ? "authenticated" : "no key");
  return {};
}

Status SourceEngine::Impl::Expect(Record& rec, RecordType want, const std::string& phase) {
  Status st = ExpectRecord(*control_, rec, want, phase);
  if (st.ok() || rec.type == want) report_.last_record = std::string(RecordName(rec.type));
  return st;
}

Status SourceEngine::Impl::SendRound(uint32_t round, const DirtyBitmap& pages, RoundReport& rr,
                                     const std::function<void()>& meanwhile) {
  const auto t0 = Clock::now();
  PipelineRound pr;
  Status st = pipeline_->SendRound(round, pages, pr, /*last=*/paused_);
  if (!st.ok()) {
    link_broke_ = pipeline_->link_failed();
    return std::move(st).With("round " + std::to_string(round));
  }
  rr.pages_sent = pr.pages_sent;
  rr.bytes_wire = pr.bytes_wire;
  rr.compression = pr.compression;
  report_.pages += pr.counts;
  RoundEnd re{round, pr.pages_sent, pipeline_->batches_per_stream()};
  auto body = EncodeRoundEnd(re);
  st = WriteRecord(*control_, RecordType::kRoundEnd, body);
  if (!st.ok()) {
    link_broke_ = LinkFailed(st);
    return std::move(st).With("round " + std::to_string(round));
  }
  rr.bytes_wire += body.size() + kRecordHeaderSize;
  report_.bytes_wire += rr.bytes_wire;
  const double out_ms = MsSince(t0);
  if (meanwhile) meanwhile();
  const double meanwhile_ms = MsSince(t0) - out_ms;
  // The round lasts until the destination has applied it (PROTOCOL.md
  // ROUND_ACK): a destination that falls behind must slow the rounds down, not
  // surface later as downtime.
  Record rec;
  // A destination may be slow to apply a big round (a Xen toolstack restoring
  // 64 GiB), and says nothing while it works: allow it 20 MiB/s on top of the
  // handoff timeout before calling it stuck.
  const uint64_t slack_ms = rr.bytes_wire / ((20u << 20) / 1000);
  control_->SetTimeoutMs(static_cast<int>(std::min<uint64_t>(opts_.handoff_timeout_ms + slack_ms, INT32_MAX)));
  const std::string phase = "round " + std::to_string(round) + ": waiting for the destination to apply it";
  st = Expect(rec, RecordType::kRoundAck, phase);
  if (!st.ok()) {
    link_broke_ = LinkFailed(st);
    return st;
  }
  control_->SetTimeoutMs(opts_.io_timeout_ms);
  auto acked = DecodeRoundAck(rec.body);
  if (!acked.ok()) return std::move(acked).With(phase).status();
  if (*acked != round)
    return Error(Code::kProtocol, phase + ": ROUND_ACK for round " + std::to_string(*acked));
  spdlog::debug("send: round {}: {} pages out in {:.1f} ms (map {:.1f}, encode {:.1f}, write {:.1f} ms), ROUND_ACK {:.1f} "
                "ms later ({:.1f} ms of local work meanwhile)",
                round, rr.pages_sent, out_ms, pr.map_ms, pr.encode_ms, pr.write_ms, MsSince(t0) - out_ms, meanwhile_ms);
  return {};
}

Status SourceEngine::Impl::SendRoundResuming(uint32_t round, const DirtyBitmap& pages, RoundReport& rr,
                                             const std::function<void()>& meanwhile) {
  const uint64_t page_count = backend_.shape().page_count;
  DirtyBitmap rest;  // after a break: what the destination still lacks of this round
  const DirtyBitmap* sending = &pages;
  for (;;) {
    link_broke_ = false;
    RoundReport attempt;
    Status st = SendRound(round, *sending, attempt, meanwhile);
    // An operator's cancel wakes a blocked read: that is no broken link to resume.
    if (!st.ok() && opts_.cancel && opts_.cancel->requested()) return opts_.cancel->CancelledStatus();
    rr.pages_sent += attempt.pages_sent;
    rr.bytes_wire += attempt.bytes_wire;
    rr.compression = attempt.compression;
    if (st.ok() || !link_broke_ || opts_.reconnect == 0) {
      report_.bytes_resent = pipeline_->resent_bytes();
      return st;
    }
    XM_ASSIGN_OR_RETURN(ResumeState state, Reconnect(round, st));
    // The destination says what it holds: the last round it acknowledged and
    // the pfns of this round it applied. Nothing it acknowledged is sent again.
    if (state.page_count != page_count)
      return Error(Code::kProtocol, "resume: the receiver holds " + std::to_string(state.page_count) +
                                        " page frames, the guest has " + std::to_string(page_count));
    if (state.acked_round == round) return {};  // it applied the round; only its ROUND_ACK was lost
    const uint32_t previous = round == 0 ? ResumeState::kNoRound : round - 1;
    if (state.acked_round != previous)
      return Error(Code::kProtocol, "resume: the receiver acknowledged round " +
                                        (state.acked_round == ResumeState::kNoRound ? std::string("none")
                                                                                    : std::to_string(state.acked_round)) +
                                        ", we are in round " + std::to_string(round));
    DirtyBitmap applied(page_count);
    applied.OrWords(0, state.applied.data(), state.applied.size());
    const uint64_t lost = pipeline_->ForgetUnapplied(applied);
    rest.Resize(page_count);
    rest.ClearAll();
    pages.ForEach([&](uint64_t pfn) { rest.Set(pfn); });
    rest.AndNot(applied);
    sending = &rest;
    spdlog::info("send: resuming round {}: the receiver applied {} pages of it, {} sent pages were lost, {} to go",
                 round, applied.Count(), lost, rest.Count());
  }
}

Result<ResumeState> SourceEngine::Impl::Reconnect(uint32_t round, const Status& why) {
  const std::string phase = report_.phase;
  // A receiver that stopped on purpose (a page it refused, its disk full) says
  // why in an ABORT just before it closes; a write failing first must not hide it.
  control_->SetTimeoutMs(250);
  for (Record rec;;) {
    Status st = ReadControl(*control_, rec, phase);
    if (!st.ok() && !LinkFailed(st)) return st;
    if (!st.ok()) break;
  }
  report_.breaks.push_back({phase, MsSince(start_), why.message()});
  Emit({{"event", "break"}, {"phase", phase}, {"error", why.message()}});
  spdlog::warn("send: connection broke in {}: {}; reconnecting", phase, why.message());
  pipeline_->Detach();
  data_.clear();
  control_.reset();
  // Every attempt of this break shares one io timeout: a path that stays dead
  // fails the migration as promptly as a silent one does.
  const auto deadline = Clock::now() + std::chrono::milliseconds(opts_.io_timeout_ms);
  Status last = why;
  for (uint32_t attempt = 0; attempt < opts_.reconnect; ++attempt) {
    const auto backoff = std::chrono::milliseconds(std::min(250 << std::min(attempt, 4u), 4000));
    if (Clock::now() + backoff >= deadline) break;
    std::this_thread::sleep_for(backoff);
    const int left = static_cast<int>(
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count());
    if (left <= 0) break;
    Status st = Connect(std::min(left, opts_.connect_timeout_ms));
    if (st.ok()) st = Handshake(session_.id(), round, left);
    if (st.ok()) st = OpenDataStreams();
    if (st.ok()) {
      ++report_.reconnects;
      Emit({{"event", "reconnected"}, {"phase", phase}, {"attempt", attempt + 1}});
      return *session_.resumed;
    }
    spdlog::warn("send: reconnect attempt {} failed: {}", attempt + 1, st.message());
    last = st;
    data_.clear();
    control_.reset();
    if (!WorthReconnecting(st)) break;
  }
  // Whatever the last attempt said, this is a failure before GO (exit 1).
  return Error(Code::kIo, "connection broke in " + phase + " (" + why.message() + ") and reconnecting failed: " +
                              last.message());
}

Status SourceEngine::Impl::StopAndCopy(uint32_t round, DirtyBitmap& dirty) {
  EnterPhase("final-round", {{"iteration", round}});
  if (opts_.cancel) opts_.cancel->SetPhase("final-round", round);
  Phase("final round " + std::to_string(round));
  XM_TRY(CheckCancel());
  auto t_pause = Clock::now();
  const double cpu_at_pause = ProcessCpuMs();
  XM_TRY_CTX(backend_.Pause(), "pause guest");
  paused_ = true;
  report_.downtime.pause_ms = MsSince(t_pause);
  if (auto p = backend_.Progress(); p.available) {
    report_.guest = nlohmann::json{{"counter_at_pause", p.counter}};
    if (!p.describe.empty()) (*report_.guest)["says"] = p.describe;
  }
  auto t_final = Clock::now();
  XM_TRY_CTX(backend_.FetchDirty(dirty), "final dirty log");
  RoundReport rr;
  rr.fetch_ms = MsSince(t_final);
  rr.round = round;
  rr.dirty_pages = dirty.Count();
  meter_->StartRound(round, rr.dirty_pages, true);
  // The vCPU state is read while the destination applies the last pages: on
  // Xen that is a dozen hypercalls and, for HVM, QEMU's saved device state,
  // work that otherwise sits between ROUND_ACK and VCPU_STATE in the downtime.
  std::optional<Result<std::vector<uint8_t>>> blob;
  auto save_state = [&] {
    if (!blob) blob = backend_.SaveVcpuState();
  };
  XM_TRY(SendRoundResuming(round, dirty, rr, save_state));
  rr.ms = MsSince(t_final);
  report_.downtime.final_round_ms = rr.ms;
  report_.source_overhead_bytes = pipeline_->overhead_bytes();
  report_.rounds.push_back(rr);
  meter_->Complete();
  progress_.Emit("round", RoundEvent(rr, true));

  EnterPhase("state");
  XM_TRY(CheckCancel());
  auto t_state = Clock::now();
  Phase("state");
  if (!opts_.dump_at_pause.empty()) XM_TRY_CTX(DumpMemory(backend_, opts_.dump_at_pause), "dump at pause");
  // Rehash the paused guest against what was sent: proves the dirty log missed nothing.
  if (opts_.verify == VerifyMode::kFull) {
    uint64_t misses = 0;
    Status audit = CheckMemory(backend_, pipeline_->last_hash(), "changed but the dirty log did not report it", &misses);
    report_.dirty_log_misses = misses;
    XM_TRY_CTX(std::move(audit), "full verify");
  }
  save_state();  // a resumed round may have ended without running it
  if (!blob->ok()) return std::move(*blob).With("save vCPU state").status();
  XM_TRY(CheckCancel());
  VcpuState vs{std::string(backend_.name()) + "-v1", std::move(*blob).value()};
  XM_TRY_CTX(WriteRecord(*control_, RecordType::kVcpuState, EncodeVcpuState(vs)), "handoff");
  Commit commit;
  commit.digest = MemoryDigest(backend_.shape(), pipeline_->last_hash());
  commit.pages = backend_.shape().memory_bytes() / backend_.shape().page_size;
  commit.final_round = round;
  commit.verify = opts_.verify;
  report_.digest = DigestHex(commit.digest);
  XM_TRY_CTX(WriteRecord(*control_, RecordType::kCommit, EncodeCommit(commit)), "handoff");

  EnterPhase("ready");
  Record rec;
  Phase("READY");
  control_->SetTimeoutMs(opts_.handoff_timeout_ms);
  XM_TRY(Expect(rec, RecordType::kReady, "handoff: waiting for READY"));
  auto ready = DecodeReady(rec.body);
  if (!ready.ok()) return std::move(ready).With("handoff").status();
  if (ready->digest != commit.digest)
    return Error(Code::kIntegrity, "handoff: destination's digest " + DigestHex(ready->digest) + " differs from ours " +
                                       report_.digest);
  report_.digest_match = true;
  report_.downtime.state_ms = MsSince(t_state);

  // The point of no return: from here on the guest must never run here again,
  // and an operator's cancel is refused (the handoff finishes).
  if (opts_.cancel &&
      !opts_.cancel->PassPointOfNoReturn("GO was sent: the guest is being handed to the destination; the handoff "
                                         "finishes (cancel refused)"))
    return opts_.cancel->CancelledStatus();
  XM_TRY(CheckCancel());
  EnterPhase("handoff");
  auto t_go = Clock::now();
  Phase("GO");
  go_written_ = true;
  XM_TRY_CTX(WriteRecord(*control_, RecordType::kGo, std::span<const uint8_t>()), "handoff: send GO");
  Phase("DONE");
  for (;;) {
    XM_TRY(ReadControl(*control_, rec, "handoff: waiting for DONE"));
    report_.last_record = std::string(RecordName(rec.type));
    if (rec.type == RecordType::kStats) {
      auto j = nlohmann::json::parse(rec.body.begin(), rec.body.end(), nullptr, false);
      if (!j.is_discarded()) report_.peer = j;
      continue;
    }
    if (rec.type != RecordType::kDone)
      return Error(Code::kProtocol, "handoff: expected DONE, got " + std::string(RecordName(rec.type)));
    break;
  }
  EnterPhase("done");
  report_.downtime.handoff_ms = MsSince(t_go);
  report_.downtime.cpu_ms = ProcessCpuMs() - cpu_at_pause;
  // Downtime is from asking the guest to stop until its vCPUs run on the
  // destination: up to GO here, then the destination's own GO-to-running
  // (its STATS came before DONE). GO's one-way trip is not in it (one network
  // latency); the destination's report writing after the guest runs is not
  // either. Without the destination's figure, DONE's arrival bounds it.
  report_.downtime_ms = MsSince(t_pause);
  if (report_.peer && report_.peer->contains("downtime")) {
    const auto& d = (*report_.peer)["downtime"];
    report_.downtime.restore_ms = d.value("restore_ms", 0.0);
    report_.downtime.unpause_ms = d.value("unpause_ms", 0.0);
    report_.downtime.go_to_running_ms = d.value("go_to_running_ms", 0.0);
    if (report_.downtime.go_to_running_ms > 0)
      report_.downtime_ms =
          std::chrono::duration<double, std::milli>(t_go - t_pause).count() + report_.downtime.go_to_running_ms;
  }
  // The dirty log is not turned off on success: Release ends this copy and its
  // tracking with it (a failure before GO turns it off before resuming). On Xen
  // HVM turning it off is a QMP round trip to a QEMU about to be killed, ~20 ms
  // in the lab, and a source host's dom0 is busiest right now.
  XM_TRY_CTX(backend_.Release(), "release source guest");
  return {};
}

MigrationReport SourceEngine::Impl::Run() {
  (void)ResetPeakResident();
  const uint64_t rss_at_start =
      ResidentBeyond(backend_.DirectMemory(), backend_.shape().page_count * backend_.shape().page_size);
  // total_ms runs from here (REPORT.md: connection to the end of the handoff):
  // the baseline above walks every guest page table (~20 ms per resident GiB).
  start_ = Clock::now();
  report_.role = "source";
  report_.backend = std::string(backend_.name());
  report_.memory_bytes = backend_.shape().memory_bytes();
  report_.streams = 1;
  report_.verify = opts_.verify == VerifyMode::kFull ? "full" : "incremental";
  report_.downtime_target_ms = opts_.policy.downtime_target_ms;

  auto body = [&]() -> Status {
    // A crashed or shut-down guest has nothing to migrate; say so before touching the network.
    if (GuestState gs = backend_.State(); !Migratable(gs))
      return Error(Code::kUnsupported, "the source guest is " + std::string(GuestStateName(gs)) +
                                           " (the hypervisor's view): there is nothing to migrate");
    EnterPhase("connect", {{"peer", opts_.to.ToString()}});
    Phase("connect");
    XM_TRY(CheckCancel());
    XM_TRY(Connect(opts_.connect_timeout_ms));
    EnterPhase("handshake", {{"peer", control_->peer()}});
    Phase("handshake");
    XM_TRY(Handshake(0, 0, opts_.io_timeout_ms));
    XM_TRY(OpenDataStreams());
    EnterPhase("precopy", {{"peer", control_->peer()}});
    XM_TRY(CheckCancel());
    XM_TRY_CTX(backend_.EnableDirtyLog(), "enable dirty log");
    DirtyBitmap todo(backend_.shape().page_count);
    todo.SetAll();
    const uint64_t first_dirty = backend_.shape().populated_pages();
    for (uint32_t round = 0;; ++round) {
      RoundReport rr;
      rr.round = round;
      rr.dirty_pages = round == 0 ? first_dirty : todo.Count();
      rr.compression = opts_.compress;
      rr.throttle = policy_.run_fraction();
      auto t = Clock::now();
      if (opts_.cancel) opts_.cancel->SetPhase("precopy", round);
      Phase("round " + std::to_string(round));
      meter_->StartRound(round, rr.dirty_pages, false);
      XM_TRY(SendRoundResuming(round, todo, rr));
      rr.ms = MsSince(t);
      todo.ClearAll();
      auto t_fetch = Clock::now();
      XM_TRY_CTX(backend_.FetchDirty(todo), "round " + std::to_string(round) + ": dirty log");
      rr.fetch_ms = MsSince(t_fetch);
      RoundObservation obs{round, rr.pages_sent, rr.bytes_wire, rr.ms, todo.Count(),
                           std::chrono::duration<double>(Clock::now() - start_).count(), rr.dirty_pages};
      Decision d = policy_.Decide(obs);
      rr.dirty_next = obs.dirty_next;
      rr.predicted_downtime_ms = policy_.last_prediction_ms();
      spdlog::debug("send: round {} sent {} pages in {:.1f} ms (dirty log {:.1f} ms), {} dirty next: {}", round,
                    rr.pages_sent, rr.ms, rr.fetch_ms, obs.dirty_next, policy_.reason());
      report_.rounds.push_back(rr);
      meter_->EndRound(obs.dirty_next, rr.ms, policy_.last_prediction_ms());
      nlohmann::json ev = RoundEvent(rr, false);
      ev["decision"] = policy_.reason();
      progress_.Emit("round", std::move(ev));
      XM_TRY(CheckCancel());
      if (d == Decision::kStopAndCopy) return StopAndCopy(round + 1, todo);
      if (policy_.run_fraction() != rr.throttle) XM_TRY_CTX(backend_.SetThrottle(policy_.run_fraction()), "throttle");
    }
  };

  Status st = body();
  if (meter_) meter_->Stop();
  report_.total_ms = MsSince(start_);
  // Whatever the engine tripped over once a cancel was accepted (an interrupted
  // read, a stopped round) is the cancel.
  if (!st.ok() && !go_written_ && opts_.cancel && opts_.cancel->requested()) st = opts_.cancel->CancelledStatus();
  if (!st.ok() && !go_written_ && control_) st = PeerAbortBehind(*control_, std::move(st), progress_.phase());
  report_.source_peak_overhead_bytes =
      OverheadSince(rss_at_start, backend_.DirectMemory(), backend_.shape().page_count * backend_.shape().page_size);
  if (st.ok()) {
    report_.result = "completed";
    report_.exit_code = kExitCompleted;
    report_.source_guest = "released";
    return report_;
  }
  {
    const std::string phase = progress_.phase();
    std::optional<uint32_t> round;
    if (phase == "precopy" || phase == "final-round") round = static_cast<uint32_t>(report_.rounds.size());
    RecordFailure(report_, st, opts_.cancel, phase, round);
  }
  if (go_written_) {
    // GO may or may not have reached the destination: never resume here.
    report_.exit_code = kExitOutcomeUnknown;
    report_.source_guest = "paused";
    report_.error += " (GO was sent: the guest stays paused here; ask the destination whether it resumed)";
    return report_;
  }
  meter_.reset();
  pipeline_.reset();  // joins its threads (shutting the streams if one is stuck)
  if (control_) SendAbort(*control_, st);
  (void)backend_.DisableDirtyLog();
  (void)backend_.SetThrottle(1.0);
  uint64_t before = backend_.Progress().counter;
  if (paused_) {
    Status rs = backend_.Resume();
    if (!rs.ok()) report_.error += "; RESUMING THE SOURCE GUEST FAILED: " + rs.message();
  }
  GuestState after = backend_.State();
  report_.source_guest = GuestStateName(after);
  if (after == GuestState::kCrashed && report_.error.find("source guest is crashed") == std::string::npos)
    report_.error += "; the source guest has CRASHED (the hypervisor's view)";
  if (auto p = backend_.Progress(); p.available) {
    // Show the guest really runs on: its own counter must move.
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    report_.guest = nlohmann::json{{"counter_at_failure", before}, {"counter_after_resume", backend_.Progress().counter}};
  }
  report_.exit_code = ExitCodeFor(st);
  return report_;
}

}  // namespace xm
