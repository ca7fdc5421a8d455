/* The nested-Xen lab's stand-in for what xenopsd does to a domain around an
 * emu-manager restore (XenServer/XCP-ng do this in OCaml: xenopsd's
 * Domain.make before the restore, the xenstore introduction after it). The
 * lab has no xenopsd; tests/emu/xenopsd_driver.py --xen-existing calls this
 * tool where xenopsd would act:
 *
 *   xenops-domain create NAME MEM_MIB VCPUS
 *       an empty PVH domain (HVM container, HAP, emulated LAPIC only), paused,
 *       its memory limit and paging pool set, its xenstore skeleton written
 *       (the guest's writable nodes as libxl makes them), and two unbound
 *       event channels for the xenstore and console rings. Prints
 *       "DOMID STORE_PORT CONSOLE_PORT": what xenopsd passes to emu-manager
 *       as -domid, -store_port, -console_port.
 *   xenops-domain introduce DOMID STORE_MFN STORE_PORT CONSOLE_MFN CONSOLE_PORT
 *       after emu-manager's "result:xenguest STORE_MFN CONSOLE_MFN": writes
 *       the store and console nodes (xenconsoled then attaches the console)
 *       and introduces the domain to xenstored.
 *   xenops-domain restore DOMID STORE_PORT CONSOLE_PORT <STREAM
 *       what a stock emu-manager's restore does (its xenguest calls Xen's own
 *       xc_domain_restore on the stream): reads a libxc stream from stdin
 *       into DOMID, exactly to its END record, and prints "STORE_MFN
 *       CONSOLE_MFN". The lab's stand-in for a stock restore, to check that
 *       an xmotion save facing one writes a stream Xen itself accepts.
 *   xenops-domain unpause DOMID | destroy DOMID
 *
 * Built on the host against Debian 12's Xen 4.17 libraries (scripts/xen-lab);
 * runs in the lab's dom0 only. Exit status 0 on success, 1 with a message.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <xenctrl.h>
#include <xenguest.h>
#include <xenstore.h>

/* A domain create() made and must not leave behind when it fails. */
static xc_interface *made_xch;
static uint32_t made_dom;

static void die(const char *what) {
  fprintf(stderr, "xenops-domain: %s: %s\n", what, errno ? strerror(errno) : "failed");
  if (made_dom) xc_domain_destroy(made_xch, made_dom);
  exit(1);
}

static unsigned long num(const char *s, const char *what) {
  char *end;
  errno = 0;
  unsigned long v = strtoul(s, &end, 0);
  if (errno || *end || end == s) {
    fprintf(stderr, "xenops-domain: %s: not a number: %s\n", what, s);
    exit(1);
  }
  return v;
}

static void put(struct xs_handle *xs, xs_transaction_t t, unsigned dom, const char *node, const char *value) {
  char path[256];
  snprintf(path, sizeof path, "/local/domain/%u/%s", dom, node);
  if (!xs_write(xs, t, path, value, strlen(value))) die(path);
}

static void perms(struct xs_handle *xs, xs_transaction_t t, unsigned dom, const char *node, int guest_writes) {
  char path[256];
  snprintf(path, sizeof path, "/local/domain/%u%s%s", dom, *node ? "/" : "", node);
  /* Owned by the guest (it may write) or by dom0 with the guest reading. */
  struct xs_permissions rw[1] = {{.id = dom, .perms = XS_PERM_NONE}};
  struct xs_permissions ro[2] = {{.id = 0, .perms = XS_PERM_NONE}, {.id = dom, .perms = XS_PERM_READ}};
  if (!xs_mkdir(xs, t, path)) die(path);
  if (!xs_set_permissions(xs, t, path, guest_writes ? rw : ro, guest_writes ? 1 : 2)) die(path);
}

static int create(xc_interface *xch, const char *name, unsigned long mib, unsigned vcpus) {
  struct xen_domctl_createdomain cfg = {
      .flags = XEN_DOMCTL_CDF_hvm | XEN_DOMCTL_CDF_hap,
      .max_vcpus = vcpus,
      .max_evtchn_port = -1,
      .max_grant_frames = 64,
      .max_maptrack_frames = 1024,
      .grant_opts = XEN_DOMCTL_GRANT_version(1),
      .arch = {.emulation_flags = XEN_X86_EMU_LAPIC},
  };
  uint32_t dom = 0;
  if (xc_domain_create(xch, &dom, &cfg) != 0) die("xc_domain_create");
  made_xch = xch;
  made_dom = dom;
  /* The vCPUs themselves (the restore's HVM context loads into them). */
  if (xc_domain_max_vcpus(xch, dom, vcpus) != 0) die("xc_domain_max_vcpus");
  /* The guest's RAM plus its special pages (rings, ACPI tables) and slack. */
  if (xc_domain_setmaxmem(xch, dom, (mib + 8) * 1024) != 0) die("xc_domain_setmaxmem");
  /* HAP paging pool: libxl gives ~1 MiB per 128 MiB of guest plus per vCPU. */
  if (xc_set_paging_mempool_size(xch, dom, 8ull << 20) != 0) die("xc_set_paging_mempool_size");
  int store = xc_evtchn_alloc_unbound(xch, dom, 0);
  int console = xc_evtchn_alloc_unbound(xch, dom, 0);
  if (store < 0 || console < 0) die("xc_evtchn_alloc_unbound");

  struct xs_handle *xs = xs_open(0);
  if (!xs) die("xs_open");
  xs_transaction_t t = xs_transaction_start(xs);
  if (t == XBT_NULL) die("xs_transaction_start");
  char buf[64];
  perms(xs, t, dom, "", 0);
  put(xs, t, dom, "name", name);
  snprintf(buf, sizeof buf, "%u", dom);
  put(xs, t, dom, "domid", buf);
  const char *ro[] = {"cpu", "memory", "console", "store", "control"};
  for (size_t i = 0; i < sizeof ro / sizeof ro[0]; i++) perms(xs, t, dom, ro[i], 0);
  const char *rw[] = {"device", "data", "drivers", "feature", "attr", "error", "control/shutdown",
                      "control/feature-poweroff", "control/feature-reboot", "control/feature-suspend",
                      "control/sysrq", "control/platform-feature-multiprocessor-suspend",
                      "control/platform-feature-xs_reset_watches"};
  for (size_t i = 0; i < sizeof rw / sizeof rw[0]; i++) perms(xs, t, dom, rw[i], 1);
  snprintf(buf, sizeof buf, "%lu", mib * 1024);
  put(xs, t, dom, "memory/static-max", buf);
  put(xs, t, dom, "memory/target", buf);
  for (unsigned v = 0; v < vcpus; v++) {
    char node[32];
    snprintf(node, sizeof node, "cpu/%u/availability", v);
    put(xs, t, dom, node, "online");
  }
  if (!xs_transaction_end(xs, t, false)) die("xs_transaction_end");
  xs_close(xs);
  made_dom = 0;
  printf("%u %d %d\n", dom, store, console);
  return 0;
}

static int introduce(unsigned dom, unsigned long store_mfn, unsigned store_port, unsigned long console_mfn,
                     unsigned console_port) {
  struct xs_handle *xs = xs_open(0);
  if (!xs) die("xs_open");
  xs_transaction_t t = xs_transaction_start(xs);
  if (t == XBT_NULL) die("xs_transaction_start");
  char buf[64];
  snprintf(buf, sizeof buf, "%lu", store_mfn);
  put(xs, t, dom, "store/ring-ref", buf);
  snprintf(buf, sizeof buf, "%u", store_port);
  put(xs, t, dom, "store/port", buf);
  snprintf(buf, sizeof buf, "%lu", console_mfn);
  put(xs, t, dom, "console/ring-ref", buf);
  snprintf(buf, sizeof buf, "%u", console_port);
  put(xs, t, dom, "console/port", buf);
  put(xs, t, dom, "console/type", "xenconsoled");
  put(xs, t, dom, "console/output", "pty");
  put(xs, t, dom, "console/limit", "1048576");
  put(xs, t, dom, "console/backend-id", "0");
  if (!xs_transaction_end(xs, t, false)) die("xs_transaction_end");
  if (!xs_introduce_domain(xs, dom, store_mfn, store_port)) die("xs_introduce_domain");
  xs_close(xs);
  return 0;
}

static int restore(xc_interface *xch, uint32_t dom, unsigned store_port, unsigned console_port) {
  struct restore_callbacks callbacks;
  memset(&callbacks, 0, sizeof callbacks);
  unsigned long store_mfn = 0, console_mfn = 0;
  if (xc_domain_restore(xch, 0, dom, store_port, &store_mfn, 0, console_port, &console_mfn, 0, XC_STREAM_PLAIN,
                        &callbacks, -1) != 0)
    die("xc_domain_restore");
  printf("%lu %lu\n", store_mfn, console_mfn);
  return 0;
}

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: xenops-domain create NAME MEM_MIB VCPUS | introduce DOMID STORE_MFN STORE_PORT "
                    "CONSOLE_MFN CONSOLE_PORT | restore DOMID STORE_PORT CONSOLE_PORT <STREAM | unpause DOMID | "
                    "destroy DOMID\n");
    return 2;
  }
  xc_interface *xch = xc_interface_open(NULL, NULL, 0);
  if (!xch) die("xc_interface_open");
  const char *cmd = argv[1];
  int rc = 2;
  if (!strcmp(cmd, "create") && argc == 5) {
    rc = create(xch, argv[2], num(argv[3], "MEM_MIB"), (unsigned)num(argv[4], "VCPUS"));
  } else if (!strcmp(cmd, "introduce") && argc == 7) {
    rc = introduce((unsigned)num(argv[2], "DOMID"), num(argv[3], "STORE_MFN"), (unsigned)num(argv[4], "STORE_PORT"),
                   num(argv[5], "CONSOLE_MFN"), (unsigned)num(argv[6], "CONSOLE_PORT"));
  } else if (!strcmp(cmd, "restore") && argc == 5) {
    rc = restore(xch, (uint32_t)num(argv[2], "DOMID"), (unsigned)num(argv[3], "STORE_PORT"),
                 (unsigned)num(argv[4], "CONSOLE_PORT"));
  } else if (!strcmp(cmd, "unpause") && argc == 3) {
    if (xc_domain_unpause(xch, (uint32_t)num(argv[2], "DOMID")) != 0) die("xc_domain_unpause");
    rc = 0;
  } else if (!strcmp(cmd, "destroy") && argc == 3) {
    if (xc_domain_destroy(xch, (uint32_t)num(argv[2], "DOMID")) != 0) die("xc_domain_destroy");
    rc = 0;
  } else {
    fprintf(stderr, "xenops-domain: bad command line (run without arguments for usage)\n");
  }
  xc_interface_close(xch);
  return rc;
}
