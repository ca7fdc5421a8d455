#include "transport/auth.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <sys/random.h>

#include <cctype>
#include <cerrno>
#include <fstream>
#include <iterator>

#include "transport/wire.h"

namespace xm {

Result<std::vector<uint8_t>> LoadKeyFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return ErrnoError("key file " + path, errno);
  std::vector<uint8_t> key((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  while (!key.empty() && std::isspace(key.back())) key.pop_back();
  size_t start = 0;
  while (start < key.size() && std::isspace(key[start])) ++start;
  key.erase(key.begin(), key.begin() + static_cast<long>(start));
  if (key.size() < 16)
    return Error(Code::kInvalidArgument, "key file " + path + ": key must be at least 16 bytes (got " +
                                             std::to_string(key.size()) + ")");
  return key;
}

Nonce RandomNonce() {
  Nonce n{};
  size_t got = 0;
  while (got < n.size()) {
    ssize_t r = ::getrandom(n.data() + got, n.size() - got, 0);
    if (r > 0) got += static_cast<size_t>(r);
  }
  return n;
}

uint64_t RandomU64() {
  Nonce n = RandomNonce();
  uint64_t v;
  std::memcpy(&v, n.data(), sizeof v);
  return v;
}

static Mac Hmac(std::span<const uint8_t> key, const std::vector<uint8_t>& msg) {
  Mac out{};
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), msg.data(), msg.size(), out.data(), &len);
  return out;
}

Mac AuthMac(std::span<const uint8_t> key, Role sender, uint64_t session_id, const Nonce& source_nonce,
            const Nonce& destination_nonce) {
  WireWriter w;
  static constexpr char kLabel[] = "xmotion-auth-v1";
  w.PutBytes(kLabel, sizeof kLabel - 1);
  w.Put(static_cast<uint32_t>(sender));
  w.Put(session_id);
  w.PutBytes(source_nonce.data(), source_nonce.size());
  w.PutBytes(destination_nonce.data(), destination_nonce.size());
  return Hmac(key, w.bytes());
}

Mac JoinMac(std::span<const uint8_t> key, uint64_t session_id, uint32_t stream_index, const Nonce& source_nonce,
            const Nonce& destination_nonce) {
  WireWriter w;
  static constexpr char kLabel[] = "xmotion-join-v1";
  w.PutBytes(kLabel, sizeof kLabel - 1);
  w.Put(session_id);
  w.Put(stream_index);
  w.PutBytes(source_nonce.data(), source_nonce.size());
  w.PutBytes(destination_nonce.data(), destination_nonce.size());
  return Hmac(key, w.bytes());
}

bool MacEqual(const Mac& a, const Mac& b) { return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0; }

}  // namespace xm
