#!/usr/bin/env bash
# Builds the nested-Xen lab's boot set into OUT (called by scripts/xen-lab,
# which caches OUT under a hash of every file in scripts/xen-lab.d/image/ and
# this script):
#   xen.elf          Xen 4.17 hypervisor, uncompressed (QEMU -kernel loads it as multiboot)
#   vmlinuz          Debian 12's kernel; dom0's and the PVH guest's
#   dom0-initrd.gz   busybox + the few modules that reach the root disk (a big
#                    initramfs-tools image is slow to copy in Xen's early boot)
#   dom0.img         ext4 root: debootstrap bookworm minbase + xen-utils-4.17 + qemu-system-xen
#   versions.txt     package versions that went in
#
# Nothing here is installed on the host: the hypervisor and kernel packages are
# fetched with `apt-get download` and unpacked with `dpkg -x`.
#
# Usage: build-image.sh OUT DEB_CACHE
# Exit 3 = the Debian mirror could not be reached (the caller skips the lab).
set -euo pipefail

mkdir -p "$1" "$2"
out=$(cd "$1" && pwd)
debs=$(cd "$2" && pwd)
here=$(cd "$(dirname "$0")" && pwd)
mirror=${XEN_LAB_MIRROR:-http://deb.debian.org/debian}
security=${XEN_LAB_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
suite=bookworm
heavy=(nice -n 19 ionice -c3)

work="$out.tmp"
mkdir -p "$work" "$debs"
rootfs="$work/rootfs"

say() { echo "[build-image $(date +%T)] $*"; }
mirror_down() { echo "build-image: Debian mirror unreachable: $*" >&2; exit 3; }

# Resumable while iterating: each finished step leaves a marker in $work.
done_step() { [ -e "$work/.done-$1" ]; }
mark() { touch "$work/.done-$1"; }

# Extra packages for dom0 (debootstrap resolves their dependencies).
readarray -t extra < <(grep -v '^#' "$here/image/packages" | grep .)
include=$(IFS=,; echo "${extra[*]}")
# Installed after debootstrap, from the release and its updates/security suites.
readarray -t xen_pkgs < <(grep -v '^#' "$here/image/xen-packages" | grep .)

if ! done_step debootstrap; then
  say "debootstrap $suite minbase + ${include} (minutes)"
  rm -rf "$rootfs"
  if ! "${heavy[@]}" debootstrap --variant=minbase --cache-dir="$debs" --include="$include" \
      "$suite" "$rootfs" "$mirror" >"$work/debootstrap.log" 2>&1; then
    tail -n 20 "$work/debootstrap.log" >&2
    if grep -qiE 'Failed getting release file|Couldn.t download|Temporary failure|Could not resolve|Connection (refused|timed out)' \
        "$work/debootstrap.log"; then
      mirror_down "debootstrap could not fetch from $mirror"
    fi
    echo "build-image: debootstrap failed (log: $work/debootstrap.log)" >&2
    exit 1
  fi
  mark debootstrap
fi

# Xen from the same suites the host's libxen-dev comes from (bookworm +
# updates + security): debootstrap alone sees only the release, whose Xen
# point release differs from the security one the host builds xmotion with.
if ! done_step xen-utils; then
  say "installing ${xen_pkgs[*]} in dom0 (apt in the chroot, with updates and security)"
  printf 'deb %s %s main\ndeb %s %s-updates main\ndeb %s %s-security main\n' \
    "$mirror" "$suite" "$mirror" "$suite" "$security" "$suite" >"$rootfs/etc/apt/sources.list"
  cp /etc/resolv.conf "$rootfs/etc/resolv.conf" 2>/dev/null || true
  # No daemon may start inside the chroot.
  printf '#!/bin/sh\nexit 101\n' >"$rootfs/usr/sbin/policy-rc.d"
  chmod +x "$rootfs/usr/sbin/policy-rc.d"
  cp -n "$debs"/*.deb "$rootfs/var/cache/apt/archives/" 2>/dev/null || true
  mount -t proc proc "$rootfs/proc"
  trap 'umount "$rootfs/proc" 2>/dev/null' EXIT
  in_root() { "${heavy[@]}" chroot "$rootfs" env DEBIAN_FRONTEND=noninteractive LC_ALL=C "$@"; }
  in_root apt-get update -qq >"$work/apt.log" 2>&1 || mirror_down "apt-get update in dom0: $(tail -n3 "$work/apt.log")"
  if ! in_root apt-get install -y -qq --no-install-recommends "${xen_pkgs[@]}" >>"$work/apt.log" 2>&1; then
    tail -n 20 "$work/apt.log" >&2
    grep -qiE 'Temporary failure|Could not resolve|Unable to fetch|Connection' "$work/apt.log" &&
      mirror_down "apt-get install in dom0 could not fetch"
    echo "build-image: apt-get install in dom0 failed (log: $work/apt.log)" >&2
    exit 1
  fi
  tools_ver=$(in_root dpkg-query -W -f='${Version}' xen-utils-4.17)
  kpkg=$(in_root apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/{print $2; exit}')
  [ -n "$kpkg" ] || { echo "build-image: no linux-image-amd64 in dom0's apt lists" >&2; exit 1; }
  # The hypervisor of exactly the tools' version, and the kernel: fetched, not installed.
  rm -rf "$rootfs/tmp/dl" && mkdir -p "$rootfs/tmp/dl"
  in_root sh -c "cd /tmp/dl && apt-get download -qq xen-hypervisor-4.17-amd64=$tools_ver $kpkg" >>"$work/apt.log" 2>&1 ||
    mirror_down "apt-get download in dom0: $(tail -n3 "$work/apt.log")"
  rm -rf "$work/dl" && mv "$rootfs/tmp/dl" "$work/dl"
  cp -n "$rootfs"/var/cache/apt/archives/*.deb "$work"/dl/*.deb "$debs/" 2>/dev/null || true
  umount "$rootfs/proc"
  trap - EXIT
  rm -f "$rootfs/usr/sbin/policy-rc.d"
  mark xen-utils
fi

if ! done_step kernel; then
  say "unpacking the kernel into the root and pruning modules"
  kdeb=$(ls "$work"/dl/linux-image-*.deb)
  # Not `dpkg -x` straight into the root: its /lib would replace the merged-usr
  # symlink (and hide the dynamic loader).
  rm -rf "$work/kpkg"
  dpkg -x "$kdeb" "$work/kpkg"
  mkdir -p "$rootfs/usr/lib/modules"
  cp -a "$work"/kpkg/lib/modules/* "$rootfs/usr/lib/modules/"
  cp -a "$work"/kpkg/boot/* "$rootfs/boot/"
  rm -rf "$work/kpkg"
  kver=$(ls "$rootfs/lib/modules" | head -n1)
  # Drivers no nested-Xen lab needs (hardware, graphics, wireless, sound...):
  # they are most of the package's size, and the image is written each build.
  m="$rootfs/lib/modules/$kver/kernel"
  rm -rf "$m"/drivers/{gpu,media,net/wireless,net/ethernet,infiniband,staging,scsi,usb,bluetooth,iio,hid,input,mtd,isdn,md,nfc,thunderbolt,hwmon,platform,edac,crypto,firewire,power,leds,mmc,video,misc} \
         "$m"/sound "$m"/net/{wireless,mac80211,bluetooth,sunrpc,ceph,rxrpc} \
         "$m"/fs/{nfs,nfsd,ocfs2,xfs,btrfs,f2fs,gfs2,ceph,cifs,smb,ntfs3,jfs,reiserfs,nilfs2,ubifs,dlm,afs,coda,orangefs,erofs,hfsplus,udf,gfs2}
  chroot "$rootfs" depmod "$kver"
  cp "$rootfs/boot/vmlinuz-$kver" "$work/vmlinuz"
  mark kernel
fi
kver=$(ls "$rootfs/lib/modules" | head -n1)

if ! done_step xen; then
  say "extracting the Xen hypervisor"
  rm -rf "$work/xenpkg"
  dpkg -x "$work"/dl/xen-hypervisor-4.17-amd64_*.deb "$work/xenpkg"
  gz=$(ls "$work"/xenpkg/boot/xen-4.17*-amd64.gz 2>/dev/null | head -n1 || true)
  [ -n "$gz" ] || gz=$(ls "$work"/xenpkg/boot/xen-*.gz | head -n1)
  gunzip -c "$gz" >"$work/xen.elf"
  hv_ver=$(dpkg-deb -f "$work"/dl/xen-hypervisor-4.17-amd64_*.deb Version)
  tools_ver=$(chroot "$rootfs" dpkg-query -W -f='${Version}' xen-utils-4.17)
  if [ "$hv_ver" != "$tools_ver" ]; then
    echo "build-image: hypervisor $hv_ver and xen-utils-4.17 $tools_ver differ; the mirror changed mid-build? rebuild" >&2
    exit 1
  fi
  mark xen
fi

if ! done_step configure; then
  say "configuring dom0"
  install -m 0755 "$here/image/dom0-init" "$rootfs/sbin/xen-lab-init"
  echo xen-lab-dom0 >"$rootfs/etc/hostname"
  printf '127.0.0.1 localhost xen-lab-dom0\n' >"$rootfs/etc/hosts"
  printf '/dev/vda / ext4 rw 0 1\n' >"$rootfs/etc/fstab"
  mkdir -p "$rootfs/lab" "$rootfs/var/log/xen/console"
  # Debian's package cache is dead weight in the image.
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
  mark configure
fi

if ! done_step initrd; then
  say "building dom0's busybox initrd"
  ird="$work/initrd"
  rm -rf "$ird" && mkdir -p "$ird"/{bin,dev,proc,sys,newroot,lib/modules}
  cp "$rootfs/bin/busybox" "$ird/bin/busybox"
  # The kernel opens /dev/console for /init before anything is mounted.
  mknod -m 600 "$ird/dev/console" c 5 1
  install -m 0755 "$here/image/initrd-init" "$ird/init"
  # The modules (and what they depend on, deepest first) that reach /dev/vda.
  mdir="$rootfs/lib/modules/$kver"
  : >"$ird/modules.order"
  add_mod() {
    local name=$1 line path dep
    line=$(grep -E "(^|/)${name}\.ko(\.xz|\.zst)?:" "$mdir/modules.dep" || true)
    if [ -z "$line" ]; then
      grep -qE "(^|/)${name}\.ko" "$mdir/modules.builtin" && return 0
      echo "build-image: module $name neither built nor built in" >&2
      return 1
    fi
    path=${line%%:*}
    for dep in $(echo "${line#*:}" | tr ' ' '\n' | tac); do
      grep -qxF "$dep" "$ird/modules.order" || echo "$dep" >>"$ird/modules.order"
    done
    grep -qxF "$path" "$ird/modules.order" || echo "$path" >>"$ird/modules.order"
  }
  for mod in $(grep -v '^#' "$here/image/initrd-modules"); do add_mod "$mod"; done
  while read -r path; do
    mkdir -p "$ird/lib/modules/$(dirname "$path")"
    case "$path" in
      *.xz) xz -dc "$mdir/$path" >"$ird/lib/modules/${path%.xz}" ;;
      *.zst) zstd -qdc "$mdir/$path" >"$ird/lib/modules/${path%.zst}" ;;
      *) cp "$mdir/$path" "$ird/lib/modules/$path" ;;
    esac
  done <"$ird/modules.order"
  sed -i -e 's/\.xz$//' -e 's/\.zst$//' "$ird/modules.order"
  (cd "$ird" && find . | LC_ALL=C sort | cpio -o -H newc --quiet) | gzip -9 >"$work/dom0-initrd.gz"
  mark initrd
fi

if ! done_step image; then
  say "writing the ext4 root image"
  {
    echo "kernel $kver"
    chroot "$rootfs" dpkg-query -W -f='${Package} ${Version}\n' xen-utils-4.17 busybox-static libc6 python3 qemu-system-xen seabios
    echo "xen-hypervisor-4.17-amd64 $(dpkg-deb -f "$work"/dl/xen-hypervisor-4.17-amd64_*.deb Version)"
  } >"$work/versions.txt"
  used_mb=$(du -sm "$rootfs" | cut -f1)
  size_mb=$((used_mb + used_mb / 2 + 256))
  rm -f "$work/dom0.img"
  truncate -s "${size_mb}M" "$work/dom0.img"
  "${heavy[@]}" mkfs.ext4 -q -F -L xenlabroot -d "$rootfs" "$work/dom0.img"
  mark image
fi

mkdir -p "$out"
for f in xen.elf vmlinuz dom0-initrd.gz dom0.img versions.txt; do mv -f "$work/$f" "$out/$f"; done
rm -rf "$work"
say "done: $(tr '\n' ';' <"$out/versions.txt")"
