#include "transport/messages.h"

#include <cstdio>

#include "transport/wire.h"

namespace xm {
namespace {

constexpr char kMagic[8] = {'X', 'M', 'O', 'T', 'I', 'O', 'N', '\0'};

Status Malformed(std::string_view record, std::string_view why) {
  return Error(Code::kProtocol, "malformed " + std::string(record) + ": " + std::string(why));
}

// Names (backend, vendor, formats) end up in one-line errors and logs: a peer
// must not be able to put line breaks or terminal escapes there.
bool PrintableName(std::string_view s) {
  for (char c : s)
    if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) > 0x7e) return false;
  return true;
}

}  // namespace

std::vector<uint8_t> EncodeHello(const Hello& m) {
  WireWriter w;
  w.PutBytes(kMagic, sizeof kMagic);
  w.Put(m.version_min);
  w.Put(m.version_max);
  w.Put(static_cast<uint32_t>(m.role));
  w.Put(m.features);
  w.PutBytes(m.nonce.data(), m.nonce.size());
  w.Put(m.session_id);
  w.Put(m.streams);
  w.Put(static_cast<uint32_t>(m.auth));
  w.Put(uint32_t{0});  // reserved
  return w.Take();
}

Result<Hello> DecodeHello(std::span<const uint8_t> body) {
  WireReader r(body);
  char magic[8];
  Hello m;
  uint32_t role = 0, auth = 0, reserved = 0;
  if (!r.GetBytes(magic, sizeof magic) || std::memcmp(magic, kMagic, sizeof magic) != 0)
    return Error(Code::kProtocol, "peer is not an xmotion endpoint (bad HELLO magic)");
  if (!r.Get(m.version_min) || !r.Get(m.version_max) || !r.Get(role) || !r.Get(m.features) ||
      !r.GetBytes(m.nonce.data(), m.nonce.size()) || !r.Get(m.session_id) || !r.Get(m.streams) || !r.Get(auth) ||
      !r.Get(reserved))
    return Malformed("HELLO", "too short");
  // Trailing bytes are allowed: later versions may append fields.
  if (role != 1 && role != 2) return Malformed("HELLO", "role " + std::to_string(role));
  if (auth > 1) return Malformed("HELLO", "unknown auth mode " + std::to_string(auth));
  if (m.version_min > m.version_max) return Malformed("HELLO", "version_min > version_max");
  if (m.streams == 0) return Malformed("HELLO", "zero streams");
  m.role = static_cast<Role>(role);
  m.auth = static_cast<AuthMode>(auth);
  return m;
}

std::vector<uint8_t> EncodeAuth(const Auth& m) {
  return {m.mac.begin(), m.mac.end()};
}

Result<Auth> DecodeAuth(std::span<const uint8_t> body) {
  Auth m;
  if (body.size() != m.mac.size()) return Malformed("AUTH", "length " + std::to_string(body.size()));
  std::memcpy(m.mac.data(), body.data(), m.mac.size());
  return m;
}

std::vector<uint8_t> EncodeShape(const Shape& m) {
  WireWriter w;
  w.Put(m.shape.page_size);
  w.Put(m.shape.vcpus);
  w.Put(m.shape.page_count);
  w.Put(static_cast<uint32_t>(m.shape.ranges.size()));
  for (const auto& r : m.shape.ranges) {
    w.Put(r.first);
    w.Put(r.count);
  }
  w.PutString(m.backend);
  return w.Take();
}

Result<Shape> DecodeShape(std::span<const uint8_t> body) {
  WireReader r(body);
  Shape m;
  uint32_t n = 0;
  if (!r.Get(m.shape.page_size) || !r.Get(m.shape.vcpus) || !r.Get(m.shape.page_count) || !r.Get(n))
    return Malformed("SHAPE", "too short");
  if (m.shape.page_size != 4096) return Malformed("SHAPE", "page size " + std::to_string(m.shape.page_size));
  if (m.shape.vcpus == 0 || m.shape.vcpus > 4096) return Malformed("SHAPE", "vcpus " + std::to_string(m.shape.vcpus));
  if (n > 65536 || r.remaining() < uint64_t{n} * 16) return Malformed("SHAPE", "range count " + std::to_string(n));
  uint64_t next = 0;
  for (uint32_t i = 0; i < n; ++i) {
    PfnRange pr;
    r.Get(pr.first);
    r.Get(pr.count);
    if (pr.count == 0 || pr.first < next || pr.first > m.shape.page_count || pr.count > m.shape.page_count - pr.first)
      return Malformed("SHAPE", "range " + std::to_string(i) + " is empty, unsorted or outside the guest");
    next = pr.first + pr.count;
    m.shape.ranges.push_back(pr);
  }
  if (!r.GetString(m.backend, 64) || !PrintableName(m.backend)) return Malformed("SHAPE", "backend name");
  if (!r.empty()) return Malformed("SHAPE", "trailing bytes");
  return m;
}

std::vector<uint8_t> EncodeCpuPolicy(const CpuPolicy& m) {
  WireWriter w;
  w.PutString(m.vendor);
  w.Put(static_cast<uint32_t>(m.featureset.size()));
  for (uint32_t word : m.featureset) w.Put(word);
  w.PutString(m.format);
  w.Put(static_cast<uint32_t>(m.blob.size()));
  w.PutBytes(m.blob);
  return w.Take();
}

Result<CpuPolicy> DecodeCpuPolicy(std::span<const uint8_t> body) {
  WireReader r(body);
  CpuPolicy m;
  uint32_t n = 0, blob_len = 0;
  if (!r.GetString(m.vendor, 64) || !PrintableName(m.vendor) || !r.Get(n)) return Malformed("CPU_POLICY", "vendor");
  if (n > 256 || r.remaining() < uint64_t{n} * 4) return Malformed("CPU_POLICY", "featureset length");
  m.featureset.resize(n);
  for (uint32_t i = 0; i < n; ++i) r.Get(m.featureset[i]);
  if (!r.GetString(m.format, 64) || !PrintableName(m.format)) return Malformed("CPU_POLICY", "format");
  if (!r.Get(blob_len) || blob_len > (1u << 20) || r.remaining() != blob_len) return Malformed("CPU_POLICY", "blob");
  m.blob.assign(r.rest().begin(), r.rest().end());
  return m;
}

std::vector<uint8_t> EncodeJoin(const Join& m) {
  WireWriter w;
  w.Put(m.session_id);
  w.Put(m.stream_index);
  w.PutBytes(m.mac.data(), m.mac.size());
  return w.Take();
}

Result<Join> DecodeJoin(std::span<const uint8_t> body) {
  WireReader r(body);
  Join m;
  if (!r.Get(m.session_id) || !r.Get(m.stream_index) || !r.GetBytes(m.mac.data(), m.mac.size()) || !r.empty())
    return Malformed("JOIN", "length " + std::to_string(body.size()));
  return m;
}

std::vector<uint8_t> EncodeRoundEnd(const RoundEnd& m) {
  WireWriter w;
  w.Put(m.round);
  w.Put(static_cast<uint32_t>(m.batches_per_stream.size()));
  w.Put(m.pages);
  for (uint64_t b : m.batches_per_stream) w.Put(b);
  return w.Take();
}

Result<RoundEnd> DecodeRoundEnd(std::span<const uint8_t> body) {
  WireReader r(body);
  RoundEnd m;
  uint32_t n = 0;
  if (!r.Get(m.round) || !r.Get(n) || !r.Get(m.pages)) return Malformed("ROUND_END", "too short");
  if (n == 0 || n > kMaxStreams || r.remaining() != uint64_t{n} * 8)
    return Malformed("ROUND_END", "stream count " + std::to_string(n));
  m.batches_per_stream.resize(n);
  for (auto& b : m.batches_per_stream) r.Get(b);
  return m;
}

std::vector<uint8_t> EncodeRoundAck(uint32_t round) {
  WireWriter w;
  w.Put(round);
  return w.Take();
}

Result<uint32_t> DecodeRoundAck(std::span<const uint8_t> body) {
  WireReader r(body);
  uint32_t round = 0;
  if (!r.Get(round) || !r.empty()) return Malformed("ROUND_ACK", "length " + std::to_string(body.size()));
  return round;
}

std::vector<uint8_t> EncodeResume(const Resume& m) {
  WireWriter w;
  w.Put(m.session_id);
  w.Put(m.round);
  return w.Take();
}

Result<Resume> DecodeResume(std::span<const uint8_t> body) {
  WireReader r(body);
  Resume m;
  if (!r.Get(m.session_id) || !r.Get(m.round) || !r.empty())
    return Malformed("RESUME", "length " + std::to_string(body.size()));
  return m;
}

std::vector<uint8_t> EncodeResumeState(const ResumeState& m) {
  WireWriter w;
  w.Put(m.acked_round);
  w.Put(m.page_count);
  for (uint64_t word : m.applied) w.Put(word);
  return w.Take();
}

Result<ResumeState> DecodeResumeState(std::span<const uint8_t> body) {
  WireReader r(body);
  ResumeState m;
  if (!r.Get(m.acked_round) || !r.Get(m.page_count)) return Malformed("RESUME_STATE", "too short");
  const uint64_t words = m.page_count / 64 + (m.page_count % 64 != 0);
  if (r.remaining() % 8 != 0 || r.remaining() / 8 != words)
    return Malformed("RESUME_STATE", "bitmap of " + std::to_string(r.remaining()) + " bytes for " +
                                         std::to_string(m.page_count) + " pages");
  m.applied.resize(words);
  for (auto& word : m.applied) r.Get(word);
  if (m.page_count % 64 != 0 && (m.applied.back() >> (m.page_count % 64)) != 0)
    return Malformed("RESUME_STATE", "bits set beyond page_count");
  return m;
}

std::vector<uint8_t> EncodeVcpuState(const VcpuState& m) {
  WireWriter w;
  w.PutString(m.format);
  w.PutBytes(m.blob);
  return w.Take();
}

Result<VcpuState> DecodeVcpuState(std::span<const uint8_t> body) {
  WireReader r(body);
  VcpuState m;
  if (!r.GetString(m.format, 64) || !PrintableName(m.format)) return Malformed("VCPU_STATE", "format");
  m.blob.assign(r.rest().begin(), r.rest().end());
  return m;
}

std::vector<uint8_t> EncodeCommit(const Commit& m) {
  WireWriter w;
  w.PutBytes(m.digest.data(), m.digest.size());
  w.Put(m.pages);
  w.Put(m.final_round);
  w.Put(static_cast<uint32_t>(m.verify));
  return w.Take();
}

Result<Commit> DecodeCommit(std::span<const uint8_t> body) {
  WireReader r(body);
  Commit m;
  uint32_t verify = 0;
  if (!r.GetBytes(m.digest.data(), m.digest.size()) || !r.Get(m.pages) || !r.Get(m.final_round) || !r.Get(verify) ||
      !r.empty() || verify > 1)
    return Malformed("COMMIT", "length or verify mode");
  m.verify = static_cast<VerifyMode>(verify);
  return m;
}

std::vector<uint8_t> EncodeReady(const Ready& m) { return {m.digest.begin(), m.digest.end()}; }

Result<Ready> DecodeReady(std::span<const uint8_t> body) {
  Ready m;
  if (body.size() != m.digest.size()) return Malformed("READY", "length " + std::to_string(body.size()));
  std::memcpy(m.digest.data(), body.data(), m.digest.size());
  return m;
}

std::vector<uint8_t> EncodeAbort(const Abort& m) {
  WireWriter w;
  w.Put(static_cast<uint32_t>(m.code));
  w.PutString(m.reason.size() > 4000 ? m.reason.substr(0, 4000) : m.reason);
  return w.Take();
}

Result<Abort> DecodeAbort(std::span<const uint8_t> body) {
  WireReader r(body);
  Abort m;
  uint32_t code = 0;
  if (!r.Get(code) || !r.GetString(m.reason, 4096)) return Malformed("ABORT", "too short");
  if (code == 0 || code > static_cast<uint32_t>(Code::kCancelled)) code = static_cast<uint32_t>(Code::kAborted);
  m.code = static_cast<Code>(code);
  for (char& c : m.reason)
    if (c == '\n' || c == '\r' || static_cast<unsigned char>(c) < 0x20) c = ' ';
  return m;
}

Status ExpectEmpty(std::string_view record, std::span<const uint8_t> body) {
  if (!body.empty()) return Malformed(record, "body must be empty");
  return {};
}

std::string DigestHex(const Digest128& d) {
  std::string s;
  char buf[3];
  for (uint8_t b : d) {
    std::snprintf(buf, sizeof buf, "%02x", b);
    s += buf;
  }
  return s;
}

}  // namespace xm
