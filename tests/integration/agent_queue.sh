# Per-host limit: an agent with --max-inbound 2 receives four migrations at
# once. Two run (held slow with max-bandwidth 1M), two wait in the queue
# with status "queued" (the agent's status and audit say so), then the
# first two are sped up (qmigrate set) and all four complete, verified.
. tests/lib.sh
. tests/netns.sh
. tests/integration/agent_lib.sh
agent_setup qaq --max-inbound 2

for i in 1 2 3 4; do
	launch_guest s$i --guest tiny --mem 128M --dirty-rate 10M --accel tcg --netns "$NETNS_A"
done
start() { # N BANDWIDTH
	eval "_q=\$s${1}_qmp"
	# No wrapper: $! is qmigrate itself, for qmigrate set --job.
	ip netns exec "$NETNS_A" $QMIGRATE migrate --src-qmp "$_q" --to "$(agent_to)" \
		--profile tiny --agent-tls "$C" --max-bandwidth "$2" --json \
		> "$T/m$1.jsonl" 2> "$T/m$1.err" &
	eval "m${1}_pid=\$!"
}
audits() { grep -c "\"result\":\"$1\"" "$T/agent.log"; }
wait_audits() { # RESULT N SECS
	_i=0
	until [ "$(audits "$1")" -ge "$2" ]; do
		_i=$((_i + 1)); [ $_i -gt $(($3 * 20)) ] && fail "waiting for $2 '$1' audit lines: $(cat "$T/agent.log")"
		sleep 0.05
	done
}
start 1 1M; start 2 1M
wait_audits "prepared" 2 60
start 3 1G; start 4 1G
wait_audits "queued" 2 60
st=$(ip netns exec "$NETNS_A" $QMIGRATE agent --status "$(agent_to)" --tls "$C" 2>&1); echo "agent status: $st"
grep -q 'queued' "$T/m3.err" || fail "m3: the source did not say it is queued"
[ "$(jf inbound "$st")" = 2 ] || fail "expected 2 inbound: $st"
[ "$(jf queued "$st")" = 2 ] || fail "expected 2 queued: $st"
[ "$(audits prepared)" = 2 ] || fail "a third migration was let in over the limit: $(grep "\"op\":\"prepare\"" "$T/agent.log")"
# qmigrate status shows the queue: asked of the agent from the source host,
# and read from the agent's state directory on its own host.
st=$(ip netns exec "$NETNS_A" $QMIGRATE status --agent "$(agent_to)" --agent-tls "$C") ||
	fail "status --agent: $st"
echo "$st"
echo "$st" | grep -q "2 of 2 inbound places taken, 2 queued" || fail "status --agent: $st"
[ "$(echo "$st" | grep -c '^agent job .* queued .* position [12] ')" = 2 ] ||
	fail "status --agent: not two queued jobs listed: $st"
st=$(ip netns exec "$NETNS_B" $QMIGRATE status --agent-state "$STATE" --json) ||
	fail "status --agent-state: $st"
echo "$st"
[ "$(echo "$st" | grep -c '"status":"queued".*"position":[12]')" = 2 ] ||
	fail "status --agent-state: not two queued: $st"
[ "$(echo "$st" | grep -c '"status":"prepared"')" = 2 ] ||
	fail "status --agent-state: not two prepared: $st"
for p in $m1_pid $m2_pid; do
	# Precopy must have begun for set to apply.
	i=0; until $QMIGRATE set --job "$p" max-bandwidth=1G > /dev/null 2>&1; do
		i=$((i + 1)); [ $i -gt 400 ] && fail "qmigrate set --job $p failed"; sleep 0.05
	done
done
for i in 1 2 3 4; do
	eval "p=\$m${i}_pid"
	wait "$p"; rc=$?
	res=$(tail -1 "$T/m$i.jsonl")
	echo "m$i: exit $rc: $(jf status "$res"), verified $(jf verified "$res")"
	[ $rc = 0 ] || fail "m$i: exit $rc: $res $(cat "$T/m$i.err")"
	[ "$(jf verified "$res")" = true ] || fail "m$i: not verified"
done
[ "$(audits kept)" = 4 ] || fail "expected 4 destinations kept"
st=$(ip netns exec "$NETNS_B" $QMIGRATE status --agent-state "$STATE")
echo "$st" | grep -q ": 0 jobs" || fail "status --agent-state after the four: $st"
[ "$(dst_qemus | wc -l)" = 4 ] || fail "expected 4 destination QEMUs running"
# The source host's own limit: QMIGRATE_MAX_OUTBOUND=1, two migrations.
# The first holds its slot (slow); the second waits, saying so, then runs.
launch_guest o1 --guest tiny --mem 128M --dirty-rate 10M --accel tcg --netns "$NETNS_A"
launch_guest o2 --guest tiny --mem 128M --dirty-rate 10M --accel tcg --netns "$NETNS_A"
export QMIGRATE_MAX_OUTBOUND=1
ip netns exec "$NETNS_A" $QMIGRATE migrate --src-qmp "$o1_qmp" --to "$(agent_to)" --profile tiny \
	--agent-tls "$C" --max-bandwidth 1M --json > "$T/o1.jsonl" 2> "$T/o1.err" &
op1=$!
i=0; until grep -q '"type":"sample"' "$T/o1.jsonl" 2>/dev/null; do
	i=$((i + 1)); [ $i -gt 400 ] && fail "o1 never started"; sleep 0.05
done
ip netns exec "$NETNS_A" $QMIGRATE migrate --src-qmp "$o2_qmp" --to "$(agent_to)" --profile tiny \
	--agent-tls "$C" --json > "$T/o2.jsonl" 2> "$T/o2.err" &
op2=$!
i=0; until grep -q 'queued: 1 outbound migration' "$T/o2.err" 2>/dev/null; do
	i=$((i + 1)); [ $i -gt 400 ] && fail "o2 did not queue: $(cat "$T/o2.err")"; sleep 0.05
done
i=0; until $QMIGRATE set --job "$op1" max-bandwidth=1G > /dev/null 2>&1; do
	i=$((i + 1)); [ $i -gt 400 ] && fail "qmigrate set --job $op1 failed"; sleep 0.05
done
unset QMIGRATE_MAX_OUTBOUND
wait "$op1" || fail "o1: $(tail -1 "$T/o1.jsonl")"
wait "$op2" || fail "o2: $(tail -1 "$T/o2.jsonl") $(cat "$T/o2.err")"
[ "$(jf verified "$(tail -1 "$T/o2.jsonl")")" = true ] || fail "o2 not verified"
echo "outbound limit 1: the second migration waited, both completed"
ok "four migrations, limit 2: two queued, all four completed and verified"
