// How fuzz_receiver turns fuzzer bytes into what a source would send, shared
// with the seed generator so seeds and harness agree.
//
// The input is a list of chunks: u8 type, u8 control, u16 length (LE), then
// `length` body bytes (fewer if the input ends). Each chunk becomes one record
// with a correct header and body hash, so mutations reach the receiver's logic
// instead of dying at the hash check (fuzz_record covers framing itself).
// Control bits: 0 OPTIONAL flag, 1 a reserved flag bit, 2 corrupt the hash.
// An input starting with 0xFF is sent as raw bytes, unframed.
#pragma once

#include <cstdint>
#include <cstring>
#include <span>
#include <vector>

#include "transport/record.h"

namespace xm::testing {

constexpr uint8_t kChunkOptional = 1, kChunkReservedFlag = 2, kChunkBadHash = 4;
constexpr uint8_t kRawInput = 0xFF;

inline void AppendChunk(std::vector<uint8_t>& input, uint32_t type, uint8_t control,
                        std::span<const uint8_t> body) {
  input.push_back(static_cast<uint8_t>(type));
  input.push_back(control);
  uint16_t len = static_cast<uint16_t>(body.size());
  input.push_back(static_cast<uint8_t>(len));
  input.push_back(static_cast<uint8_t>(len >> 8));
  input.insert(input.end(), body.begin(), body.begin() + len);
}

inline std::vector<uint8_t> FrameReceiverInput(std::span<const uint8_t> in) {
  if (!in.empty() && in[0] == kRawInput) return {in.begin() + 1, in.end()};
  std::vector<uint8_t> wire;
  while (in.size() >= 4) {
    uint8_t type = in[0], control = in[1];
    size_t len = in[2] | (size_t{in[3]} << 8);
    in = in.subspan(4);
    len = std::min(len, in.size());
    RecordHeader h;
    h.type = type;
    h.flags = (control & kChunkOptional ? kRecordOptional : 0) | (control & kChunkReservedFlag ? 2u : 0);
    h.length = len;
    h.body_hash = RecordBodyHash(type, in.subspan(0, len)) ^ (control & kChunkBadHash ? 1 : 0);
    const auto* hp = reinterpret_cast<const uint8_t*>(&h);
    wire.insert(wire.end(), hp, hp + sizeof h);
    wire.insert(wire.end(), in.begin(), in.begin() + static_cast<long>(len));
    in = in.subspan(len);
  }
  return wire;
}

}  // namespace xm::testing
