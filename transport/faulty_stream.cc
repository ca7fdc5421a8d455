#include "transport/faulty_stream.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <thread>
#include <vector>

namespace xm {

FaultyStream::FaultyStream(std::unique_ptr<Stream> inner, StreamFaults faults)
    : inner_(std::move(inner)),
      faults_(faults),
      close_after_(faults.close_after_bytes),
      drop_after_(faults.drop_after_bytes) {}

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
  if (bytes.size() >= 4 && (faults_.close_at_record || faults_.drop_at_record)) {
    uint32_t type;
    std::memcpy(&type, bytes.data(), sizeof type);
    if (type == faults_.close_at_record && close_seen_.fetch_add(1) + 1 == faults_.record_nth) close_after_ = start;
    if (type == faults_.drop_at_record && drop_seen_.fetch_add(1) + 1 == faults_.record_nth) drop_after_ = start;
  }
  const uint64_t close_after = close_after_.load(), drop_after = drop_after_.load();
  if (faults_.corrupt_byte >= start && faults_.corrupt_byte < end)
    bytes[faults_.corrupt_byte - start] ^= std::byte{1};
  uint64_t keep = bytes.size();
  bool close = false;
  if (close_after < end) {
    keep = close_after > start ? close_after - start : 0;
    close = true;
  }
  if (drop_after < end) keep = std::min(keep, drop_after > start ? drop_after - start : 0);
  // Per-send faults: one send thread, so these flags need no lock.
  auto due = [&](uint64_t at, bool& done) {
    if (done || at > start) return false;
    return done = true;
  };
  if (due(faults_.drop_send_at, dropped_)) keep = 0;
  if (due(faults_.inject_at, injected_) && !faults_.inject.empty())
    XM_TRY(inner_->Send(faults_.inject.data(), faults_.inject.size()));
  if (due(faults_.reorder_send_at, reordered_)) {
    held_.assign(bytes.begin(), bytes.begin() + static_cast<long>(keep));
    return {};
  }
  if (keep > 0) XM_TRY(inner_->Send(bytes.data(), keep));
  if (due(faults_.replay_send_at, replayed_) && keep > 0) XM_TRY(inner_->Send(bytes.data(), keep));
  if (!held_.empty()) {
    std::vector<std::byte> late = std::move(held_);
    held_.clear();
    XM_TRY(inner_->Send(late.data(), late.size()));
  }
  if (close) {
    inner_->Shutdown();
    return Error(Code::kIo, "fault injected: stream closed after " + std::to_string(close_after) + " bytes");
  }
  return {};
}

}  // namespace xm
