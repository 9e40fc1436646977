#!/bin/sh
# qemu-cache.sh VERSION: fetch a second QEMU from Debian's archive into a
# private cache and print the path of a wrapper that runs it.
#
#   tools/qemu-cache.sh 10.0      -> ~/.cache/qmigrate/qemu-10.0/qemu-system-x86_64
#
# The packages come from the suite that carries that version (10.0:
# bookworm-backports) through a PRIVATE apt configuration: its own
# sources.list, state and cache directories under the cache. The machine's
# apt sources, its package lists and its installed packages are untouched;
# nothing is installed, the .debs are only unpacked with dpkg-deb -x.
# The archive host is the one the machine's own apt already uses.
#
# The wrapper sets QEMU_MODULE_DIR to the private module directory (else
# QEMU loads the system QEMU's modules and stops: "Only modules from the
# same build can be loaded") and passes -L with the private firmware
# directory. A second run finds the wrapper and prints it at once.
# Exit status: 0 and the path on stdout; 1 with a reason on stderr.
set -eu

die() { echo "qemu-cache: $*" >&2; exit 1; }

ver=${1:-}
case "$ver" in
10.0) suite=bookworm-backports; want='10.0.*' ;;
"") die "usage: qemu-cache.sh VERSION (known: 10.0)" ;;
*) die "unknown QEMU version '$ver' (known: 10.0)" ;;
esac

base=${QMIGRATE_CACHE:-${XDG_CACHE_HOME:-${HOME:-/root}/.cache}/qmigrate}
old=""
if [ -z "${QMIGRATE_CACHE:-}" ] && [ -z "${XDG_CACHE_HOME:-}" ] && [ "$(id -u)" = 0 ]; then
	# Launched QEMUs run as an unprivileged user (qmigrate launch --runas),
	# which cannot reach into root's 0700 home: root's cache is here.
	old=${HOME:-/root}/.cache/qmigrate/qemu-$ver
	base=/var/cache/qmigrate
fi
dir=$base/qemu-$ver
wrapper=$dir/qemu-system-x86_64
if [ -x "$wrapper" ] && [ -f "$dir/.complete" ]; then
	echo "$wrapper"
	exit 0
fi

command -v apt-get >/dev/null 2>&1 || die "apt-get not found (Debian needed)"
command -v dpkg-deb >/dev/null 2>&1 || die "dpkg-deb not found"
mkdir -p "$base"
chmod 755 "$base"

# One fetch at a time per cache (tests run in parallel).
exec 9>"$base/.qemu-$ver.lock"
if command -v flock >/dev/null 2>&1; then
	flock -w 600 9 || die "timed out waiting for another fetch of QEMU $ver"
fi
if [ -x "$wrapper" ] && [ -f "$dir/.complete" ]; then
	echo "$wrapper"
	exit 0
fi
# An earlier cache in root's home: moved over (copied), not fetched again.
if [ -n "$old" ] && [ -f "$old/.complete" ] && [ -x "$old/qemu-system-x86_64" ]; then
	rm -rf "$dir.tmp"
	cp -a "$old" "$dir.tmp"
	sed "s|$old|$dir|g" "$old/qemu-system-x86_64" > "$dir.tmp/qemu-system-x86_64"
	chmod 755 "$dir.tmp" "$dir.tmp/qemu-system-x86_64"
	rm -rf "$dir"
	mv "$dir.tmp" "$dir"
	if "$wrapper" -version >/dev/null 2>&1; then
		echo "$wrapper"
		exit 0
	fi
	rm -rf "$dir"
fi

# The archive host the machine's apt uses (first Debian "debian" URI),
# deb.debian.org when none is found.
mirror=""
for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.sources \
	/etc/apt/sources.list.d/*.list; do
	[ -r "$f" ] || continue
	m=$(sed -n -e 's/^[[:space:]]*URIs:[[:space:]]*\([^[:space:]]*\/debian\)\/\{0,1\}[[:space:]]*$/\1/p' \
		-e 's/^[[:space:]]*deb[[:space:]]\{1,\}\(\[[^]]*\][[:space:]]*\)\{0,1\}\([^[:space:]]*\/debian\)\/\{0,1\}[[:space:]].*/\2/p' \
		"$f" | head -1)
	if [ -n "$m" ]; then mirror=$m; break; fi
done
[ -n "$mirror" ] || mirror=http://deb.debian.org/debian
keyring=/usr/share/keyrings/debian-archive-keyring.gpg
[ -r "$keyring" ] || die "$keyring missing (package debian-archive-keyring)"

work=$(mktemp -d "$base/.qemu-$ver.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/etc/apt.conf.d" "$work/etc/preferences.d" "$work/etc/trusted.gpg.d" \
	"$work/state/lists/partial" "$work/cache/archives/partial" "$work/debs" "$work/root"
# Both suites: backports alone lacks what its packages depend on, and apt
# resolves the version from the merged view.
cat > "$work/etc/sources.list" <<EOF
deb [signed-by=$keyring] $mirror bookworm main
deb [signed-by=$keyring] $mirror $suite main
EOF
: > "$work/state/status"

apt_priv() {
	apt-get -q \
		-o Dir::Etc="$work/etc" \
		-o Dir::Etc::SourceList="$work/etc/sources.list" \
		-o Dir::Etc::SourceParts="$work/etc/sources.list.d" \
		-o Dir::Etc::Parts="$work/etc/apt.conf.d" \
		-o Dir::Etc::PreferencesParts="$work/etc/preferences.d" \
		-o Dir::Etc::TrustedParts="$work/etc/trusted.gpg.d" \
		-o Dir::State="$work/state" \
		-o Dir::State::Lists="$work/state/lists" \
		-o Dir::State::status="$work/state/status" \
		-o Dir::Cache="$work/cache" \
		-o Debug::NoLocking=1 \
		-o APT::Sandbox::User=root \
		"$@"
}

apt_priv update >"$work/update.log" 2>&1 ||
	die "apt-get update of $suite from $mirror failed (no network?): $(tail -2 "$work/update.log" | tr '\n' ' ')"

(
	cd "$work/debs"
	for p in qemu-system-x86 qemu-system-common qemu-system-data; do
		v=$(apt_priv -qq --print-uris download "$p/$suite" 2>/dev/null |
			sed -n "s/.*_\([^_]*\)_[a-z0-9]*\.deb' .*/\1/p" | head -1)
		v=${v#*%3a}; v=${v#*:}
		case "$v" in
		$want) ;;
		"") die "package $p not found in $suite" ;;
		*) die "package $p in $suite is version $v, not $ver" ;;
		esac
		apt_priv -qq download "$p/$suite" >"$work/download.log" 2>&1 ||
			die "apt-get download $p/$suite failed: $(tail -2 "$work/download.log" | tr '\n' ' ')"
	done
)
for d in "$work"/debs/*.deb; do
	dpkg-deb -x "$d" "$work/root" || die "dpkg-deb -x $d failed"
done

bin=$work/root/usr/bin/qemu-system-x86_64
[ -x "$bin" ] || die "the packages did not contain usr/bin/qemu-system-x86_64"
moddir=$(find "$work/root/usr/lib" -maxdepth 3 -name '*.so' -path '*/qemu/*' | head -1)
moddir=${moddir%/*}
[ -n "$moddir" ] || die "no module directory in the packages"
moddir=${moddir#"$work/root/"}

rm -rf "$dir"
mkdir -p "$dir"
mv "$work/root" "$dir/root"
cat > "$wrapper" <<EOF
#!/bin/sh
# QEMU $ver from Debian $suite, unpacked by qmigrate's tools/qemu-cache.sh.
QEMU_MODULE_DIR='$dir/root/$moddir'
export QEMU_MODULE_DIR
exec '$dir/root/usr/bin/qemu-system-x86_64' -L '$dir/root/usr/share/qemu' "\$@"
EOF
chmod 755 "$wrapper"
# A wrapper that cannot even print its version is not cached.
"$wrapper" -version >"$work/version.txt" 2>&1 ||
	{ rm -rf "$dir"; die "the unpacked QEMU does not run: $(head -3 "$work/version.txt" | tr '\n' ' ')"; }
grep -q "version $want" "$work/version.txt" ||
	{ rm -rf "$dir"; die "the unpacked QEMU says: $(head -1 "$work/version.txt")"; }
ls "$work/debs" > "$dir/packages.txt"
touch "$dir/.complete"
echo "$wrapper"
