# Postcopy through the agent, with the link between the two "hosts" cut
# mid-postcopy for 4 s: the migration stream, the control connection and
# the QMP tunnel all cross that link. The engine recovers the stream (the
# tunnel's TCP connection outlives the cut), completes, and the agent
# verifies the destination; the agent, which saw the destination run at
# the switch to postcopy, never considered removing it.
. tests/lib.sh
. tests/netns.sh
. tests/integration/agent_lib.sh
agent_setup qap

launch_guest src --guest tiny --mem 256M --wss 160M --dirty-rate 300M --accel tcg --netns "$NETNS_A"
ip netns exec "$NETNS_A" $QMIGRATE migrate --src-qmp "$src_qmp" --to "$(agent_to)" --profile tiny \
	--agent-tls "$C" --max-bandwidth 100M --postcopy --param max-postcopy-bandwidth=10485760 \
	--json > "$T/pc.jsonl" 2> "$T/pc.err" &
MIG=$!
i=0
until grep -q '"phase":"postcopy"' "$T/pc.jsonl" 2>/dev/null; do
	i=$((i + 1)); [ $i -gt 600 ] && fail "never reached postcopy"
	kill -0 $MIG 2>/dev/null || fail "ended before postcopy: $(tail -1 "$T/pc.jsonl") $(cat "$T/pc.err")"
	sleep 0.1
done
sleep 1
netns_link_down || fail "link down"
sleep 4
netns_link_up || fail "link up"
wait $MIG; rc=$?
res=$(tail -1 "$T/pc.jsonl")
echo "postcopy, link cut 4 s: exit $rc: $(printf '%s' "$res" | cut -c1-300)"
grep '"type":"action"' "$T/pc.jsonl" | cut -c1-160
[ $rc = 0 ] || fail "exit $rc: $res $(cat "$T/pc.err")"
[ "$(jf status "$res")" = completed ] || fail "not completed"
[ "$(jf postcopy "$res")" = true ] || fail "postcopy did not start"
[ "$(jf verified "$res")" = true ] || fail "the agent did not verify the destination"
echo "recoveries: $(jf recoveries "$res")"
grep -q '"result":"removed"' "$T/agent.log" && fail "the agent removed a destination"
grep -q '"result":"kept"' "$T/agent.log" || fail "no kept audit"
ok "postcopy through the agent survives a 4 s link cut, verified"
