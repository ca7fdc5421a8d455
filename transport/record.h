// Record framing (PROTOCOL.md §2): a 24-byte header, then a body whose XXH3-64
// (of the covered bytes: all of them, or a PAGES record's header and
// descriptors) is in the header. RecordWriter and RecordReader move whole records over a
// Stream and reject anything malformed with a message naming the record.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "transport/stream.h"

namespace xm {

enum class RecordType : uint32_t {
  kHello = 1,
  kAuth = 2,
  kShape = 3,
  kCpuPolicy = 4,
  kAccept = 5,
  kPages = 6,
  kRoundEnd = 7,
  kVcpuState = 8,
  kCommit = 9,
  kReady = 10,
  kGo = 11,
  kDone = 12,
  kAbort = 13,
  kStats = 14,
  kJoin = 15,
  kRoundAck = 16,
  kResume = 17,
  kResumeState = 18,
};
std::string_view RecordName(RecordType t);
std::string_view RecordName(uint32_t t);

constexpr uint32_t kRecordOptional = 1u << 0;
constexpr uint64_t kMaxRecordBody = 64ull << 20;
constexpr size_t kRecordHeaderSize = 24;

struct RecordHeader {
  uint32_t type = 0;
  uint32_t flags = 0;
  uint64_t length = 0;
  uint64_t body_hash = 0;
};
static_assert(sizeof(RecordHeader) == kRecordHeaderSize);

// How many leading bytes of a `length`-byte body body_hash covers; `head` is
// the body's first bytes (at least min(length, 16) of them).
uint64_t HashedBodyBytes(uint32_t type, uint64_t length, std::span<const uint8_t> head);
// body_hash for a whole body in one buffer.
uint64_t RecordBodyHash(uint32_t type, std::span<const uint8_t> body);

// Builds a header for `body` (hash included).
RecordHeader MakeHeader(RecordType type, std::span<const iovec> body, uint32_t flags = 0);
// Checks a received header against the limits; not the body hash.
Status CheckHeader(const RecordHeader& h, uint64_t max_body = kMaxRecordBody);

struct Record {
  RecordType type{};
  uint32_t flags = 0;
  std::vector<uint8_t> body;
};

// Sends a record whose body is the concatenation of `body` (no copy).
Status WriteRecord(Stream& s, RecordType type, std::span<const iovec> body, uint32_t flags = 0);
Status WriteRecord(Stream& s, RecordType type, std::span<const uint8_t> body, uint32_t flags = 0);

// Reads the next record the receiver understands, skipping unknown OPTIONAL ones.
// `into` is reused between calls to avoid reallocating large PAGES bodies.
// Bodies over `max_body` are refused before they are read (use a small limit
// before the peer is authenticated).
Status ReadRecord(Stream& s, Record& into, uint64_t max_body = kMaxRecordBody);
// The first record from a new peer. Reads the header a byte at a time so that
// a peer that is not xmotion at all (an HTTP, SSH or TLS server, anything that
// answers with text or hangs up) is named for what it sent: kAuth, "not an
// xmotion peer: ...". Anything that frames as a record goes on as ReadRecord.
Status ReadFirstRecord(Stream& s, Record& into, uint64_t max_body);
// What a foreign peer's first bytes look like, for an error message: "it
// answered like an HTTP server: ..." or "it sent ...".
std::string DescribeForeignBytes(std::span<const uint8_t> first_bytes);

}  // namespace xm
