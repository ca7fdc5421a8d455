// How an xmotion emu-manager save finds out whether the restore on the other
// host is xmotion's or a stock one (a pool halfway through a rolling upgrade),
// on xenopsd's one stream (-fd), without xenopsd knowing:
//
//   save     writes what any Xen save writes first — the libxc image and
//            domain headers, the CPU policy, STATIC_DATA_END — then one
//            optional record (type bit 31 set: Xen's restore skips it) that
//            offers xmotion, and waits up to `wait_ms` for an answer.
//   restore  an xmotion restore reads exactly those records (nothing more)
//            and answers kAccept on the same socket: both go on with
//            xmotion's protocol (HELLO...). A stock restore (xc_domain_restore)
//            reads on silently: once the wait is over the save goes on writing
//            Xen's own stream (SendXenStream), which the stock restore reads to
//            its END.
// A restore that finds Xen's stream without the offer (a stock save) refuses
// it with an error naming it, as before. The wait costs a migration into a
// stock restore `wait_ms` once; the answer arrives in one round trip otherwise.
// Not thread-safe; blocking, with timeouts.
#pragma once

#include <cstdint>

#include "base/status.h"
#include "dirtylog/xen/stream/cpu_policy.h"
#include "dirtylog/xen/stream/writer.h"

namespace xm {

class Canceller;

namespace emu {

// The offer record's type (optional: bit 31) and bodies, 16 bytes each.
inline constexpr uint32_t kOfferRecord = 0x80786d6fu;  // 0x80000000 | "xmo"
inline constexpr char kOfferBody[] = "xmotion-offer/1\n";
inline constexpr char kAcceptBody[] = "xmotion-accept/1";

enum class Peer { kXmotion, kStock };

// Save side. REQUIRES: `w` is a fresh libxc-framed writer on `fd`. Writes the
// headers (with `policy`, may be null) and the offer, then waits.
Result<Peer> OfferXmotion(int fd, xen::StreamWriter& w, const xen::XenCpuPolicy* policy, int wait_ms,
                          Canceller* cancel);

// Restore side: the stream on `fd` starts with Xen's image header (peeked).
// Reads it and the records up to the offer, answers, and returns; a stream
// with no offer before its first page is a stock save's: kUnsupported.
Status AcceptXmotionOffer(int fd, int timeout_ms);

}  // namespace emu
}  // namespace xm
