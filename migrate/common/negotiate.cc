#include "migrate/common/negotiate.h"

#include <algorithm>
#include <string>

#include "migrate/common/control.h"
#include "transport/auth.h"
#include "transport/record.h"

namespace xm {
namespace {

const char* PeerName(Role me) { return me == Role::kSource ? "receiver" : "source"; }

// Tells the peer why we stop, then returns the reason with this end's context.
Status Refuse(Stream& control, Status st, std::string_view phase) {
  SendAbort(control, st);
  return std::move(st).With(phase);
}

// Rule: the peer plays the other role.
Status CheckRole(const Hello& peer, const NegotiateOptions& o) {
  Role want = o.role == Role::kSource ? Role::kDestination : Role::kSource;
  if (peer.role == want) return {};
  return Error(Code::kProtocol, "peer " + (o.peer.empty() ? std::string() : "at " + o.peer + " ") + "is not a " +
                                    PeerName(o.role) + (o.role == Role::kDestination ? " (another receiver?)" : ""));
}

// Rule: the peer's version range contains ours (PROTOCOL.md HELLO).
Status CheckVersion(const Hello& peer, const NegotiateOptions& o) {
  if (peer.version_min <= kProtocolVersion && peer.version_max >= kProtocolVersion) return {};
  return Error(Code::kVersion, "xmotion protocol " + std::to_string(kProtocolVersion) + " here, the " +
                                   std::string(PeerName(o.role)) + " speaks " + std::to_string(peer.version_min) +
                                   ".." + std::to_string(peer.version_max));
}

// Rule: the destination's answer echoes the session and accepts no more
// streams than were asked for.
Status CheckAnswer(const Hello& answer, const Hello& asked) {
  if (answer.session_id != asked.session_id)
    return Error(Code::kProtocol, "receiver did not echo our session id");
  if (answer.streams == 0 || answer.streams > asked.streams)
    return Error(Code::kProtocol, "receiver accepted " + std::to_string(answer.streams) + " streams, we asked for " +
                                      std::to_string(asked.streams));
  return {};
}

// Rule: both ends use the same auth mode; neither drops to no authentication.
Status CheckAuthMode(const Hello& peer, const NegotiateOptions& o) {
  const bool mine = !o.key.empty(), theirs = peer.auth == AuthMode::kHmacSha256;
  if (mine == theirs) return {};
  if (o.role == Role::kSource)
    return Error(Code::kAuth, mine ? "receiver has no key but we do; refusing to send unauthenticated"
                                   : "receiver requires a key (--key-file)");
  return Error(Code::kAuth, mine ? "source sent no key; this receiver requires one"
                                 : "source wants authentication; this receiver has no key");
}

Hello SourceHello(const NegotiateOptions& o) {
  Hello h;
  h.role = Role::kSource;
  h.features = o.features;
  h.nonce = RandomNonce();
  h.session_id = o.resume_session ? o.resume_session : RandomU64();
  h.streams = std::clamp<uint32_t>(o.streams, 1, kMaxStreams);
  h.auth = o.key.empty() ? AuthMode::kNone : AuthMode::kHmacSha256;
  return h;
}

Hello DestinationHello(const NegotiateOptions& o, const Hello& source) {
  Hello h;
  h.role = Role::kDestination;
  h.features = source.features & o.features & kFeaturesKnown;
  h.nonce = RandomNonce();
  h.session_id = source.session_id;
  h.streams = std::clamp<uint32_t>(std::min(source.streams, o.streams), 1, kMaxStreams);
  h.auth = o.key.empty() ? AuthMode::kNone : AuthMode::kHmacSha256;
  return h;
}

// The peer's first record: a peer that is not xmotion at all is named (kAuth).
Result<Hello> ReadHello(Stream& control, const NegotiateOptions& o) {
  Record rec;
  if (o.hello_timeout_ms > 0) control.SetTimeoutMs(o.hello_timeout_ms);
  Status st = ExpectHello(control, rec, "handshake", kPreAuthMaxBody);
  if (o.hello_timeout_ms > 0 && o.io_timeout_ms > 0) control.SetTimeoutMs(o.io_timeout_ms);
  XM_TRY(std::move(st));
  return DecodeHello(rec.body);
}

// HELLO both ways; the source speaks first.
Result<Session> ExchangeHellos(Stream& control, const NegotiateOptions& o) {
  Session s;
  if (o.role == Role::kSource) {
    s.source = SourceHello(o);
    XM_TRY_CTX(WriteRecord(control, RecordType::kHello, EncodeHello(s.source)), "handshake");
    auto peer = ReadHello(control, o);
    if (!peer.ok()) return std::move(peer).With("handshake").status();
    s.destination = *peer;
    XM_TRY_CTX(CheckRole(s.destination, o), "handshake");
    XM_TRY_CTX(CheckVersion(s.destination, o), "handshake");
    XM_TRY_CTX(CheckAnswer(s.destination, s.source), "handshake");
  } else {
    auto peer = ReadHello(control, o);
    if (!peer.ok()) {
      if (peer.status().code() == Code::kProtocol) return Refuse(control, peer.status(), "handshake");
      return std::move(peer).With("handshake").status();
    }
    s.source = *peer;
    if (Status st = CheckRole(s.source, o); !st.ok()) return Refuse(control, st, "handshake");
    if (Status st = CheckVersion(s.source, o); !st.ok()) return Refuse(control, st, "handshake");
    s.destination = DestinationHello(o, s.source);
    XM_TRY_CTX(WriteRecord(control, RecordType::kHello, EncodeHello(s.destination)), "handshake");
  }
  s.streams = s.destination.streams;
  s.features = s.source.features & s.destination.features;
  Hello& peer = o.role == Role::kSource ? s.destination : s.source;
  if (Status st = CheckAuthMode(peer, o); !st.ok()) return Refuse(control, st, "handshake");
  return s;
}

// AUTH both ways (PROTOCOL.md §3): each end proves the key over both nonces;
// the source speaks first.
Status Authenticate(Stream& control, const NegotiateOptions& o, const Session& s) {
  const Role peer_role = o.role == Role::kSource ? Role::kDestination : Role::kSource;
  auto mac = [&](Role sender) { return AuthMac(o.key, sender, s.id(), s.source.nonce, s.destination.nonce); };
  auto send = [&] {
    return WriteRecord(control, RecordType::kAuth, EncodeAuth(Auth{mac(o.role)})).With("authentication");
  };
  auto check = [&]() -> Status {
    Record rec;
    XM_TRY(ExpectRecord(control, rec, RecordType::kAuth, "authentication", kPreAuthMaxBody));
    auto theirs = DecodeAuth(rec.body);
    if (!theirs.ok()) return std::move(theirs).With("authentication").status();
    if (!MacEqual(theirs->mac, mac(peer_role)))
      return Refuse(control,
                    Status(Code::kAuth, o.role == Role::kSource ? "receiver failed authentication (different key?)"
                                                                : "source failed authentication (wrong key)"),
                    "authentication");
    return {};
  };
  if (o.role == Role::kSource) {
    XM_TRY(send());
    return check();
  }
  XM_TRY(check());
  return send();
}

// RESUME from the source, RESUME_STATE (or ABORT) from the destination.
Status AgreeOnResume(Stream& control, const NegotiateOptions& o, Session& s) {
  Record rec;
  XM_TRY_CTX(WriteRecord(control, RecordType::kResume, EncodeResume(Resume{o.resume_session, o.resume_round})),
             "resume");
  XM_TRY(ExpectRecord(control, rec, RecordType::kResumeState, "resume"));
  auto state = DecodeResumeState(rec.body);
  if (!state.ok()) return std::move(state).With("resume").status();
  s.resumed = std::move(state).value();
  return {};
}

// SHAPE + CPU_POLICY from the source, ACCEPT (or ABORT) from the destination;
// or, after a break, RESUME and RESUME_STATE.
Status AgreeOnGuest(Stream& control, const NegotiateOptions& o, const OfferFn& offer, const AdmitFn& admit,
                    Session& s) {
  Record rec;
  if (o.role == Role::kSource) {
    if (o.resume_session) return AgreeOnResume(control, o, s);
    auto terms = offer();
    if (!terms.ok()) return std::move(terms).status();
    XM_TRY_CTX(WriteRecord(control, RecordType::kShape, EncodeShape(terms->first)), "handshake");
    XM_TRY_CTX(WriteRecord(control, RecordType::kCpuPolicy, EncodeCpuPolicy(terms->second)), "handshake");
    XM_TRY(ExpectRecord(control, rec, RecordType::kAccept, "destination check"));
    return ExpectEmpty("ACCEPT", rec.body);
  }
  XM_TRY(ReadControl(control, rec, "handshake"));
  if (rec.type == RecordType::kResume) {
    auto r = DecodeResume(rec.body);
    if (!r.ok()) return Refuse(control, r.status(), "resume");
    if (!o.held_session || r->session_id != o.held_session || s.id() != o.held_session)
      return Refuse(control, Status(Code::kProtocol, "no migration to resume here for that session"), "resume");
    return WriteRecord(control, RecordType::kResumeState, EncodeResumeState(o.resume_state())).With("resume");
  }
  if (o.held_session)
    return Refuse(control,
                  Status(Code::kAborted, "this receiver holds a partial guest for its source to reconnect; "
                                         "it takes no other migration"),
                  "handshake");
  if (rec.type != RecordType::kShape)
    return Refuse(control, Status(Code::kProtocol, "expected SHAPE, got " + std::string(RecordName(rec.type))),
                  "handshake");
  auto shape = DecodeShape(rec.body);
  if (!shape.ok()) return std::move(shape).With("handshake").status();
  XM_TRY(ExpectRecord(control, rec, RecordType::kCpuPolicy, "handshake"));
  auto policy = DecodeCpuPolicy(rec.body);
  if (!policy.ok()) return std::move(policy).With("handshake").status();
  if (Status st = admit(*shape, *policy); !st.ok()) {
    SendAbort(control, st);
    return st;
  }
  return WriteRecord(control, RecordType::kAccept, std::span<const uint8_t>()).With("handshake");
}

}  // namespace

Mac Session::JoinMacFor(std::span<const uint8_t> key, uint32_t index) const {
  return JoinMac(key, id(), index, source.nonce, destination.nonce);
}

Result<Session> Negotiate(Stream& control, const NegotiateOptions& o, const OfferFn& offer, const AdmitFn& admit) {
  XM_ASSIGN_OR_RETURN(Session s, ExchangeHellos(control, o));
  if (!o.key.empty()) {
    XM_TRY(Authenticate(control, o, s));
    s.authenticated = true;
  }
  XM_TRY(AgreeOnGuest(control, o, offer, admit, s));
  return s;
}

}  // namespace xm
