/*
 * The lab's HVM firmware: boots the kernel, initramfs and command line QEMU
 * holds in fw_cfg (xl's kernel=/ramdisk=/cmdline= for an HVM guest) through
 * Linux's 32-bit boot protocol, never entering real mode.
 *
 * Why it exists: under the lab's nested Xen (Xen's SVM on QEMU's emulated
 * SVM, TCG) SeaBIOS and the kernel's real-mode setup code livelock or spin
 * (scripts/xen-lab.d/README.md, "HVM guests"), while 32-bit code runs, as the
 * PVH guest shows every CI run. Everything else about the guest stays HVM:
 * hvmloader builds the platform (PCI BARs, ACPI, e820, SMBIOS) and hands this
 * image over as its BIOS ("bios_path_override"), QEMU is the device model,
 * the kernel boots as an HVM guest with its PV drivers. This replaces the
 * BIOS only: no BIOS services exist after it, which Linux does not need when
 * entered this way, and what it runs is the same Debian kernel as the PVH
 * guest.
 *
 * Where the inputs come from:
 *  - memory map: hvmloader's table for SeaBIOS (struct at 0x1000, "XenHVMSeaBIOS"),
 *    else QEMU's fw_cfg "etc/e820" (plain QEMU, the host-side smoke check);
 *  - ACPI RSDP: the same hvmloader table (copied into the image's reserved
 *    range, which the kernel keeps);
 *  - kernel setup header, kernel, initramfs, command line: fw_cfg, by DMA
 *    when QEMU offers it (one request per blob), else by port reads.
 * Output: one line per step on port 0xe9 (Xen's console, QEMU's debugcon).
 *
 * REQUIRES: 32-bit protected mode, flat segments 0x10/0x18 (entry.S), a
 * stack in low RAM; nothing static is written (the image is ROM under plain
 * QEMU).
 */
#include <stddef.h>
#include <stdint.h>

extern char rsdp_slot[];

/* ---- port I/O and the debug console ---------------------------------- */

static inline void outb(uint16_t port, uint8_t v) { __asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port)); }
static inline void outw(uint16_t port, uint16_t v) { __asm__ volatile("outw %0, %1" : : "a"(v), "Nd"(port)); }
static inline void outl(uint16_t port, uint32_t v) { __asm__ volatile("outl %0, %1" : : "a"(v), "Nd"(port)); }

void *memcpy(void *d, const void *s, size_t n)
{
    __asm__ volatile("rep movsb" : "+D"(d), "+S"(s), "+c"(n) : : "memory");
    return d;
}

void *memset(void *d, int c, size_t n)
{
    void *r = d;
    __asm__ volatile("rep stosb" : "+D"(d), "+c"(n) : "a"(c) : "memory");
    return r;
}

static int mem_eq(const void *a, const void *b, size_t n)
{
    const uint8_t *x = a, *y = b;
    for (size_t i = 0; i < n; i++)
        if (x[i] != y[i])
            return 0;
    return 1;
}

static void say(const char *s)
{
    while (*s)
        outb(0xe9, (uint8_t)*s++);
}

static void say_hex(uint32_t v)
{
    char b[11] = "0x";
    for (int i = 0; i < 8; i++)
        b[2 + i] = "0123456789abcdef"[(v >> (28 - 4 * i)) & 15];
    b[10] = 0;
    say(b);
}

static void __attribute__((noreturn)) stop(const char *why)
{
    say("lab-firmware: cannot boot: ");
    say(why);
    say("\n");
    for (;;)
        __asm__ volatile("cli; hlt");
}

/* ---- fw_cfg ----------------------------------------------------------- */

enum {
    FW_CFG_SEL = 0x510,
    FW_CFG_DATA = 0x511,
    FW_CFG_DMA_HI = 0x514,
    FW_CFG_DMA_LO = 0x518,
    K_SIGNATURE = 0x00,
    K_ID = 0x01,
    K_KERNEL_SIZE = 0x08,
    K_INITRD_SIZE = 0x0b,
    K_KERNEL_DATA = 0x11,
    K_INITRD_DATA = 0x12,
    K_CMDLINE_SIZE = 0x14,
    K_CMDLINE_DATA = 0x15,
    K_SETUP_SIZE = 0x17,
    K_SETUP_DATA = 0x18,
    K_FILE_DIR = 0x19,
    DMA_ERROR = 0x01,
    DMA_READ = 0x02,
    DMA_SELECT = 0x08,
};

struct fw_cfg_dma {
    uint32_t control, length; /* big-endian */
    uint64_t address;         /* big-endian */
} __attribute__((packed, aligned(16)));

static uint32_t bswap32(uint32_t v) { return __builtin_bswap32(v); }

/* Reads the next n bytes of the selected item. */
static void fw_cfg_pio(void *dst, uint32_t n)
{
    /* Batched by Xen into page-sized requests to the device model. */
    __asm__ volatile("rep insb" : "+D"(dst), "+c"(n) : "d"(FW_CFG_DATA) : "memory");
}

/* Reads n bytes of item key into dst (selecting it: reads start at 0). */
static void fw_cfg_read(uint16_t key, void *dst, uint32_t n, int dma)
{
    if (dma) {
        struct fw_cfg_dma req = {
            .control = bswap32(((uint32_t)key << 16) | DMA_SELECT | DMA_READ),
            .length = bswap32(n),
            .address = (uint64_t)bswap32((uint32_t)(uintptr_t)dst) << 32,
        };
        volatile struct fw_cfg_dma *r = &req;
        outl(FW_CFG_DMA_HI, 0);
        outl(FW_CFG_DMA_LO, bswap32((uint32_t)(uintptr_t)&req));
        while (bswap32(r->control) & ~(uint32_t)DMA_ERROR)
            ;
        if (bswap32(r->control) & DMA_ERROR)
            stop("fw_cfg DMA error");
        return;
    }
    outw(FW_CFG_SEL, key);
    fw_cfg_pio(dst, n);
}

static uint32_t fw_cfg_u32(uint16_t key, int dma)
{
    uint32_t v = 0;
    fw_cfg_read(key, &v, sizeof v, dma); /* little-endian items */
    return v;
}

/* ---- memory map --------------------------------------------------------- */

struct e820 {
    uint64_t addr, size;
    uint32_t type;
} __attribute__((packed));

enum { E820_RAM = 1, MAX_E820 = 32 };

struct seabios_info { /* hvmloader's, tools/firmware/hvmloader/seabios.c */
    char signature[14];
    uint8_t length, checksum;
    uint32_t tables, tables_nr, e820, e820_nr;
} __attribute__((packed));

/* hvmloader's map and RSDP; returns the entry count, 0 when not under hvmloader. */
static int from_hvmloader(struct e820 *map, uint32_t *rsdp)
{
    const struct seabios_info *info = (const void *)0x1000;
    uint8_t sum = 0;
    if (!mem_eq(info->signature, "XenHVMSeaBIOS", 14))
        return 0;
    for (uint32_t i = 0; i < info->length; i++)
        sum += ((const uint8_t *)info)[i];
    if (sum != 0)
        stop("hvmloader's table has a bad checksum");
    uint32_t n = info->e820_nr < MAX_E820 ? info->e820_nr : MAX_E820;
    memcpy(map, (const void *)info->e820, n * sizeof *map);
    const uint32_t *tables = (const void *)info->tables;
    for (uint32_t i = 0; i < info->tables_nr; i++) {
        const uint8_t *t = (const void *)tables[i];
        if (mem_eq(t, "RSD PTR ", 8)) {
            /* ACPI 2.0+ RSDP: its length at byte 20; 1.0: 20 bytes. */
            uint32_t len = t[15] >= 2 ? *(const uint32_t *)(t + 20) : 20;
            if (len > 0x30)
                stop("RSDP larger than its slot");
            memcpy(rsdp_slot, t, len);
            *rsdp = (uint32_t)(uintptr_t)rsdp_slot;
        }
    }
    return (int)n;
}

struct fw_cfg_file {
    uint32_t size;
    uint16_t select, reserved;
    char name[56];
} __attribute__((packed));

/* Plain QEMU's map (no hvmloader): the fw_cfg file "etc/e820". */
static int from_qemu(struct e820 *map, int dma)
{
    uint32_t count;
    outw(FW_CFG_SEL, K_FILE_DIR);
    fw_cfg_pio(&count, sizeof count);
    count = bswap32(count);
    for (uint32_t i = 0; i < count; i++) {
        struct fw_cfg_file f;
        fw_cfg_pio(&f, sizeof f);
        if (mem_eq(f.name, "etc/e820", 9)) {
            uint32_t size = bswap32(f.size);
            if (size > MAX_E820 * sizeof *map)
                size = MAX_E820 * sizeof *map;
            fw_cfg_read((uint16_t)(f.select >> 8 | f.select << 8), map, size, dma);
            return (int)(size / sizeof *map);
        }
    }
    return 0;
}

/* ---- Linux's boot protocol (Documentation/arch/x86/boot.rst) ------------ */

enum {
    /* where this firmware puts things in low RAM (below 0x10000 is the stack
     * and hvmloader's table; 0x10000-0x1ffff its scratch space, read above) */
    BOOT_PARAMS = 0x9000,
    CMDLINE = 0x20000,
    CMDLINE_MAX = 0x1000,
    SETUP = 0x30000,
    SETUP_MAX = 0x10000,
    /* boot_params (the "zero page") and its setup header */
    BP_ACPI_RSDP = 0x070,
    BP_E820_ENTRIES = 0x1e8,
    BP_HDR = 0x1f1,
    BP_E820_TABLE = 0x2d0,
    BP_E820_MAX = 128,
    H_JUMP_LEN = 0x201, /* end of header = 0x202 + this byte */
    H_MAGIC = 0x202,
    H_VERSION = 0x206,
    H_TYPE_OF_LOADER = 0x210,
    H_LOADFLAGS = 0x211,
    H_CODE32_START = 0x214,
    H_RAMDISK_IMAGE = 0x218,
    H_RAMDISK_SIZE = 0x21c,
    H_CMD_LINE_PTR = 0x228,
    H_INITRD_ADDR_MAX = 0x22c,
    H_SETUP_DATA = 0x250,
    LOADED_HIGH = 0x01,
    KEEP_SEGMENTS = 0x40,
};

#define AT(base, off, type) (*(type *)((uint8_t *)(uintptr_t)(base) + (off)))

static uint32_t place_initrd(const struct e820 *map, int n, uint32_t size, uint32_t above, uint32_t max)
{
    uint32_t best = 0;
    for (int i = 0; i < n; i++) {
        if (map[i].type != E820_RAM || map[i].addr >= 0x100000000ull)
            continue;
        uint64_t end = map[i].addr + map[i].size;
        if (end > (uint64_t)max + 1)
            end = (uint64_t)max + 1;
        if (end < size)
            continue;
        uint64_t at = (end - size) & ~0xfffull;
        if (at >= map[i].addr && at >= above && at > best)
            best = (uint32_t)at;
    }
    return best;
}

void __attribute__((noreturn)) firmware_main(void)
{
    struct e820 map[MAX_E820];
    uint32_t rsdp = 0;
    char sig[4];

    say("lab-firmware: 32-bit, no BIOS services\n");
    outw(FW_CFG_SEL, K_SIGNATURE);
    fw_cfg_pio(sig, sizeof sig);
    if (!mem_eq(sig, "QEMU", 4))
        stop("no QEMU fw_cfg");
    int dma = (fw_cfg_u32(K_ID, 0) & 2) != 0;

    int n = from_hvmloader(map, &rsdp);
    if (n)
        say("lab-firmware: memory map and ACPI from hvmloader\n");
    else if ((n = from_qemu(map, dma)))
        say("lab-firmware: memory map from QEMU (no hvmloader)\n");
    else
        stop("no memory map");

    uint32_t setup_size = fw_cfg_u32(K_SETUP_SIZE, dma);
    uint32_t kernel_size = fw_cfg_u32(K_KERNEL_SIZE, dma);
    uint32_t initrd_size = fw_cfg_u32(K_INITRD_SIZE, dma);
    uint32_t cmdline_size = fw_cfg_u32(K_CMDLINE_SIZE, dma);
    if (!kernel_size || setup_size < 0x300 || setup_size > SETUP_MAX)
        stop("no kernel in fw_cfg (xl: kernel= for the HVM guest)");
    fw_cfg_read(K_SETUP_DATA, (void *)SETUP, setup_size, dma);
    if (!mem_eq((void *)(SETUP + H_MAGIC), "HdrS", 4) || AT(SETUP, H_VERSION, uint16_t) < 0x020a)
        stop("kernel's boot protocol older than 2.10");
    uint32_t kernel_at = AT(SETUP, H_CODE32_START, uint32_t);
    if (!(AT(SETUP, H_LOADFLAGS, uint8_t) & LOADED_HIGH) || kernel_at != 0x100000)
        stop("kernel not loadable at 1 MiB");
    fw_cfg_read(K_KERNEL_DATA, (void *)kernel_at, kernel_size, dma);

    if (cmdline_size > CMDLINE_MAX)
        stop("command line too long");
    memset((void *)CMDLINE, 0, CMDLINE_MAX);
    if (cmdline_size)
        fw_cfg_read(K_CMDLINE_DATA, (void *)CMDLINE, cmdline_size, dma);
    ((char *)CMDLINE)[CMDLINE_MAX - 1] = 0;

    uint32_t initrd_at = 0;
    if (initrd_size) {
        initrd_at = place_initrd(map, n, initrd_size, kernel_at + kernel_size,
                                 AT(SETUP, H_INITRD_ADDR_MAX, uint32_t));
        if (!initrd_at)
            stop("no RAM for the initramfs");
        fw_cfg_read(K_INITRD_DATA, (void *)initrd_at, initrd_size, dma);
    }

    /* The zero page: the kernel's own setup header, then what a loader fills. */
    uint8_t *bp = (uint8_t *)BOOT_PARAMS;
    memset(bp, 0, 4096);
    uint32_t hdr_end = 0x202 + AT(SETUP, H_JUMP_LEN, uint8_t);
    memcpy(bp + BP_HDR, (void *)(SETUP + BP_HDR), hdr_end - BP_HDR);
    AT(bp, H_TYPE_OF_LOADER, uint8_t) = 0xff;
    AT(bp, H_LOADFLAGS, uint8_t) &= (uint8_t)~KEEP_SEGMENTS;
    AT(bp, H_CMD_LINE_PTR, uint32_t) = CMDLINE;
    AT(bp, H_RAMDISK_IMAGE, uint32_t) = initrd_at;
    AT(bp, H_RAMDISK_SIZE, uint32_t) = initrd_size;
    AT(bp, H_SETUP_DATA, uint64_t) = 0; /* QEMU's list points into its own placement */
    if (n > BP_E820_MAX)
        n = BP_E820_MAX;
    memcpy(bp + BP_E820_TABLE, map, (uint32_t)n * sizeof *map);
    AT(bp, BP_E820_ENTRIES, uint8_t) = (uint8_t)n;
    if (rsdp && AT(SETUP, H_VERSION, uint16_t) >= 0x020e)
        AT(bp, BP_ACPI_RSDP, uint64_t) = rsdp;

    say("lab-firmware: kernel ");
    say_hex(kernel_size);
    say(" bytes at ");
    say_hex(kernel_at);
    say(", initramfs ");
    say_hex(initrd_size);
    say(" at ");
    say_hex(initrd_at);
    say(dma ? " (fw_cfg DMA)" : " (fw_cfg ports)");
    say(", RSDP ");
    say_hex(rsdp);
    say("; entering the kernel\n");
    __asm__ volatile("cli\n\t"
                     "xorl %%ebp, %%ebp\n\t"
                     "xorl %%edi, %%edi\n\t"
                     "xorl %%ebx, %%ebx\n\t"
                     "jmp *%%eax"
                     :
                     : "S"(bp), "a"(kernel_at)
                     : "memory");
    __builtin_unreachable();
}
