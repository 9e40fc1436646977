#!/bin/sh
# Install the Debian packages qmigrate needs to build, test and run its
# guests. As root it installs what is missing; otherwise it names the command.
set -e

PKGS="gcc make pkg-config binutils libc6-dev libjson-c-dev liburing-dev libcap-ng-dev \
libssl-dev libcunit1-dev qemu-system-x86 qemu-utils iproute2 procps cpio xz-utils zstd"
# make check compiles every public header as C++17 too.
PKGS="$PKGS g++"
# make bench-peers (sh tools/deps.sh bench): libvirt beside qmigrate, two
# daemons run by bench/peers.sh itself (no service, no systemd).
if [ "${1:-}" = bench ]; then
	PKGS="libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients"
	# libvirt's QEMU driver looks its default user up at start (Debian's
	# libvirt-daemon-system would create it, with polkit and firewalld).
	if ! getent passwd libvirt-qemu >/dev/null 2>&1; then
		[ "$(id -u)" = 0 ] || { echo "qmigrate: bench-peers needs root" >&2; exit 1; }
		useradd --system --no-create-home --user-group --shell /usr/sbin/nologin libvirt-qemu
	fi
fi

missing=""
for p in $PKGS; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
		missing="$missing $p"
	fi
done
# A second QEMU (10.0, Debian backports, private cache) for the
# cross-version tests; they skip when it cannot be fetched.
if [ "${1:-}" != bench ] && { [ -z "$missing" ] || [ "$(id -u)" = 0 ]; }; then
	sh "$(dirname "$0")/qemu-cache.sh" 10.0 >/dev/null ||
		echo "qmigrate: QEMU 10.0 unavailable: cross-version tests will be skipped" >&2
fi
[ -z "$missing" ] && exit 0

if [ "$(id -u)" != 0 ]; then
	echo "qmigrate: missing Debian packages:$missing" >&2
	echo "qmigrate: install them with: sudo apt-get install$missing" >&2
	exit 1
fi
echo "qmigrate: installing missing packages:$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >/dev/null
