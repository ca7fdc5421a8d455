// Which failed reconnect attempts the source tries again (WorthReconnecting):
// statuses made the way the engine meets them — a real refused dial, a real
// peer hanging up, a real ABORT read off a socket, a TLS refusal's words.
#include "migrate/common/control.h"

#include <gtest/gtest.h>
#include <sys/socket.h>

#include "transport/messages.h"
#include "transport/socket_stream.h"

namespace xm {
namespace {

struct Pair {
  Pair() {
    int fds[2];
    EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
    a = std::make_unique<SocketStream>(UniqueFd(fds[0]));
    b = std::make_unique<SocketStream>(UniqueFd(fds[1]));
    a->SetTimeoutMs(2000);
    b->SetTimeoutMs(2000);
  }
  std::unique_ptr<SocketStream> a, b;
};

TEST(WorthReconnecting, NothingListeningYetIsTriedAgain) {
  // Port 9 (discard) on loopback: nothing listens in the test environment.
  auto dial = SocketStream::Connect(HostPort{"127.0.0.1", 9}, 2000);
  ASSERT_FALSE(dial.ok());
  Status st = NoReceiverListens(dial.status(), "127.0.0.1:9");
  EXPECT_EQ(st.code(), Code::kAuth);  // the wrong-peer exit code, as for a first connect
  EXPECT_NE(st.message().find("no xmotion receiver listens at 127.0.0.1:9"), std::string::npos) << st.message();
  EXPECT_TRUE(WorthReconnecting(st));
}

TEST(WorthReconnecting, APeerThatHungUpIsALinkFailure) {
  Pair p;
  p.b.reset();
  Record rec;
  Status st = ReadControl(*p.a, rec, "resume");
  ASSERT_FALSE(st.ok());
  EXPECT_TRUE(WorthReconnecting(st)) << st.ToString();
}

TEST(WorthReconnecting, AReceiverThatAnsweredAndRefusedIsNot) {
  Pair p;
  SendAbort(*p.b, Status(Code::kProtocol, "no migration to resume here for that session"));
  Record rec;
  Status st = ReadControl(*p.a, rec, "resume");
  ASSERT_FALSE(st.ok());
  EXPECT_FALSE(WorthReconnecting(st)) << st.ToString();
  // A TLS alert says "refused" too, and must not read as nothing listening.
  EXPECT_FALSE(WorthReconnecting(Status(Code::kAuth, "the destination refused the handshake (TLS alert "
                                                     "'decrypt error'): its --key-file differs from ours")));
}

}  // namespace
}  // namespace xm
