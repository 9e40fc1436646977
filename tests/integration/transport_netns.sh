#!/bin/sh
# tests/netns.sh and the transport across two namespaces: TCP reachability
# over the veth, tbf shaping really limits the rate, link down/up, and the
# port allocator's bind check inside a namespace.
cd "$(dirname "$0")/../.." || exit 1
. tests/netns.sh
BIN=build/tests/integration/transport_tcp
[ -x "$BIN" ] || { echo "FAIL: $BIN not built"; exit 1; }
[ "$(id -u)" = 0 ] || netns_skip "network namespaces need root"

tmp=$(mktemp -d)
srv=
cleanup() {
	[ -n "$srv" ] && kill "$srv" 2>/dev/null
	netns_down
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM
fail() { echo "FAIL: $*"; exit 1; }

netns_up "qmt$$" || fail "netns_up"
echo "namespaces $NETNS_A ($NETNS_ADDR_A) and $NETNS_B ($NETNS_ADDR_B)"

# Server in B on port $1 (0: any); sets srv and PORT.
start_server() {
	: >"$tmp/srv"
	netns_exec B "$BIN" serve "$NETNS_ADDR_B" "${1:-0}" 10000 >"$tmp/srv" 2>&1 &
	srv=$!
	i=0
	while ! grep -q '^listening' "$tmp/srv" && [ $i -lt 50 ]; do
		sleep 0.1; i=$((i + 1))
	done
	PORT=$(awk '/^listening/ { print $2 }' "$tmp/srv")
	[ -n "$PORT" ] || fail "server did not start: $(cat "$tmp/srv")"
}

# Send $1 bytes from A; prints the rate in Mbit/s as RATE.
send_from_a() {
	out=$(netns_exec A "$BIN" send "$NETNS_ADDR_B" "$PORT" "$1" 10000) ||
		fail "send: $out"
	wait "$srv" || fail "server: $(cat "$tmp/srv")"
	srv=
	echo "$out"
	RATE=$(echo "$out" | sed -n 's/.*: \([0-9.]*\) Mbit\/s/\1/p')
	RATE=${RATE%.*}
}

echo "-- 1. A reaches B over the veth"
start_server
send_from_a 4000000
grep -q '^received 4000000 bytes$' "$tmp/srv" || fail "server saw $(cat "$tmp/srv")"
unshaped=$RATE

echo "-- 2. tbf shaping limits the rate"
netns_shape 200mbit || fail "netns_shape"
tc -n "$NETNS_A" qdisc show dev "$NETNS_IF" | grep -q tbf || fail "no tbf qdisc"
start_server
send_from_a 20000000
# tbf sets a ceiling: a busy machine can only make the rate lower, so the
# test holds the ceiling and leaves the floor to the benchmarks.
[ "$RATE" -gt 0 ] && [ "$RATE" -le 220 ] ||
	fail "shaped to 200mbit but measured $RATE Mbit/s"
netns_shape 1gbit || fail "netns_shape 1gbit"
start_server
send_from_a 100000000
[ "$RATE" -gt 0 ] && [ "$RATE" -le 1100 ] ||
	fail "shaped to 1gbit but measured $RATE Mbit/s"
netns_unshape
echo "unshaped: $unshaped Mbit/s (4 MB, includes connection setup)"

echo "-- 3. link down, then up again"
netns_link_down || fail "netns_link_down"
out=$(netns_exec A "$BIN" send "$NETNS_ADDR_B" 9 1000 1000) &&
	fail "connected with the link down: $out"
echo "link down: $out"
netns_link_up || fail "netns_link_up"
start_server
send_from_a 100000

echo "-- 4. the port allocator checks bindability inside a namespace"
out=$(netns_exec A "$BIN" port "$NETNS_ADDR_B" 49152 49215) &&
	fail "allocated on B's address from inside A: $out"
echo "$out" | grep -q '^error -99' || fail "expected EADDRNOTAVAIL, got: $out"
out=$("$BIN" port "$NETNS_ADDR_B" 49152 49215 "$NETNS_B" "$tmp/locks") ||
	fail "allocating in $NETNS_B: $out"
echo "from the root namespace into $NETNS_B: $out"
start_server 0
out=$("$BIN" port "$NETNS_ADDR_B" "$PORT" "$PORT" "$NETNS_B" "$tmp/locks") &&
	fail "allocated port $PORT that the server in $NETNS_B listens on: $out"
echo "$out" | grep -q "no free port in $PORT-$PORT (1 in use or locked)" ||
	fail "wrong message: $out"
echo "busy port in $NETNS_B: $out"
send_from_a 10

echo "-- 5. netns_down removes everything"
netns_exec B sleep 60 &
na=$NETNS_A; nb=$NETNS_B
netns_down
[ -e "/run/netns/$na" ] || [ -e "/run/netns/$nb" ] && fail "namespaces left behind"
ip netns list | grep -q "qmt$$" && fail "namespaces still listed"
wait
echo "PASS"
