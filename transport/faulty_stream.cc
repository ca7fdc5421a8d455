#include "transport/faulty_stream.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <thread>
#include <vector>

namespace xm {

FaultyStream::FaultyStream(std::unique_ptr<Stream> inner, StreamFaults faults)
    : inner_(std::move(inner)), faults_(faults) {}

Status FaultyStream::Send(std::span<const iovec> iov) {
  if (faults_.delay_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(faults_.delay_ms));
  // Flatten: faults land at byte offsets, whatever the iovec boundaries.
  std::vector<std::byte> bytes;
  for (const iovec& v : iov) {
    const auto* p = static_cast<const std::byte*>(v.iov_base);
    bytes.insert(bytes.end(), p, p + v.iov_len);
  }
  const uint64_t start = sent_.fetch_add(bytes.size());
  const uint64_t end = start + bytes.size();
  if (faults_.corrupt_byte >= start && faults_.corrupt_byte < end)
    bytes[faults_.corrupt_byte - start] ^= std::byte{1};
  uint64_t keep = bytes.size();
  bool close = false;
  if (faults_.close_after_bytes < end) {
    keep = faults_.close_after_bytes > start ? faults_.close_after_bytes - start : 0;
    close = true;
  }
  if (faults_.drop_after_bytes < end) keep = std::min(keep, faults_.drop_after_bytes > start ? faults_.drop_after_bytes - start : 0);
  if (keep > 0) XM_TRY(inner_->Send(bytes.data(), keep));
  if (close) {
    inner_->Shutdown();
    return Error(Code::kIo, "fault injected: stream closed after " + std::to_string(faults_.close_after_bytes) +
                                " bytes");
  }
  return {};
}

}  // namespace xm
