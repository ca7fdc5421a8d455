// Peer authentication with a pre-shared key: HMAC-SHA256 challenge/response over
// both sides' random nonces (PROTOCOL.md §3). Keeps strangers from pushing memory
// into a guest or impersonating a destination. It authenticates; it does not encrypt.
#pragma once

#include <string>
#include <vector>

#include "base/status.h"
#include "transport/messages.h"

namespace xm {

// Reads a key file: its bytes, surrounding whitespace trimmed; at least 16 bytes.
Result<std::vector<uint8_t>> LoadKeyFile(const std::string& path);

Nonce RandomNonce();
uint64_t RandomU64();

Mac AuthMac(std::span<const uint8_t> key, Role sender, uint64_t session_id, const Nonce& source_nonce,
            const Nonce& destination_nonce);
Mac JoinMac(std::span<const uint8_t> key, uint64_t session_id, uint32_t stream_index, const Nonce& source_nonce,
            const Nonce& destination_nonce);

// Constant-time comparison.
bool MacEqual(const Mac& a, const Mac& b);

}  // namespace xm
