#include "migrate/common/control.h"

#include <chrono>
#include <string>

#include "transport/messages.h"

namespace xm {
namespace {

constexpr std::string_view kPeerAborted = "peer aborted: ";

// An ABORT record as the peer's reason, or OK for any other record.
Status AbortedByPeer(const Record& rec, std::string_view phase) {
  if (rec.type != RecordType::kAbort) return {};
  auto a = DecodeAbort(rec.body);
  if (!a.ok()) return std::move(a).With(phase).status();
  return Status(a->code == Code::kOk ? Code::kAborted : a->code, std::string(kPeerAborted) + a->reason).With(phase);
}

}  // namespace

Status ReadControl(Stream& s, Record& rec, std::string_view phase, uint64_t max_body) {
  Status st = ReadRecord(s, rec, max_body);
  // A peer that hangs up between records without ABORT has failed (killed,
  // crashed, network gone): that is not an orderly abort.
  if (st.code() == Code::kAborted) st = Status(Code::kIo, st.message() + " without ABORT");
  if (!st.ok()) return std::move(st).With(phase);
  return AbortedByPeer(rec, phase);
}

Status ExpectHello(Stream& s, Record& rec, std::string_view phase, uint64_t max_body) {
  XM_TRY(ReadFirstRecord(s, rec, max_body).With(phase));
  XM_TRY(AbortedByPeer(rec, phase));
  if (rec.type != RecordType::kHello)
    return Status(Code::kProtocol, "expected HELLO, got " + std::string(RecordName(rec.type))).With(phase);
  return {};
}

Status ExpectRecord(Stream& s, Record& rec, RecordType want, std::string_view phase, uint64_t max_body) {
  XM_TRY(ReadControl(s, rec, phase, max_body));
  if (rec.type != want)
    return Status(Code::kProtocol, "expected " + std::string(RecordName(want)) + ", got " +
                                       std::string(RecordName(rec.type)))
        .With(phase);
  return {};
}

bool LinkFailed(const Status& st) {
  const std::string& m = st.message();
  if (m.find(kPeerAborted) != std::string::npos) return false;  // the peer spoke: it is there
  if (st.code() == Code::kIo || st.code() == Code::kTimeout) return true;
  // A stream shut down under a blocked reader or writer, or a record cut short.
  const bool closed = IsClosedByPeer(st);
  return (st.code() == Code::kAborted && (closed || m.find("shut down") != std::string::npos)) ||
         (st.code() == Code::kProtocol && closed);
}

namespace {
constexpr std::string_view kNoReceiverListens = ": no xmotion receiver listens at ";
}  // namespace

Status NoReceiverListens(const Status& dial, const std::string& where) {
  return Error(Code::kAuth, dial.message() + std::string(kNoReceiverListens) + where);
}

bool WorthReconnecting(const Status& st) {
  return LinkFailed(st) || st.message().find(kNoReceiverListens) != std::string::npos;
}

bool PeerClosed(const Status& st) { return LinkFailed(st) && IsClosedByPeer(st); }

void SendAbort(Stream& s, const Status& why) {
  Abort a;
  a.code = why.ok() ? Code::kAborted : why.code();
  a.reason = why.message();
  auto body = EncodeAbort(a);
  s.SetTimeoutMs(2000);
  (void)WriteRecord(s, RecordType::kAbort, body);
}

Status PeerAbortBehind(Stream& s, Status failed, std::string_view phase, int budget_ms) {
  if (failed.code() != Code::kIo && failed.code() != Code::kProtocol) return failed;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(budget_ms);
  uint64_t skimmed = 0;
  Record rec;
  while (skimmed < (64u << 20) && std::chrono::steady_clock::now() < deadline) {
    s.SetTimeoutMs(budget_ms);
    if (!ReadRecord(s, rec).ok()) break;  // nothing more, or not at a record boundary
    if (rec.type == RecordType::kAbort) {
      Status peer = AbortedByPeer(rec, phase);
      return peer.ok() ? failed : peer;
    }
    skimmed += rec.body.size() + kRecordHeaderSize;
  }
  return failed;
}

}  // namespace xm
