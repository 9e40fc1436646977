# kill -9 on either host, mid-migration, and the ownership rule after it:
#  1. the agent dies in precopy: the source's qmigrate loses the
#     destination and rolls back (source running); the destination QEMU
#     ends with its stream; a restarted agent finds nothing to keep.
#  2. the agent dies after prepare, before any stream: the restarted agent
#     removes the destination its predecessor launched (its journal).
#  3. the source's qmigrate dies in precopy: the source QEMU finishes the
#     stream alone, the agent sees the destination run and keeps it;
#     `qmigrate recover` on the source host never resumes the source.
#  4. the source's qmigrate dies while queued: it leaves the queue.
# Each time exactly one copy of the guest runs afterwards.
. tests/lib.sh
. tests/netns.sh
. tests/integration/agent_lib.sh
agent_setup qak

wait_active() { # NAME: its --json records reach precopy (the QMP socket is the engine's)
	_i=0; until grep -q '"type":"sample"' "$T/$1.jsonl" 2>/dev/null; do
		_i=$((_i + 1)); [ $_i -gt 600 ] && fail "the source never started migrating"; sleep 0.05
	done
}
bg_migrate() { # NAME QMP
	ip netns exec "$NETNS_A" $QMIGRATE migrate --src-qmp "$2" --to "$(agent_to)" --profile tiny \
		--agent-tls "$C" --max-bandwidth 1M --json > "$T/$1.jsonl" 2> "$T/$1.err" &
	MPID=$!
}

# 1. The agent, in precopy.
launch_guest s1 --guest tiny --mem 64M --dirty-rate 5M --accel tcg --netns "$NETNS_A"
bg_migrate k1 "$s1_qmp"
wait_active k1
kill -9 "$AGENT_PID"; AGENT_PID=
wait "$MPID"; rc=$?
res=$(tail -1 "$T/k1.jsonl")
echo "agent killed in precopy: exit $rc: $(jf message "$res")"
[ $rc = 4 ] || fail "k1: exit $rc, expected 4 (rolled back): $res $(cat "$T/k1.err")"
[ "$(status_of "$s1_qmp")" = running ] || fail "k1: the source is not running"
wait_no_dst 15 || fail "k1: the destination QEMU is still there"
agent_start
assert_clean "agent killed in precopy"

# 2. The agent, after prepare.
# A client that stays connected (and has the destination listen).
ip netns exec "$NETNS_A" env AGENT_CA="$C/ca-cert.pem" $PEER "$NETNS_ADDR_B" "$AGENT_PORT" "$C" \
	hold k2 tiny mem=64M > "$T/k2.out" 2>&1 &
hp=$!
i=0; until grep -q '^PORT' "$T/k2.out"; do i=$((i + 1)); [ $i -gt 200 ] && fail "k2: $(cat "$T/k2.out")"; sleep 0.05; done
[ "$(dst_qemus | wc -l)" = 1 ] || fail "k2: no destination launched"
kill -9 "$AGENT_PID"; AGENT_PID=
wait "$hp" 2>/dev/null
[ "$(dst_qemus | wc -l)" = 1 ] || fail "k2: the destination died with the agent"
# Recovery on the agent's host alone.
ip netns exec "$NETNS_B" $QMIGRATE agent --recover --profiles examples/profiles --state "$STATE" \
	2> "$T/recover-b.log" || fail "agent --recover: $(cat "$T/recover-b.log")"
grep -q '"op":"reap","job":"k2","result":"removed"' "$T/recover-b.log" || fail "k2: not reaped: $(cat "$T/recover-b.log")"
echo "agent killed after prepare: 'qmigrate agent --recover' removed the destination"
agent_start
assert_clean "agent killed after prepare"

# 3. The source's qmigrate, in precopy.
launch_guest s3 --guest tiny --mem 64M --dirty-rate 5M --accel tcg --netns "$NETNS_A"
bg_migrate k3 "$s3_qmp"
wait_active k3
k3pid=$MPID
kill -9 "$MPID"; wait "$MPID" 2>/dev/null
# QEMU goes on alone; let it finish quickly. This is the first client of
# the source's QMP socket after a killed one: it must get its own reply.
$QMIGRATE qmp "$s3_qmp" migrate-set-parameters '{"max-bandwidth": 1073741824}' > "$T/k3-bw.out" 2>&1 ||
	fail "k3: raising the source's bandwidth after the kill failed: $(cat "$T/k3-bw.out")"
i=0; until grep -q '"result":"kept"' "$T/agent.log"; do
	i=$((i + 1)); [ $i -gt 600 ] && fail "k3: the agent did not keep the destination: $(tail -3 "$T/agent.log")"; sleep 0.05
done
dq=$(ls "$STATE"/vm-*/qmp.sock)
[ "$(status_of "$dq")" = running ] || fail "k3: the destination does not run"
# The journal's job id is the dead qmigrate's pid.
$QMIGRATE recover --job "$MPID" --json > "$T/recover.json" 2>&1
echo "recover on the source host: $(cut -c1-200 "$T/recover.json")"
st=$(status_of "$s3_qmp" 2>/dev/null); [ -n "$st" ] || st="quit by recover"
[ "$st" != running ] || fail "k3: the source was resumed: two copies"
echo "source qmigrate killed in precopy: destination kept and running, source $st"
$QMIGRATE qmp "$dq" quit > /dev/null || fail "k3: could not quit the destination"
rm -rf "$STATE"/vm-*
assert_clean "source killed in precopy"
# 4. The source's qmigrate, while queued: the agent drops it from the queue,
#    nothing was launched for it; the job ahead is untouched.
agent_stop; agent_start --max-inbound 1
ip netns exec "$NETNS_A" env AGENT_CA="$C/ca-cert.pem" $PEER "$NETNS_ADDR_B" "$AGENT_PORT" "$C" \
	hold ahead tiny mem=64M > "$T/ahead.out" 2>&1 &
hp=$!
i=0; until grep -q '^PORT' "$T/ahead.out"; do i=$((i + 1)); [ $i -gt 200 ] && fail "k4: $(cat "$T/ahead.out")"; sleep 0.05; done
launch_guest s4 --guest tiny --mem 128M --dirty-rate 5M --accel tcg --netns "$NETNS_A"
bg_migrate k4 "$s4_qmp"
i=0; until grep -q '"result":"queued"' "$T/agent.log"; do
	i=$((i + 1)); [ $i -gt 400 ] && fail "k4: never queued: $(cat "$T/k4.err")"; sleep 0.05
done
kill -9 "$MPID"; wait "$MPID" 2>/dev/null
i=0; until grep -q '"result":"left-queue"' "$T/agent.log"; do
	i=$((i + 1)); [ $i -gt 200 ] && fail "k4: the agent kept it queued"; sleep 0.05
done
[ "$(dst_qemus | wc -l)" = 1 ] || fail "k4: expected only the job ahead's destination"
[ "$(status_of "$s4_qmp")" = running ] || fail "k4: the source is not running"
st=$(peer "$C" status); [ "$(jf queued "$st")" = 0 ] || fail "k4: still queued: $st"
echo "source qmigrate killed while queued: left the queue, nothing launched, source running"
# The killed sources' private directories went with the next session.
ls -d /tmp/qmig-agent-"$k3pid"-* 2>/dev/null && fail "k3: its session directory was left"
kill -9 "$hp"; wait "$hp" 2>/dev/null
assert_clean "source killed while queued"
ok "kill -9 of the agent or the source's qmigrate: one copy of the guest runs"
