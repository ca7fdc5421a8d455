# The lab's HVM pieces (`scripts/xen-lab --hvm`), sourced by dom0-boot.
#
# hvm_guest_cfg KERNEL   the HVM guest's xl config on stdout: hvmloader and
#                        the firmware it hands over to ($HVM_FIRMWARE: "lab",
#                        the lab's 32-bit kernel loader, firmware/firmware.c,
#                        or Debian's SeaBIOS, which cannot boot here) boot
#                        the same kernel and ticker initramfs as the PVH guest
#                        (direct kernel boot through QEMU's fw_cfg), Debian's
#                        qemu-system-xen as the device model, the VGA $HVM_VGA
#                        (cirrus, stdvga or none; a VGA's VRAM is guest memory
#                        QEMU places in the p2m, moved with the guest), Xen's
#                        platform PCI device (PV drivers: the ticker's console
#                        is hvc0 and suspend goes through xenstore
#                        control/shutdown, as for a PV-driver HVM guest in a
#                        pool). Its serial port (SeaBIOS writes to it) goes to
#                        $OUT/hvm-serial.log. The kernel's messages also go to
#                        Xen's console through port 0xe9 (earlyprintk=xen,
#                        keep_bootcon: one trap to Xen per line, no device
#                        model round trip per byte as an emulated UART costs),
#                        so the lab's serial log shows how far a boot got.
# hvm_diagnose           where a guest that does not tick is: its vCPU
#                        context a few times (xenctx), the memory its stack
#                        returns to, and Xen's dump of its VMCB, into $OUT.
# pv_refused_step        a PV domain (created paused, never run: nothing it
#                        does matters) that xmotion send must refuse before
#                        connecting anywhere; the domain must be untouched.
# The migrations themselves are dom0-boot's comparison step (COMPARE_*).

hvm_guest_cfg() {
  cat <<EOF
type = "hvm"
name = "guest"
kernel = "$1"
ramdisk = "/lab/guest-initrd.gz"
cmdline = "earlyprintk=xen keep_bootcon console=hvc0 xtick.mb=$GUEST_BUF_MB xtick.dirty=$GUEST_DIRTY xtick.tick=$GUEST_TICK_MS xtick.verify=$GUEST_VERIFY ${GUEST_CMDLINE_EXTRA:-}"
memory = $GUEST_MB
maxmem = $GUEST_MB
vcpus = 1
on_crash = "preserve"
on_reboot = "destroy"
device_model_version = "qemu-xen"
xen_platform_pci = 1
vga = "${HVM_VGA:-none}"
vnc = 0
sdl = 0
serial = "file:$OUT/hvm-serial.log"
bios = "seabios"
$([ "${HVM_FIRMWARE:-lab}" = lab ] && echo 'bios_path_override = "/lab/lab-firmware.bin"')
$GUEST_XL_EXTRA
EOF
}

hvm_diagnose() {
  local ctx i dom cs ip
  ctx=$(ls /usr/lib/xen-*/bin/xenctx 2>/dev/null | head -n1)
  dom=$(domid_of guest)
  for i in 1 2 3; do
    echo "== xenctx $i ($(date +%T))"
    [ -n "$ctx" ] && timeout 20 "$ctx" -a "$dom" 0 2>&1
    xl list 2>&1
    sleep 2
  done >"$OUT/hvm-xenctx.txt" 2>&1
  # The code a real-mode vCPU returns to (CS:IP on top of its stack), and
  # Xen's own view of the vCPU (its VMCB: intercepts, pending event, exit).
  # (No process substitution: dom0 has no /dev/fd.)
  ip=$(awk '/^Stack:/{getline; print $1; exit}' "$OUT/hvm-xenctx.txt")
  cs=$(awk '/^Stack:/{getline; print $2; exit}' "$OUT/hvm-xenctx.txt")
  if [ -n "$ctx" ] && [ -n "$cs" ] && [ -n "$ip" ]; then
    echo "== memory at $cs:$ip (linear $(printf '%#x' $((0x$cs * 16 + 0x$ip - 16))))"
    timeout 20 "$ctx" -m "$(printf '%#x' $((0x$cs * 16 + 0x$ip - 16)))" -l 2 "$dom" 0 2>&1
  fi >>"$OUT/hvm-xenctx.txt" 2>&1
  xl debug-keys v >/dev/null 2>&1
  sleep 1
  xl dmesg 2>&1 | tail -n 120 >"$OUT/hvm-vmcb.txt"
  show "$OUT/hvm-xenctx.txt" 30
}

# Facts: pv_create_rc, pv_domid, pv_state_before/after, pv_send_rc, pv_send_ms.
pv_refused_step() {
  step_begin pv-refused
  local rc=0 kernel dom t0
  kernel=$(ls /boot/vmlinuz-* | head -n1)
  cat >"$OUT/pv-guest.cfg" <<EOF
type = "pv"
name = "guest-pv"
kernel = "$kernel"
ramdisk = "/lab/guest-initrd.gz"
extra = "console=hvc0"
memory = 256
vcpus = 1
EOF
  timeout 120 xl create -p "$OUT/pv-guest.cfg" >"$OUT/pv-create.log" 2>&1
  fact pv_create_rc $?
  dom=$(domid_of guest-pv)
  fact pv_domid "$dom"
  fact pv_state_before "$(domain_state guest-pv)"
  t0=$(date +%s%N)
  # Nothing listens on port 9: the refusal must come before any connection.
  LD_LIBRARY_PATH=/lab/lib timeout 60 "$XM" send --backend xen --domain guest-pv --to 127.0.0.1:9 \
    --report "$OUT/pv-send.json" >"$OUT/pv-send.out" 2>"$OUT/pv-send.err"
  fact pv_send_rc $?
  fact pv_send_ms $((($(date +%s%N) - t0) / 1000000))
  fact pv_domid_after "$(domid_of guest-pv)"
  fact pv_state_after "$(domain_state guest-pv)"
  show "$OUT/pv-send.err" 5
  [ -n "$dom" ] || rc=1
  timeout 60 xl destroy guest-pv >>"$OUT/pv-create.log" 2>&1
  step_end $rc
}
