# Storage migration between two network namespaces (two "hosts" joined by
# veth): plain, with TLS (the NBD server and client use the migration's
# x509 credentials), and with 4 multifd channels. Each: completed, the
# guest verified, the disks identical.
. tests/lib.sh
. tests/integration/storage_lib.sh
. tests/netns.sh
[ "$(id -u)" = 0 ] || skip "network namespaces need root"
linux_guest_or_skip
CLEANUP_HOOKS="netns_down"
netns_up "qsn$$" || fail "could not set up the namespaces"
C="$T/certs"
$QMIGRATE tls init "$C" --host "$NETNS_ADDR_B" --host localhost --host 127.0.0.1 > /dev/null ||
	fail "tls init"

run() { # NAME ARGS...
	name=$1; shift
	$QMIGRATE migrate --launch --guest linux --mem 512M --disk 512M --disk-write-rate 5M \
		--guest-args qmig.dfill=32M --accel tcg --src-netns "$NETNS_A" --dst-netns "$NETNS_B" \
		--dst-addr "$NETNS_ADDR_B" --copy-storage-all --json "$@" \
		> "$T/$name.jsonl" 2> "$T/$name.err" ||
		fail "$name: $(tail -1 "$T/$name.jsonl") $(tail -3 "$T/$name.err")"
	res=$(tail -1 "$T/$name.jsonl"); echo "$name: $res" | cut -c1-300
	[ "$(json_get status "$res")" = completed ] || fail "$name: not completed"
	[ "$(json_get verified "$res")" = true ] || fail "$name: not verified"
	[ "$(json_get disks_verified "$res")" = true ] || fail "$name: disks not verified"
	echo "$name: guest downtime $(json_get guest_downtime_ms "$res") ms, mirrors ended in $(json_get disk_cancel_ms "$res") ms"
	# Two namespaces are two hosts: the disks compared through NBD (the
	# source's read-only export and the destination's), not as files.
	[ "$(switchover "$T/$name.jsonl" compared_via)" = nbd ] ||
		fail "$name: the disks were not compared through NBD: $(grep '"what":"switchover"' "$T/$name.jsonl")"
	# The NBD clients did not flush (cache.no-flush); the engine did,
	# before the job completed.
	[ "$(switchover "$T/$name.jsonl" no_flush)" = true ] || fail "$name: no cache.no-flush"
	[ "$(switchover "$T/$name.jsonl" flushed_ms)" -ge 0 ] 2>/dev/null ||
		fail "$name: the destination's images were not flushed"
	echo "$name: switchover: $(grep '"what":"switchover"' "$T/$name.jsonl" | cut -c1-300)"
}
run plain
run tls --tls "$C"
grep '"command":"nbd-server-start"' "$T/tls.jsonl" | grep -q '"tls-creds"' ||
	fail "tls: the NBD server was not started with the TLS credentials"
grep '"command":"blockdev-add"' "$T/tls.jsonl" | grep -q "\"tls-hostname\":\"$NETNS_ADDR_B\"" ||
	fail "tls: the NBD client does not check the destination's name"
run multifd --multifd 4
grep -q '"multifd-channels":4' "$T/multifd.jsonl" || fail "multifd: 4 channels not planned"
ok "storage migration across namespaces: plain, TLS (NBD too), multifd 4"
