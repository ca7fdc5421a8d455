// The TLS record layer alone (transport/tls_record.h), over memory: what one
// end seals, the other opens byte for byte whatever the split of sends and
// reads (one record, a batch opened on two threads, a record overflowing the
// caller's buffer), padded records (legal, never sent by xmotion) included, and
// a record changed anywhere in a batch ends the stream.
#include "transport/tls_record.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>

#include "tests/fuzz/memory_stream.h"
#include "tests/transport/random_bytes.h"

namespace xm {
namespace {

using testing::MemoryStream;

std::unique_ptr<TlsRecordCipher> Cipher() {
  static const std::vector<uint8_t> secret(32, 0x5a);
  auto c = std::make_unique<TlsRecordCipher>();
  EXPECT_TRUE(c->Init(secret, false, 0).ok());
  return c;
}

// `data` sent through a TlsRecordStream in sends of the given sizes (cycled).
std::vector<uint8_t> Seal(std::span<const uint8_t> data, std::span<const size_t> sends) {
  auto sink = std::make_unique<MemoryStream>(std::span<const uint8_t>());
  MemoryStream* tap = sink.get();
  TlsRecordStream s(std::move(sink), Cipher(), Cipher());
  for (size_t at = 0, i = 0; at < data.size(); ++i) {
    const size_t n = std::min(sends[i % sends.size()], data.size() - at);
    // Two pieces per send, so records are sealed from gathered buffers.
    iovec v[2] = {{const_cast<uint8_t*>(data.data() + at), n / 3}, {const_cast<uint8_t*>(data.data() + at + n / 3), n - n / 3}};
    EXPECT_TRUE(s.Send(std::span<const iovec>(v, 2)).ok());
    at += n;
  }
  return tap->sent();
}

// Reads `total` bytes from `wire` in reads of the given sizes (cycled).
Status Open(std::span<const uint8_t> wire, size_t total, std::span<const size_t> reads, std::vector<uint8_t>& out) {
  TlsRecordStream s(std::make_unique<MemoryStream>(wire), Cipher(), Cipher());
  out.assign(total, 0);
  for (size_t at = 0, i = 0; at < total; ++i) {
    const size_t n = std::min(reads[i % reads.size()], total - at);
    XM_TRY(s.Recv(std::as_writable_bytes(std::span(out.data() + at, n))));
    at += n;
  }
  return {};
}

TEST(TlsRecord, WhatIsSealedOpensWhateverTheSplit) {
  const std::vector<uint8_t> data = testing::RandomBytes(3 * 1024 * 1024 + 12345, 1);
  // {300}: batches of far more than 64 short records, all within the first read.
  const std::vector<size_t> sends[] = {{data.size()}, {1 << 20}, {100, 40000, 16384, 1 << 20, 7}, {300}};
  const std::vector<size_t> reads[] = {{data.size()}, {40, 2 << 20}, {16383, 70000, 5, 300000}, {32768}, {1000}};
  for (const auto& sp : sends) {
    const std::vector<uint8_t> wire = Seal(data, sp);
    EXPECT_TRUE(std::search(wire.begin(), wire.end(), data.begin(), data.begin() + 64) == wire.end())
        << "plaintext on the wire";
    for (const auto& rp : reads) {
      std::vector<uint8_t> out;
      ASSERT_TRUE(Open(wire, data.size(), rp, out).ok());
      ASSERT_TRUE(out == data) << "sends " << sp.size() << " reads " << rp.size();
    }
  }
}

TEST(TlsRecord, PaddedRecordsOpenToTheirContent) {
  const std::vector<uint8_t> data = testing::RandomBytes(600 * 1024, 2);
  auto tx = Cipher();
  std::vector<uint8_t> wire;
  std::mt19937 rng(3);
  for (size_t at = 0; at < data.size();) {
    const size_t n = std::min<size_t>(1 + rng() % TlsRecordCipher::kMaxPlain, data.size() - at);
    // Within RFC 8446's 2^14 + 1 bytes of inner plaintext.
    const size_t pad = rng() % 3 == 0 ? 0 : std::min<size_t>(rng() % 300, TlsRecordCipher::kMaxPlain - n);
    iovec v{const_cast<uint8_t*>(data.data() + at), n};
    const size_t off = wire.size();
    wire.resize(off + TlsRecordCipher::SealedSize(n, pad));
    ASSERT_TRUE(tx->Seal(0, tx->Reserve(1), std::span(&v, 1), n, wire.data() + off, pad));
    at += n;
  }
  for (const std::vector<size_t>& rp : {std::vector<size_t>{data.size()}, {100000, 3}, {1 << 15}}) {
    std::vector<uint8_t> out;
    ASSERT_TRUE(Open(wire, data.size(), rp, out).ok());
    EXPECT_TRUE(out == data);
  }
}

TEST(TlsRecord, AChangedByteAnywhereInABatchEndsTheStream) {
  const std::vector<uint8_t> data = testing::RandomBytes(2 * 1024 * 1024, 4);
  const size_t one[] = {data.size()};
  const std::vector<uint8_t> wire = Seal(data, one);
  for (size_t at : {size_t{3}, size_t{10}, size_t{16384 * 5 + 7}, wire.size() / 2, wire.size() - 1}) {
    std::vector<uint8_t> bad = wire;
    bad[at] ^= 0x01;
    std::vector<uint8_t> out;
    const size_t big[] = {data.size()};
    Status st = Open(bad, data.size(), big, out);
    EXPECT_EQ(st.code(), Code::kProtocol) << "byte " << at << ": " << st.message();
  }
  // A stream cut in the middle of a batch is a cut, not an orderly end.
  std::vector<uint8_t> out;
  const size_t big[] = {data.size()};
  Status st = Open(std::span(wire).first(wire.size() / 2), data.size(), big, out);
  EXPECT_EQ(st.code(), Code::kProtocol) << st.message();
}

// RFC 8446 §5.4: at most 2^14 + 1 bytes of inner plaintext (content, type,
// padding). A longer record is refused, by a small read and within a batch.
TEST(TlsRecord, ARecordOverTheSizeLimitIsRefused) {
  const std::vector<uint8_t> data = testing::RandomBytes(3 * TlsRecordCipher::kMaxPlain, 5);
  for (size_t pad : {size_t{0}, size_t{1}}) {
    auto tx = Cipher();
    std::vector<uint8_t> wire;
    for (size_t at = 0; at < data.size(); at += TlsRecordCipher::kMaxPlain) {
      iovec v{const_cast<uint8_t*>(data.data() + at), TlsRecordCipher::kMaxPlain};
      const size_t off = wire.size();
      const size_t p = at == TlsRecordCipher::kMaxPlain ? pad : 0;  // the middle record
      wire.resize(off + TlsRecordCipher::SealedSize(TlsRecordCipher::kMaxPlain, p));
      ASSERT_TRUE(tx->Seal(0, tx->Reserve(1), std::span(&v, 1), TlsRecordCipher::kMaxPlain, wire.data() + off, p));
    }
    for (const std::vector<size_t>& rp : {std::vector<size_t>{data.size()}, {1000}}) {
      std::vector<uint8_t> out;
      Status st = Open(wire, data.size(), rp, out);
      if (pad == 0) {
        EXPECT_TRUE(st.ok()) << st.ToString();
        EXPECT_TRUE(out == data);
      } else {
        EXPECT_EQ(st.code(), Code::kProtocol) << st.ToString();
        EXPECT_NE(st.message().find("malformed record header"), std::string::npos) << st.ToString();
      }
    }
  }
}

}  // namespace
}  // namespace xm
