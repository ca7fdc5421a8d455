// libFuzzer target: what an xmotion emu-manager restore reads first from the
// migration socket (migrate/cli/emu_offer.h): Xen's image and domain headers,
// then records up to xmotion's offer. Any bytes, then the peer's end closes;
// the reader must answer, refuse or time out, never crash or read past its
// limits. Inputs stay under the socket's buffer so the write never blocks.
#include <sys/socket.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>

#include "migrate/cli/emu_offer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > 60000) return 0;
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) return 0;
  size_t off = 0;
  while (off < size) {
    ssize_t n = ::write(sv[0], data + off, size - off);
    if (n <= 0) break;
    off += static_cast<size_t>(n);
  }
  ::shutdown(sv[0], SHUT_WR);
  (void)xm::emu::AcceptXmotionOffer(sv[1], 200);
  ::close(sv[0]);
  ::close(sv[1]);
  return 0;
}
