#include "transport/record.h"

#include <array>

#include <xxhash.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <string>

namespace xm {

std::string_view RecordName(RecordType t) { return RecordName(static_cast<uint32_t>(t)); }

std::string_view RecordName(uint32_t t) {
  switch (static_cast<RecordType>(t)) {
    case RecordType::kHello: return "HELLO";
    case RecordType::kAuth: return "AUTH";
    case RecordType::kShape: return "SHAPE";
    case RecordType::kCpuPolicy: return "CPU_POLICY";
    case RecordType::kAccept: return "ACCEPT";
    case RecordType::kPages: return "PAGES";
    case RecordType::kRoundEnd: return "ROUND_END";
    case RecordType::kVcpuState: return "VCPU_STATE";
    case RecordType::kCommit: return "COMMIT";
    case RecordType::kReady: return "READY";
    case RecordType::kGo: return "GO";
    case RecordType::kDone: return "DONE";
    case RecordType::kAbort: return "ABORT";
    case RecordType::kStats: return "STATS";
    case RecordType::kJoin: return "JOIN";
    case RecordType::kRoundAck: return "ROUND_ACK";
    case RecordType::kResume: return "RESUME";
    case RecordType::kResumeState: return "RESUME_STATE";
  }
  return "UNKNOWN";
}

static bool KnownType(uint32_t t) { return t >= 1 && t <= static_cast<uint32_t>(RecordType::kResumeState); }

uint64_t HashedBodyBytes(uint32_t type, uint64_t length, std::span<const uint8_t> head) {
  // PAGES payloads are covered by their page hashes (PROTOCOL.md §2).
  constexpr uint64_t kPagesHeader = 16, kPageDesc = 24;
  if (type != static_cast<uint32_t>(RecordType::kPages) || length < kPagesHeader || head.size() < kPagesHeader)
    return length;
  uint32_t count;
  std::memcpy(&count, head.data() + 4, sizeof count);
  return std::min(length, kPagesHeader + kPageDesc * count);
}

uint64_t RecordBodyHash(uint32_t type, std::span<const uint8_t> body) {
  return XXH3_64bits(body.data(), HashedBodyBytes(type, body.size(), body));
}

RecordHeader MakeHeader(RecordType type, std::span<const iovec> body, uint32_t flags) {
  RecordHeader h;
  h.type = static_cast<uint32_t>(type);
  h.flags = flags;
  uint8_t head[16];
  size_t head_len = 0;
  for (const iovec& v : body) {
    size_t n = std::min(v.iov_len, sizeof head - head_len);
    if (n) std::memcpy(head + head_len, v.iov_base, n);
    head_len += n;
    h.length += v.iov_len;
  }
  uint64_t covered = HashedBodyBytes(h.type, h.length, {head, head_len});
  if (body.size() == 1) {
    h.body_hash = XXH3_64bits(body[0].iov_base, covered);
    return h;
  }
  XXH3_state_t st;
  XXH3_64bits_reset(&st);
  for (const iovec& v : body) {
    size_t n = std::min<uint64_t>(v.iov_len, covered);
    XXH3_64bits_update(&st, v.iov_base, n);
    covered -= n;
  }
  h.body_hash = XXH3_64bits_digest(&st);
  return h;
}

Status CheckHeader(const RecordHeader& h, uint64_t max_body) {
  if (h.flags & ~kRecordOptional) {
    char flags[16];
    std::snprintf(flags, sizeof flags, "0x%x", h.flags);
    return Error(Code::kProtocol, "record type " + std::to_string(h.type) + ": reserved flag bits set (" + flags + ")");
  }
  if (h.length > max_body)
    return Error(Code::kProtocol, std::string(RecordName(h.type)) + " record of " + std::to_string(h.length) +
                                      " bytes exceeds the limit of " + std::to_string(max_body) + " bytes");
  return {};
}

Status WriteRecord(Stream& s, RecordType type, std::span<const iovec> body, uint32_t flags) {
  RecordHeader h = MakeHeader(type, body, flags);
  iovec small[9];
  std::vector<iovec> big;
  iovec* iov = small;
  if (body.size() + 1 > 9) {
    big.resize(body.size() + 1);
    iov = big.data();
  }
  iov[0] = {&h, sizeof h};
  for (size_t i = 0; i < body.size(); ++i) iov[i + 1] = body[i];
  Status st = s.Send(std::span<const iovec>(iov, body.size() + 1));
  if (!st.ok()) return std::move(st).With(std::string("send ") + std::string(RecordName(type)));
  return {};
}

Status WriteRecord(Stream& s, RecordType type, std::span<const uint8_t> body, uint32_t flags) {
  iovec v{const_cast<uint8_t*>(body.data()), body.size()};
  return WriteRecord(s, type, std::span<const iovec>(&v, 1), flags);
}

std::string DescribeForeignBytes(std::span<const uint8_t> b) {
  auto starts = [&](std::string_view p) {
    return b.size() >= p.size() && std::equal(p.begin(), p.end(), b.begin(),
                                              [](char c, uint8_t x) { return static_cast<uint8_t>(c) == x; });
  };
  std::string what;
  if (starts("HTTP/")) what = "an HTTP server";
  else if (starts("SSH-")) what = "an SSH server";
  else if (b.size() >= 2 && (b[0] == 0x15 || b[0] == 0x16) && b[1] == 0x03) what = "a TLS endpoint (an xmotion peer with --key-file or --tls-cert, where this end has neither?)";
  std::string shown;
  for (uint8_t c : b.first(std::min<size_t>(b.size(), 24)))
    shown += (c >= 0x20 && c < 0x7f) ? static_cast<char>(c) : '.';
  return (what.empty() ? "it sent" : "it answered like " + what + ":") + " \"" + shown + "\"";
}

namespace {

// The body of a record whose header `h` was read and checked, verified against its hash.
Status ReadBody(Stream& s, const RecordHeader& h, Record& into) {
  into.body.resize(h.length);
  Status st = s.Recv(std::as_writable_bytes(std::span(into.body)));
  if (!st.ok()) {
    if (st.code() == Code::kAborted)
      st = Error(Code::kProtocol, st.message() + " after the header of a " + std::string(RecordName(h.type)) +
                                      " record (" + std::to_string(h.length) + " body bytes missing)");
    return std::move(st).With(std::string("receive ") + std::string(RecordName(h.type)));
  }
  if (RecordBodyHash(h.type, into.body) != h.body_hash)
    return Error(Code::kProtocol, std::string(RecordName(h.type)) + " record body hash mismatch (corrupt stream)");
  return {};
}

}  // namespace

Status ReadFirstRecord(Stream& s, Record& into, uint64_t max_body) {
  std::array<uint8_t, kRecordHeaderSize> raw{};
  size_t got = 0;
  for (; got < raw.size(); ++got) {
    Status st = s.Recv(std::as_writable_bytes(std::span(&raw[got], 1)));
    if (st.ok()) continue;
    if (got == 0 && st.code() == Code::kTimeout) return Error(Code::kAuth, "not an xmotion peer: " + st.message());
    if (got == 0) return Error(Code::kAuth, "not an xmotion peer: it closed the connection without a word");
    return Error(Code::kAuth, "not an xmotion peer: " + DescribeForeignBytes(std::span(raw).first(got)) +
                                  " and then " + (st.code() == Code::kTimeout ? "went silent" : "closed the connection"));
  }
  RecordHeader h;
  std::memcpy(&h, raw.data(), sizeof h);
  if (!CheckHeader(h, max_body).ok() || !KnownType(h.type))
    return Error(Code::kAuth, "not an xmotion peer: " + DescribeForeignBytes(raw));
  XM_TRY(ReadBody(s, h, into));
  into.type = static_cast<RecordType>(h.type);
  into.flags = h.flags;
  return {};
}

Status ReadRecord(Stream& s, Record& into, uint64_t max_body) {
  for (;;) {
    RecordHeader h;
    XM_TRY(s.Recv(std::as_writable_bytes(std::span(&h, 1))));
    XM_TRY(CheckHeader(h, max_body));
    XM_TRY(ReadBody(s, h, into));
    if (!KnownType(h.type)) {
      if (h.flags & kRecordOptional) continue;
      return Error(Code::kProtocol, "unknown mandatory record type " + std::to_string(h.type));
    }
    into.type = static_cast<RecordType>(h.type);
    into.flags = h.flags;
    return {};
  }
}

}  // namespace xm
