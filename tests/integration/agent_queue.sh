# Per-host limit: an agent with --max-inbound 2 receives four migrations at
# once. Two run (held slow with max-bandwidth 1M), two wait in the queue
# with status "queued" (the agent's status and audit say so), then the
# first two are sped up (qmigrate set) and all four complete, verified.
# Then the source host's own limit (--max-outbound 1): the second of two
# migrations waits on the source host; plain `qmigrate status` there lists
# the queued jobs, in both cases.
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
		--profile tiny --agent-tls "$C" --max-bandwidth "$2" --max-outbound 4 --json \
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
# Plain qmigrate status on the source host: the two waiting at the agent
# (each says "queued" once its record for status is written).
for n in 3 4; do
	i=0; until grep -q 'agent: queued' "$T/m$n.err"; do
		i=$((i + 1)); [ $i -gt 400 ] && fail "m$n: the source never said it is queued: $(cat "$T/m$n.err")"; sleep 0.05
	done
done
st=$(ip netns exec "$NETNS_A" $QMIGRATE status) || fail "status (source host): $st"
echo "$st"
for p in $m3_pid $m4_pid; do
	echo "$st" | grep -q "^queued job $p: to $(agent_to) (profile tiny) waits in the destination agent's queue, position [12]" ||
		fail "plain status does not list job $p as queued at the agent: $st"
done
st=$(ip netns exec "$NETNS_A" $QMIGRATE status --json)
[ "$(echo "$st" | grep -c '"status":"queued","waiting_for":"agent"')" -ge 2 ] ||
	fail "status --json: not two queued at the agent: $st"
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
# The source host's own limit: --max-outbound 1, two migrations.
# The first holds its slot (slow); the second waits, saying so (and plain
# qmigrate status lists it), then runs.
launch_guest o1 --guest tiny --mem 128M --dirty-rate 10M --accel tcg --netns "$NETNS_A"
launch_guest o2 --guest tiny --mem 128M --dirty-rate 10M --accel tcg --netns "$NETNS_A"
ip netns exec "$NETNS_A" $QMIGRATE migrate --src-qmp "$o1_qmp" --to "$(agent_to)" --profile tiny \
	--agent-tls "$C" --max-bandwidth 1M --max-outbound 1 --json > "$T/o1.jsonl" 2> "$T/o1.err" &
op1=$!
i=0; until grep -q '"type":"sample"' "$T/o1.jsonl" 2>/dev/null; do
	i=$((i + 1)); [ $i -gt 400 ] && fail "o1 never started"; sleep 0.05
done
ip netns exec "$NETNS_A" $QMIGRATE migrate --src-qmp "$o2_qmp" --to "$(agent_to)" --profile tiny \
	--agent-tls "$C" --max-outbound 1 --json > "$T/o2.jsonl" 2> "$T/o2.err" &
op2=$!
i=0; until grep -q 'queued: 1 outbound migration' "$T/o2.err" 2>/dev/null; do
	i=$((i + 1)); [ $i -gt 400 ] && fail "o2 did not queue: $(cat "$T/o2.err")"; sleep 0.05
done
st=$(ip netns exec "$NETNS_A" $QMIGRATE status) || fail "status with o2 queued: $st"
echo "$st"
echo "$st" | grep -q "^queued job $op2: to $(agent_to) (profile tiny) waits for one of this host's 1 outbound places" ||
	fail "plain status does not list o2 as queued: $st"
echo "$st" | grep -q "^queued job $op1:" && fail "o1 runs, but is listed as queued: $st"
i=0; until $QMIGRATE set --job "$op1" max-bandwidth=1G > /dev/null 2>&1; do
	i=$((i + 1)); [ $i -gt 400 ] && fail "qmigrate set --job $op1 failed"; sleep 0.05
done
wait "$op1" || fail "o1: $(tail -1 "$T/o1.jsonl")"
wait "$op2" || fail "o2: $(tail -1 "$T/o2.jsonl") $(cat "$T/o2.err")"
[ "$(jf verified "$(tail -1 "$T/o2.jsonl")")" = true ] || fail "o2 not verified"
ip netns exec "$NETNS_A" $QMIGRATE status 2>&1 | grep -q "^queued job $op2:" &&
	fail "o2 is still listed as queued after it ran"
echo "outbound limit 1: the second migration waited, both completed"
ok "four migrations, limit 2: two queued, all four completed and verified"
