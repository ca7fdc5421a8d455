// libFuzzer target: every control-record decoder in transport/messages.h.
//
// First byte picks the decoder, the rest is the body. Beyond "no crash": what a
// decoder accepts must survive a round trip. Where the encoding is canonical the
// re-encoded body must equal the input byte for byte (HELLO: its frozen 76-byte
// prefix, since later versions may append); ABORT, which sanitises, must be a
// fixed point after one decode.
#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "transport/messages.h"

namespace {

using namespace xm;

void Check(bool ok) {
  if (!ok) std::abort();
}

bool Same(const std::vector<uint8_t>& a, std::span<const uint8_t> b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin());
}

template <typename T, typename Enc>
void RoundTrip(const Result<T>& r, Enc encode, std::span<const uint8_t> body) {
  if (!r.ok()) {
    Check(r.status().code() == Code::kProtocol && !r.status().message().empty());
    return;
  }
  Check(Same(encode(r.value()), body));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  std::span<const uint8_t> body(data + 1, size - 1);
  switch (data[0] % 14) {
    case 0: {
      auto r = DecodeHello(body);
      if (r.ok()) {
        std::vector<uint8_t> again = EncodeHello(*r);
        Check(body.size() >= again.size());
        // The last field is reserved: "send 0, ignore on receipt" (PROTOCOL.md), so
        // whatever arrived there re-encodes as 0.
        std::vector<uint8_t> expect(body.begin(), body.begin() + static_cast<std::ptrdiff_t>(again.size()));
        std::fill(expect.end() - 4, expect.end(), uint8_t{0});
        Check(again == expect);
        Check(r->version_min <= r->version_max && r->streams > 0);
      } else {
        Check(r.status().code() == Code::kProtocol);
      }
      break;
    }
    case 1: RoundTrip(DecodeAuth(body), EncodeAuth, body); break;
    case 2: {
      auto r = DecodeShape(body);
      RoundTrip(r, EncodeShape, body);
      if (r.ok()) {
        uint64_t next = 0;
        for (const PfnRange& pr : r->shape.ranges) {
          Check(pr.count > 0 && pr.first >= next && pr.first + pr.count <= r->shape.page_count);
          next = pr.first + pr.count;
        }
      }
      break;
    }
    case 3: RoundTrip(DecodeCpuPolicy(body), EncodeCpuPolicy, body); break;
    case 4: RoundTrip(DecodeJoin(body), EncodeJoin, body); break;
    case 5: RoundTrip(DecodeRoundEnd(body), EncodeRoundEnd, body); break;
    case 6: RoundTrip(DecodeVcpuState(body), EncodeVcpuState, body); break;
    case 7: RoundTrip(DecodeCommit(body), EncodeCommit, body); break;
    case 8: RoundTrip(DecodeReady(body), EncodeReady, body); break;
    case 9: {
      auto r = DecodeAbort(body);
      if (!r.ok()) {
        Check(r.status().code() == Code::kProtocol);
        break;
      }
      Check(r->code != Code::kOk);
      for (char c : r->reason) Check(static_cast<unsigned char>(c) >= 0x20);
      auto again = DecodeAbort(EncodeAbort(*r));
      Check(again.ok() && again->code == r->code && again->reason == r->reason);
      break;
    }
    case 10: {
      Status st = ExpectEmpty("GO", body);
      Check(st.ok() == body.empty());
      break;
    }
    case 11: RoundTrip(DecodeRoundAck(body), EncodeRoundAck, body); break;
    case 12: RoundTrip(DecodeResume(body), EncodeResume, body); break;
    case 13: {
      auto r = DecodeResumeState(body);
      RoundTrip(r, EncodeResumeState, body);
      if (r.ok()) Check(r->applied.size() == r->page_count / 64 + (r->page_count % 64 != 0));
      break;
    }
  }
  return 0;
}
