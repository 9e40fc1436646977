#!/bin/sh
# Install the Debian packages qmigrate needs to build, test and run its
# guests. As root it installs what is missing; otherwise it names the command.
# It also makes the system user launched QEMUs run as (qmigrate-qemu: no
# login, no home, a group of its own); `deps.sh --user` does only that
# (make install).
set -e

QEMU_USER=qmigrate-qemu

make_user() {
	getent passwd "$QEMU_USER" >/dev/null 2>&1 && return 0
	if [ "$(id -u)" != 0 ]; then
		echo "qmigrate: no user $QEMU_USER; as root: useradd --system --user-group" \
			"--no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin" \
			"$QEMU_USER" >&2
		return 0
	fi
	useradd --system --user-group --no-create-home --home-dir /nonexistent \
		--shell /usr/sbin/nologin --comment "QEMU launched by qmigrate" "$QEMU_USER"
	# KVM where /dev/kvm is for the kvm group (it is root's alone on some hosts).
	if getent group kvm >/dev/null 2>&1; then
		usermod -a -G kvm "$QEMU_USER"
	fi
	echo "qmigrate: created system user $QEMU_USER for launched QEMUs"
}

if [ "${1:-}" = --user ]; then
	make_user
	exit 0
fi

PKGS="gcc make pkg-config binutils libc6-dev libjson-c-dev liburing-dev libcap-ng-dev \
libssl-dev libcunit1-dev qemu-system-x86 qemu-utils iproute2 procps cpio xz-utils zstd"
# make check compiles every public header as C++17 too.
PKGS="$PKGS g++"
# make check renders the section-3 man pages with groff (no warnings allowed).
PKGS="$PKGS groff-base"
# make check and make fuzz run the libFuzzer targets (tests/fuzz/).
PKGS="$PKGS clang"
# make check: agent_ssh.sh starts its own sshd (in a network namespace, on
# a throwaway key); agent_refuse.sh's hostile client is a Python script.
PKGS="$PKGS openssh-server openssh-client python3"
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
make_user
[ -z "$missing" ] && exit 0

if [ "$(id -u)" != 0 ]; then
	echo "qmigrate: missing Debian packages:$missing" >&2
	echo "qmigrate: install them with: sudo apt-get install$missing" >&2
	exit 1
fi
echo "qmigrate: installing missing packages:$missing"
export DEBIAN_FRONTEND=noninteractive
# openssh-server is for the tests' own sshd only: when we install it, the
# system's ssh service must not start (now or at boot) and listen on port
# 22. Debian's unit and init script both skip when this file exists; the
# policy-rc.d (only while installing, and only when none is there) keeps
# the package scripts from starting anything.
policy=""
case " $missing " in
*" openssh-server "*)
	mkdir -p /etc/ssh
	touch /etc/ssh/sshd_not_to_be_run
	if [ ! -e /usr/sbin/policy-rc.d ]; then
		policy=/usr/sbin/policy-rc.d
		printf '#!/bin/sh\n# qmigrate tools/deps.sh: no service starts while it installs\nexit 101\n' > "$policy"
		chmod 755 "$policy"
	fi
	;;
esac
apt-get update -qq
# shellcheck disable=SC2086
rc=0
apt-get install -y -qq --no-install-recommends $missing >/dev/null || rc=$?
[ -n "$policy" ] && rm -f "$policy"
case " $missing " in
*" openssh-server "*)
	if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
		systemctl disable --now ssh.service ssh.socket >/dev/null 2>&1 || true
	elif command -v update-rc.d >/dev/null 2>&1; then
		update-rc.d ssh disable >/dev/null 2>&1 || true
	fi
	echo "qmigrate: installed openssh-server for the tests; its system service is disabled" \
		"(/etc/ssh/sshd_not_to_be_run)"
	;;
esac
exit $rc
