#!/bin/sh
# qmigrate tls init / check from the command line: files and modes, exit
# codes, and a specific message for each broken directory.
cd "$(dirname "$0")/../.." || exit 1
Q=./tools/qmigrate
[ -x "$Q" ] || { echo "FAIL: $Q not built"; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

# expect RC NEEDLE CMD...: the command exits RC and its output contains NEEDLE.
expect() {
	want=$1 needle=$2
	shift 2
	out=$("$@" 2>&1)
	rc=$?
	echo "\$ $* -> $rc: $out"
	[ "$rc" = "$want" ] || fail "exit $rc, wanted $want"
	case $out in *"$needle"*) ;; *) fail "output lacks '$needle'" ;; esac
}

expect 0 "certificates for dst.example 10.250.9.2" \
	$Q tls init "$tmp/d" --host dst.example --host 10.250.9.2 --days 30
[ "$(stat -c %a "$tmp/d")" = 700 ] || fail "directory mode"
for f in ca-key server-key client-key; do
	[ "$(stat -c %a "$tmp/d/$f.pem")" = 600 ] || fail "$f.pem mode"
done
for f in ca-cert server-cert client-cert; do
	[ -s "$tmp/d/$f.pem" ] || fail "$f.pem missing"
done
expect 0 "valid for the source and destination connecting to 10.250.9.2" \
	$Q tls check "$tmp/d" --host 10.250.9.2
expect 0 "valid for the destination" $Q tls check "$tmp/d" --role server --host dst.example
expect 1 "does not name 'dst2.example'" $Q tls check "$tmp/d" --host dst2.example
expect 2 "already exists; --force replaces" $Q tls init "$tmp/d" --host x
expect 0 "CA (kept)" $Q tls init "$tmp/d" --host dst2.example --reuse-ca --force
expect 0 "valid" $Q tls check "$tmp/d" --host dst2.example
expect 2 "at least one --host" $Q tls init "$tmp/e"
expect 2 "neither a host name nor an IP address" $Q tls init "$tmp/e" --host "a b"
expect 2 "--role must be" $Q tls check "$tmp/d" --role sideways
expect 2 "unknown command" $Q tls frobnicate "$tmp/d"
expect 0 "usage: qmigrate tls init" $Q tls --help
# Broken directories: another CA, a swapped key, no client certificate.
expect 0 "" $Q tls init "$tmp/o" --host dst.example
cp "$tmp/o/ca-cert.pem" "$tmp/d/ca-cert.pem"
expect 1 "was not issued by the CA in ca-cert.pem" $Q tls check "$tmp/d" --role server
cp "$tmp/o/client-key.pem" "$tmp/o/server-key.pem"
expect 1 "server-key.pem does not match server-cert.pem" $Q tls check "$tmp/o"
rm "$tmp/o/client-cert.pem"
expect 1 "client-cert.pem: No such file or directory" $Q tls check "$tmp/o" --role client
echo PASS
