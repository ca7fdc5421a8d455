#include "transport/tls_record.h"

#include <openssl/crypto.h>
#include <openssl/kdf.h>
#if XM_HAVE_IPSEC_MB
#include <intel-ipsec-mb.h>
#endif

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <string_view>
#include <atomic>
#include <condition_variable>
#include <cstring>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

namespace xm {

namespace {

constexpr uint8_t kApplicationData = 23, kAlert = 21;
constexpr size_t kHeader = TlsRecordCipher::kHeader;
// RFC 8446 §5.4: the inner plaintext (content, type, padding) is at most
// 2^14 + 1 bytes, so an AES-GCM record body at most that and its tag; a longer
// one is refused (record_overflow), which also bounds what a batch reads.
constexpr size_t kMaxCipher = TlsRecordCipher::kMaxPlain + 1 + TlsRecordCipher::kTag;
constexpr size_t kFlushBytes = 1 << 20;    // sealed bytes gathered before one send below
constexpr size_t kBatchRecords = 64;       // records read before opening them (1 MiB)
constexpr size_t kParallelMin = 2 * TlsRecordCipher::kMaxPlain;  // a Recv this large opens in batches

// A record header's body length, or 0 for a header that is not an
// application-data TLS 1.3 record of a size RFC 8446 allows (§5.1, §5.4).
size_t SealedLength(const uint8_t* h) {
  const size_t len = (size_t{h[3]} << 8) | h[4];
  const bool ok = h[0] == kApplicationData && h[1] == 3 && h[2] == 3 && len <= kMaxCipher && len >= TlsRecordCipher::kTag + 1;
  return ok ? len : 0;
}

// HKDF-Expand-Label (RFC 8446 §7.1) with an empty context.
bool ExpandLabel(std::span<const uint8_t> secret, const EVP_MD* md, const char* label, uint8_t* out, size_t len) {
  std::string full = std::string("tls13 ") + label;
  std::vector<uint8_t> info = {static_cast<uint8_t>(len >> 8), static_cast<uint8_t>(len),
                               static_cast<uint8_t>(full.size())};
  info.insert(info.end(), full.begin(), full.end());
  info.push_back(0);
  EVP_PKEY_CTX* p = EVP_PKEY_CTX_new_id(EVP_PKEY_HKDF, nullptr);
  bool ok = p && EVP_PKEY_derive_init(p) > 0 && EVP_PKEY_CTX_set_hkdf_mode(p, EVP_PKEY_HKDEF_MODE_EXPAND_ONLY) > 0 &&
            EVP_PKEY_CTX_set_hkdf_md(p, md) > 0 &&
            EVP_PKEY_CTX_set1_hkdf_key(p, secret.data(), static_cast<int>(secret.size())) > 0 &&
            EVP_PKEY_CTX_add1_hkdf_info(p, info.data(), static_cast<int>(info.size())) > 0 &&
            EVP_PKEY_derive(p, out, &len) > 0;
  EVP_PKEY_CTX_free(p);
  return ok;
}

}  // namespace

// Runs fn(lane, i) for every i < n on the calling thread (lane 0) and one
// helper thread (lane 1), and returns when all are done. Jobs are claimed one
// by one, so a helper the scheduler keeps waiting costs nothing: the caller
// then does them all. Work generations are numbered so that a helper waking
// late never claims a job of the next Run.
//
// Thread-safety: Run from one thread at a time.
class CryptoLanes {
 public:
  using Fn = std::function<void(int lane, size_t i)>;
  CryptoLanes() : thread_([this] { Loop(); }) {}
  ~CryptoLanes() {
    {
      std::lock_guard l(mu_);
      stop_ = true;
    }
    wake_.notify_one();
    thread_.join();
  }

  void Run(size_t n, const Fn& fn) {
    uint32_t gen;
    {
      std::lock_guard l(mu_);
      gen = ++gen_;
      fn_ = &fn;
      n_ = n;
      done_.store(0);
      work_.store(uint64_t{gen} << 32);
    }
    wake_.notify_one();
    Work(gen, n, fn, 0);
    std::unique_lock l(mu_);
    finished_.wait(l, [&] { return done_.load() == n; });
  }

 private:
  void Work(uint32_t gen, size_t n, const Fn& fn, int lane) {
    for (uint64_t v = work_.load();;) {
      if (v >> 32 != gen || (v & 0xffffffffu) >= n) return;
      if (!work_.compare_exchange_weak(v, v + 1)) continue;
      fn(lane, v & 0xffffffffu);
      if (done_.fetch_add(1) + 1 == n) {
        std::lock_guard l(mu_);
        finished_.notify_one();
      }
      v = work_.load();
    }
  }

  void Loop() {
    uint32_t seen = 0;
    std::unique_lock l(mu_);
    for (;;) {
      wake_.wait(l, [&] { return stop_ || gen_ != seen; });
      if (stop_) return;
      seen = gen_;
      const Fn* fn = fn_;
      const size_t n = n_;
      l.unlock();
      Work(seen, n, *fn, 1);
      l.lock();
    }
  }

  std::mutex mu_;
  std::condition_variable wake_, finished_;
  uint32_t gen_ = 0;
  const Fn* fn_ = nullptr;
  size_t n_ = 0;
  bool stop_ = false;
  std::atomic<uint64_t> work_{0};  // generation << 32 | next job
  std::atomic<size_t> done_{0};
  std::thread thread_;
};

#if XM_HAVE_IPSEC_MB
namespace {

// intel-ipsec-mb's manager, set up once per process: its direct GCM functions
// keep no state in it (the per-record context is ours), so every lane of
// every stream shares it. Null where it would not beat OpenSSL (no AES-NI or
// AVX: its SSE code is no faster) or XMOTION_GCM=openssl.
struct Ipsec {
  IMB_MGR* mgr = nullptr;
  std::string name;
  Ipsec() {
    const char* env = std::getenv("XMOTION_GCM");
    if (env && std::string_view(env) == "openssl") return;
    IMB_MGR* m = alloc_mb_mgr(0);
    if (!m) return;
    IMB_ARCH arch = IMB_ARCH_NONE;
    init_mb_mgr_auto(m, &arch);
    if (imb_get_errno(m) != 0 || arch < IMB_ARCH_AVX) {
      free_mb_mgr(m);
      return;
    }
    mgr = m;
    name = std::string("intel-ipsec-mb ") + imb_get_version_str() + " (" +
           (arch == IMB_ARCH_AVX512 ? "AVX-512" : arch == IMB_ARCH_AVX2 ? "AVX2" : "AVX") +
           ((m->features & IMB_FEATURE_VAES) && arch == IMB_ARCH_AVX512 ? ", VAES" : "") + ")";
  }
};

const Ipsec& IpsecMb() {
  static const Ipsec ipsec;
  return ipsec;
}

}  // namespace

struct TlsRecordCipher::FastKey {
  alignas(64) gcm_key_data key;
  bool aes256 = false;
  ~FastKey() { OPENSSL_cleanse(&key, sizeof key); }
};

namespace {

// One record's AES-GCM through intel-ipsec-mb, the key size's functions picked
// once: starts with the nonce and the record header as associated data; Seal
// and Open each use one direction. The per-record context is wiped at the end.
class ImbRecord {
 public:
  ImbRecord(const gcm_key_data& key, bool aes256, const uint8_t* nonce, const uint8_t* header)
      : m_(IpsecMb().mgr), k_(&key), b_(aes256) {
    if (b_)
      IMB_AES256_GCM_INIT(m_, k_, &c_, nonce, header, kHeader);
    else
      IMB_AES128_GCM_INIT(m_, k_, &c_, nonce, header, kHeader);
  }
  ~ImbRecord() { OPENSSL_cleanse(&c_, sizeof c_); }
  ImbRecord(const ImbRecord&) = delete;
  ImbRecord& operator=(const ImbRecord&) = delete;
  void Encrypt(uint8_t* out, const uint8_t* in, uint64_t n) {
    if (b_)
      IMB_AES256_GCM_ENC_UPDATE(m_, k_, &c_, out, in, n);
    else
      IMB_AES128_GCM_ENC_UPDATE(m_, k_, &c_, out, in, n);
  }
  void Decrypt(uint8_t* out, const uint8_t* in, uint64_t n) {
    if (b_)
      IMB_AES256_GCM_DEC_UPDATE(m_, k_, &c_, out, in, n);
    else
      IMB_AES128_GCM_DEC_UPDATE(m_, k_, &c_, out, in, n);
  }
  void EncryptTag(uint8_t* tag) {
    if (b_)
      IMB_AES256_GCM_ENC_FINALIZE(m_, k_, &c_, tag, TlsRecordCipher::kTag);
    else
      IMB_AES128_GCM_ENC_FINALIZE(m_, k_, &c_, tag, TlsRecordCipher::kTag);
  }
  void DecryptTag(uint8_t* tag) {
    if (b_)
      IMB_AES256_GCM_DEC_FINALIZE(m_, k_, &c_, tag, TlsRecordCipher::kTag);
    else
      IMB_AES128_GCM_DEC_FINALIZE(m_, k_, &c_, tag, TlsRecordCipher::kTag);
  }

 private:
  IMB_MGR* m_;
  const gcm_key_data* k_;
  bool b_;
  gcm_context_data c_;
};

}  // namespace
#else
struct TlsRecordCipher::FastKey {};
#endif

std::string TlsRecordCipher::Implementation() {
#if XM_HAVE_IPSEC_MB
  if (IpsecMb().mgr) return IpsecMb().name;
#endif
  return OpenSslImplementation();
}

std::string TlsRecordCipher::OpenSslImplementation() {
  return std::string("OpenSSL ") + OpenSSL_version(OPENSSL_VERSION_STRING) + " EVP";
}

TlsRecordCipher::TlsRecordCipher() = default;

TlsRecordCipher::~TlsRecordCipher() {
  for (EVP_CIPHER_CTX* c : ctx_) EVP_CIPHER_CTX_free(c);
  OPENSSL_cleanse(key_, sizeof key_);
  OPENSSL_cleanse(iv_, sizeof iv_);
}

Status TlsRecordCipher::Init(std::span<const uint8_t> secret, bool sha384, uint64_t seq) {
  key_len_ = sha384 ? 32 : 16;
  const EVP_MD* md = sha384 ? EVP_sha384() : EVP_sha256();
  bool ok = ExpandLabel(secret, md, "key", key_, key_len_) && ExpandLabel(secret, md, "iv", iv_, sizeof iv_);
  for (EVP_CIPHER_CTX*& c : ctx_) {
    c = EVP_CIPHER_CTX_new();
    ok = ok && c && EVP_CipherInit_ex(c, sha384 ? EVP_aes_256_gcm() : EVP_aes_128_gcm(), nullptr, key_, nullptr, -1) == 1;
  }
  if (!ok) return Error(Code::kInternal, "TLS record keys could not be derived");
#if XM_HAVE_IPSEC_MB
  if (IMB_MGR* m = IpsecMb().mgr) {
    fast_ = std::make_unique<FastKey>();
    fast_->aes256 = sha384;
    if (sha384)
      IMB_AES256_GCM_PRE(m, key_, &fast_->key);
    else
      IMB_AES128_GCM_PRE(m, key_, &fast_->key);
  }
#endif
  seq_ = seq;
  return {};
}

namespace {

void Nonce(const uint8_t iv[12], uint64_t seq, uint8_t out[12]) {
  std::memcpy(out, iv, 12);
  for (int i = 0; i < 8; ++i) out[11 - i] ^= static_cast<uint8_t>(seq >> (8 * i));
}

}  // namespace

bool TlsRecordCipher::Seal(int lane, uint64_t seq, std::span<const iovec> plain, size_t plain_len, uint8_t* h,
                           size_t pad) {
  EVP_CIPHER_CTX* ctx = ctx_[lane];
  const size_t body = plain_len + 1 + pad + kTag;  // inner content type, padding, tag
  h[0] = kApplicationData, h[1] = 3, h[2] = 3, h[3] = static_cast<uint8_t>(body >> 8), h[4] = static_cast<uint8_t>(body);
  uint8_t nonce[12];
  Nonce(iv_, seq, nonce);
#if XM_HAVE_IPSEC_MB
  if (fast_) {
    ImbRecord r(fast_->key, fast_->aes256, nonce, h);
    uint8_t* p = h + kHeader;
    for (const iovec& v : plain) {
      if (v.iov_len == 0) continue;
      r.Encrypt(p, static_cast<const uint8_t*>(v.iov_base), v.iov_len);
      p += v.iov_len;
    }
    const uint8_t type = kApplicationData;
    r.Encrypt(p++, &type, 1);
    static constexpr uint8_t kZeros[256] = {};
    for (size_t left = pad; left > 0;) {
      const size_t n = std::min(left, sizeof kZeros);
      r.Encrypt(p, kZeros, n);
      p += n, left -= n;
    }
    r.EncryptTag(p);
    return true;
  }
#endif
  int n = 0;
  uint8_t* p = h + kHeader;
  if (EVP_EncryptInit_ex(ctx, nullptr, nullptr, nullptr, nonce) != 1 ||
      EVP_EncryptUpdate(ctx, nullptr, &n, h, kHeader) != 1)
    return false;
  for (const iovec& v : plain) {
    if (EVP_EncryptUpdate(ctx, p, &n, static_cast<const uint8_t*>(v.iov_base), static_cast<int>(v.iov_len)) != 1)
      return false;
    p += n;
  }
  const uint8_t type = kApplicationData;
  if (EVP_EncryptUpdate(ctx, p, &n, &type, 1) != 1) return false;
  p += n;
  for (size_t i = 0; i < pad; ++i) {
    const uint8_t zero = 0;
    if (EVP_EncryptUpdate(ctx, p, &n, &zero, 1) != 1) return false;
    p += n;
  }
  if (EVP_EncryptFinal_ex(ctx, p, &n) != 1) return false;
  p += n;
  return EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, kTag, p) == 1;
}

bool TlsRecordCipher::Open(int lane, uint64_t seq, const uint8_t* header, std::span<const uint8_t> body,
                           uint8_t* plain, uint8_t* last) {
  if (body.size() < kTag + 1) return false;
  EVP_CIPHER_CTX* ctx = ctx_[lane];
  uint8_t nonce[12];
  Nonce(iv_, seq, nonce);
  const size_t clen = body.size() - kTag;
#if XM_HAVE_IPSEC_MB
  if (fast_) {
    uint8_t t = 0, tag[kTag];
    {
      ImbRecord r(fast_->key, fast_->aes256, nonce, header);
      if (clen > 1) r.Decrypt(plain, body.data(), clen - 1);
      r.Decrypt(&t, body.data() + clen - 1, 1);
      r.DecryptTag(tag);
    }
    // (The plaintext, clen - 1 bytes, never reaches the tag, in place or not.)
    if (CRYPTO_memcmp(tag, body.data() + clen, kTag) != 0) return false;
    *last = t;
    return true;
  }
#endif
  int n = 0, fin = 0;
  uint8_t t = 0, rest[16];
  if (EVP_DecryptInit_ex(ctx, nullptr, nullptr, nullptr, nonce) != 1 ||
      EVP_DecryptUpdate(ctx, nullptr, &n, header, kHeader) != 1)
    return false;
  if (clen > 1 && EVP_DecryptUpdate(ctx, plain, &n, body.data(), static_cast<int>(clen - 1)) != 1) return false;
  // The tag is read through a const pointer: nothing written lands on it.
  if (EVP_DecryptUpdate(ctx, &t, &n, body.data() + clen - 1, 1) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, kTag, const_cast<uint8_t*>(body.data() + clen)) != 1 ||
      EVP_DecryptFinal_ex(ctx, rest, &fin) != 1)
    return false;
  *last = t;
  return true;
}

TlsRecordStream::TlsRecordStream(std::unique_ptr<Stream> inner, std::unique_ptr<TlsRecordCipher> tx,
                                 std::unique_ptr<TlsRecordCipher> rx)
    : inner_(std::move(inner)), tx_(std::move(tx)), rx_(std::move(rx)) {}

TlsRecordStream::~TlsRecordStream() = default;

Status TlsRecordStream::Send(std::span<const iovec> iov) {
  if (!tx_) return inner_->Send(iov);  // kernel TLS seals
  size_t vi = 0, off = 0;
  for (;;) {
    // The records of one send: up to kFlushBytes sealed, cut at kMaxPlain.
    pieces_.clear();
    plain_.clear();
    size_t out_len = 0;
    while (out_len < kFlushBytes) {
      Plain r{pieces_.size(), 0, 0, out_len};
      while (vi < iov.size() && r.len < TlsRecordCipher::kMaxPlain) {
        if (off == iov[vi].iov_len) {
          ++vi, off = 0;
          continue;
        }
        size_t n = std::min(iov[vi].iov_len - off, TlsRecordCipher::kMaxPlain - r.len);
        pieces_.push_back({static_cast<uint8_t*>(iov[vi].iov_base) + off, n});
        off += n, r.len += n;
      }
      if (r.len == 0) break;
      r.count = pieces_.size() - r.first;
      out_len += TlsRecordCipher::SealedSize(r.len);
      plain_.push_back(r);
    }
    if (plain_.empty()) return {};
    if (out_cap_ < out_len) {
      out_cap_ = std::max(out_len, kFlushBytes + kMaxCipher);
      out_.reset(new uint8_t[out_cap_]);
    }
    const uint64_t first = tx_->Reserve(plain_.size());
    std::atomic<bool> failed{false};
    const CryptoLanes::Fn seal = [&](int lane, size_t i) {
      const Plain& r = plain_[i];
      if (!tx_->Seal(lane, first + i, std::span(pieces_).subspan(r.first, r.count), r.len, out_.get() + r.out))
        failed.store(true);
    };
    if (plain_.size() == 1) {
      seal(0, 0);
    } else {
      if (!tx_lanes_) tx_lanes_ = std::make_unique<CryptoLanes>();
      tx_lanes_->Run(plain_.size(), seal);
    }
    if (failed.load()) return Error(Code::kInternal, "TLS: sealing a record failed");
    XM_TRY(inner_->Send(out_.get(), out_len));
  }
}

Status TlsRecordStream::Rejected(const std::string& why) const {
  return Error(Code::kProtocol, "TLS record from " + inner_->peer() + " rejected: " + why +
                                    " (the stream was altered, cut, replayed or reordered on the way)");
}

uint8_t TlsRecordStream::InnerType(const uint8_t* plain, size_t n, uint8_t last, size_t* content) {
  // Padding zeros, then the real content type (RFC 8446 §5.4).
  if (last != 0) {
    *content = n;
    return last;
  }
  while (n > 0 && plain[n - 1] == 0) --n;
  if (n == 0) return 0;
  *content = n - 1;
  return plain[n - 1];
}

Status TlsRecordStream::NotData(uint8_t type, const uint8_t* content, size_t len, size_t got, size_t want) {
  if (type == 0) return Rejected("no content type (all padding)");
  if (type == kAlert && len == 2 && content[1] == 0) return ClosedByPeer(inner_->peer(), got, want);  // close_notify
  if (type == kAlert) return Rejected("the peer sent TLS alert " + std::to_string(len == 2 ? content[1] : 0));
  return Rejected("unexpected content type " + std::to_string(type));
}

Status TlsRecordStream::ReadSealed(uint8_t* h, size_t& len, size_t got, size_t want) {
  Status st = inner_->Recv(std::as_writable_bytes(std::span(h, kHeader)));
  if (!st.ok()) {
    if (st.code() == Code::kAborted && got > 0) return ClosedByPeer(inner_->peer(), got, want);
    return st;
  }
  if ((len = SealedLength(h)) == 0) return Rejected("malformed record header");
  if (arena_.size() < len) arena_.resize(len);
  st = inner_->Recv(std::as_writable_bytes(std::span(arena_.data(), len)));
  if (!st.ok()) return st.code() == Code::kAborted ? Rejected("record cut short") : st;
  return {};
}

Status TlsRecordStream::NextRecord(size_t got, size_t want) {
  uint8_t h[kHeader];
  size_t len = 0;
  XM_TRY(ReadSealed(h, len, got, want));
  if (in_.size() < kMaxCipher) in_.resize(kMaxCipher);
  uint8_t last = 0;
  size_t plain = 0;
  if (!rx_->Open(0, rx_->Reserve(1), h, std::span(arena_.data(), len), in_.data(), &last))
    return Rejected("decryption failed or bad record MAC");
  const uint8_t type = InnerType(in_.data(), len - TlsRecordCipher::kTag - 1, last, &plain);
  if (type != kApplicationData) return NotData(type, in_.data(), plain, got, want);
  pos_ = 0;
  end_ = plain;
  return {};
}

Status TlsRecordStream::RecvBatch(std::span<std::byte> buf, size_t& got) {
  // The peer must send at least this many bytes before the caller's buffer
  // (or a batch of it) is full: every record carries at most kMaxPlain bytes
  // of content at no less than kMinOverhead. So that much is read in one go,
  // large enough for the transport to read it straight into arena_ (no pass
  // through its read-ahead buffer), then cut into records; only the last
  // record's rest is read after it. Nothing is read past a record the caller
  // does not need, so no read waits for bytes the peer has no reason to send.
  constexpr size_t kMinOverhead = kHeader + 1 + TlsRecordCipher::kTag;
  uint8_t* const dst = reinterpret_cast<uint8_t*>(buf.data());
  const size_t left = buf.size() - got;
  const size_t records = std::min(kBatchRecords, (left + TlsRecordCipher::kMaxPlain - 1) / TlsRecordCipher::kMaxPlain);
  const size_t first_read = std::min(left, records * TlsRecordCipher::kMaxPlain) + records * kMinOverhead;
  const size_t most_bytes = first_read + kHeader + kMaxCipher;
  if (arena_.size() < most_bytes) arena_.resize(most_bytes);
  sealed_.clear();
  size_t have = 0, at = 0, spec = 0;
  bool tail = false;
  // A first read that fails part-way (the peer stalled, say, because a record
  // was deleted on the way) still has its whole records checked: they tell a
  // tampered stream from a slow one.
  Status stalled = inner_->RecvCounted(std::as_writable_bytes(std::span(arena_.data(), first_read)), &have);
  if (!stalled.ok() && have == 0) {
    if (stalled.code() == Code::kAborted && got > 0) return ClosedByPeer(inner_->peer(), got, buf.size());
    return stalled;
  }
  // Reads up to arena_[until) (the rest of a header or of a record's body).
  auto read_to = [&](size_t until) -> Status {
    if (until <= have) return {};
    Status st = stalled;
    if (st.ok()) st = inner_->Recv(std::as_writable_bytes(std::span(arena_.data() + have, until - have)));
    if (st.ok()) {
      have = until;
      return {};
    }
    // The peer's close between records, or within one (the transport's own
    // words): a broken connection, which a migration may resume. (As in
    // ReadSealed: no byte of a body at all is a cut record.)
    const bool closed = st.code() == Code::kAborted || IsClosedByPeer(st);
    if (closed && at == have) return ClosedByPeer(inner_->peer(), got + spec, buf.size());
    return st.code() == Code::kAborted ? Rejected("record cut short") : st;
  };
  Status read_error;
  // Past kBatchRecords only while bytes already read remain (records shorter
  // than kMaxPlain): those belong to this batch.
  while (spec < left && (sealed_.size() < kBatchRecords || at < have)) {
    if (read_error = read_to(at + kHeader); !read_error.ok()) break;
    Sealed r{};
    std::memcpy(r.header, arena_.data() + at, kHeader);
    if ((r.len = SealedLength(r.header)) == 0) {
      read_error = Rejected("malformed record header");
      break;
    }
    if (read_error = read_to(at + kHeader + r.len); !read_error.ok()) break;
    r.at = at + kHeader;
    r.dest = got + spec;
    at += kHeader + r.len;
    const size_t most = r.len - TlsRecordCipher::kTag - 1;  // its content, if unpadded
    sealed_.push_back(r);
    if (most > left - spec) {  // overflows the caller's buffer: opened into in_
      tail = true;
      break;
    }
    spec += most;
  }
  // Every byte read belongs to a record cut above (the first read is no more
  // than the records it takes to fill the caller's buffer hold).
  if (read_error.ok() && stalled.ok() && have != at)
    return Error(Code::kInternal, "TLS record batch read past its records");
  const size_t jobs = sealed_.size() - (tail ? 1 : 0);
  const uint64_t first = rx_->Reserve(sealed_.size());
  const CryptoLanes::Fn open = [&](int lane, size_t i) {
    Sealed& r = sealed_[i];
    r.ok = rx_->Open(lane, first + i, r.header, std::span(arena_.data() + r.at, r.len), dst + r.dest, &r.last);
  };
  if (jobs == 1) {
    open(0, 0);
  } else if (jobs > 1) {
    if (!rx_lanes_) rx_lanes_ = std::make_unique<CryptoLanes>();
    rx_lanes_->Run(jobs, open);
  }
  // In order: the first bad record ends the stream; padding (legal, never
  // sent by xmotion) moves the contents behind it down.
  for (size_t i = 0; i < jobs; ++i) {
    const Sealed& r = sealed_[i];
    if (!r.ok) return Rejected("decryption failed or bad record MAC");
    size_t plain = 0;
    const uint8_t type = InnerType(dst + r.dest, r.len - TlsRecordCipher::kTag - 1, r.last, &plain);
    if (type != kApplicationData) return NotData(type, dst + r.dest, plain, got, buf.size());
    if (r.dest != got) std::memmove(dst + got, dst + r.dest, plain);
    got += plain;
  }
  if (tail) {
    const Sealed& r = sealed_.back();
    if (in_.size() < kMaxCipher) in_.resize(kMaxCipher);
    uint8_t last = 0;
    size_t plain = 0;
    if (!rx_->Open(0, first + jobs, r.header, std::span(arena_.data() + r.at, r.len), in_.data(), &last))
      return Rejected("decryption failed or bad record MAC");
    const uint8_t type = InnerType(in_.data(), r.len - TlsRecordCipher::kTag - 1, last, &plain);
    if (type != kApplicationData) return NotData(type, in_.data(), plain, got, buf.size());
    pos_ = 0;
    end_ = plain;
  }
  return read_error;
}

Status TlsRecordStream::Fill(std::span<std::byte> buf, size_t& got) {
  while (got < buf.size()) {
    if (pos_ < end_) {
      size_t n = std::min(buf.size() - got, end_ - pos_);
      std::memcpy(buf.data() + got, in_.data() + pos_, n);
      pos_ += n, got += n;
    } else if (buf.size() - got >= kParallelMin) {
      XM_TRY(RecvBatch(buf, got));
    } else {
      XM_TRY(NextRecord(got, buf.size()));
    }
  }
  return {};
}

Status TlsRecordStream::KernelRecv(std::span<std::byte> buf) {
  Status st = inner_->Recv(buf);
  if (st.ok() || st.code() != Code::kIo) return st;
  // The kernel's verdicts on a record arrive as the recv's errno (the
  // transports name it with strerror): EBADMSG a record that failed
  // authentication, EMSGSIZE one too large, EIO one that is not application
  // data (an alert, close_notify included: without a control-message buffer,
  // which io_uring's recv does not give, the kernel refuses to hand it over;
  // xmotion peers never send one, they close the connection).
  for (int e : {EBADMSG, EMSGSIZE, EIO, EINVAL})
    if (st.message().ends_with(std::strerror(e)))
      return Rejected(std::string("kernel TLS refused it (") + std::strerror(e) + ")");
  return st;
}

Status TlsRecordStream::Recv(std::span<std::byte> buf) {
  XM_TRY(rx_failed_);
  if (!rx_) {
    if (Status st = KernelRecv(buf); !st.ok()) {
      rx_failed_ = st;
      return st;
    }
    return {};
  }
  size_t got = 0;
  if (Status st = Fill(buf, got); !st.ok()) {
    pos_ = end_ = 0;
    rx_failed_ = st;
    return st;
  }
  return {};
}

}  // namespace xm
