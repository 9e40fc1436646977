#!/bin/sh
# Build the Linux test guest into a cache directory outside the source tree,
#   $QMIGRATE_LINUX_DIR, else ${XDG_CACHE_HOME:-$HOME/.cache}/qmigrate/linux:
#   vmlinux            the kernel, uncompressed (QEMU boots the ELF through its
#                      PVH entry; under TCG that skips the slow decompression)
#   initramfs.cpio.gz  our static /init, busybox (httpd), virtio-net modules
#   bzImage            Debian's kernel as shipped, for comparison
# Debian 12's linux-image-*-amd64 and busybox-static are fetched with
# apt-get download and unpacked with dpkg-deb, never installed. The result
# is reused while this script, init.c, stamp.h and the package versions
# stay the same. The last line printed is the directory.
# Exit status: 0 built or up to date, 77 the packages cannot be had, 1 error.
set -eu
SRC=$(cd "$(dirname "$0")" && pwd)
OUT=${QMIGRATE_LINUX_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/qmigrate/linux}
CC=${CC:-gcc}
# What /init loads; their dependencies are found in the modules themselves.
MODULES="virtio_pci virtio_net virtio_blk"

say() { echo "linux-guest: $*"; }
die() { echo "linux-guest: $*" >&2; exit 1; }
unavailable() { echo "linux-guest: $*" >&2; exit 77; }

kernel_pkg() {
	apt-cache depends linux-image-amd64 2>/dev/null |
		sed -n 's/^ *Depends: \(linux-image-[0-9][^ ]*-amd64\)$/\1/p' | head -1
}
candidate() { apt-cache policy "$1" 2>/dev/null | sed -n 's/^ *Candidate: //p'; }

src_hash=$(cat "$SRC/build.sh" "$SRC/init.c" "$SRC/stamp.h" | sha256sum | cut -c1-16)
built() { [ -f "$OUT/vmlinux" ] && [ -f "$OUT/initramfs.cpio.gz" ] && [ -f "$OUT/key" ]; }
# Same sources, whatever the package versions: better than nothing when
# apt cannot tell or fetch the current ones.
reuse_stale() {
	if built && [ "$(cut -d' ' -f1 "$OUT/key")" = "$src_hash" ]; then
		say "$1; reusing the guest built from $(cut -d' ' -f2- "$OUT/key")"
		echo "$OUT"
		exit 0
	fi
}

# Which kernel: the one the linux-image-amd64 metapackage points at.
updated=no
kpkg=$(kernel_pkg)
if [ -z "$kpkg" ]; then
	if [ "$(id -u)" = 0 ]; then
		say "apt lists know no linux-image-amd64: apt-get update"
		apt-get update -qq || true
		updated=yes
		kpkg=$(kernel_pkg)
	fi
	if [ -z "$kpkg" ]; then
		reuse_stale "apt-cache knows no linux-image-amd64"
		unavailable "apt-cache knows no linux-image-amd64: run 'apt-get update' as root (sudo apt-get update), then again 'make linux-guest'"
	fi
fi
kver=$(candidate "$kpkg")
bver=$(candidate busybox-static)
[ -n "$kver" ] && [ -n "$bver" ] ||
	unavailable "no candidate version of $kpkg or busybox-static in the apt lists"
key="$src_hash $kpkg=$kver busybox-static=$bver"

up_to_date() { built && [ "$(cat "$OUT/key")" = "$key" ]; }
if up_to_date; then
	say "up to date ($kpkg $kver)"
	echo "$OUT"
	exit 0
fi

# One build at a time; whoever waited finds it done.
mkdir -p "$OUT"
if command -v flock >/dev/null; then
	exec 9>"$OUT/.lock"
	flock -w 900 9 || die "$OUT/.lock is held by another build"
	if up_to_date; then
		echo "$OUT"
		exit 0
	fi
fi

t0=$(date +%s)
W=$(mktemp -d "${TMPDIR:-/tmp}/qmig-linux.XXXXXX")
NEW="$OUT/.new.$$"
trap 'rm -rf "$W" "$NEW"' EXIT
trap 'exit 1' INT TERM
cd "$W"

# ---- download and unpack ----
download() {
	set -- "$kpkg=$kver" "busybox-static=$bver"
	if [ "$(id -u)" = 0 ]; then
		# root: apt's _apt sandbox user could not write into our temp dir
		apt-get download -q=2 -o APT::Sandbox::User=root "$@"
	else
		apt-get download -q=2 "$@"
	fi
}
say "downloading $kpkg $kver and busybox-static $bver"
if ! download >dl.log 2>&1; then
	# Stale lists name versions the archive no longer has.
	if [ "$(id -u)" = 0 ] && [ $updated = no ]; then
		apt-get update -qq || true
		kver=$(candidate "$kpkg")
		bver=$(candidate busybox-static)
		key="$src_hash $kpkg=$kver busybox-static=$bver"
	fi
	if ! download >dl.log 2>&1; then
		cat dl.log >&2
		reuse_stale "apt-get download failed"
		unavailable "apt-get download $kpkg busybox-static failed (see above)"
	fi
fi
dpkg-deb -x "$kpkg"_*.deb k
dpkg-deb -x busybox-static_*.deb b
BUSYBOX=$W/b/bin/busybox
[ -x "$BUSYBOX" ] || die "busybox-static has no bin/busybox"

# ---- the kernel ----
# u32 FILE OFFSET: a little-endian 32-bit field of the bzImage header.
u32() {
	od -An -tu1 -j "$2" -N4 "$1" | awk '{ print $1 + 256 * ($2 + 256 * ($3 + 256 * $4)) }'
}
hex() { tail -c +$(($2 + 1)) "$1" | head -c "$3" | od -An -tx1 | tr -d ' \n'; }

# The bzImage header (Documentation/x86/boot.rst) says where the compressed
# kernel is: payload_offset (0x248) from the start of the protected-mode
# code, which follows (setup_sects + 1) sectors; payload_length at 0x24c.
# The payload ends with the 4-byte uncompressed size, which the
# decompressors do not want.
extract_vmlinux() {
	bz=$1
	[ "$(hex "$bz" 514 4)" = 48647253 ] || return 1	# "HdrS"
	sects=$(od -An -tu1 -j 497 -N1 "$bz" | tr -d ' ')
	[ "$sects" = 0 ] && sects=4
	start=$(( (sects + 1) * 512 + $(u32 "$bz" 584) ))
	len=$(( $(u32 "$bz" 588) - 4 ))
	case $(hex "$bz" "$start" 6) in
	fd377a585a00) unpack="xz -dcq" ;;
	28b52ffd*) unpack="zstd -dcq" ;;
	1f8b*) unpack="gzip -dc" ;;
	*) say "unknown compression at $start: $(hex "$bz" "$start" 6)"; return 1 ;;
	esac
	say "payload: ${unpack%% *}, $len bytes at offset $start"
	tail -c +$((start + 1)) "$bz" | head -c "$len" | $unpack > vmlinux || return 1
	[ "$(hex vmlinux 0 4)" = 7f454c46 ]	# ELF
}
bzimage=$(ls k/boot/vmlinuz-*)
if ! grep -q '^CONFIG_PVH=y' k/boot/config-*; then
	say "WARNING: this kernel has no PVH entry; vmlinux is the bzImage (slow boot)"
	cp "$bzimage" vmlinux
elif ! extract_vmlinux "$bzimage"; then
	say "WARNING: could not unpack $bzimage; vmlinux is the bzImage (slow boot)"
	cp "$bzimage" vmlinux
fi

# ---- modules, with their dependencies, loaded in order by /init ----
moddir=$(ls -d k/lib/modules/*)
mkdir -p mods
# name path, for every module file (file names may use - for _)
find "$moddir/kernel" -name '*.ko*' |
	awk '{ n = $0; sub(/.*\//, "", n); sub(/\.ko.*/, "", n); gsub(/-/, "_", n); print n, $0 }' > modindex
is_builtin() { sed 's|.*/||; s|\.ko.*||; s|-|_|g' "$moddir/modules.builtin" | grep -qx "$1"; }
unpack_module() { # NAME: mods/NAME.ko, uncompressed
	f=$(awk -v m="$1" '$1 == m { print $2; exit }' modindex)
	[ -n "$f" ] || die "module $1 is not in $kpkg"
	case $f in
	*.ko) cp "$f" "mods/$1.ko" ;;
	*.ko.xz) xz -dc "$f" > "mods/$1.ko" ;;
	*.ko.zst) zstd -dcq "$f" > "mods/$1.ko" ;;
	*.ko.gz) gzip -dc "$f" > "mods/$1.ko" ;;
	*) die "module $f: unknown compression" ;;
	esac
}
ORDER=""
SEEN=" "
add_module() { # NAME: its dependencies first, then itself
	case $SEEN in *" $1 "*) return 0 ;; esac
	SEEN="$SEEN$1 "
	if is_builtin "$1"; then
		say "$1 is built into the kernel"
		return 0
	fi
	unpack_module "$1"
	for d in $(tr '\0' '\n' < "mods/$1.ko" | sed -n 's/^depends=//p' | head -1 | tr , ' '); do
		add_module "$d"
	done
	ORDER="$ORDER $1"
}
for m in $MODULES; do
	add_module "$m"
done
say "modules:$ORDER"

# ---- the initramfs ----
R=$W/root
mkdir -p "$R/bin" "$R/dev" "$R/proc" "$R/sys" "$R/www" "$R/lib/modules"
$CC -static -O2 -s -std=gnu11 -Wall -Wextra -Werror -pthread -I"$SRC" -o "$R/init" "$SRC/init.c"
cp "$BUSYBOX" "$R/bin/busybox"
echo "qmigrate-linux-guest" > "$R/www/index.html"
i=0
for m in $ORDER; do
	i=$((i + 1))
	cp "mods/$m.ko" "$R/lib/modules/$(printf %02d $i)-$m.ko"
done
# busybox's cpio: the one archiver we are sure to have.
(cd "$R" && find . | LC_ALL=C sort | "$BUSYBOX" cpio -o -H newc -R 0:0 2>/dev/null) |
	gzip -9n > initramfs.cpio.gz
[ -s initramfs.cpio.gz ] || die "empty initramfs"

# ---- publish: each file renamed into place, the key last ----
mkdir -p "$NEW"
mv vmlinux initramfs.cpio.gz "$NEW/"
cp "$bzimage" "$NEW/bzImage"
rm -f "$OUT/key"
for f in vmlinux initramfs.cpio.gz bzImage; do
	mv "$NEW/$f" "$OUT/$f"
done
echo "$key" > "$OUT/key"
say "built $kpkg $kver in $(( $(date +%s) - t0 )) s: $(du -sh "$OUT" | cut -f1)" \
	"(vmlinux $(du -h "$OUT/vmlinux" | cut -f1), initramfs $(du -h "$OUT/initramfs.cpio.gz" | cut -f1))"
echo "$OUT"
