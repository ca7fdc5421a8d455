// The fuzz_secure target's input, shared with the seed writer: a selector byte,
// then bytes that are, by selector % 3, (0) the wire behind a MacStream whose
// keys are these fixed ones, (1) a plaintext record stream the harness itself
// sends through a MacStream (so the record layer behind the MAC is reached), or
// (2) what a TLS client says to a receiver with a pre-shared key. Test-only.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "tests/fuzz/memory_stream.h"
#include "transport/mac_stream.h"

namespace xm::testing {

inline constexpr uint8_t kSecureMacWire = 0, kSecureMacPlain = 1, kSecureTls = 2;
inline const MacKey kFuzzMacKey = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};

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
