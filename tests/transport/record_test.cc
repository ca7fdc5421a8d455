// Record framing (PROTOCOL.md §2) over a real socket: round trips, and every way
// a header or body can be malformed or cut short.
#include "transport/record.h"

#include <xxhash.h>

#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>
#include <numeric>
#include <string>
#include <thread>
#include <vector>

#include "tests/transport/stream_pair.h"

namespace xm {
namespace {

using testing::StreamPair;

std::vector<uint8_t> Bytes(size_t n, uint8_t seed) {
  std::vector<uint8_t> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<uint8_t>(seed + i * 31 + (i >> 8));
  return v;
}

// Writes a header exactly as given (no checks), then `body`.
void SendRaw(Stream& s, const RecordHeader& h, std::span<const uint8_t> body = {}) {
  ASSERT_TRUE(s.Send(&h, sizeof h).ok());
  if (!body.empty()) {
    ASSERT_TRUE(s.Send(body.data(), body.size()).ok());
  }
}

RecordHeader HeaderFor(uint32_t type, std::span<const uint8_t> body, uint32_t flags = 0) {
  RecordHeader h;
  h.type = type;
  h.flags = flags;
  h.length = body.size();
  h.body_hash = RecordBodyHash(type, body);
  return h;
}

bool Contains(const Status& s, std::string_view what) { return s.message().find(what) != std::string::npos; }

TEST(Record, HeaderLayoutIsLittleEndianAndMatchesTheSpec) {
  std::vector<uint8_t> body = Bytes(10, 1);
  iovec v{body.data(), body.size()};
  RecordHeader h = MakeHeader(RecordType::kShape, std::span<const iovec>(&v, 1), kRecordOptional);
  uint8_t raw[kRecordHeaderSize];
  std::memcpy(raw, &h, sizeof raw);
  EXPECT_EQ(raw[0], 3);  // type
  EXPECT_EQ(raw[1] | raw[2] | raw[3], 0);
  EXPECT_EQ(raw[4], 1);  // flags: OPTIONAL
  EXPECT_EQ(raw[8], 10);  // length
  uint64_t hash;
  std::memcpy(&hash, raw + 16, 8);
  EXPECT_EQ(hash, XXH3_64bits(body.data(), body.size()));
}

TEST(Record, MakeHeaderHashesGatheredBodyLikeOneBuffer) {
  std::vector<uint8_t> whole = Bytes(1000, 7);
  std::vector<iovec> parts;
  for (size_t off = 0; off < whole.size(); off += 97)
    parts.push_back({whole.data() + off, std::min<size_t>(97, whole.size() - off)});
  RecordHeader gathered = MakeHeader(RecordType::kStats, parts);
  iovec one{whole.data(), whole.size()};
  RecordHeader single = MakeHeader(RecordType::kStats, std::span<const iovec>(&one, 1));
  EXPECT_EQ(gathered.length, 1000u);
  EXPECT_EQ(gathered.body_hash, single.body_hash);
  EXPECT_EQ(gathered.body_hash, XXH3_64bits(whole.data(), whole.size()));
}

// A PAGES body: header with `count`, `count` descriptors, then `payload` bytes.
std::vector<uint8_t> PagesBody(uint32_t count, size_t payload) {
  std::vector<uint8_t> b = Bytes(16 + 24 * size_t{count} + payload, 3);
  std::memcpy(b.data() + 4, &count, sizeof count);
  return b;
}

TEST(Record, PagesHashCoversHeaderAndDescriptorsOnly) {
  std::vector<uint8_t> whole = PagesBody(3, 900);
  const size_t covered = 16 + 3 * 24;
  EXPECT_EQ(HashedBodyBytes(6, whole.size(), whole), covered);
  EXPECT_EQ(RecordBodyHash(6, whole), XXH3_64bits(whole.data(), covered));
  // Split anywhere, even inside the 16-byte header: the same hash.
  for (size_t cut : {1, 5, 16, 40, 88, 89, 500}) {
    iovec parts[2] = {{whole.data(), cut}, {whole.data() + cut, whole.size() - cut}};
    RecordHeader h = MakeHeader(RecordType::kPages, parts);
    EXPECT_EQ(h.length, whole.size());
    EXPECT_EQ(h.body_hash, XXH3_64bits(whole.data(), covered)) << "cut at " << cut;
  }
  // A count larger than the body holds: the whole body (ParsePages refuses it later).
  std::vector<uint8_t> lying = PagesBody(3, 0);
  uint32_t big = 4096;
  std::memcpy(lying.data() + 4, &big, sizeof big);
  EXPECT_EQ(HashedBodyBytes(6, lying.size(), lying), lying.size());
  // Shorter than a PAGES header, and other types: everything.
  EXPECT_EQ(HashedBodyBytes(6, 10, std::span(lying).first(10)), 10u);
  EXPECT_EQ(HashedBodyBytes(8, whole.size(), whole), whole.size());
}

TEST(Record, PagesPayloadIsLeftToThePageHashesButDescriptorsAreChecked) {
  StreamPair p;
  std::vector<uint8_t> body = PagesBody(2, 300);
  RecordHeader h = HeaderFor(6, body);
  std::vector<uint8_t> payload_flipped = body;
  payload_flipped[16 + 48 + 10] ^= 0x01;
  SendRaw(*p.a, h, payload_flipped);
  Record r;
  Status st = ReadRecord(*p.b, r);
  ASSERT_TRUE(st.ok()) << st.ToString();  // the page hashes catch this after decoding
  EXPECT_EQ(r.body, payload_flipped);
  for (size_t at : {size_t{0}, size_t{4}, size_t{16 + 24 + 20}}) {
    std::vector<uint8_t> flipped = body;
    flipped[at] ^= 0x01;
    SendRaw(*p.a, h, flipped);
    st = ReadRecord(*p.b, r);
    EXPECT_EQ(st.code(), Code::kProtocol) << "byte " << at;
    EXPECT_TRUE(Contains(st, "PAGES record body hash mismatch")) << st.message();
  }
}

TEST(Record, RoundTripEveryType) {
  StreamPair p;
  for (uint32_t t = 1; t <= static_cast<uint32_t>(RecordType::kResumeState); ++t) {
    std::vector<uint8_t> body = Bytes(t * 13, static_cast<uint8_t>(t));
    ASSERT_TRUE(WriteRecord(*p.a, static_cast<RecordType>(t), body).ok());
    Record r;
    Status st = ReadRecord(*p.b, r);
    ASSERT_TRUE(st.ok()) << st.ToString();
    EXPECT_EQ(static_cast<uint32_t>(r.type), t);
    EXPECT_EQ(r.flags, 0u);
    EXPECT_EQ(r.body, body);
    EXPECT_NE(RecordName(t), "UNKNOWN");
  }
  EXPECT_EQ(RecordName(uint32_t{0}), "UNKNOWN");
  EXPECT_EQ(RecordName(uint32_t{19}), "UNKNOWN");
  EXPECT_EQ(RecordName(RecordType::kResumeState), "RESUME_STATE");
  EXPECT_EQ(RecordName(RecordType::kRoundEnd), "ROUND_END");
}

TEST(Record, EmptyBody) {
  StreamPair p;
  ASSERT_TRUE(WriteRecord(*p.a, RecordType::kGo, std::span<const uint8_t>()).ok());
  Record r;
  r.body = Bytes(5, 0);  // stale contents must go
  ASSERT_TRUE(ReadRecord(*p.b, r).ok());
  EXPECT_EQ(r.type, RecordType::kGo);
  EXPECT_TRUE(r.body.empty());
}

TEST(Record, GatheredBodyWithManyPieces) {
  // More pieces than WriteRecord's on-stack iovec array holds.
  std::vector<uint8_t> whole = Bytes(5000, 3);
  std::vector<iovec> parts;
  for (size_t off = 0; off < whole.size(); off += 100) parts.push_back({whole.data() + off, 100});
  ASSERT_EQ(parts.size(), 50u);
  StreamPair p;
  ASSERT_TRUE(WriteRecord(*p.a, RecordType::kPages, parts).ok());
  Record r;
  ASSERT_TRUE(ReadRecord(*p.b, r).ok());
  EXPECT_EQ(r.body, whole);
}

TEST(Record, LargeBodyAndBufferReuse) {
  // 8 MiB does not fit the socket buffer: the writer needs a concurrent reader.
  std::vector<uint8_t> big = Bytes(8 << 20, 9), small = Bytes(3, 4);
  StreamPair p;
  std::thread writer([&] {
    EXPECT_TRUE(WriteRecord(*p.a, RecordType::kPages, big).ok());
    EXPECT_TRUE(WriteRecord(*p.a, RecordType::kAccept, small).ok());
  });
  Record r;
  Status st = ReadRecord(*p.b, r);
  ASSERT_TRUE(st.ok()) << st.ToString();
  EXPECT_EQ(r.type, RecordType::kPages);
  EXPECT_TRUE(r.body == big);
  st = ReadRecord(*p.b, r);
  ASSERT_TRUE(st.ok()) << st.ToString();
  EXPECT_EQ(r.type, RecordType::kAccept);
  EXPECT_EQ(r.body, small);
  writer.join();
}

TEST(Record, BodyHashMismatch) {
  StreamPair p;
  std::vector<uint8_t> body = Bytes(64, 5);
  RecordHeader h = HeaderFor(1, body);
  body[17] ^= 0x01;
  SendRaw(*p.a, h, body);
  Record r;
  Status st = ReadRecord(*p.b, r);
  EXPECT_EQ(st.code(), Code::kProtocol);
  EXPECT_TRUE(Contains(st, "HELLO record body hash mismatch")) << st.message();
}

TEST(Record, OversizeLengthRefusedBeforeTheBody) {
  StreamPair p;
  RecordHeader h;
  h.type = static_cast<uint32_t>(RecordType::kPages);
  h.length = kMaxRecordBody + 1;
  SendRaw(*p.a, h);  // no body follows: the reader must not wait for it
  Record r;
  Status st = ReadRecord(*p.b, r);
  EXPECT_EQ(st.code(), Code::kProtocol);
  EXPECT_TRUE(Contains(st, "PAGES record of 67108865 bytes exceeds the limit of 67108864")) << st.message();
  EXPECT_TRUE(r.body.empty()) << "nothing should have been allocated for the refused body";
}

TEST(Record, LengthAtTheLimitPassesCheckHeader) {
  RecordHeader h;
  h.type = 6;
  h.length = kMaxRecordBody;
  EXPECT_TRUE(CheckHeader(h).ok());
  h.length = kMaxRecordBody + 1;
  EXPECT_FALSE(CheckHeader(h).ok());
}

TEST(Record, CallerLimitAppliesBeforeAuthentication) {
  StreamPair p;
  std::vector<uint8_t> body = Bytes(100, 1);
  SendRaw(*p.a, HeaderFor(1, body), body);
  Record r;
  Status st = ReadRecord(*p.b, r, 64);
  EXPECT_EQ(st.code(), Code::kProtocol);
  EXPECT_TRUE(Contains(st, "exceeds the limit of 64 bytes")) << st.message();
}

TEST(Record, ReservedFlagBits) {
  for (uint32_t flags : {2u, 3u, 0x80000000u}) {
    StreamPair p;
    SendRaw(*p.a, HeaderFor(1, {}, flags));
    Record r;
    Status st = ReadRecord(*p.b, r);
    EXPECT_EQ(st.code(), Code::kProtocol) << flags;
    EXPECT_TRUE(Contains(st, "reserved flag bits")) << st.message();
    char hex[16];
    std::snprintf(hex, sizeof hex, "(0x%x)", flags);
    EXPECT_TRUE(Contains(st, hex)) << st.message();
  }
}

TEST(Record, UnknownMandatoryTypeRejected) {
  StreamPair p;
  std::vector<uint8_t> body = Bytes(8, 2);
  SendRaw(*p.a, HeaderFor(99, body), body);
  Record r;
  Status st = ReadRecord(*p.b, r);
  EXPECT_EQ(st.code(), Code::kProtocol);
  EXPECT_TRUE(Contains(st, "unknown mandatory record type 99")) << st.message();
}

TEST(Record, UnknownTypeZeroRejected) {
  StreamPair p;
  SendRaw(*p.a, HeaderFor(0, {}));
  Record r;
  EXPECT_EQ(ReadRecord(*p.b, r).code(), Code::kProtocol);
}

TEST(Record, UnknownOptionalTypesAreSkipped) {
  StreamPair p;
  std::vector<uint8_t> junk = Bytes(300, 8), hello = Bytes(20, 1);
  SendRaw(*p.a, HeaderFor(99, junk, kRecordOptional), junk);
  SendRaw(*p.a, HeaderFor(0xFFFFFFFF, {}, kRecordOptional));
  ASSERT_TRUE(WriteRecord(*p.a, RecordType::kHello, hello).ok());
  Record r;
  Status st = ReadRecord(*p.b, r);
  ASSERT_TRUE(st.ok()) << st.ToString();
  EXPECT_EQ(r.type, RecordType::kHello);
  EXPECT_EQ(r.body, hello);
}

TEST(Record, SkippedOptionalRecordIsStillHashChecked) {
  StreamPair p;
  std::vector<uint8_t> junk = Bytes(30, 8);
  RecordHeader h = HeaderFor(99, junk, kRecordOptional);
  junk[0] ^= 0xFF;
  SendRaw(*p.a, h, junk);
  Record r;
  EXPECT_EQ(ReadRecord(*p.b, r).code(), Code::kProtocol);
}

TEST(Record, KnownOptionalRecordIsDelivered) {
  StreamPair p;
  std::vector<uint8_t> stats = Bytes(12, 6);
  ASSERT_TRUE(WriteRecord(*p.a, RecordType::kStats, stats, kRecordOptional).ok());
  Record r;
  ASSERT_TRUE(ReadRecord(*p.b, r).ok());
  EXPECT_EQ(r.type, RecordType::kStats);
  EXPECT_EQ(r.flags, kRecordOptional);
  EXPECT_EQ(r.body, stats);
}

TEST(Record, CleanCloseBeforeARecordIsAborted) {
  StreamPair p;
  p.CloseA();
  Record r;
  Status st = ReadRecord(*p.b, r);
  EXPECT_EQ(st.code(), Code::kAborted);
  EXPECT_TRUE(Contains(st, "connection closed")) << st.message();
}

TEST(Record, CloseAfterWholeRecordsIsAborted) {
  StreamPair p;
  ASSERT_TRUE(WriteRecord(*p.a, RecordType::kDone, std::span<const uint8_t>()).ok());
  p.CloseA();
  Record r;
  ASSERT_TRUE(ReadRecord(*p.b, r).ok());
  EXPECT_EQ(ReadRecord(*p.b, r).code(), Code::kAborted);
}

TEST(Record, TruncatedHeaderIsProtocolError) {
  StreamPair p;
  std::vector<uint8_t> body = Bytes(4, 0);
  RecordHeader h = HeaderFor(1, body);
  ASSERT_TRUE(p.a->Send(&h, 10).ok());
  p.CloseA();
  Record r;
  Status st = ReadRecord(*p.b, r);
  EXPECT_EQ(st.code(), Code::kProtocol);
  EXPECT_TRUE(Contains(st, "after 10 of 24 bytes")) << st.message();
}

TEST(Record, CloseRightAfterHeaderIsProtocolError) {
  StreamPair p;
  std::vector<uint8_t> body = Bytes(100, 0);
  SendRaw(*p.a, HeaderFor(3, body));
  p.CloseA();
  Record r;
  Status st = ReadRecord(*p.b, r);
  EXPECT_EQ(st.code(), Code::kProtocol);
  EXPECT_TRUE(Contains(st, "receive SHAPE")) << st.message();
  EXPECT_TRUE(Contains(st, "after the header of a SHAPE record (100 body bytes missing)")) << st.message();
}

TEST(Record, TruncatedBodyIsProtocolError) {
  StreamPair p;
  std::vector<uint8_t> body = Bytes(100, 0);
  SendRaw(*p.a, HeaderFor(6, body), std::span(body).first(50));
  p.CloseA();
  Record r;
  Status st = ReadRecord(*p.b, r);
  EXPECT_EQ(st.code(), Code::kProtocol);
  EXPECT_TRUE(Contains(st, "receive PAGES")) << st.message();
  EXPECT_TRUE(Contains(st, "after 50 of 100 bytes")) << st.message();
}

TEST(Record, WriteToClosedPeerFailsNamingTheRecord) {
  StreamPair p;
  p.b.reset();
  std::vector<uint8_t> body = Bytes(10, 0);
  Status st = WriteRecord(*p.a, RecordType::kCommit, body);
  EXPECT_EQ(st.code(), Code::kIo);
  EXPECT_TRUE(Contains(st, "send COMMIT")) << st.message();
}

}  // namespace
}  // namespace xm
