# TLS migration with QEMU's tls-creds-x509 objects: multifd across two
# network namespaces, verified; then every bad setup is refused before any
# QMP command touches the guest, with a specific message, the source still
# running and nothing left behind.
. tests/lib.sh
. tests/netns.sh
[ "$(id -u)" = 0 ] || skip "network namespaces need root"
CLEANUP_HOOKS="netns_down"
netns_up "qmt$$" || fail "could not set up the namespaces"

# The CA in its own directory; each host gets only its own credentials.
$QMIGRATE tls init --ca "$T/ca" > /dev/null || fail "tls init --ca"
$QMIGRATE tls issue --ca "$T/ca" --host src.example --out "$T/src" > /dev/null || fail "issue src"
$QMIGRATE tls issue --ca "$T/ca" --host "$NETNS_ADDR_B" --host localhost --host 127.0.0.1 \
	--out "$T/dst" > /dev/null || fail "issue dst"
for d in src dst; do
	[ ! -e "$T/$d/ca-key.pem" ] || fail "$d holds the CA key"
	$QMIGRATE tls check "$T/$d" > /dev/null || fail "tls check $d"
done
C="$T/certs"
$QMIGRATE tls init "$C" --host "$NETNS_ADDR_B" --host localhost --host 127.0.0.1 > /dev/null ||
	fail "tls init"

# 1. TLS + multifd between the namespaces, a directory per host: the
# destination accepts only the source's certificate (authz-list).
$QMIGRATE migrate --launch --guest tiny --mem 256M --dirty-rate 50M --accel tcg \
	--src-netns "$NETNS_A" --dst-netns "$NETNS_B" --dst-addr "$NETNS_ADDR_B" \
	--tls "$T/src" --tls-dst-dir "$T/dst" --multifd 2 --json > "$T/tls.jsonl" 2> "$T/tls.err" ||
	fail "TLS migration: $(tail -1 "$T/tls.jsonl") $(cat "$T/tls.err")"
res=$(tail -1 "$T/tls.jsonl"); echo "tls+multifd: $res" | cut -c1-300
[ "$(json_get verified "$res")" = true ] || fail "TLS migration not verified"
grep -q '"qom-type":"tls-creds-x509"' "$T/tls.jsonl" || fail "no tls-creds-x509 object in the plan"
grep -q "\"tls-hostname\":\"$NETNS_ADDR_B\"" "$T/tls.jsonl" || fail "tls-hostname not set"
grep -q '"qom-type":"authz-list".*"match":"O=qmigrate,CN=src.example"' "$T/tls.jsonl" ||
	fail "no authz-list for the source's certificate in the plan"
grep -q '"tls-authz":"qmigrate-authz-' "$T/tls.jsonl" || fail "tls-authz not set"
echo "authz: $(grep -o '"qom-type":"authz-list"[^}]*}' "$T/tls.jsonl" | head -1)"

# 2. Refusals, attach mode on loopback.
launch_guest src --guest tiny --mem 128M --dirty-rate 10M --accel tcg
launch_guest dst --guest tiny --mem 128M --incoming --accel tcg
$QMIGRATE qmp "$src_qmp" query-migrate-parameters > "$T/params.before"
refused() { # CASE EXPECTED-TEXT ARGS...
	case_=$1; want=$2; shift 2
	$QMIGRATE migrate --src-qmp "$src_qmp" --dst-qmp "$dst_qmp" --dst-addr 127.0.0.1 "$@" \
		--json > "$T/r.jsonl" 2>/dev/null
	rc=$?; res=$(tail -1 "$T/r.jsonl"); msg=$(json_get message "$res")
	echo "$case_: exit $rc: $msg"
	[ $rc = 3 ] || fail "$case_: exit $rc, expected 3"
	printf '%s' "$msg" | grep -q "$want" || fail "$case_: message lacks '$want'"
	[ "$(status_of "$src_qmp")" = running ] || fail "$case_: source not running"
	[ "$(status_of "$dst_qmp")" = inmigrate ] || fail "$case_: destination touched"
	$QMIGRATE qmp "$src_qmp" query-migrate-parameters > "$T/params.after"
	cmp -s "$T/params.before" "$T/params.after" || fail "$case_: source parameters changed"
	$QMIGRATE qmp "$src_qmp" qom-list '{"path":"/objects"}' | grep -q qmigrate-tls0 &&
		fail "$case_: a TLS object was left behind"
	return 0
}
# The CA's private key copied into a credentials directory.
cp -r "$C" "$T/leak"; cp "$C.ca/ca-key.pem" "$T/leak/ca-key.pem"
refused "CA key in the directory" "ca-key.pem is the CA's private key" --tls "$T/leak"
# A private key others can read.
cp -r "$C" "$T/open"; chmod 644 "$T/open/client-key.pem"
refused "key readable by others" "client-key.pem is a private key open to group or others" \
	--tls "$T/open"
# A CA the destination does not trust: the source's directory has another CA.
$QMIGRATE tls init "$T/other" --host 127.0.0.1 > /dev/null
refused "untrusted CA" "not signed by" --tls "$T/other" --tls-dst-dir "$C"
# A certificate for another host name.
refused "wrong host" "does not name" --tls "$C" --tls-hostname db.example
# An expired certificate.
$QMIGRATE tls init "$T/old" --host 127.0.0.1 --valid-from -7200 --valid-for 3600 > /dev/null
refused "expired" "expired" --tls "$T/old"
# A key that does not match its certificate.
cp -r "$C" "$T/mismatch"; cp "$T/other/server-key.pem" "$T/mismatch/server-key.pem"
refused "key mismatch" "does not match" --tls "$T/mismatch"
# A client without a certificate while the destination requires one.
cp -r "$C" "$T/noclient"; rm "$T/noclient/client-cert.pem"
refused "no client certificate" "client-cert.pem" --tls "$T/noclient"
# A plain-TCP source talking to a TLS destination (QEMU's own copy).
mkdir -m 711 "$T/q" && cp -r "$C" "$T/q/c" && chown -R "$(stat -c %u:%g "$dst_qmp")" "$T/q/c"
chmod 711 "$T"
$QMIGRATE qmp "$dst_qmp" object-add "{\"qom-type\":\"tls-creds-x509\",\"id\":\"t0\",\"dir\":\"$T/q/c\",\"endpoint\":\"server\"}" > /dev/null ||
	fail "object-add t0"
$QMIGRATE qmp "$dst_qmp" migrate-set-parameters '{"tls-creds":"t0"}' > /dev/null
refused "plain to TLS" "expects TLS"

# 3. What the authz rule buys: a host with a certificate from the same CA
# (so verify-peer alone would let it in) is refused by the destination
# QEMU itself, which allows only the source's subject.
$QMIGRATE tls issue --ca "$T/ca" --host rogue.example --out "$T/rogue" > /dev/null
launch_guest s2 --guest tiny --mem 128M --accel tcg
launch_guest d2 --guest tiny --mem 128M --incoming --accel tcg
# The QEMUs run as qmigrate's unprivileged user: like qmigrate itself,
# give them copies they own, in a directory they can reach.
QD=$(mktemp -d /tmp/qmig-tlsq.XXXXXX)
rm_qd() { rm -rf "$QD"; }
CLEANUP_HOOKS="$CLEANUP_HOOKS rm_qd"
chmod 711 "$QD"
cp -r "$T/dst" "$QD/dst"; cp -r "$T/rogue" "$QD/rogue"
chown -R "$(stat -c %u:%g "$d2_qmp")" "$QD/dst"
chown -R "$(stat -c %u:%g "$s2_qmp")" "$QD/rogue"
chown "$(stat -c %u:%g "$d2_qmp")" "$QD" # the destination listens there
qq() { $QMIGRATE qmp "$@" > /dev/null || fail "qmp $*"; }
qq "$d2_qmp" object-add "{\"qom-type\":\"tls-creds-x509\",\"id\":\"t1\",\"dir\":\"$QD/dst\",\"endpoint\":\"server\",\"verify-peer\":true}"
qq "$d2_qmp" object-add '{"qom-type":"authz-list","id":"a1","policy":"deny","rules":[{"match":"O=qmigrate,CN=src.example","policy":"allow","format":"exact"}]}'
qq "$d2_qmp" migrate-set-parameters '{"tls-creds":"t1","tls-authz":"a1"}'
qq "$d2_qmp" migrate-incoming "{\"uri\":\"unix:$QD/authz.sock\"}"
qq "$s2_qmp" object-add "{\"qom-type\":\"tls-creds-x509\",\"id\":\"t1\",\"dir\":\"$QD/rogue\",\"endpoint\":\"client\"}"
qq "$s2_qmp" migrate-set-parameters '{"tls-creds":"t1","tls-hostname":"127.0.0.1"}'
qq "$s2_qmp" migrate "{\"uri\":\"unix:$QD/authz.sock\"}"
i=0
until $QMIGRATE qmp "$s2_qmp" query-migrate | grep -q '"status": *"failed"'; do
	i=$((i + 1)); [ $i -gt 200 ] && fail "rogue migration did not fail"
	sleep 0.1
done
d2_err="$(cat "$T/rundir.$d2_pid")/qemu.stderr"
grep -q "authz check for O=qmigrate,CN=rogue.example is denied" "$d2_err" ||
	fail "destination did not deny the rogue certificate: $(cat "$d2_err")"
echo "rogue source: $(grep authz "$d2_err")"
[ "$(status_of "$s2_qmp")" = running ] || fail "rogue attempt: source not running"
ok "TLS migration and refusals"
