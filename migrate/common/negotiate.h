// Negotiate: the handshake of PROTOCOL.md §2-3, for either end, with each rule
// written once: HELLO (role, version, session id, streams, features), AUTH
// (same auth mode on both ends, HMAC over both nonces), then the guest's terms
// (SHAPE and CPU_POLICY from the source, ACCEPT or ABORT from the destination).
//
// The ends differ only in who speaks first: the source writes HELLO and AUTH
// before reading the peer's, and offers the guest; the destination reads first
// and admits or refuses the guest. Every refusal is sent to the peer as ABORT
// (with the reason, before this end adds its context) before it is returned.
//
// Runs on the control stream before any other stream exists; not thread-safe.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "base/guest.h"
#include "base/status.h"
#include "transport/messages.h"
#include "transport/stream.h"

namespace xm {

// The features each end can use; the session gets the AND of both ends'.
constexpr uint64_t kFeaturesKnown =
    kFeatureLz4 | kFeatureZstd | kFeatureDelta | kFeatureDupRef | kFeatureRecordStreams;

struct NegotiateOptions {
  Role role = Role::kSource;
  std::vector<uint8_t> key;  // empty = no authentication; both ends must agree
  uint64_t features = kFeaturesKnown;  // source: offered; destination: supported
  uint32_t streams = 1;      // source: wanted; destination: the most it accepts
  std::string peer;          // the peer's address, for messages
  // Source: how long the peer may take to answer HELLO (an xmotion receiver
  // answers at once; anything else is named within seconds), then io_timeout_ms again.
  int hello_timeout_ms = 0;  // 0 = the stream's timeout as it is
  int io_timeout_ms = 0;
  // Resuming after a break (PROTOCOL.md §5a). Source: continue this session,
  // which is in `resume_round`: its HELLO reuses the id and RESUME replaces
  // SHAPE and CPU_POLICY. Destination: while it holds the partial guest of
  // `held_session` it accepts only a RESUME of it, answered by `resume_state`.
  uint64_t resume_session = 0;
  uint32_t resume_round = 0;
  uint64_t held_session = 0;
  std::function<ResumeState()> resume_state;
};

// Source: the guest it offers. Called once the peer is authenticated, so a
// stranger never learns the guest's shape or CPU.
using OfferFn = std::function<Result<std::pair<Shape, CpuPolicy>>()>;
// Destination: takes the guest (sizes, CPU fit, creates the guest), or refuses
// with the reason (kIncompatible, ...), which is sent to the source as ABORT.
using AdmitFn = std::function<Status(const Shape& shape, const CpuPolicy& policy)>;

// What both ends agreed on.
struct Session {
  Hello source, destination;  // the two HELLOs as sent
  uint32_t streams = 1;       // agreed: the destination's answer
  uint64_t features = 0;      // agreed: the AND of both ends
  bool authenticated = false;
  std::optional<ResumeState> resumed;  // source, after a RESUME: what the destination holds

  uint64_t id() const { return source.session_id; }
  // The MAC that proves data stream `index` belongs to this session (JOIN).
  Mac JoinMacFor(std::span<const uint8_t> key, uint32_t index) const;
};

// Runs the whole handshake on `control`. A source passes `offer` (and no
// admit); a destination passes `admit` (and no offer).
// REQUIRES: nothing has been read from or written to `control` yet.
Result<Session> Negotiate(Stream& control, const NegotiateOptions& opts, const OfferFn& offer, const AdmitFn& admit);

}  // namespace xm
