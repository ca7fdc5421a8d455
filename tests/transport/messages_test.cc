// Control records (PROTOCOL.md §3-5): every encoder/decoder round trip, and each
// decoder's refusal of malformed bodies.
#include "transport/messages.h"

#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "transport/wire.h"

namespace xm {
namespace {

template <typename T>
void ExpectMalformed(const Result<T>& r, std::string_view what = "") {
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kProtocol) << r.status().ToString();
  if (!what.empty()) {
    EXPECT_NE(r.status().message().find(what), std::string::npos) << r.status().message();
  }
}

// Every proper prefix of a valid body must be refused.
template <typename Decode>
void ExpectPrefixesRejected(const std::vector<uint8_t>& body, Decode decode) {
  for (size_t n = 0; n < body.size(); ++n) {
    auto r = decode(std::span<const uint8_t>(body.data(), n));
    EXPECT_FALSE(r.ok()) << "prefix of " << n << " of " << body.size() << " bytes accepted";
  }
}

Nonce NonceOf(uint8_t seed) {
  Nonce n;
  for (size_t i = 0; i < n.size(); ++i) n[i] = static_cast<uint8_t>(seed + i);
  return n;
}

// ---- HELLO ----

Hello SampleHello() {
  Hello h;
  h.version_min = 1;
  h.version_max = 3;
  h.role = Role::kDestination;
  h.features = kFeatureLz4 | kFeatureDupRef | (1ull << 40);
  h.nonce = NonceOf(9);
  h.session_id = 0x1122334455667788ull;
  h.streams = 4;
  h.auth = AuthMode::kHmacSha256;
  return h;
}

TEST(Hello, RoundTrip) {
  Hello h = SampleHello();
  std::vector<uint8_t> body = EncodeHello(h);
  EXPECT_EQ(body.size(), 76u);  // frozen layout
  EXPECT_EQ(std::memcmp(body.data(), "XMOTION\0", 8), 0);
  auto d = DecodeHello(body);
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  EXPECT_EQ(d->version_min, 1);
  EXPECT_EQ(d->version_max, 3);
  EXPECT_EQ(d->role, Role::kDestination);
  EXPECT_EQ(d->features, h.features);  // reserved feature bits pass through
  EXPECT_EQ(d->nonce, h.nonce);
  EXPECT_EQ(d->session_id, h.session_id);
  EXPECT_EQ(d->streams, 4u);
  EXPECT_EQ(d->auth, AuthMode::kHmacSha256);
}

TEST(Hello, TrailingBytesAllowedForLaterVersions) {
  std::vector<uint8_t> body = EncodeHello(SampleHello());
  body.insert(body.end(), {1, 2, 3, 4, 5});
  EXPECT_TRUE(DecodeHello(body).ok());
}

TEST(Hello, BadMagic) {
  std::vector<uint8_t> body = EncodeHello(SampleHello());
  body[0] = 'Y';
  ExpectMalformed(DecodeHello(body), "bad HELLO magic");
  body = EncodeHello(SampleHello());
  body[7] = '!';  // the terminator is part of the magic
  ExpectMalformed(DecodeHello(body), "bad HELLO magic");
  ExpectMalformed(DecodeHello({}), "bad HELLO magic");
}

TEST(Hello, TooShort) {
  std::vector<uint8_t> body = EncodeHello(SampleHello());
  ExpectPrefixesRejected(body, DecodeHello);
  ExpectMalformed(DecodeHello(std::span(body).first(75)), "too short");
}

// Patches a u32 at `offset` of an encoded HELLO.
std::vector<uint8_t> HelloWith(size_t offset, uint32_t v) {
  std::vector<uint8_t> body = EncodeHello(SampleHello());
  std::memcpy(body.data() + offset, &v, sizeof v);
  return body;
}
constexpr size_t kRoleOffset = 12, kStreamsOffset = 64, kAuthOffset = 68;

TEST(Hello, BadRole) {
  for (uint32_t role : {0u, 3u, 0xFFFFFFFFu}) ExpectMalformed(DecodeHello(HelloWith(kRoleOffset, role)), "role");
  EXPECT_EQ(DecodeHello(HelloWith(kRoleOffset, 1))->role, Role::kSource);
}

TEST(Hello, UnknownAuthMode) {
  ExpectMalformed(DecodeHello(HelloWith(kAuthOffset, 2)), "auth mode 2");
  EXPECT_EQ(DecodeHello(HelloWith(kAuthOffset, 0))->auth, AuthMode::kNone);
}

TEST(Hello, ZeroStreams) { ExpectMalformed(DecodeHello(HelloWith(kStreamsOffset, 0)), "zero streams"); }

TEST(Hello, InvertedVersionRange) {
  Hello h = SampleHello();
  h.version_min = 5;
  h.version_max = 4;
  ExpectMalformed(DecodeHello(EncodeHello(h)), "version_min > version_max");
  h.version_min = h.version_max = 7;  // a single version is a valid range, even an unknown one
  EXPECT_TRUE(DecodeHello(EncodeHello(h)).ok());
}

// ---- AUTH, READY, JOIN ----

TEST(Auth, RoundTripAndLength) {
  Auth a;
  for (size_t i = 0; i < a.mac.size(); ++i) a.mac[i] = static_cast<uint8_t>(0xA0 + i);
  std::vector<uint8_t> body = EncodeAuth(a);
  ASSERT_EQ(body.size(), 32u);
  auto d = DecodeAuth(body);
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->mac, a.mac);
  ExpectMalformed(DecodeAuth(std::span(body).first(31)), "length 31");
  body.push_back(0);
  ExpectMalformed(DecodeAuth(body), "length 33");
}

TEST(Ready, RoundTripAndLength) {
  Ready r;
  for (size_t i = 0; i < r.digest.size(); ++i) r.digest[i] = static_cast<uint8_t>(i * 7);
  std::vector<uint8_t> body = EncodeReady(r);
  ASSERT_EQ(body.size(), 16u);
  auto d = DecodeReady(body);
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->digest, r.digest);
  ExpectMalformed(DecodeReady(std::span(body).first(15)));
  body.push_back(0);
  ExpectMalformed(DecodeReady(body));
}

TEST(Join, RoundTripAndLength) {
  Join j;
  j.session_id = 0xDEADBEEFCAFEF00Dull;
  j.stream_index = 3;
  for (size_t i = 0; i < j.mac.size(); ++i) j.mac[i] = static_cast<uint8_t>(255 - i);
  std::vector<uint8_t> body = EncodeJoin(j);
  ASSERT_EQ(body.size(), 44u);
  auto d = DecodeJoin(body);
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->session_id, j.session_id);
  EXPECT_EQ(d->stream_index, 3u);
  EXPECT_EQ(d->mac, j.mac);
  ExpectPrefixesRejected(body, DecodeJoin);
  body.push_back(0);
  ExpectMalformed(DecodeJoin(body), "length 45");
}

// ---- SHAPE ----

Shape SampleShape() {
  Shape s;
  s.shape.page_size = 4096;
  s.shape.vcpus = 8;
  s.shape.page_count = 1 << 20;
  s.shape.ranges = {{0, 0xA0}, {0x100, 0x7FF00}, {0x80000, 1}, {0xFFFFF, 1}};
  s.backend = "kvm";
  return s;
}

// SHAPE with the given ranges and page_count, everything else as the sample.
std::vector<uint8_t> ShapeWith(uint64_t page_count, std::vector<PfnRange> ranges) {
  Shape s = SampleShape();
  s.shape.page_count = page_count;
  s.shape.ranges = std::move(ranges);
  return EncodeShape(s);
}

TEST(Shape, RoundTrip) {
  Shape s = SampleShape();
  auto d = DecodeShape(EncodeShape(s));
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  EXPECT_EQ(d->shape.page_size, s.shape.page_size);
  EXPECT_EQ(d->shape.vcpus, s.shape.vcpus);
  EXPECT_EQ(d->shape.page_count, s.shape.page_count);
  ASSERT_EQ(d->shape.ranges.size(), s.shape.ranges.size());
  for (size_t i = 0; i < s.shape.ranges.size(); ++i) {
    EXPECT_EQ(d->shape.ranges[i].first, s.shape.ranges[i].first) << i;
    EXPECT_EQ(d->shape.ranges[i].count, s.shape.ranges[i].count) << i;
  }
  EXPECT_EQ(d->backend, "kvm");
  EXPECT_EQ(d->shape.memory_bytes(), (0xA0ull + 0x7FF00 + 2) * 4096);
}

TEST(Shape, NoRangesAndTouchingRangesAreValid) {
  EXPECT_TRUE(DecodeShape(ShapeWith(10, {})).ok());
  EXPECT_TRUE(DecodeShape(ShapeWith(10, {{0, 5}, {5, 5}})).ok());
  EXPECT_TRUE(DecodeShape(ShapeWith(10, {{9, 1}})).ok());
}

TEST(Shape, UnsortedOverlappingEmptyOrOutsideRanges) {
  ExpectMalformed(DecodeShape(ShapeWith(100, {{50, 10}, {10, 10}})), "range 1");      // unsorted
  ExpectMalformed(DecodeShape(ShapeWith(100, {{10, 10}, {19, 10}})), "range 1");      // overlapping by one
  ExpectMalformed(DecodeShape(ShapeWith(100, {{10, 10}, {10, 10}})), "range 1");      // duplicate
  ExpectMalformed(DecodeShape(ShapeWith(100, {{10, 0}})), "range 0");                 // empty
  ExpectMalformed(DecodeShape(ShapeWith(100, {{95, 6}})), "range 0");                 // runs past the end
  ExpectMalformed(DecodeShape(ShapeWith(100, {{100, 1}})), "range 0");                // starts at the end
  ExpectMalformed(DecodeShape(ShapeWith(100, {{101, 1}})), "range 0");                // starts past the end
  ExpectMalformed(DecodeShape(ShapeWith(100, {{1, UINT64_MAX}})), "range 0");         // first + count wraps
  ExpectMalformed(DecodeShape(ShapeWith(UINT64_MAX, {{UINT64_MAX - 1, 2}})), "range 0");
  ExpectMalformed(DecodeShape(ShapeWith(0, {{0, 1}})), "range 0");
}

TEST(Shape, BadPageSizeAndVcpus) {
  Shape s = SampleShape();
  s.shape.page_size = 2 << 20;
  ExpectMalformed(DecodeShape(EncodeShape(s)), "page size");
  s = SampleShape();
  s.shape.vcpus = 0;
  ExpectMalformed(DecodeShape(EncodeShape(s)), "vcpus 0");
  s.shape.vcpus = 4097;
  ExpectMalformed(DecodeShape(EncodeShape(s)), "vcpus 4097");
  s.shape.vcpus = 4096;
  EXPECT_TRUE(DecodeShape(EncodeShape(s)).ok());
}

TEST(Shape, RangeCountLimits) {
  // A hostile count must be refused before anything is allocated for it.
  WireWriter w;
  w.Put(uint32_t{4096});
  w.Put(uint32_t{1});
  w.Put(uint64_t{100});
  w.Put(uint32_t{65537});
  ExpectMalformed(DecodeShape(w.bytes()), "range count 65537");
  WireWriter w2;
  w2.Put(uint32_t{4096});
  w2.Put(uint32_t{1});
  w2.Put(uint64_t{100});
  w2.Put(uint32_t{3});  // claims 3 ranges, carries 1
  w2.Put(uint64_t{0});
  w2.Put(uint64_t{1});
  ExpectMalformed(DecodeShape(w2.bytes()), "range count 3");
}

TEST(Shape, BackendNameMustBePrintable) {
  // The name is quoted in the receiver's one-line errors.
  const std::vector<std::string> bad_names = {"s\nm", std::string("s\0m", 3), "\x1b[2Jsim", "sim\x7f", "s\xc3\xa9m"};
  for (const std::string& bad : bad_names) {
    Shape s = SampleShape();
    s.backend = bad;
    ExpectMalformed(DecodeShape(EncodeShape(s)), "backend name");
  }
  Shape s = SampleShape();
  s.backend = " !~";
  EXPECT_TRUE(DecodeShape(EncodeShape(s)).ok());
}

TEST(Shape, BackendNameAndTrailingBytes) {
  Shape s = SampleShape();
  s.backend = std::string(65, 'x');
  ExpectMalformed(DecodeShape(EncodeShape(s)), "backend name");
  s.backend = std::string(64, 'x');
  EXPECT_TRUE(DecodeShape(EncodeShape(s)).ok());
  std::vector<uint8_t> body = EncodeShape(SampleShape());
  body.push_back(0);
  ExpectMalformed(DecodeShape(body), "trailing bytes");
  ExpectPrefixesRejected(EncodeShape(SampleShape()), DecodeShape);
}

// ---- CPU_POLICY ----

CpuPolicy SamplePolicy() {
  CpuPolicy p;
  p.vendor = "GenuineIntel";
  p.featureset = {0x178bfbff, 0xfed8320b, 0x2fd3fbff, 0, 0xf, 0x219c07ab};
  p.format = "kvm-cpuid2-v1";
  p.blob = {1, 2, 3, 4, 5, 6, 7, 8, 9};
  return p;
}

void ExpectSamePolicy(const CpuPolicy& a, const CpuPolicy& b) {
  EXPECT_EQ(a.vendor, b.vendor);
  EXPECT_EQ(a.featureset, b.featureset);
  EXPECT_EQ(a.format, b.format);
  EXPECT_EQ(a.blob, b.blob);
}

TEST(CpuPolicy, RoundTrip) {
  CpuPolicy p = SamplePolicy();
  auto d = DecodeCpuPolicy(EncodeCpuPolicy(p));
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  ExpectSamePolicy(*d, p);
  CpuPolicy empty;
  empty.format = "none";
  auto e = DecodeCpuPolicy(EncodeCpuPolicy(empty));
  ASSERT_TRUE(e.ok());
  ExpectSamePolicy(*e, empty);
}

TEST(CpuPolicy, Lengths) {
  CpuPolicy p = SamplePolicy();
  p.vendor = std::string(65, 'v');
  ExpectMalformed(DecodeCpuPolicy(EncodeCpuPolicy(p)), "vendor");
  p = SamplePolicy();
  p.featureset.assign(257, 1);
  ExpectMalformed(DecodeCpuPolicy(EncodeCpuPolicy(p)), "featureset length");
  p.featureset.assign(256, 1);
  EXPECT_TRUE(DecodeCpuPolicy(EncodeCpuPolicy(p)).ok());
  p = SamplePolicy();
  p.format = std::string(65, 'f');
  ExpectMalformed(DecodeCpuPolicy(EncodeCpuPolicy(p)), "format");
  p = SamplePolicy();
  p.blob.assign((1u << 20) + 1, 0);
  ExpectMalformed(DecodeCpuPolicy(EncodeCpuPolicy(p)), "blob");
  p.blob.assign(1u << 20, 0);
  EXPECT_TRUE(DecodeCpuPolicy(EncodeCpuPolicy(p)).ok());
}

TEST(CpuPolicy, NamesMustBePrintable) {
  CpuPolicy p = SamplePolicy();
  p.vendor = "Genuine\nIntel";
  ExpectMalformed(DecodeCpuPolicy(EncodeCpuPolicy(p)), "vendor");
  p = SamplePolicy();
  p.vendor = "  Shanghai  ";  // real CPUID vendors may contain spaces
  EXPECT_TRUE(DecodeCpuPolicy(EncodeCpuPolicy(p)).ok());
  p.format = "none\r";
  ExpectMalformed(DecodeCpuPolicy(EncodeCpuPolicy(p)), "format");
}

TEST(CpuPolicy, FeaturesetCountLargerThanBody) {
  WireWriter w;
  w.PutString("AuthenticAMD");
  w.Put(uint32_t{10});
  w.Put(uint32_t{1});  // one word of ten
  ExpectMalformed(DecodeCpuPolicy(w.bytes()), "featureset length");
}

TEST(CpuPolicy, BlobLengthMustMatchTheRest) {
  std::vector<uint8_t> body = EncodeCpuPolicy(SamplePolicy());
  body.push_back(0);
  ExpectMalformed(DecodeCpuPolicy(body), "blob");
  body.pop_back();
  body.pop_back();
  ExpectMalformed(DecodeCpuPolicy(body), "blob");
  ExpectPrefixesRejected(EncodeCpuPolicy(SamplePolicy()), DecodeCpuPolicy);
}

// ---- ROUND_END ----

TEST(RoundEnd, RoundTrip) {
  RoundEnd m;
  m.round = 17;
  m.pages = 123456789;
  m.batches_per_stream = {5, 0, 7, UINT64_MAX};
  std::vector<uint8_t> body = EncodeRoundEnd(m);
  EXPECT_EQ(body.size(), 16u + 4 * 8);
  auto d = DecodeRoundEnd(body);
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->round, 17u);
  EXPECT_EQ(d->pages, 123456789u);
  EXPECT_EQ(d->batches_per_stream, m.batches_per_stream);
}

TEST(RoundEnd, Counts) {
  RoundEnd m;
  ExpectMalformed(DecodeRoundEnd(EncodeRoundEnd(m)), "stream count 0");
  m.batches_per_stream.assign(kMaxStreams + 1, 1);
  ExpectMalformed(DecodeRoundEnd(EncodeRoundEnd(m)), "stream count 17");
  m.batches_per_stream.assign(kMaxStreams, 1);
  EXPECT_TRUE(DecodeRoundEnd(EncodeRoundEnd(m)).ok());
  m.batches_per_stream = {1, 2};
  std::vector<uint8_t> body = EncodeRoundEnd(m);
  body.push_back(0);
  ExpectMalformed(DecodeRoundEnd(body), "stream count 2");
  body.resize(body.size() - 2);
  ExpectMalformed(DecodeRoundEnd(body), "stream count 2");
  ExpectPrefixesRejected(EncodeRoundEnd(m), DecodeRoundEnd);
}

TEST(RoundAck, RoundTripAndExactLength) {
  std::vector<uint8_t> body = EncodeRoundAck(41);
  EXPECT_EQ(body.size(), 4u);
  auto d = DecodeRoundAck(body);
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(*d, 41u);
  body.push_back(0);
  ExpectMalformed(DecodeRoundAck(body), "length 5");
  ExpectPrefixesRejected(EncodeRoundAck(41), DecodeRoundAck);
}

// ---- VCPU_STATE ----

TEST(VcpuState, RoundTrip) {
  VcpuState v{"sim-v1", {9, 8, 7}};
  auto d = DecodeVcpuState(EncodeVcpuState(v));
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->format, "sim-v1");
  EXPECT_EQ(d->blob, v.blob);
  auto e = DecodeVcpuState(EncodeVcpuState({"kvm-v1", {}}));
  ASSERT_TRUE(e.ok());
  EXPECT_TRUE(e->blob.empty());
}

TEST(VcpuState, BadFormatString) {
  ExpectMalformed(DecodeVcpuState(EncodeVcpuState({std::string(65, 'f'), {}})), "format");
  ExpectMalformed(DecodeVcpuState({}), "format");
  ExpectMalformed(DecodeVcpuState(EncodeVcpuState({"sim-v1\n", {}})), "format");
  WireWriter w;
  w.Put(uint32_t{10});  // claims 10 bytes of format, carries 3
  w.PutBytes("abc", 3);
  ExpectMalformed(DecodeVcpuState(w.bytes()), "format");
}

// ---- COMMIT ----

TEST(Commit, RoundTrip) {
  for (VerifyMode mode : {VerifyMode::kIncremental, VerifyMode::kFull}) {
    Commit c;
    for (size_t i = 0; i < c.digest.size(); ++i) c.digest[i] = static_cast<uint8_t>(i + 1);
    c.pages = 262144;
    c.final_round = 12;
    c.verify = mode;
    std::vector<uint8_t> body = EncodeCommit(c);
    EXPECT_EQ(body.size(), 32u);
    auto d = DecodeCommit(body);
    ASSERT_TRUE(d.ok());
    EXPECT_EQ(d->digest, c.digest);
    EXPECT_EQ(d->pages, c.pages);
    EXPECT_EQ(d->final_round, 12u);
    EXPECT_EQ(d->verify, mode);
  }
}

TEST(Commit, VerifyModeAndLength) {
  Commit c;
  std::vector<uint8_t> body = EncodeCommit(c);
  uint32_t bad = 2;
  std::memcpy(body.data() + 28, &bad, 4);
  ExpectMalformed(DecodeCommit(body), "verify mode");
  body = EncodeCommit(c);
  body.push_back(0);
  ExpectMalformed(DecodeCommit(body));
  ExpectPrefixesRejected(EncodeCommit(c), DecodeCommit);
}

// ---- ABORT ----

TEST(Abort, RoundTrip) {
  Abort a{Code::kIncompatible, "destination lacks avx512f, amx-tile"};
  auto d = DecodeAbort(EncodeAbort(a));
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->code, Code::kIncompatible);
  EXPECT_EQ(d->reason, a.reason);
}

TEST(Abort, ReasonIsSanitisedToOneLine) {
  std::string reason = "line one\nline two\r\x1b[31mred\tend";
  reason += '\0';
  reason += "\xc3\xa9";  // UTF-8 is kept
  auto d = DecodeAbort(EncodeAbort({Code::kAuth, reason}));
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->reason, "line one line two  [31mred end \xc3\xa9");
  for (char c : d->reason) EXPECT_GE(static_cast<unsigned char>(c), 0x20);
}

TEST(Abort, UnknownOrOkCodeBecomesAborted) {
  for (uint32_t code : {0u, 13u, 999u, 0xFFFFFFFFu}) {
    WireWriter w;
    w.Put(code);
    w.PutString("x");
    auto d = DecodeAbort(w.bytes());
    ASSERT_TRUE(d.ok());
    EXPECT_EQ(d->code, Code::kAborted) << code;
  }
  WireWriter w;
  w.Put(static_cast<uint32_t>(Code::kInternal));
  w.PutString("");
  EXPECT_EQ(DecodeAbort(w.bytes())->code, Code::kInternal);
  WireWriter c;  // an operator's cancel (12) is the last code this side knows
  c.Put(static_cast<uint32_t>(Code::kCancelled));
  c.PutString("");
  EXPECT_EQ(DecodeAbort(c.bytes())->code, Code::kCancelled);
}

TEST(Abort, LongReasons) {
  // The encoder truncates to what every decoder accepts.
  auto d = DecodeAbort(EncodeAbort({Code::kIo, std::string(10000, 'r')}));
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->reason.size(), 4000u);
  WireWriter w;
  w.Put(static_cast<uint32_t>(Code::kIo));
  w.PutString(std::string(4097, 'r'));
  ExpectMalformed(DecodeAbort(w.bytes()), "ABORT");
}

TEST(Abort, TooShort) { ExpectPrefixesRejected(EncodeAbort({Code::kIo, "abc"}), DecodeAbort); }

// ---- helpers ----

TEST(ExpectEmpty, OnlyEmptyBodies) {
  EXPECT_TRUE(ExpectEmpty("GO", {}).ok());
  uint8_t one = 0;
  Status st = ExpectEmpty("GO", std::span<const uint8_t>(&one, 1));
  EXPECT_EQ(st.code(), Code::kProtocol);
  EXPECT_NE(st.message().find("GO"), std::string::npos);
}

TEST(DigestHex, LowercaseHex) {
  Digest128 d{};
  d[0] = 0x01;
  d[1] = 0xAB;
  d[15] = 0xFF;
  EXPECT_EQ(DigestHex(d), "01ab000000000000000000000000" "00ff");
}

TEST(WireReader, NeverReadsPastItsSpan) {
  uint8_t buf[5] = {1, 2, 3, 4, 5};
  WireReader r(buf);
  uint32_t v = 0;
  ASSERT_TRUE(r.Get(v));
  EXPECT_EQ(v, 0x04030201u);
  uint16_t w = 0;
  EXPECT_FALSE(r.Get(w));
  EXPECT_EQ(r.remaining(), 1u);
  std::string s;
  WireReader r2(buf);  // string length 0x04030201 > max
  EXPECT_FALSE(r2.GetString(s));
  std::span<const uint8_t> out;
  EXPECT_FALSE(r.GetSpan(2, out));
  EXPECT_TRUE(r.GetSpan(1, out));
  EXPECT_EQ(out[0], 5);
  EXPECT_TRUE(r.empty());
}

}  // namespace
}  // namespace xm
