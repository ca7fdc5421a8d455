#include "migrate/cli/emu_offer.h"

#include <poll.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <vector>

#include "dirtylog/xen/stream/byte_io.h"
#include "dirtylog/xen/stream/le.h"
#include "dirtylog/xen/stream/records.h"
#include "migrate/common/cancel.h"

namespace xm::emu {
namespace {

using Clock = std::chrono::steady_clock;

// Waits until `fd` is readable: true, false at the deadline; an error if polling fails.
Result<bool> Readable(int fd, Clock::time_point deadline, Canceller* cancel) {
  for (;;) {
    if (cancel && cancel->requested()) return cancel->CancelledStatus();
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) return false;
    pollfd p{fd, POLLIN, 0};
    int n = ::poll(&p, 1, static_cast<int>(std::min<long long>(left, 100)));
    if (n < 0 && errno != EINTR) return ErrnoError("emu-manager: poll -fd", errno);
    if (n > 0) return true;
  }
}

// Reads exactly `len` bytes before `deadline`.
Status ReadExactBy(int fd, void* out, size_t len, Clock::time_point deadline, const char* what) {
  auto* p = static_cast<uint8_t*>(out);
  size_t got = 0;
  while (got < len) {
    XM_ASSIGN_OR_RETURN(bool ready, Readable(fd, deadline, nullptr));
    if (!ready) return Error(Code::kTimeout, std::string("emu-manager: timed out reading ") + what + " on -fd");
    ssize_t n = ::read(fd, p + got, len - got);
    if (n == 0)
      return Error(Code::kIo, std::string("emu-manager: -fd closed after ") + std::to_string(got) + " of " +
                                  std::to_string(len) + " bytes of " + what);
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoError(std::string("emu-manager: read ") + what + " on -fd", errno);
    }
    got += static_cast<size_t>(n);
  }
  return {};
}

}  // namespace

Result<Peer> OfferXmotion(int fd, xen::StreamWriter& w, const xen::XenCpuPolicy* policy, int wait_ms,
                          Canceller* cancel) {
  XM_TRY_CTX(w.Begin(policy), "xen stream");
  std::span<const uint8_t> offer(reinterpret_cast<const uint8_t*>(kOfferBody), sizeof kOfferBody - 1);
  XM_TRY_CTX(w.AddOptionalRecord(kOfferRecord, offer), "xen stream");
  XM_ASSIGN_OR_RETURN(bool answered, Readable(fd, Clock::now() + std::chrono::milliseconds(wait_ms), cancel));
  if (!answered) return Peer::kStock;
  char answer[sizeof kAcceptBody - 1];
  XM_TRY(ReadExactBy(fd, answer, sizeof answer, Clock::now() + std::chrono::seconds(10), "the restore's answer"));
  if (std::memcmp(answer, kAcceptBody, sizeof answer) != 0)
    return Error(Code::kProtocol, "emu-manager: the restore answered xmotion's offer with bytes that are not "
                                  "xmotion's acceptance: not a peer this save knows");
  return Peer::kXmotion;
}

Status AcceptXmotionOffer(int fd, int timeout_ms) {
  const auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  uint8_t head[xen::kImageHeaderSize + xen::kDomainHeaderSize];
  XM_TRY(ReadExactBy(fd, head, sizeof head, deadline, "Xen's image and domain headers"));
  const uint32_t version = xen::GetBe32(head + 12);
  const uint32_t type = xen::GetLe32(head + xen::kImageHeaderSize);
  if (version != 2 && version != 3)
    return Error(Code::kUnsupported, "emu-manager: a libxc stream of version " + std::to_string(version));
  if (type != xen::kDomainTypeX86Hvm)
    return Error(Code::kUnsupported, "emu-manager: the source sent a PV guest's libxc stream (domain type " +
                                         std::to_string(type) + "); xmotion restores HVM and PVH guests only");
  // What a save writes before its first page: the policy records, STATIC_DATA_END; then our offer.
  for (int i = 0; i < 8; ++i) {
    uint8_t rh[8];
    XM_TRY(ReadExactBy(fd, rh, sizeof rh, deadline, "a record header"));
    const uint32_t rec = xen::GetLe32(rh), len = xen::GetLe32(rh + 4);
    const bool static_data = rec == static_cast<uint32_t>(xen::LibxcRec::kX86CpuidPolicy) ||
                             rec == static_cast<uint32_t>(xen::LibxcRec::kX86MsrPolicy) ||
                             rec == static_cast<uint32_t>(xen::LibxcRec::kStaticDataEnd);
    if (rec != kOfferRecord && !static_data)
      return Error(Code::kUnsupported,
                   "emu-manager: the source sent Xen's own libxc stream with no xmotion offer (record " +
                       std::string(xen::LibxcRecName(rec)) +
                       " first): a stock emu-manager's save; restore it with the stock emu-manager");
    if (len > (1u << 20)) return Error(Code::kProtocol, "emu-manager: record of " + std::to_string(len) + " bytes");
    std::vector<uint8_t> body((len + 7) & ~7u);
    XM_TRY(ReadExactBy(fd, body.data(), body.size(), deadline, "a record"));
    if (rec != kOfferRecord) continue;  // the policy travels in xmotion's HELLO too
    if (len != sizeof kOfferBody - 1 || std::memcmp(body.data(), kOfferBody, len) != 0)
      return Error(Code::kProtocol, "emu-manager: an xmotion offer of an unknown version");
    return xen::FdSink(fd, "emu-manager: the answer on -fd").Write(kAcceptBody, sizeof kAcceptBody - 1);
  }
  return Error(Code::kProtocol, "emu-manager: no xmotion offer among the stream's first records");
}

}  // namespace xm::emu
