// Helpers both sides use on the control stream: reading with phase context,
// turning a peer's ABORT into an error, and aborting politely. They use only
// the stream they are given; one thread per stream at a time.
#pragma once

#include <string>
#include <string_view>

#include "transport/record.h"

namespace xm {

// Limit on record bodies before the peer has authenticated.
constexpr uint64_t kPreAuthMaxBody = 64 * 1024;

// Reads one record; an ABORT from the peer becomes an error with its code and reason.
Status ReadControl(Stream& s, Record& rec, std::string_view phase, uint64_t max_body = kMaxRecordBody);
// Reads one record and requires it to be `want`.
// The peer's first record, which must be HELLO (or ABORT); a peer that is not
// xmotion at all is refused as kAuth naming what it sent (ReadFirstRecord).
Status ExpectHello(Stream& s, Record& rec, std::string_view phase, uint64_t max_body);
Status ExpectRecord(Stream& s, Record& rec, RecordType want, std::string_view phase,
                    uint64_t max_body = kMaxRecordBody);
// Whether `st`, from reading or writing a stream, says the connection itself
// failed (reset, closed between or inside records, silent past its timeout)
// rather than the peer saying or sending something wrong (an ABORT, a corrupt or
// unexpected record): only the former is worth a reconnect.
bool LinkFailed(const Status& st);
// Of those, the ones where the peer's end closed (FIN, between or inside
// records) rather than the path failing (a reset, silence). A process that dies
// closes its sockets so; a cut path rarely does (a proxy that closes on
// purpose does, and a live source behind it is back within a second).
bool PeerClosed(const Status& st);
// A dial the destination's host refused (nothing listens on the port): kAuth,
// the wrong-peer exit code, with the dialer's words and where it dialled.
Status NoReceiverListens(const Status& dial, const std::string& where);
// Whether a reconnect attempt that failed with `st` is worth another: the link
// failed, or nothing listened yet (a receiver being restarted). A receiver that
// answered and refused (an ABORT, a TLS alert, a wrong key, no longer holding
// the guest) will not change its mind.
bool WorthReconnecting(const Status& st);
// Tells the peer why we stop; errors sending it are ignored (the peer may be gone).
void SendAbort(Stream& s, const Status& why);
// After `failed` (a write the peer refused, a closed connection), the peer's
// reason may already wait behind records this side never read: a peer that
// stops (cancel) shuts its reading half, which fails our next write before we
// read its ABORT. Skims what is left, for at most `budget_ms` and 64 MiB, and
// returns the ABORT's status if one is there; `failed` otherwise.
Status PeerAbortBehind(Stream& s, Status failed, std::string_view phase, int budget_ms = 1000);

}  // namespace xm
