// The control records of PROTOCOL.md as structs, with encoders and strict
// decoders. PAGES has its own file (pages.h) because it is the hot path.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "base/guest.h"
#include "base/status.h"

namespace xm {

constexpr uint16_t kProtocolVersion = 3;
constexpr uint32_t kMaxStreams = 16;

enum class Role : uint32_t { kSource = 1, kDestination = 2 };
enum class AuthMode : uint32_t { kNone = 0, kHmacSha256 = 1 };

constexpr uint64_t kFeatureLz4 = 1ull << 0;
constexpr uint64_t kFeatureDelta = 1ull << 1;
constexpr uint64_t kFeatureDupRef = 1ull << 2;
constexpr uint64_t kFeatureZstd = 1ull << 3;
constexpr uint64_t kFeatureRecordStreams = 1ull << 4;  // a record's pages of one method form one stream (§4)

using Nonce = std::array<uint8_t, 32>;
using Mac = std::array<uint8_t, 32>;
using Digest128 = std::array<uint8_t, 16>;

struct Hello {
  uint16_t version_min = kProtocolVersion;
  uint16_t version_max = kProtocolVersion;
  Role role = Role::kSource;
  uint64_t features = 0;
  Nonce nonce{};
  uint64_t session_id = 0;
  uint32_t streams = 1;
  AuthMode auth = AuthMode::kNone;
  // On the wire a reserved u32 follows: written as 0, ignored on receipt.
};
std::vector<uint8_t> EncodeHello(const Hello& m);
Result<Hello> DecodeHello(std::span<const uint8_t> body);

struct Auth {
  Mac mac{};
};
std::vector<uint8_t> EncodeAuth(const Auth& m);
Result<Auth> DecodeAuth(std::span<const uint8_t> body);

struct Shape {
  GuestShape shape;
  std::string backend;
};
std::vector<uint8_t> EncodeShape(const Shape& m);
// Validates ranges: sorted, non-overlapping, inside page_count.
Result<Shape> DecodeShape(std::span<const uint8_t> body);

std::vector<uint8_t> EncodeCpuPolicy(const CpuPolicy& m);
Result<CpuPolicy> DecodeCpuPolicy(std::span<const uint8_t> body);

struct Join {
  uint64_t session_id = 0;
  uint32_t stream_index = 0;
  Mac mac{};
};
std::vector<uint8_t> EncodeJoin(const Join& m);
Result<Join> DecodeJoin(std::span<const uint8_t> body);

struct RoundEnd {
  uint32_t round = 0;
  uint64_t pages = 0;
  std::vector<uint64_t> batches_per_stream;  // cumulative PAGES records per stream
};
std::vector<uint8_t> EncodeRoundEnd(const RoundEnd& m);
Result<RoundEnd> DecodeRoundEnd(std::span<const uint8_t> body);

// The destination has applied round `round` in full (ROUND_ACK).
std::vector<uint8_t> EncodeRoundAck(uint32_t round);
Result<uint32_t> DecodeRoundAck(std::span<const uint8_t> body);

// Source, on a new connection after a break: continue session `session_id`,
// which was in round `round` (RESUME, PROTOCOL.md §5a).
struct Resume {
  uint64_t session_id = 0;
  uint32_t round = 0;
};
std::vector<uint8_t> EncodeResume(const Resume& m);
Result<Resume> DecodeResume(std::span<const uint8_t> body);

// Destination's answer: the last round it acknowledged, and which pfns of the
// rounds after that one it has applied (RESUME_STATE).
struct ResumeState {
  static constexpr uint32_t kNoRound = UINT32_MAX;
  uint32_t acked_round = kNoRound;
  uint64_t page_count = 0;
  std::vector<uint64_t> applied;  // bitmap words, ceil(page_count / 64)
};
std::vector<uint8_t> EncodeResumeState(const ResumeState& m);
Result<ResumeState> DecodeResumeState(std::span<const uint8_t> body);

struct VcpuState {
  std::string format;
  std::vector<uint8_t> blob;
};
std::vector<uint8_t> EncodeVcpuState(const VcpuState& m);
Result<VcpuState> DecodeVcpuState(std::span<const uint8_t> body);

enum class VerifyMode : uint32_t { kIncremental = 0, kFull = 1 };

struct Commit {
  Digest128 digest{};
  uint64_t pages = 0;
  uint32_t final_round = 0;
  VerifyMode verify = VerifyMode::kIncremental;
};
std::vector<uint8_t> EncodeCommit(const Commit& m);
Result<Commit> DecodeCommit(std::span<const uint8_t> body);

struct Ready {
  Digest128 digest{};
};
std::vector<uint8_t> EncodeReady(const Ready& m);
Result<Ready> DecodeReady(std::span<const uint8_t> body);

struct Abort {
  Code code = Code::kAborted;
  std::string reason;
};
std::vector<uint8_t> EncodeAbort(const Abort& m);
Result<Abort> DecodeAbort(std::span<const uint8_t> body);

// An empty body is required for ACCEPT, GO and DONE.
Status ExpectEmpty(std::string_view record, std::span<const uint8_t> body);

std::string DigestHex(const Digest128& d);

}  // namespace xm
