# Postcopy recovery between two network namespaces: the veth link is cut
# mid-postcopy and restored a few seconds later; the engine pauses both
# sides, re-opens the stream on a fresh port and completes by itself, and
# the guest verifies. Then a link that never returns: the engine stops
# after its bound and says so.
. tests/lib.sh
. tests/netns.sh
[ "$(id -u)" = 0 ] || skip "network namespaces need root"
CLEANUP_HOOKS="netns_down"
netns_up "qmr$$" || fail "could not set up the namespaces"

start() { # NAME ARGS...
	name=$1; shift
	$QMIGRATE migrate --launch --guest tiny --mem 256M --wss 160M --dirty-rate 300M --accel tcg \
		--src-netns "$NETNS_A" --dst-netns "$NETNS_B" --dst-addr "$NETNS_ADDR_B" \
		--max-bandwidth 100M --postcopy --param max-postcopy-bandwidth=10485760 \
		--json "$@" > "$T/$name.jsonl" 2> "$T/$name.err" &
	MIG=$!
}
wait_postcopy() {
	i=0
	until grep -q '"phase":"postcopy"' "$T/$1.jsonl" 2>/dev/null; do
		i=$((i + 1)); [ $i -gt 600 ] && fail "$1: never reached postcopy"
		kill -0 $MIG 2>/dev/null || fail "$1: ended before postcopy: $(tail -1 "$T/$1.jsonl")"
		sleep 0.1
	done
	sleep 1
}

# 1. The link comes back after 4 s.
start back
wait_postcopy back
netns_link_down || fail "link down"
sleep 4
netns_link_up || fail "link up"
wait $MIG; rc=$?
res=$(tail -1 "$T/back.jsonl")
echo "link back: exit $rc: $res" | cut -c1-500
grep '"type":"action"' "$T/back.jsonl" | cut -c1-160
[ $rc = 0 ] || fail "recovery failed: $res $(cat "$T/back.err")"
[ "$(json_get status "$res")" = completed ] || fail "not completed"
[ "$(json_get recoveries "$res")" -ge 1 ] || fail "no recovery recorded"
[ "$(json_get verified "$res")" = true ] || fail "guest does not verify after recovery"
grep -q '"action":"migrate-recover"' "$T/back.jsonl" || fail "no migrate-recover step recorded"

# 2. The link never comes back: bounded retries, then a clear error.
start never --recover-timeout 8
wait_postcopy never
netns_link_down || fail "link down"
wait $MIG; rc=$?
res=$(tail -1 "$T/never.jsonl")
echo "link gone: exit $rc: $(json_get message "$res")"
[ $rc = 7 ] || fail "link gone: exit $rc, expected 7: $res"
grep -q 'could not be re-established in 8 s' "$T/never.jsonl" || fail "unclear message: $res"
[ "$(json_get recovery_attempts "$res")" -ge 2 ] || fail "the engine did not retry"
ok "postcopy recovery"
