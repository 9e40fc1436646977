#!/bin/sh
# Build the Linux test guest into a cache outside the source tree:
#   $QMIGRATE_LINUX_DIR, else ${XDG_CACHE_HOME:-$HOME/.cache}/qmigrate/linux
# holding vmlinux (the uncompressed kernel: boots ~3x faster under TCG than
# the bzImage) and initramfs.cpio.gz (our static /init, busybox for httpd,
# the virtio-net modules). Debian's kernel and busybox-static packages are
# downloaded with apt-get download and unpacked with dpkg-deb, never
# installed. Reused when the inputs have not changed.
set -eu
SRC=$(cd "$(dirname "$0")" && pwd)
OUT=${QMIGRATE_LINUX_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/qmigrate/linux}
CC=${CC:-gcc}

die() { echo "linux-guest: $*" >&2; exit 1; }

kernel_pkg() {
	apt-cache depends linux-image-amd64 2>/dev/null |
		sed -n 's/.*Depends: \(linux-image-[0-9][^ ]*-amd64\)$/\1/p' | head -1
}
pkg=$(kernel_pkg)
if [ -z "$pkg" ]; then
	[ "$(id -u)" = 0 ] || die "apt-cache knows no linux-image-amd64; run: sudo apt-get update"
	apt-get update -qq
	pkg=$(kernel_pkg)
	[ -n "$pkg" ] || die "no linux-image-amd64 package in the apt sources"
fi
ver=$(apt-cache policy "$pkg" | sed -n 's/.*Candidate: //p')
key=$(cat "$SRC/build.sh" "$SRC/init.c" "$SRC/stamp.h" | sha256sum | cut -c1-16)-$pkg-$ver
if [ -f "$OUT/key" ] && [ "$(cat "$OUT/key")" = "$key" ] &&
   [ -f "$OUT/vmlinux" ] && [ -f "$OUT/initramfs.cpio.gz" ]; then
	echo "linux-guest: up to date in $OUT"
	exit 0
fi

W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
cd "$W"
echo "linux-guest: downloading $pkg $ver and busybox-static"
apt-get download -q "$pkg" busybox-static >/dev/null 2>&1 ||
	die "apt-get download $pkg busybox-static failed (run apt-get update?)"
dpkg-deb -x "$pkg"_*.deb k
dpkg-deb -x busybox-static_*.deb b

# The bzImage carries the kernel compressed (xz in Debian 12): find the
# xz stream and unpack it to the ELF vmlinux, which QEMU boots via PVH.
vmlinuz=$(ls k/boot/vmlinuz-*)
off=$(LC_ALL=C grep -obUaP '\xfd7zXZ\x00' "$vmlinuz" | head -1 | cut -d: -f1)
[ -n "$off" ] || die "no xz stream in $vmlinuz"
tail -c +$((off + 1)) "$vmlinuz" | xz -dcq > vmlinux 2>/dev/null || true
head -c 4 vmlinux | grep -q 'ELF' || die "could not unpack vmlinux from $vmlinuz"

mkdir -p root/bin root/dev root/proc root/sys root/www root/lib/modules
$CC -static -O2 -Wall -Wextra -Werror -I"$SRC" -o root/init "$SRC/init.c"
cp b/bin/busybox root/bin/busybox
echo "qmigrate-linux-guest" > root/www/index.html
for m in virtio virtio_ring virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci \
	 failover net_failover virtio_net; do
	f=$(find k/lib/modules -name "$m.ko" | head -1)
	[ -n "$f" ] || die "module $m.ko not in $pkg"
	cp "$f" root/lib/modules/
done
(cd root && find . | cpio -o -H newc --quiet | gzip -9) > initramfs.cpio.gz

mkdir -p "$OUT"
mv vmlinux initramfs.cpio.gz "$OUT/"
echo "$key" > "$OUT/key"
echo "linux-guest: built in $OUT ($(du -sh "$OUT" | cut -f1))"
