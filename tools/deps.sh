#!/bin/sh
# Install the Debian packages qmigrate needs to build, test and run its
# guests. As root it installs what is missing; otherwise it names the command.
set -e

PKGS="gcc make pkg-config binutils libc6-dev libjson-c-dev liburing-dev libcap-ng-dev \
libssl-dev libcunit1-dev qemu-system-x86 qemu-utils iproute2 procps cpio xz-utils zstd"
# make check compiles every public header as C++17 too.
PKGS="$PKGS g++"
# make check renders the section-3 man pages with groff (no warnings allowed).
PKGS="$PKGS groff-base"
# make check and make fuzz run the libFuzzer targets (tests/fuzz/).
PKGS="$PKGS clang"

missing=""
for p in $PKGS; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
		missing="$missing $p"
	fi
done
# A second QEMU (10.0, Debian backports, private cache) for the
# cross-version tests; they skip when it cannot be fetched.
if [ -z "$missing" ] || [ "$(id -u)" = 0 ]; then
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
