#!/usr/bin/env python3
"""The lab firmware (scripts/xen-lab.d/firmware) under plain QEMU, no Xen.

It builds the image and boots a Linux kernel through it with a tiny init that
reports what the kernel got (its command line, the RAM the firmware's memory
map gave it, the initramfs itself); QEMU is stopped once it has. The nested-Xen lab's
--hvm guest runs the same image under hvmloader; this is the part that can be
checked in seconds on any machine with QEMU.

Needs qemu-system-x86_64, gcc (-m32 freestanding: no multilib), binutils and a
Debian x86-64 kernel: the lab's cached one ($XEN_LAB_CACHE, .cache/xen-lab,
/var/cache/xmotion-xen-lab) or $LAB_FIRMWARE_KERNEL. Without them it skips
(exit 77) and says what is missing.
"""
import glob
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(REPO, "scripts", "xen-lab.d", "firmware"))
import build as lab_firmware  # noqa: E402

INIT_C = r"""
#include <stdio.h>
#include <stdlib.h>
#include <sys/sysinfo.h>
#include <unistd.h>
int main(void) {
  struct sysinfo si;
  sysinfo(&si);
  /* Unknown key=value parameters on the kernel command line reach init's environment. */
  printf("FWTEST init ran: xmtest=%s totalram_mib=%lu\n", getenv("xmtest") ? getenv("xmtest") : "(none)",
         (unsigned long)(si.totalram * si.mem_unit >> 20));
  fflush(stdout);
  for (;;) pause();  /* the test stops QEMU (no ACPI here to power off with) */
}
"""


def find_kernel():
    if os.environ.get("LAB_FIRMWARE_KERNEL"):
        return os.environ["LAB_FIRMWARE_KERNEL"]
    caches = [os.environ.get("XEN_LAB_CACHE", ""), os.path.join(REPO, ".cache", "xen-lab"), "/var/cache/xmotion-xen-lab"]
    for c in caches:
        found = sorted(glob.glob(os.path.join(c, "image-*", "vmlinuz"))) if c else []
        if found:
            return found[-1]
    return None


def missing():
    for tool in ("qemu-system-x86_64", "gcc", "ld", "objcopy", "cpio", "gzip"):
        if not shutil.which(tool):
            return f"no {tool}"
    if not find_kernel():
        return "no kernel (run scripts/xen-lab --build-only once, or set LAB_FIRMWARE_KERNEL)"
    return None


class LabFirmware(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="lab-firmware-")
        cls.fw = lab_firmware.build(cls.tmp, os.path.join(cls.tmp, "lab-firmware.bin"))
        root = os.path.join(cls.tmp, "initramfs")
        os.makedirs(os.path.join(root, "dev"))
        src = os.path.join(cls.tmp, "init.c")
        with open(src, "w") as f:
            f.write(INIT_C)
        subprocess.run(["gcc", "-O2", "-static", "-o", os.path.join(root, "init"), src], check=True)
        files = subprocess.run(["find", "."], cwd=root, stdout=subprocess.PIPE, check=True).stdout
        cpio = subprocess.run(["cpio", "-o", "-H", "newc", "--quiet"], input=files, cwd=root,
                              stdout=subprocess.PIPE, check=True).stdout
        cls.initrd = os.path.join(cls.tmp, "initrd.gz")
        with open(cls.initrd, "wb") as f:
            f.write(subprocess.run(["gzip", "-1"], input=cpio, stdout=subprocess.PIPE, check=True).stdout)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def test_image_has_the_reset_vector_last(self):
        with open(self.fw, "rb") as f:
            img = f.read()
        self.assertEqual(len(img), 0x10000)
        # ljmp f000:xxxx in the last 16 bytes: where hvmloader (and a PC's reset) enters.
        self.assertEqual(img[0xfff0], 0xEA)
        self.assertEqual(img[0xfff3:0xfff5], b"\x00\xf0")

    def test_boots_linux_with_its_command_line_memory_map_and_initramfs(self):
        fw, serial, timed_out = lab_firmware.smoke(self.fw, find_kernel(), self.initrd, self.tmp, until="FWTEST init ran",
                                                   append="xmtest=fw-42 quiet", mem_mb=256, timeout=180)
        self.assertFalse(timed_out, "init never reported: firmware said\n" + fw + "\nserial:\n" + serial[-3000:])
        self.assertIn("lab-firmware: memory map from QEMU (no hvmloader)", fw)
        self.assertIn("entering the kernel", fw)
        line = next((ln for ln in serial.splitlines() if ln.startswith("FWTEST init ran")), None)
        self.assertIsNotNone(line, "init never ran; serial:\n" + serial[-3000:])
        self.assertIn("xmtest=fw-42", line)
        ram = int(line.rsplit("totalram_mib=", 1)[1])
        # 256 MiB less what the kernel keeps for itself: the e820 reached it.
        self.assertGreater(ram, 150)
        self.assertLessEqual(ram, 256)

    def test_without_a_kernel_it_says_so_and_stops(self):
        fw, _, timed_out = lab_firmware.smoke(self.fw, None, None, os.path.join(self.tmp, "nokernel"),
                                              until="cannot boot", timeout=60)
        self.assertFalse(timed_out)
        self.assertIn("lab-firmware: cannot boot: no kernel in fw_cfg", fw)
        self.assertNotIn("entering the kernel", fw)


if __name__ == "__main__":
    why = missing()
    if why:
        print(f"SKIP: lab firmware test: {why}")
        sys.exit(77)
    unittest.main()
