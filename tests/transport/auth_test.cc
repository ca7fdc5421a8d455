// Peer authentication (PROTOCOL.md §3 AUTH, JOIN): MACs bind every input, match
// the documented message layout, and key files are checked.
#include "transport/auth.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "transport/wire.h"

namespace xm {
namespace {

std::vector<uint8_t> Key(std::string_view s) { return {s.begin(), s.end()}; }

Nonce NonceOf(uint8_t seed) {
  Nonce n;
  for (size_t i = 0; i < n.size(); ++i) n[i] = static_cast<uint8_t>(seed * 3 + i);
  return n;
}

struct AuthInputs {
  std::vector<uint8_t> key = Key("0123456789abcdef-secret");
  Role role = Role::kSource;
  uint64_t session = 0x0102030405060708ull;
  Nonce src = NonceOf(1), dst = NonceOf(2);
  Mac Auth() const { return AuthMac(key, role, session, src, dst); }
  Mac Join(uint32_t index) const { return JoinMac(key, session, index, src, dst); }
};

// HMAC-SHA256 computed independently over the layout PROTOCOL.md documents.
Mac ReferenceHmac(std::span<const uint8_t> key, const std::vector<uint8_t>& msg) {
  Mac out{};
  unsigned len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), msg.data(), msg.size(), out.data(), &len);
  EXPECT_EQ(len, 32u);
  return out;
}

TEST(AuthMac, MatchesTheDocumentedLayout) {
  AuthInputs in;
  std::string msg = "xmotion-auth-v1";
  WireWriter w;
  w.PutBytes(msg.data(), msg.size());
  w.Put(uint32_t{1});  // role: source
  w.Put(in.session);
  w.PutBytes(in.src.data(), in.src.size());
  w.PutBytes(in.dst.data(), in.dst.size());
  EXPECT_EQ(in.Auth(), ReferenceHmac(in.key, w.bytes()));
}

TEST(JoinMac, MatchesTheDocumentedLayout) {
  AuthInputs in;
  std::string msg = "xmotion-join-v1";
  WireWriter w;
  w.PutBytes(msg.data(), msg.size());
  w.Put(in.session);
  w.Put(uint32_t{3});
  w.PutBytes(in.src.data(), in.src.size());
  w.PutBytes(in.dst.data(), in.dst.size());
  EXPECT_EQ(in.Join(3), ReferenceHmac(in.key, w.bytes()));
}

TEST(AuthMac, SameInputsSameMac) {
  AuthInputs a, b;
  EXPECT_EQ(a.Auth(), b.Auth());
  EXPECT_EQ(a.Join(1), b.Join(1));
}

TEST(AuthMac, EveryInputMatters) {
  const AuthInputs base;
  const Mac m = base.Auth();
  std::vector<AuthInputs> changed(7, base);
  changed[0].key.back() ^= 1;
  changed[1].key.push_back('x');
  changed[2].role = Role::kDestination;
  changed[3].session ^= 1ull << 63;
  changed[4].src[31] ^= 1;
  changed[5].dst[0] ^= 0x80;
  std::swap(changed[6].src, changed[6].dst);  // which side's nonce is which matters
  for (size_t i = 0; i < changed.size(); ++i) EXPECT_NE(changed[i].Auth(), m) << "change " << i;
}

TEST(JoinMac, EveryInputMatters) {
  const AuthInputs base;
  const Mac m = base.Join(1);
  EXPECT_NE(base.Join(2), m);
  std::vector<AuthInputs> changed(5, base);
  changed[0].key[0] ^= 1;
  changed[1].session += 1;
  changed[2].src[5] ^= 1;
  changed[3].dst[6] ^= 1;
  std::swap(changed[4].src, changed[4].dst);
  for (size_t i = 0; i < changed.size(); ++i) EXPECT_NE(changed[i].Join(1), m) << "change " << i;
}

TEST(AuthMac, AuthAndJoinAreDomainSeparated) {
  AuthInputs in;
  // Role 1 packed as u32 next to the session resembles a JOIN's layout; the labels keep them apart.
  EXPECT_NE(in.Auth(), in.Join(1));
  EXPECT_NE(in.Auth(), in.Join(0));
}

TEST(MacEqual, ComparesAllBytes) {
  Mac a = AuthInputs().Auth();
  Mac b = a;
  EXPECT_TRUE(MacEqual(a, b));
  for (size_t i : {size_t{0}, size_t{15}, size_t{31}}) {
    Mac c = a;
    c[i] ^= 0x01;
    EXPECT_FALSE(MacEqual(a, c)) << i;
  }
  EXPECT_FALSE(MacEqual(a, Mac{}));
}

TEST(Random, NoncesDiffer) {
  // 2^-256 chance of a false failure.
  EXPECT_NE(RandomNonce(), RandomNonce());
  EXPECT_NE(RandomU64(), RandomU64());
}

class KeyFile : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/xm-key-test-XXXXXX";
    int fd = ::mkstemp(tmpl);
    ASSERT_GE(fd, 0);
    ::close(fd);
    path_ = tmpl;
  }
  void TearDown() override { ::unlink(path_.c_str()); }
  void Write(std::string_view bytes) {
    std::ofstream out(path_, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  }
  std::string path_;
};

TEST_F(KeyFile, SixteenBytesIsEnough) {
  Write("0123456789abcdef");
  auto k = LoadKeyFile(path_);
  ASSERT_TRUE(k.ok()) << k.status().ToString();
  EXPECT_EQ(*k, Key("0123456789abcdef"));
}

TEST_F(KeyFile, SurroundingWhitespaceTrimmedInnerKept) {
  Write("  \t0123456789 abcdef\n\n");
  auto k = LoadKeyFile(path_);
  ASSERT_TRUE(k.ok());
  EXPECT_EQ(*k, Key("0123456789 abcdef"));
}

TEST_F(KeyFile, BinaryKey) {
  std::string bin;
  for (int i = 0; i < 32; ++i) bin += static_cast<char>(i * 37 + 1);
  bin[5] = '\0';
  Write(bin);
  auto k = LoadKeyFile(path_);
  ASSERT_TRUE(k.ok());
  EXPECT_EQ(k->size(), 32u);
}

TEST_F(KeyFile, ShortKeyRejected) {
  Write("0123456789abcde");
  auto k = LoadKeyFile(path_);
  ASSERT_FALSE(k.ok());
  EXPECT_EQ(k.status().code(), Code::kInvalidArgument);
  EXPECT_NE(k.status().message().find("at least 16 bytes (got 15)"), std::string::npos) << k.status().message();
  // Whitespace does not count towards the length.
  Write("   0123456789abcde   \n");
  EXPECT_FALSE(LoadKeyFile(path_).ok());
  Write("");
  EXPECT_FALSE(LoadKeyFile(path_).ok());
}

TEST(LoadKeyFile, MissingFileIsIoError) {
  auto k = LoadKeyFile("/nonexistent/xmotion/key");
  ASSERT_FALSE(k.ok());
  EXPECT_EQ(k.status().code(), Code::kIo);
  EXPECT_NE(k.status().message().find("/nonexistent/xmotion/key"), std::string::npos);
}

}  // namespace
}  // namespace xm
