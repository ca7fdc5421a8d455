// The fuzz_secure target's input, shared with the seed writer: a selector byte,
// then bytes that are, by selector % 5, (0) the wire behind a MacStream whose
// keys are these fixed ones, (1) a plaintext record stream the harness itself
// sends through a MacStream (so the record layer behind the MAC is reached),
// (2) what a TLS client says to a receiver with a pre-shared key, (3) the wire
// behind a TlsRecordStream keyed from a fixed traffic secret, (4) a plaintext
// record stream sent through such TLS records (an odd selector / 5: in records
// of varying sizes with padding, as another TLS 1.3 peer may send). Test-only.
#pragma once

#include <algorithm>
#include <cstdint>
#include <memory>
#include <vector>

#include "tests/fuzz/memory_stream.h"
#include "transport/mac_stream.h"
#include "transport/tls_record.h"

namespace xm::testing {

inline constexpr uint8_t kSecureMacWire = 0, kSecureMacPlain = 1, kSecureTls = 2, kSecureTlsWire = 3,
                         kSecureTlsPlain = 4, kSecureModes = 5;
inline const MacKey kFuzzMacKey = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};

// A TlsRecordStream over `inner` whose both directions use one fixed secret.
inline std::unique_ptr<TlsRecordStream> FuzzTlsRecords(std::unique_ptr<Stream> inner) {
  static const std::vector<uint8_t> secret(32, 0x42);
  auto tx = std::make_unique<TlsRecordCipher>(), rx = std::make_unique<TlsRecordCipher>();
  if (!tx->Init(secret, false, 0).ok() || !rx->Init(secret, false, 0).ok()) return nullptr;
  return std::make_unique<TlsRecordStream>(std::move(inner), std::move(tx), std::move(rx));
}

// `plain` sent as TLS records with that secret, in up to three sends.
inline std::vector<uint8_t> TlsWire(std::span<const uint8_t> plain) {
  auto mem = std::make_unique<MemoryStream>(std::span<const uint8_t>());
  MemoryStream* tap = mem.get();
  auto s = FuzzTlsRecords(std::move(mem));
  if (!s) return {};
  const size_t cut[] = {0, plain.size() / 3, plain.size() / 2, plain.size()};
  for (int i = 0; i < 3; ++i)
    if (cut[i + 1] > cut[i]) (void)s->Send(plain.data() + cut[i], cut[i + 1] - cut[i]);
  return tap->sent();
}

// `plain` as TLS records with that secret as another TLS 1.3 peer might seal
// them: record sizes and padding (RFC 8446 §5.4; xmotion never pads) from `seed`.
inline std::vector<uint8_t> TlsPaddedWire(std::span<const uint8_t> plain, uint8_t seed) {
  static const std::vector<uint8_t> secret(32, 0x42);
  TlsRecordCipher tx;
  if (!tx.Init(secret, false, 0).ok()) return {};
  std::vector<uint8_t> wire;
  uint32_t x = seed * 2654435761u + 1;
  for (size_t at = 0; at < plain.size();) {
    x = x * 1103515245u + 12345u;
    const size_t n = std::min<size_t>(1 + (x >> 8) % TlsRecordCipher::kMaxPlain, plain.size() - at);
    // Within RFC 8446's 2^14 + 1 bytes of inner plaintext.
    const size_t pad = (x >> 4) % 4 == 0 ? 0 : std::min<size_t>((x >> 16) % 256, TlsRecordCipher::kMaxPlain - n);
    iovec v{const_cast<uint8_t*>(plain.data() + at), n};
    const size_t off = wire.size();
    wire.resize(off + TlsRecordCipher::SealedSize(n, pad));
    if (!tx.Seal(0, tx.Reserve(1), std::span(&v, 1), n, wire.data() + off, pad)) return {};
    at += n;
  }
  return wire;
}

// `plain` sent through a MacStream with kFuzzMacKey, in up to three sends: the bytes on the wire.
inline std::vector<uint8_t> MacWire(std::span<const uint8_t> plain) {
  auto mem = std::make_unique<MemoryStream>(std::span<const uint8_t>());
  MemoryStream* tap = mem.get();
  auto s = MacStream::Create(std::move(mem), kFuzzMacKey, kFuzzMacKey);
  if (!s.ok()) return {};
  const size_t cut[] = {0, plain.size() / 3, plain.size() / 2, plain.size()};
  for (int i = 0; i < 3; ++i)
    if (cut[i + 1] > cut[i]) (void)(*s)->Send(plain.data() + cut[i], cut[i + 1] - cut[i]);
  return tap->sent();
}

}  // namespace xm::testing
