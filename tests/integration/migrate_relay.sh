# --transport relay between two "hosts": each QEMU runs in a network
# namespace of its own that has nothing but loopback, and migrates over a
# unix socket; only qmigrate's relay halves talk over the veth between two
# other namespaces (the source half connects from A, the destination half
# listens in B). Plain and TLS, one channel and multifd 4, then postcopy
# with the link cut and restored: the engine recovers over a fresh pair of
# relay halves. Every destination verifies; nothing is left behind.
. tests/lib.sh
. tests/netns.sh
[ "$(id -u)" = 0 ] || skip "network namespaces need root"
QNS_A=qmq$$-qa
QNS_B=qmq$$-qb
qemu_ns_down() {
	for ns in $QNS_A $QNS_B; do
		[ -e "/run/netns/$ns" ] || continue
		pids=$(ip netns pids "$ns" 2>/dev/null)
		[ -n "$pids" ] && kill -9 $pids 2>/dev/null
		ip netns delete "$ns" 2>/dev/null
	done
	netns_down
}
CLEANUP_HOOKS="qemu_ns_down"
netns_up "qmq$$" || fail "could not set up the namespaces"
for ns in $QNS_A $QNS_B; do
	ip netns add "$ns" && ip -n "$ns" link set lo up || fail "namespace $ns"
done
# The QEMUs' namespaces really have nothing but loopback.
[ "$(ip -n $QNS_A -o link | wc -l)" = 1 ] || fail "$QNS_A has more than loopback"
$QMIGRATE tls init "$T/tls" --host "$NETNS_ADDR_B" > /dev/null || fail "tls init"

mig() { # NAME ARGS...: run in the background, $MIG is its pid
	name=$1; shift
	$QMIGRATE migrate --launch --guest tiny --accel tcg --transport relay \
		--src-netns "$QNS_A" --dst-netns "$QNS_B" \
		--relay-src-netns "$NETNS_A" --relay-dst-netns "$NETNS_B" \
		--dst-addr "$NETNS_ADDR_B" --json "$@" > "$T/$name.jsonl" 2> "$T/$name.err" &
	MIG=$!
}

check() { # NAME RC: completed, verified, carried by the relay
	res=$(tail -1 "$T/$1.jsonl")
	echo "$1: exit $2: $(echo "$res" | cut -c1-240)"
	# Its private directory is gone (this run's: other tests may run relays).
	ls -d "/tmp/qmigrate-relay-$MIG-"* 2>/dev/null && fail "$1: its relay directory was left"
	[ "$2" = 0 ] || fail "$1: exit $2: $res $(tail -3 "$T/$1.err")"
	[ "$(json_get status "$res")" = completed ] || fail "$1: $res"
	[ "$(json_get verified "$res")" = true ] || fail "$1: not verified"
	sum=$(grep '"event":"summary"' "$T/$1.jsonl" | tail -1)
	[ -n "$sum" ] || fail "$1: no relay summary"
	up=$(echo "$sum" | sed -n 's/.*"generation":[0-9]*,"bytes_up":\([0-9]*\).*/\1/p')
	xfer=$(json_get transferred_bytes "$res")
	# Everything QEMU sent went through the relay (its count includes
	# the stream's headers: a little more than QEMU's RAM count).
	# (After a cut, what was in flight in the broken channel is sent again.)
	[ "$up" -ge "$xfer" ] || [ "${3:-}" = broken-ok ] ||
		fail "$1: the relay carried $up bytes, QEMU sent $xfer"
	grep -q '"relay_bandwidth":[1-9]' "$T/$1.jsonl" || fail "$1: no relay bandwidth in the samples"
	grep -q '"event":"broken"' "$T/$1.jsonl" && [ "${3:-}" != broken-ok ] &&
		fail "$1: a relay channel broke: $(grep '"event":"broken"' "$T/$1.jsonl" | head -1)"
	echo "  relay: $up bytes, $(echo "$sum" | grep -o '"channel":' | wc -l) channels"
}

# The plan shows the relay, and QEMU's URIs are unix sockets.
$QMIGRATE migrate --launch --guest tiny --transport relay --tls "$T/tls" \
	--src-netns "$QNS_A" --dst-netns "$QNS_B" --relay-src-netns "$NETNS_A" \
	--relay-dst-netns "$NETNS_B" --dst-addr "$NETNS_ADDR_B" --dry-run > "$T/plan" 2>&1 ||
	fail "dry run: $(cat "$T/plan")"
grep -q '^qmigrate *relay .*"over":"tcp:'"$NETNS_ADDR_B"':[0-9]*","tls":true' "$T/plan" ||
	fail "dry run shows no relay: $(cat "$T/plan")"
grep -q 'migrate-incoming {"uri":"unix:' "$T/plan" || fail "dry run: no unix incoming"
grep -q 'tls-creds' "$T/plan" && fail "dry run: QEMU gets TLS although the relay does it"

mig plain --mem 256M --dirty-rate 20M
wait $MIG; check plain $?
mig tls --mem 256M --dirty-rate 20M --tls "$T/tls"
wait $MIG; check tls $?
mig multifd --mem 256M --dirty-rate 20M --multifd 4
wait $MIG; check multifd $?
n=$(grep '"event":"summary"' "$T/multifd.jsonl" | grep -o '"channel":' | wc -l)
[ "$n" = 5 ] || fail "multifd 4: $n relay channels, expected 5 (main + 4)"
mig multifd-tls --mem 256M --dirty-rate 20M --multifd 4 --tls "$T/tls"
wait $MIG; check multifd-tls $?

# Postcopy, the link between the relay halves cut for 8 s: the engine pauses
# both sides after 3 s without progress, its first recovery attempts find
# the far half out of reach (the source is told to resume only once a
# fresh channel is up), then the stream runs again.
mig postcopy --mem 256M --wss 160M --dirty-rate 300M --max-bandwidth 100M --postcopy \
	--param max-postcopy-bandwidth=10485760 --tls "$T/tls"
i=0
until grep -q '"phase":"postcopy"' "$T/postcopy.jsonl" 2>/dev/null; do
	i=$((i + 1)); [ $i -gt 600 ] && fail "postcopy: never reached postcopy"
	kill -0 $MIG 2>/dev/null || fail "postcopy: ended before postcopy: $(tail -1 "$T/postcopy.jsonl")"
	sleep 0.1
done
sleep 1
netns_link_down || fail "link down"
sleep 8
netns_link_up || fail "link up"
wait $MIG; rc=$?
grep '"type":"action"' "$T/postcopy.jsonl" | cut -c1-140
check postcopy $rc broken-ok
res=$(tail -1 "$T/postcopy.jsonl")
[ "$(json_get recoveries "$res")" -ge 1 ] || fail "postcopy: no recovery recorded"
gens=$(grep '"event":"listening"' "$T/postcopy.jsonl" | wc -l)
[ "$gens" -ge 2 ] || fail "postcopy: the recovery made no fresh relay halves"

# Nothing left: no QEMU in the namespaces, no relay directory, no listener.
for ns in $QNS_A $QNS_B $NETNS_A $NETNS_B; do
	[ -z "$(ip netns pids "$ns")" ] || fail "processes left in $ns: $(ip netns pids "$ns")"
	[ -z "$(ip netns exec "$ns" ss -Htln)" ] || fail "a listener is left in $ns"
done
ok "relay across namespaces: plain, TLS, multifd 4 (plain and TLS), postcopy recovered"
