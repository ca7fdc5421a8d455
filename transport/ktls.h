// Kernel TLS (the `tls` TCP ULP, Linux >= 5.1 for TLS 1.3): after xmotion's
// user-space handshake (secure.h), each direction of a connection can be
// handed to the kernel, which then seals what is sent and opens what is
// received, so the socket carries plaintext through io_uring or send/recv and
// the bytes on the wire are the same standard TLS 1.3 records the user-space
// layer (tls_record.h) writes: either end may run either way.
//
// The hand-over takes the user-space layer's state as it is at that point
// (key, static IV split into the kernel's salt and IV, the next record's
// sequence number), before any application record of xmotion's own moved, so
// the sequence numbers carry on where the handshake left them. Receive is only
// handed over when nothing of the peer's has been read ahead out of the socket
// (the kernel would never see it).
//
// Where the ULP is missing (no `tls` module: setsockopt answers ENOENT), the
// socket is not TCP (EOPNOTSUPP), the transport is not a bare socket or
// XMOTION_KTLS=off, the records stay in user space and the outcome's note says
// why. The machine this was written on has no `tls` ULP, so the kernel path
// itself has not run there: its tests check the fallback and that the keys it
// would give the kernel seal and open records exactly as the user-space layer.
//
// Thread-safety: plain functions; HandToKernel while nothing else uses the stream.
#pragma once

#include <linux/tls.h>
#include <sys/socket.h>

#include <string>

#include "transport/stream.h"
#include "transport/tls_record.h"

namespace xm {

// What setsockopt(SOL_TLS, TLS_TX or TLS_RX) takes for one direction.
struct KernelTlsKeys {
  union {
    tls_crypto_info info;
    tls12_crypto_info_aes_gcm_128 aes128;
    tls12_crypto_info_aes_gcm_256 aes256;
  };
  socklen_t size = 0;
  KernelTlsKeys();
  KernelTlsKeys(const KernelTlsKeys&) = delete;
  KernelTlsKeys& operator=(const KernelTlsKeys&) = delete;
  ~KernelTlsKeys();  // wipes the key
};

// The kernel's view of direction `c` from its next record on.
void KernelKeysFor(const TlsRecordCipher& c, KernelTlsKeys* out);

struct KernelTlsOutcome {
  bool tx = false, rx = false;  // the directions the kernel now does
  std::string note;             // what happened, for the report and the log
};

// Tries to hand both directions of `raw`'s socket to the kernel: the ULP, then
// receive (so that a failure there leaves the socket as it was), then send.
// A direction the kernel took must no longer pass through the user-space layer.
KernelTlsOutcome HandToKernel(Stream& raw, const TlsRecordCipher& tx, const TlsRecordCipher& rx);

// Whether this kernel has the `tls` ULP at all (a probe on a fresh TCP socket:
// ENOENT means absent), for tests and reports.
bool KernelTlsAvailable();

}  // namespace xm
