#include "migrate/destination/receiver.h"

#include <unistd.h>
#include <xxhash.h>

#include <algorithm>
#include <chrono>
#include <thread>

#include "base/log.h"
#include "base/process_memory.h"
#include "migrate/common/clock.h"
#include "migrate/common/guest_memory.h"
#include "migrate/common/negotiate.h"
#include "migrate/destination/guest_watch.h"
#include "migrate/destination/lanes.h"
#include "migrate/destination/page_applier.h"
#include "migrate/common/page_codec.h"
#include "migrate/common/control.h"
#include "transport/auth.h"
#include "transport/pages.h"
#include "transport/record.h"

namespace xm {
class Receiver::Impl {
 public:
  explicit Impl(ReceiverOptions o) : opts_(std::move(o)), progress_(opts_.progress, "destination") {}
  ~Impl() {
    if (opts_.cancel) opts_.cancel->SetInterrupt({});
    if (lanes_) lanes_->Stop();
  }
  MigrationReport Run(Acceptor& acceptor);
  std::unique_ptr<Backend> TakeGuest() { return std::move(guest_); }
  TransportKind transport() const { return opts_.transport; }

 private:
  Status Handshake();
  Status Admit(const Shape& shape, const CpuPolicy& policy);
  Status AcceptDataStreams(Acceptor& acceptor);
  Status Rounds(Commit& commit, VcpuState& vcpu);
  // After a break in Rounds: keeps the partial guest and waits up to the resume
  // window for the same source to reconnect and RESUME.
  Status AwaitResume(Acceptor& acceptor, const Status& why);
  ResumeState HeldState() const;
  uint64_t BytesReceived() const { return retired_bytes_ + (lanes_ ? lanes_->bytes() : 0); }
  void Phase(std::string p) { report_.phase = std::move(p); }
  Status Handoff(const Commit& commit, const VcpuState& vcpu);
  void EnterPhase(const std::string& phase, nlohmann::json fields = nlohmann::json::object()) {
    progress_.Phase(phase, std::move(fields));
    if (opts_.cancel) opts_.cancel->SetPhase(phase);
  }
  Result<std::unique_ptr<Stream>> AcceptSource(Acceptor& acceptor, std::string* why);

  ReceiverOptions opts_;
  ProgressEmitter progress_;
  MigrationReport report_;
  std::vector<uint64_t> final_batches_;  // per stream, from the last ROUND_END

  // Declared so that they are destroyed lanes first, the guest last.
  std::unique_ptr<Backend> guest_;
  std::unique_ptr<SecureContext> secure_;  // every stream goes through it
  std::unique_ptr<Stream> control_stream_;
  Stream* control_ = nullptr;
  Record rec_;  // the control stream's current record
  std::unique_ptr<PageApplier> applier_;  // exists once the guest does
  std::unique_ptr<ReceiveLanes> lanes_;   // exists once the session's streams are known
  Session session_;
  CpuPolicy policy_;
  bool resumed_ = false;
  // When each ROUND_ACK went out, and this process's CPU time then (ProcessCpuMs).
  // The source pauses the guest right after reading the one before the final
  // round's: that is where this side's downtime starts.
  struct Ack {
    Clock::time_point at;
    double cpu_ms;
  };
  std::vector<Ack> acks_;
  Clock::time_point commit_at_ = Clock::now();
  uint64_t rss_at_start_ = ResidentBytes();
  // Rounds() state, kept across a reconnect.
  uint32_t round_ = 0;
  uint32_t acked_round_ = ResumeState::kNoRound;
  bool have_vcpu_ = false;
  bool link_broke_ = false;  // the last Rounds() failed because a connection did
  uint64_t bytes_at_round_start_ = 0;
  Clock::time_point round_start_ = Clock::now();
  // What lanes retired by a reconnect carried.
  EncodeCounts retired_counts_;
  uint64_t retired_bytes_ = 0;
  GuestProgress at_resume_;  // the guest's own view just before it first runs here
  Clock::time_point start_ = Clock::now();
};

Receiver::Receiver(ReceiverOptions opts) : impl_(std::make_unique<Impl>(std::move(opts))) {}
Receiver::~Receiver() = default;
MigrationReport Receiver::Run(Listener& l) {
  TcpAcceptor tcp(l, impl_->transport());
  return impl_->Run(tcp);
}
MigrationReport Receiver::Run(Acceptor& a) { return impl_->Run(a); }
std::unique_ptr<Backend> Receiver::TakeGuest() { return impl_->TakeGuest(); }

// Waits for the source, in short slices while a cancel can come: an accept
// consumes nothing, so giving up a slice loses nothing.
Result<std::unique_ptr<Stream>> Receiver::Impl::AcceptSource(Acceptor& acceptor, std::string* why) {
  if (!opts_.cancel) return acceptor.Accept(opts_.accept_timeout_ms, why);
  constexpr int kSliceMs = 200;
  const auto deadline = Clock::now() + std::chrono::milliseconds(opts_.accept_timeout_ms);
  for (;;) {
    if (opts_.cancel->requested()) return opts_.cancel->CancelledStatus();
    int slice = kSliceMs;
    if (opts_.accept_timeout_ms > 0) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
      slice = static_cast<int>(std::clamp<int64_t>(left, 1, kSliceMs));
    }
    auto s = acceptor.Accept(slice, why);
    if (s.ok() || s.status().code() != Code::kTimeout) return s;
    if (opts_.accept_timeout_ms > 0 && Clock::now() >= deadline)
      return Error(Code::kTimeout, "no source within " + std::to_string(opts_.accept_timeout_ms) + " ms");
  }
}

Status Receiver::Impl::Handshake() {
  NegotiateOptions no;
  no.role = Role::kDestination;
  no.key = opts_.key;
  no.streams = opts_.max_streams;
  auto admit = [this](const Shape& shape, const CpuPolicy& policy) { return Admit(shape, policy); };
  XM_ASSIGN_OR_RETURN(session_, Negotiate(*control_, no, nullptr, admit));
  spdlog::debug("receive: session {:016x} from {}: {} streams, features {:#x}, {}", session_.id(), control_->peer(),
                session_.streams, session_.features, session_.authenticated ? "authenticated" : "no key");
  return {};
}

// Takes the guest the source offers, or says why not: a guest this host could
// never hold is refused before anything is allocated for it.
Status Receiver::Impl::Admit(const Shape& shape, const CpuPolicy& policy) {
  policy_ = policy;
  report_.memory_bytes = shape.shape.memory_bytes();
  // Memory is what is populated; the address space may be far larger (HVM/PVH
  // special pages sit just below 4 GiB). The per-frame bookkeeping spans the
  // address space (13 bytes a frame, 0.3% of the guest; only populated frames'
  // entries are ever resident, ZeroedArray) and must fit in half of this
  // host's RAM even if every frame were: a 4 GiB dom0 takes a 600 GiB guest.
  const uint64_t ram = static_cast<uint64_t>(::sysconf(_SC_PHYS_PAGES)) * ::sysconf(_SC_PAGESIZE);
  const uint64_t limit = opts_.max_guest_bytes ? opts_.max_guest_bytes : ram;
  if (shape.shape.memory_bytes() > limit || shape.shape.page_count > ram / 2 / 13)
    return Status(Code::kIncompatible, "guest of " + std::to_string(shape.shape.memory_bytes() >> 20) + " MiB in " +
                                           std::to_string(shape.shape.page_count) + " page frames is larger than " +
                                           (opts_.max_guest_bytes ? opts_.max_guest_what : "this host can hold") +
                                           " (" + std::to_string(limit >> 20) + " MiB)")
        .With("handshake");
  if (opts_.check_cpu) XM_TRY_CTX(opts_.check_cpu(policy_), "CPU check");
  auto guest = opts_.make_backend(shape.shape, shape.backend);
  if (!guest.ok()) return std::move(guest).With("create destination guest").status();
  guest_ = std::move(guest).value();
  report_.backend = std::string(guest_->name());
  report_.guest_memory = opts_.guest_memory;
  return {};
}

Status Receiver::Impl::AcceptDataStreams(Acceptor& acceptor) {
  const uint32_t n = session_.streams;
  report_.streams = n;
  report_.record_streams = (session_.features & kFeatureRecordStreams) != 0;
  if (!applier_) applier_ = std::make_unique<PageApplier>(*guest_, n);  // a resumed session keeps its pages
  lanes_ = std::make_unique<ReceiveLanes>(*control_, *applier_, n, report_.record_streams, opts_.io_timeout_ms);
  for (uint32_t joined = 1; joined < n; ++joined) {
    std::string why;
    auto s = acceptor.Accept(opts_.io_timeout_ms, &why);
    if (!s.ok()) return std::move(s).With("waiting for data stream " + std::to_string(joined)).status();
    s = secure_->Secure(std::move(s).value());
    if (!s.ok()) return std::move(s).With("data stream " + std::to_string(joined)).status();
    (*s)->SetTimeoutMs(opts_.io_timeout_ms);
    Record rec;
    XM_TRY(ExpectRecord(**s, rec, RecordType::kJoin, "data stream", kPreAuthMaxBody));
    auto j = DecodeJoin(rec.body);
    if (!j.ok()) return j.status();
    if (j->session_id != session_.id() || j->stream_index == 0 || j->stream_index >= n || lanes_->Has(j->stream_index))
      return Error(Code::kProtocol, "JOIN from " + (*s)->peer() + " for session/stream that is not expected here");
    if (session_.authenticated && !MacEqual(j->mac, session_.JoinMacFor(opts_.key, j->stream_index)))
      return Error(Code::kAuth, "data stream " + std::to_string(j->stream_index) + " failed authentication");
    lanes_->Add(j->stream_index, std::move(s).value());
  }
  lanes_->Start();
  return {};
}

Status Receiver::Impl::Rounds(Commit& commit, VcpuState& vcpu) {
  link_broke_ = false;
  for (;;) {
    Phase(have_vcpu_ ? "state" : "round " + std::to_string(round_));
    Status st = ReadControl(*control_, rec_, "round " + std::to_string(round_));
    if (!st.ok()) {
      link_broke_ = LinkFailed(st);
      return st;
    }
    Record& rec = rec_;
    report_.last_record = std::string(RecordName(rec.type));
    switch (rec.type) {
      case RecordType::kPages: {
        if (have_vcpu_) return Error(Code::kProtocol, "PAGES after VCPU_STATE");
        XM_TRY(lanes_->ApplyControlPages(rec.body));
        break;
      }
      case RecordType::kRoundEnd: {
        auto re = DecodeRoundEnd(rec.body);
        if (!re.ok()) return std::move(re).status();
        report_.last_record = "ROUND_END " + std::to_string(re->round);
        const auto end_at = Clock::now();
        XM_TRY(lanes_->WaitForBatches(re->batches_per_stream, "ROUND_END " + std::to_string(re->round)));
        const double lanes_ms = MsSince(end_at);
        final_batches_ = re->batches_per_stream;
        const uint64_t bytes = BytesReceived();
        RoundReport rr;
        rr.round = re->round;
        rr.pages_sent = re->pages;
        rr.bytes_wire = bytes - bytes_at_round_start_;
        rr.ms = MsSince(round_start_);
        report_.rounds.push_back(rr);
        bytes_at_round_start_ = bytes;
        progress_.Emit("round", {{"iteration", rr.round}, {"pages", rr.pages_sent}, {"bytes", rr.bytes_wire},
                                 {"transferred", bytes}, {"total", report_.memory_bytes}, {"ms", rr.ms}});
        spdlog::debug("receive: round {} applied: {} pages, {} bytes in {:.1f} ms", rr.round, rr.pages_sent,
                      rr.bytes_wire, rr.ms);
        {
          // Data streams may be ahead in the next round; the hook must not see half-written pages.
          auto apply_lock = lanes_->HoldApply();
          XM_TRY_CTX(guest_->OnRoundEnd(re->round), "round " + std::to_string(re->round));
        }
        spdlog::debug("receive: round {}: lanes done {:.1f} ms after ROUND_END, round-end hook {:.1f} ms", re->round,
                      lanes_ms, MsSince(end_at) - lanes_ms);
        // A cancel stops here rather than acking a round the source would build on.
        if (opts_.cancel && opts_.cancel->requested()) return opts_.cancel->CancelledStatus();
        acked_round_ = re->round;  // applied: a resumed source must not send it again, ack or no ack
        st = WriteRecord(*control_, RecordType::kRoundAck, EncodeRoundAck(re->round));
        if (!st.ok()) {
          link_broke_ = LinkFailed(st);
          return std::move(st).With("round " + std::to_string(re->round));
        }
        round_ = re->round + 1;
        if (opts_.cancel) opts_.cancel->SetPhase("precopy", round_);
        round_start_ = Clock::now();
        acks_.push_back({round_start_, ProcessCpuMs()});
        break;
      }
      case RecordType::kVcpuState: {
        auto v = DecodeVcpuState(rec.body);
        if (!v.ok()) return std::move(v).status();
        vcpu = std::move(v).value();
        have_vcpu_ = true;
        break;
      }
      case RecordType::kCommit: {
        if (!have_vcpu_) return Error(Code::kProtocol, "COMMIT before VCPU_STATE");
        auto c = DecodeCommit(rec.body);
        if (!c.ok()) return std::move(c).status();
        commit = *c;
        commit_at_ = Clock::now();
        EnterPhase("verify");
        return {};
      }
      default:
        return Error(Code::kProtocol, "unexpected " + std::string(RecordName(rec.type)) + " during pre-copy");
    }
  }
}

ResumeState Receiver::Impl::HeldState() const {
  ResumeState rs;
  rs.acked_round = acked_round_;
  rs.page_count = guest_->shape().page_count;
  rs.applied = applier_->AppliedAfter(acked_round_);
  return rs;
}

Status Receiver::Impl::AwaitResume(Acceptor& acceptor, const Status& why) {
  const std::string phase = report_.phase;
  report_.breaks.push_back({phase, MsSince(start_), why.message()});
  progress_.Emit("break", {{"phase", phase}, {"error", why.message()}});
  const bool closed = PeerClosed(why);
  const int window_ms = closed ? std::min(opts_.resume_window_ms, opts_.resume_window_closed_ms) : opts_.resume_window_ms;
  spdlog::warn("receive: connection broke in {}: {}; holding the partial guest up to {} s for the source to reconnect{}",
               phase, why.message(), window_ms / 1000.0, closed ? " (the source's end closed it)" : "");
  // Retire the broken session's streams; the guest and the applier stay.
  lanes_->Stop();
  retired_counts_ += lanes_->counts();
  retired_bytes_ += lanes_->bytes();
  lanes_.reset();
  // The new streams count batches from zero, as the source's do; a round whose
  // ROUND_END was handled had every batch applied on the retired lanes.
  final_batches_.assign(session_.streams, 0);
  control_ = nullptr;
  control_stream_.reset();
  Phase("resume wait");
  const auto deadline = Clock::now() + std::chrono::milliseconds(window_ms);
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) break;
    std::string note;
    auto s = acceptor.Accept(static_cast<int>(left), &note);
    if (!s.ok()) {
      if (s.status().code() == Code::kTimeout) break;
      return std::move(s).With("waiting for the source to reconnect").status();
    }
    auto secured = secure_->Secure(std::move(s).value());
    if (!secured.ok()) {
      // A stranger or a wrong key: refused in the TLS handshake; keep waiting.
      spdlog::warn("receive: while holding the guest: {}", secured.status().message());
      continue;
    }
    control_stream_ = std::move(secured).value();
    control_ = control_stream_.get();
    control_->SetTimeoutMs(opts_.io_timeout_ms);
    NegotiateOptions no;
    no.role = Role::kDestination;
    no.key = opts_.key;
    no.streams = opts_.max_streams;
    no.held_session = session_.id();
    no.resume_state = [this] { return HeldState(); };
    auto resumed = Negotiate(*control_, no, nullptr, nullptr);
    if (!resumed.ok()) {
      // A stranger, a wrong key or another source: refused (it was told why); keep waiting.
      spdlog::warn("receive: while holding the guest: {}", resumed.status().message());
      control_ = nullptr;
      control_stream_.reset();
      continue;
    }
    if (resumed->streams != session_.streams) {
      SendAbort(*control_, Status(Code::kProtocol, "resume: the session had " + std::to_string(session_.streams) +
                                                       " streams, not " + std::to_string(resumed->streams)));
      control_ = nullptr;
      control_stream_.reset();
      continue;
    }
    session_ = std::move(resumed).value();
    report_.last_record = "RESUME";
    XM_TRY(AcceptDataStreams(acceptor));
    ++report_.reconnects;
    progress_.Emit("reconnected", {{"phase", phase}});
    spdlog::info("receive: source reconnected; resuming {} (acknowledged round {})", phase,
                 acked_round_ == ResumeState::kNoRound ? std::string("none") : std::to_string(acked_round_));
    return {};
  }
  return Error(Code::kTimeout, "connection broke in " + phase + " (" + why.message() +
                                   ") and no source reconnected within the resume window (" +
                                   std::to_string(window_ms / 1000) + " s" +
                                   (closed ? ", shortened because the source's end closed the connection" : "") + ")");
}

Status Receiver::Impl::Handoff(const Commit& commit, const VcpuState& vcpu) {
  lanes_->Stop();  // the final ROUND_END was waited for: every batch is in
  XM_TRY(lanes_->error());
  XM_TRY(lanes_->CheckFinal(final_batches_));
  Phase("READY");
  report_.pages = retired_counts_;
  report_.pages += lanes_->counts();
  report_.bytes_wire += BytesReceived();
  // Every populated page must have arrived at least once.
  XM_TRY(applier_->CheckComplete());
  Digest128 mine = applier_->Digest();
  report_.digest = DigestHex(mine);
  if (commit.verify == VerifyMode::kFull) {
    report_.verify = "full";
    XM_TRY_CTX(CheckMemory(*guest_, applier_->hashes(), "differs in memory from what was decoded into it"), "full verify");
  }
  if (mine != commit.digest)
    return Error(Code::kIntegrity, "COMMIT: memory digest " + report_.digest + " differs from the source's " +
                                       DigestHex(commit.digest));
  report_.digest_match = true;
  if (!opts_.dump_memory.empty()) XM_TRY_CTX(DumpMemory(*guest_, opts_.dump_memory), "dump memory");
  auto restore_start = Clock::now();
  XM_TRY_CTX(guest_->LoadVcpuState(vcpu.blob), "load vCPU state");
  auto applied = guest_->ApplyCpuPolicy(policy_);
  if (!applied.ok()) return std::move(applied).With("apply CPU policy").status();
  if (opts_.check_applied_cpu) {
    std::vector<std::string> warnings;
    XM_TRY_CTX(opts_.check_applied_cpu(policy_, *applied, warnings), "apply CPU policy");
    if (!warnings.empty()) report_.guest = nlohmann::json{{"cpu_warnings", warnings}};
  }
  report_.downtime.restore_ms = MsSince(restore_start);
  // The point of no return here: once READY is out the source may send GO at
  // any moment, so a cancel no longer stops this side (the source's still can).
  if (opts_.cancel &&
      !opts_.cancel->PassPointOfNoReturn("READY was sent: the source may already have sent GO; the handoff "
                                         "finishes (cancel refused; cancel the source instead)"))
    return opts_.cancel->CancelledStatus();
  EnterPhase("ready");
  XM_TRY_CTX(WriteRecord(*control_, RecordType::kReady, EncodeReady({mine})), "handoff");
  auto ready_at = Clock::now();
  Record rec;
  Phase("GO");
  control_->SetTimeoutMs(opts_.go_timeout_ms);
  Status go = ExpectRecord(*control_, rec, RecordType::kGo, "handoff: waiting for GO");
  if (go.ok() || rec.type == RecordType::kGo) report_.last_record = "GO";
  XM_TRY(std::move(go));
  XM_TRY_CTX(ExpectEmpty("GO", rec.body), "handoff");
  const auto go_at = Clock::now();
  Phase("DONE");
  at_resume_ = guest_->Progress();
  EnterPhase("resume");
  auto unpause_start = Clock::now();
  XM_TRY_CTX(guest_->Resume(), "resume guest");
  report_.downtime.unpause_ms = MsSince(unpause_start);
  report_.downtime.go_to_running_ms = MsSince(go_at);
  resumed_ = true;
  // This side's own view of the downtime: from the last pre-copy ROUND_ACK (the
  // source pauses the guest as soon as it reads it) to the guest running here.
  // A migration with no pre-copy round to ack starts it at COMMIT (an underestimate).
  auto ms = [](Clock::time_point a, Clock::time_point b) {
    return std::chrono::duration<double, std::milli>(b - a).count();
  };
  auto now = Clock::now();
  Clock::time_point paused_at = commit_at_;
  if (acks_.size() >= 2) {
    const Ack& last_precopy = acks_[acks_.size() - 2];
    paused_at = last_precopy.at;
    report_.downtime.cpu_ms = ProcessCpuMs() - last_precopy.cpu_ms;
  }
  report_.downtime.final_round_ms = ms(paused_at, commit_at_);
  report_.downtime.state_ms = ms(commit_at_, ready_at);
  report_.downtime.handoff_ms = ms(ready_at, now);
  report_.downtime_ms = ms(paused_at, now);
  return {};
}

MigrationReport Receiver::Impl::Run(Acceptor& acceptor) {
  report_.role = "destination";
  (void)ResetPeakResident();
  rss_at_start_ = ResidentBytes();
  start_ = Clock::now();
  auto body = [&]() -> Status {
    SecurityOptions so = opts_.security;
    so.psk = opts_.key;
    XM_ASSIGN_OR_RETURN(secure_, SecureContext::Create(so, Role::kDestination));
    std::string why;
    EnterPhase("accept");
    Phase("accept");
    auto s = AcceptSource(acceptor, &why);
    if (!s.ok()) return std::move(s).With("waiting for a source").status();
    XM_ASSIGN_OR_RETURN(control_stream_, secure_->Secure(std::move(s).value()));
    report_.encryption = secure_->info();
    control_ = control_stream_.get();
    control_->SetTimeoutMs(opts_.io_timeout_ms);
    // A cancel wakes whatever read this side is blocked in; ABORT still goes out.
    if (opts_.cancel) opts_.cancel->SetInterrupt([c = control_] { c->InterruptRecv(); });
    report_.transport = std::string(control_->kind());
    if (!why.empty()) report_.transport_note = why;
    EnterPhase("handshake", {{"peer", control_->peer()}});
    start_ = Clock::now();
    Phase("handshake");
    XM_TRY(Handshake());
    report_.last_record = "CPU_POLICY";
    XM_TRY(AcceptDataStreams(acceptor));
    EnterPhase("precopy");
    if (opts_.cancel) opts_.cancel->SetPhase("precopy", 0);
    Commit commit;
    VcpuState vcpu;
    for (;;) {
      Status st = Rounds(commit, vcpu);
      if (st.ok()) break;
      if (Status data = lanes_->error(); !data.ok()) {
        st = data;  // the root cause, not the control stream's shutdown
        link_broke_ = lanes_->link_failed();
      }
      // Only a broken connection before VCPU_STATE is worth waiting for: the
      // source resends nothing the destination acknowledged.
      // RESUME_STATE's bitmap must fit one record (PROTOCOL.md §5a: 2 TiB guests).
      const bool fits = guest_->shape().page_count / 8 + 64 <= kMaxRecordBody;
      if (!link_broke_ || have_vcpu_ || opts_.resume_window_ms <= 0 || !fits) return st;
      // A cancel here, or a source that stopped on purpose (its operator
      // cancelled: it shuts its reading half, so our ROUND_ACK fails before we
      // read its ABORT), is no broken link to wait out.
      if (opts_.cancel && opts_.cancel->requested()) return opts_.cancel->CancelledStatus();
      st = PeerAbortBehind(*control_, std::move(st), progress_.phase(), 250);
      if (!LinkFailed(st)) return st;
      XM_TRY(AwaitResume(acceptor, st));
    }
    return Handoff(commit, vcpu);
  };
  Status st = body();
  if (lanes_) {
    lanes_->Stop();
    // The root cause, not the control stream's shutdown (unless the source
    // said why it stopped, or the operator did).
    if (Status data = lanes_->error();
        !st.ok() && !data.ok() && st.code() != Code::kCancelled && st.code() != Code::kAborted)
      st = data;
  }
  report_.total_ms = MsSince(start_);
  // Walks every guest page table (~20 ms per resident GiB): after DONE when the
  // migration completed, so the source's handoff does not wait for it.
  auto measure_overhead = [&] {
    if (guest_)
      report_.destination_overhead_bytes =
          OverheadSince(rss_at_start_, guest_->DirectMemory(), guest_->shape().page_count * guest_->shape().page_size);
  };
  if (!st.ok() && !resumed_ && opts_.cancel && opts_.cancel->requested()) st = opts_.cancel->CancelledStatus();
  if (!st.ok() && !resumed_ && control_) st = PeerAbortBehind(*control_, std::move(st), progress_.phase());
  if (!st.ok()) {
    measure_overhead();
    report_.bytes_wire = BytesReceived();  // what arrived before it failed
    if (control_ && !resumed_) SendAbort(*control_, st);
    if (guest_) {
      guest_->Discard();
      guest_.reset();
      report_.destination_guest = GuestStateName(GuestState::kGone);
    }
    const std::string phase = progress_.phase();
    std::optional<uint32_t> round;
    if (phase == "precopy") round = static_cast<uint32_t>(report_.rounds.size());
    RecordFailure(report_, st, opts_.cancel, phase, round);
    report_.exit_code = ExitCodeFor(st);
    return report_;
  }
  report_.result = "completed";
  report_.exit_code = kExitCompleted;
  // The guest runs here now. Tell the source (best effort: a lost DONE leaves the
  // source paused and asking, never running twice).
  nlohmann::json peer_copy = report_.ToJson();
  peer_copy.erase("destination_overhead_bytes");  // not measured yet (below)
  std::string stats = peer_copy.dump();
  (void)WriteRecord(*control_, RecordType::kStats,
                    std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(stats.data()), stats.size()),
                    kRecordOptional);
  (void)WriteRecord(*control_, RecordType::kDone, std::span<const uint8_t>());
  auto resumed_at = Clock::now();
  measure_overhead();
  if (opts_.linger_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(opts_.linger_ms));
  EnterPhase("running");
  WatchResumedGuest(*guest_, at_resume_, resumed_at, opts_.selfcheck_wait_ms, report_);
  report_.destination_guest = GuestStateName(guest_->State());
  return report_;
}

}  // namespace xm
