/* The nested-Xen lab's guest: PID 1 of a PVH guest's initramfs.
 *
 * It does three things a migration must not break, and prints one line per
 * tick on the console (hvc0) so the lab can judge from outside:
 *   - a tick counter every TICK ms, stamped with the guest's own clocks
 *     (CLOCK_BOOTTIME includes time spent suspended, which is how Linux
 *     accounts a cooperative Xen suspend; CLOCK_REALTIME for a cross-check);
 *     a gap in the stamps is the downtime as the guest saw it;
 *   - dirties DIRTY pages of a BUF-MiB buffer every tick (so a migration has
 *     pages to chase), each page filled from (page, generation);
 *   - re-verifies a slice of the buffer every tick against the generation
 *     table, so every page is checked every few seconds: a page lost or
 *     corrupted by a migration shows as errors > 0.
 *
 * Settings from the kernel command line: xtick.mb=64 xtick.dirty=128
 * xtick.tick=100 xtick.verify=512 (pages verified per tick) xtick.seq0=0 (the
 * first tick's number: a replacement guest the lab starts after losing one
 * numbers its ticks on from the lost guest's, so ticks stay unique per run).
 *
 * Line format (parsed by scripts/xen-lab):
 *   XTICK seq=N boot_ms=B rt_ms=R writes=W verified=V passes=P errors=E
 * Built on the host with gcc -static (the initramfs has nothing else).
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096u
#define WORDS (PAGE / sizeof(uint64_t))

static uint64_t mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

static void fill(uint64_t *p, uint64_t page, uint64_t gen) {
  uint64_t v = mix(page << 24 ^ gen);
  p[0] = page;
  p[1] = gen;
  for (unsigned i = 2; i < WORDS; i++) p[i] = v + i * 0x100000001b3ull;
}

static int check(const uint64_t *p, uint64_t page, uint64_t gen) {
  if (p[0] != page || p[1] != gen) return 0;
  uint64_t v = mix(page << 24 ^ gen);
  for (unsigned i = 2; i < WORDS; i++)
    if (p[i] != v + i * 0x100000001b3ull) return 0;
  return 1;
}

static long long ms(clockid_t c) {
  struct timespec ts;
  clock_gettime(c, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A second witness on dom0's clock: every tick is also written to the
 * guest's own xenstore key data/xtick (value: seq) through /dev/xen/xenbus.
 * xenstored's access log stamps each write with dom0's clock, the one the
 * migration engines' events are on, so the lab can measure the gap without
 * the guest's clock (whose account of a suspend is the guest kernel's). Best
 * effort: without the device, or while xenbus is down, nothing else changes. */
struct xs_msg {
  uint32_t type, req_id, tx_id, len;
};
enum { XS_WRITE = 11 };
static int xs_fd = -1;

static void xs_tick(uint64_t seq) {
  if (xs_fd < 0) return;
  char msg[sizeof(struct xs_msg) + 48];
  char *body = msg + sizeof(struct xs_msg);
  int path = snprintf(body, 48, "data/xtick") + 1; /* the path's NUL separates it from the value */
  int val = snprintf(body + path, 48 - path, "%llu", (unsigned long long)seq);
  struct xs_msg h = {XS_WRITE, (uint32_t)seq, 0, (uint32_t)(path + val)};
  memcpy(msg, &h, sizeof h);
  if (write(xs_fd, msg, sizeof h + h.len) < 0) return;
  char reply[256]; /* answers queue up in the device: drop them unread */
  while (read(xs_fd, reply, sizeof reply) > 0) {
  }
}

static long arg(const char *cmdline, const char *key, long def) {
  const char *p = strstr(cmdline, key);
  if (!p) return def;
  long v = strtol(p + strlen(key), NULL, 10);
  return v > 0 ? v : def;
}

int main(void) {
  mkdir("/dev", 0755);
  mkdir("/proc", 0755);
  mount("devtmpfs", "/dev", "devtmpfs", 0, NULL);
  mount("proc", "/proc", "proc", 0, NULL);
  int fd = open("/dev/hvc0", O_WRONLY | O_NOCTTY);
  if (fd < 0) fd = open("/dev/console", O_WRONLY | O_NOCTTY);
  if (fd >= 0) {
    dup2(fd, 1);
    dup2(fd, 2);
  }
  setvbuf(stdout, NULL, _IOLBF, 0);
  xs_fd = open("/dev/xen/xenbus", O_RDWR | O_NONBLOCK);

  char cmdline[1024] = "";
  int cfd = open("/proc/cmdline", O_RDONLY);
  if (cfd >= 0) {
    ssize_t n = read(cfd, cmdline, sizeof cmdline - 1);
    if (n > 0) cmdline[n] = 0;
    close(cfd);
  }
  const uint64_t pages = (uint64_t)arg(cmdline, "xtick.mb=", 64) * (1024 * 1024 / PAGE);
  const long dirty = arg(cmdline, "xtick.dirty=", 128);
  const long tick_ms = arg(cmdline, "xtick.tick=", 100);
  const long verify = arg(cmdline, "xtick.verify=", 512);
  const long seq0 = arg(cmdline, "xtick.seq0=", 0);

  uint8_t *buf = mmap(NULL, pages * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
  uint64_t *gen = calloc(pages, sizeof *gen);
  if (buf == MAP_FAILED || !gen) {
    printf("XTICK-FATAL cannot allocate %llu pages\n", (unsigned long long)pages);
    for (;;) pause();
  }
  for (uint64_t i = 0; i < pages; i++) fill((uint64_t *)(buf + i * PAGE), i, 0);
  printf("XTICK-START pages=%llu dirty=%ld tick_ms=%ld verify=%ld\n", (unsigned long long)pages, dirty, tick_ms,
         verify);

  uint64_t seq = (uint64_t)seq0, writes = 0, verified = 0, passes = 0, errors = 0;
  uint64_t wcur = 0, vcur = 0, rng = 0x2545f4914f6cdd1dull;
  struct timespec next;
  clock_gettime(CLOCK_MONOTONIC, &next);
  for (;;) {
    /* Half the writes sweep the buffer, half hit random pages: both the
     * working set and a spread of pages stay dirty. */
    for (long k = 0; k < dirty; k++) {
      uint64_t page;
      if (k & 1) {
        rng = mix(rng);
        page = rng % pages;
      } else {
        page = wcur;
        wcur = (wcur + 1) % pages;
      }
      fill((uint64_t *)(buf + page * PAGE), page, ++gen[page]);
      writes++;
    }
    for (long k = 0; k < verify; k++) {
      if (!check((const uint64_t *)(buf + vcur * PAGE), vcur, gen[vcur])) {
        if (errors < 16) printf("XTICK-BAD page=%llu gen=%llu\n", (unsigned long long)vcur,
                                (unsigned long long)gen[vcur]);
        errors++;
      }
      verified++;
      if (++vcur == pages) {
        vcur = 0;
        passes++;
      }
    }
    printf("XTICK seq=%llu boot_ms=%lld rt_ms=%lld writes=%llu verified=%llu passes=%llu errors=%llu\n",
           (unsigned long long)seq++, ms(CLOCK_BOOTTIME), ms(CLOCK_REALTIME), (unsigned long long)writes,
           (unsigned long long)verified, (unsigned long long)passes, (unsigned long long)errors);
    xs_tick(seq - 1);
    next.tv_nsec += tick_ms * 1000000L;
    while (next.tv_nsec >= 1000000000L) {
      next.tv_nsec -= 1000000000L;
      next.tv_sec++;
    }
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    /* After a long stop (migration) do not fire a burst of catch-up ticks. */
    if (now.tv_sec > next.tv_sec + 1) next = now;
    clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL);
  }
}
