#!/usr/bin/env python3
"""Builds the lab firmware (firmware.c, entry.S, firmware.ld) and checks it boots.

build(work, out)   the 64 KiB image hvmloader runs in place of SeaBIOS
                   (scripts/xen-lab uses it for --hvm; gcc -m32 and binutils).
smoke(fw, kernel, initrd, work, until)
                   boots `kernel` + `initrd` under plain QEMU (TCG, no Xen:
                   the image is then the machine's BIOS) until `until` is
                   printed, and returns what the firmware and the guest
                   printed; tests/lab/firmware_test.py judges it.

As a command: build.py OUT [KERNEL INITRD] builds OUT and, given a kernel and
an initramfs, boots them once and prints both consoles.
"""
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SIZE = 0x10000
CFLAGS = ["-m32", "-march=i686", "-O2", "-Wall", "-Wextra", "-Werror", "-ffreestanding", "-fno-pic", "-fno-pie",
          "-fno-stack-protector", "-fno-asynchronous-unwind-tables", "-fno-common", "-mno-sse", "-mno-mmx"]


def build(work, out, prefix=()):
    """Builds the image at `out` (objects in `work`); raises RuntimeError with the tool's output."""
    os.makedirs(work, exist_ok=True)
    elf = os.path.join(work, "firmware.elf")
    steps = [
        ["gcc"] + CFLAGS + ["-c", os.path.join(HERE, "firmware.c"), "-o", os.path.join(work, "firmware.o")],
        ["gcc", "-m32", "-c", os.path.join(HERE, "entry.S"), "-o", os.path.join(work, "entry.o")],
        ["ld", "-m", "elf_i386", "-T", os.path.join(HERE, "firmware.ld"), "-nostdlib", "--build-id=none",
         "--no-warn-rwx-segments", "-o", elf, os.path.join(work, "entry.o"), os.path.join(work, "firmware.o")],
        ["objcopy", "-O", "binary", "-j", ".image", elf, out],
    ]
    for cmd in steps:
        r = subprocess.run(list(prefix) + cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if r.returncode != 0:
            raise RuntimeError("building the lab firmware: " + " ".join(cmd[:2]) + ": " + r.stdout)
    if os.path.getsize(out) != SIZE:
        raise RuntimeError(f"lab firmware is {os.path.getsize(out)} bytes, not {SIZE}")
    return out


def smoke(fw, kernel, initrd, work, until, append="", mem_mb=256, timeout=120, qemu="qemu-system-x86_64"):
    """Boots under plain QEMU until `until` shows on either console (then stops it) or `timeout`.

    Returns (the firmware's lines, the serial console, whether `until` never came).
    """
    os.makedirs(work, exist_ok=True)
    debugcon = os.path.join(work, "smoke-debugcon.log")
    serial = os.path.join(work, "smoke-serial.log")
    for p in (debugcon, serial):
        open(p, "w").close()
    argv = [qemu, "-machine", "pc", "-accel", "tcg", "-m", str(mem_mb), "-bios", fw, "-display", "none",
            "-no-reboot", "-net", "none", "-monitor", "none", "-serial", f"file:{serial}",
            "-debugcon", f"file:{debugcon}"]
    if kernel:
        argv += ["-kernel", kernel, "-append", "console=ttyS0 " + append]
    if initrd:
        argv += ["-initrd", initrd]

    def text(p):
        with open(p, errors="replace") as f:
            return f.read()
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + timeout
    seen = False
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if until in text(debugcon) or until in text(serial):
                seen = True
                break
            time.sleep(0.2)
        seen = seen or until in text(debugcon) or until in text(serial)
    finally:
        proc.kill()
        proc.wait()
    return text(debugcon), text(serial), not seen


if __name__ == "__main__":
    if len(sys.argv) not in (2, 4):
        sys.exit(__doc__)
    out = os.path.abspath(sys.argv[1])
    build(os.path.dirname(out) or ".", out)
    print(f"built {out}")
    if len(sys.argv) == 4:
        fw_lines, serial, timed_out = smoke(out, sys.argv[2], sys.argv[3], os.path.dirname(out) or ".",
                                            until="Run /init", timeout=60)
        print(fw_lines + serial[-2000:] + ("\n(timed out)" if timed_out else ""))
