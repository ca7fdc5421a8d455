// libFuzzer target: the security layer's receiving side (tests/fuzz/secure_input.h).
// Beyond "no crash": MAC frames or TLS records that were not sealed with the key
// never reach the xmotion records (every error is a protocol error or an orderly
// end); a plaintext stream sent through the MAC or TLS records reads back record
// for record as it does without them; a TLS receiver fed arbitrary bytes never
// completes a handshake.
#include <cstdlib>

#include "tests/fuzz/memory_stream.h"
#include "tests/fuzz/secure_input.h"
#include "transport/record.h"
#include "transport/secure.h"

namespace {

using namespace xm;

// Reads records until an error; returns it and the records read.
Status ReadAll(Stream& s, std::vector<Record>& out) {
  for (int i = 0; i < 256; ++i) {
    Record rec;
    Status st = ReadRecord(s, rec, 64 * 1024);
    if (!st.ok()) return st;
    out.push_back(std::move(rec));
  }
  return {};
}

void CheckError(const Status& st) {
  if (st.ok()) return;
  if (st.code() != Code::kProtocol && st.code() != Code::kAborted) std::abort();
  if (st.message().empty()) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace xm::testing;
  if (size < 1) return 0;
  std::span<const uint8_t> in(data + 1, size - 1);
  // The same records must come out of `secured` as out of the plaintext itself.
  auto same_as_plain = [&](Stream& secured) {
    MemoryStream plain(in);
    std::vector<Record> through, direct;
    Status a = ReadAll(secured, through), b = ReadAll(plain, direct);
    CheckError(a);
    if (a.code() != b.code() || through.size() != direct.size()) std::abort();
    for (size_t i = 0; i < through.size(); ++i)
      if (through[i].type != direct[i].type || through[i].body != direct[i].body) std::abort();
  };
  std::vector<Record> recs;
  switch (data[0] % kSecureModes) {
    case kSecureMacWire: {
      auto s = MacStream::Create(std::make_unique<MemoryStream>(in), kFuzzMacKey, kFuzzMacKey);
      if (!s.ok()) std::abort();
      CheckError(ReadAll(**s, recs));
      return 0;
    }
    case kSecureMacPlain: {
      std::vector<uint8_t> wire = MacWire(in);
      auto s = MacStream::Create(std::make_unique<MemoryStream>(wire), kFuzzMacKey, kFuzzMacKey);
      if (!s.ok()) std::abort();
      same_as_plain(**s);
      return 0;
    }
    case kSecureTlsWire: {
      auto s = FuzzTlsRecords(std::make_unique<MemoryStream>(in));
      if (!s) std::abort();
      CheckError(ReadAll(*s, recs));
      return 0;
    }
    case kSecureTlsPlain: {
      // Odd selector values: records sized and padded as another peer might.
      std::vector<uint8_t> wire = (data[0] / kSecureModes) % 2 ? TlsPaddedWire(in, data[0]) : TlsWire(in);
      auto s = FuzzTlsRecords(std::make_unique<MemoryStream>(wire));
      if (!s) std::abort();
      same_as_plain(*s);
      return 0;
    }
    default: {
      SecurityOptions o;
      o.psk.assign(32, 7);
      o.handshake_timeout_ms = 0;
      auto ctx = SecureContext::Create(o, Role::kDestination);
      if (!ctx.ok()) std::abort();
      auto s = (*ctx)->Secure(std::make_unique<MemoryStream>(in));
      if (s.ok()) std::abort();  // no handshake completes without the key
      if (s.status().message().empty()) std::abort();
      return 0;
    }
  }
}
