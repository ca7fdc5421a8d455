/* relay: a TCP byte pipe for the lab's dom0, which has no socat or netcat that
 * can carry `xl migrate` over TCP (needed for the shaped-link comparison: xl's
 * own transport is a command's stdin/stdout).
 *
 *   relay listen HOST:PORT -- CMD [ARG...]   accept one connection, run CMD
 *                                            with it as stdin and stdout
 *   relay connect HOST:PORT                  stdin -> socket, socket -> stdout
 *   relay ready FILE listen ...              write the bound port to FILE first
 *
 * Built static on the host by scripts/xen-lab, like the guest's ticker. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int die(const char *what) {
  fprintf(stderr, "relay: %s: %s\n", what, strerror(errno));
  return 1;
}

static int parse(const char *hp, struct sockaddr_in *a) {
  char host[64];
  const char *colon = strrchr(hp, ':');
  if (!colon || (size_t)(colon - hp) >= sizeof host) return -1;
  memcpy(host, hp, (size_t)(colon - hp));
  host[colon - hp] = 0;
  memset(a, 0, sizeof *a);
  a->sin_family = AF_INET;
  a->sin_port = htons((unsigned short)atoi(colon + 1));
  return inet_pton(AF_INET, host, &a->sin_addr) == 1 ? 0 : -1;
}

/* Copies what is readable on `from` to `to`; 0 at EOF, -1 on error. */
static ssize_t pump(int from, int to, char *buf, size_t len) {
  ssize_t n = read(from, buf, len);
  if (n <= 0) return n;
  for (ssize_t off = 0; off < n;) {
    ssize_t w = write(to, buf + off, (size_t)(n - off));
    if (w < 0) return -1;
    off += w;
  }
  return n;
}

int main(int argc, char **argv) {
  const char *ready = NULL;
  if (argc >= 3 && strcmp(argv[1], "ready") == 0) {
    ready = argv[2];
    argv += 2;
    argc -= 2;
  }
  struct sockaddr_in a;
  if (argc < 3 || parse(argv[2], &a) != 0) {
    fprintf(stderr, "usage: relay [ready FILE] listen HOST:PORT -- CMD... | relay connect HOST:PORT\n");
    return 2;
  }
  int one = 1;
  if (strcmp(argv[1], "listen") == 0) {
    if (argc < 5 || strcmp(argv[3], "--") != 0) return 2;
    int l = socket(AF_INET, SOCK_STREAM, 0);
    setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof a) != 0 || listen(l, 1) != 0) return die("listen");
    if (ready) {
      socklen_t len = sizeof a;
      getsockname(l, (struct sockaddr *)&a, &len);
      FILE *f = fopen(ready, "w");
      if (!f) return die(ready);
      fprintf(f, "%d\n", ntohs(a.sin_port));
      fclose(f);
    }
    int c = accept(l, NULL, NULL);
    if (c < 0) return die("accept");
    close(l);
    setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    dup2(c, 0);
    dup2(c, 1);
    close(c);
    execvp(argv[4], argv + 4);
    return die(argv[4]);
  }
  if (strcmp(argv[1], "connect") != 0) return 2;
  int s = socket(AF_INET, SOCK_STREAM, 0);
  if (s < 0 || connect(s, (struct sockaddr *)&a, sizeof a) != 0) return die("connect");
  setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  static char buf[1 << 20];
  struct pollfd p[2] = {{0, POLLIN, 0}, {s, POLLIN, 0}};
  int in_open = 1;
  for (;;) {
    p[0].fd = in_open ? 0 : -1;
    if (poll(p, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return die("poll");
    }
    if (in_open && (p[0].revents & (POLLIN | POLLHUP))) {
      ssize_t n = pump(0, s, buf, sizeof buf);
      if (n < 0) return die("stdin -> socket");
      if (n == 0) {
        in_open = 0;
        shutdown(s, SHUT_WR);
      }
    }
    if (p[1].revents & (POLLIN | POLLHUP | POLLERR)) {
      ssize_t n = pump(s, 1, buf, sizeof buf);
      if (n < 0) return die("socket -> stdout");
      if (n == 0) return 0;
    }
  }
}
