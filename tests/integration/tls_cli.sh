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
[ "$(stat -c %a "$tmp/d.ca")" = 700 ] || fail "CA directory mode"
[ "$(stat -c %a "$tmp/d.ca/ca-key.pem")" = 600 ] || fail "ca-key.pem mode"
[ ! -e "$tmp/d/ca-key.pem" ] || fail "the CA key is in the credentials directory"
for f in server-key client-key; do
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
# A CA of its own, a directory per host.
expect 0 "keep this directory private" $Q tls init --ca "$tmp/ca"
[ "$(stat -c %a "$tmp/ca")" = 700 ] || fail "CA directory mode"
expect 0 "from the CA in $tmp/ca for src.example" \
	$Q tls issue --ca "$tmp/ca" --host src.example --out "$tmp/src"
expect 0 "for dst.example 10.0.0.2" \
	$Q tls issue --ca "$tmp/ca" --host dst.example --host 10.0.0.2 --out "$tmp/dst"
ls "$tmp/src" "$tmp/dst"
for d in src dst; do
	[ ! -e "$tmp/$d/ca-key.pem" ] || fail "$d has the CA key"
	# No file in a host's directory is the CA's key.
	for k in "$tmp/$d"/*; do
		if openssl pkey -in "$k" -pubout 2>/dev/null > "$tmp/pub"; then
			openssl x509 -in "$tmp/ca/ca-cert.pem" -pubkey -noout > "$tmp/capub"
			cmp -s "$tmp/pub" "$tmp/capub" && fail "$k is the CA's key"
		fi
	done
done
cmp -s "$tmp/src/server-key.pem" "$tmp/dst/server-key.pem" && fail "hosts share a key"
expect 0 "valid for the destination connecting to 10.0.0.2" \
	$Q tls check "$tmp/dst" --role server --host 10.0.0.2
expect 0 "valid for the source" $Q tls check "$tmp/src" --role client
# The CA's key copied in (under any name), or a key others can read: refused.
cp "$tmp/ca/ca-key.pem" "$tmp/dst/ca-key.pem"
expect 1 "dst/ca-key.pem is the CA's private key" $Q tls check "$tmp/dst" --role server
mv "$tmp/dst/ca-key.pem" "$tmp/dst/old.pem"
expect 1 "dst/old.pem is the CA's private key" $Q tls check "$tmp/dst" --role client
rm "$tmp/dst/old.pem"
chmod 640 "$tmp/dst/server-key.pem"
expect 1 "server-key.pem is a private key open to group or others (mode 0640)" \
	$Q tls check "$tmp/dst"
chmod 600 "$tmp/dst/server-key.pem"
expect 0 "valid" $Q tls check "$tmp/dst"
expect 2 "holds the CA" $Q tls issue --ca "$tmp/ca" --host x --out "$tmp/ca"
expect 2 "--ca CADIR is needed" $Q tls issue --host x --out "$tmp/x"
expect 2 "already exists" $Q tls init --ca "$tmp/ca"
expect 2 "makes only the CA" $Q tls init --ca "$tmp/ca2" --host x
mkdir -m 755 "$tmp/openca"
expect 1 "open to group or others (mode 0755): chmod 700" $Q tls init --ca "$tmp/openca"
expect 1 "no CA in" $Q tls issue --ca "$tmp/nothing" --host x --out "$tmp/x"
echo PASS
