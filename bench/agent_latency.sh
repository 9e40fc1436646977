#!/bin/sh
# What the agent costs: the same two figures as bench/migrate_latency.sh,
# between two network namespaces, in attach mode (both QMP sockets local)
# and through `qmigrate agent` (TLS control channel, QMP tunnel, the
# destination launched by the agent from its profile):
#  - before: `qmigrate migrate` started -> destination MIGRATION "active"
#    (the first byte of the stream has arrived), by QEMU's event clock;
#    attach mode starts with the destination already running, the agent
#    mode includes launching it (that is the point of the agent);
#  - after: source MIGRATION "completed" -> the command has returned
#    (agent mode: with finish + confirm and the agent's stamp check).
# Prints medians and the agent/attach ratios. With QMIGRATE_BASE=BINARY
# (e.g. a build of an older commit) the agent mode also runs with that
# binary (its own agent, on the next port), interleaved, and the ratios
# new/base are printed: before/after figures from one run.
# Usage: sh bench/agent_latency.sh [RUNS]   (default 5; root: namespaces)
set -u
cd "$(dirname "$0")/.."
. tests/lib.sh
. tests/netns.sh
. tests/integration/agent_lib.sh
RUNS=${1:-5}
agent_setup qbl
MODES="attach attach-verify agent"
if [ -n "${QMIGRATE_BASE:-}" ]; then
	[ -x "$QMIGRATE_BASE" ] || fail "QMIGRATE_BASE=$QMIGRATE_BASE is not an executable"
	MODES="$MODES agent-base"
	mkdir -p "$T/state-base"
	ip netns exec "$NETNS_B" "$QMIGRATE_BASE" agent --listen "$NETNS_ADDR_B:$((AGENT_PORT + 1))" \
		--tls "$C" --profiles examples/profiles --state "$T/state-base" \
		--port-lock-dir "$T/ports-b" 2> "$T/agent-base.log" &
	BASE_PID=$!
	CLEANUP_HOOKS="base_stop $CLEANUP_HOOKS"
	base_stop() { kill "$BASE_PID" 2>/dev/null; return 0; }
	i=0; until grep -q 'listening on' "$T/agent-base.log"; do
		i=$((i + 1)); [ $i -gt 200 ] && fail "base agent: $(cat "$T/agent-base.log")"; sleep 0.05
	done
fi
ev_us() { # FILE SIDE STATUS
	grep "\"side\":\"$2\",\"event\":\"MIGRATION\"" "$1" | grep "\"status\":\"$3\"" |
		head -1 | sed -n 's/.*"qemu_us":\([0-9]*\).*/\1/p'
}
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
measure() { # MODE FILE T0 T1
	act=$(ev_us "$2" destination active); done_us=$(ev_us "$2" source completed)
	[ -n "$act" ] && [ -n "$done_us" ] || fail "$1: no MIGRATION events in $2"
	echo $(( (act * 1000 - $3) / 1000 )) >> "$T/$1.before"
	echo $(( ($4 - done_us * 1000) / 1000 )) >> "$T/$1.after"
}
for i in $(seq "$RUNS"); do
	for mode in $MODES; do
		launch_guest src --guest tiny --mem 128M --dirty-rate 1M --accel tcg --netns "$NETNS_A"
		case $mode in agent*) ;; *)
			launch_guest dst --guest tiny --mem 128M --incoming --accel tcg --netns "$NETNS_B"
			extra=--no-verify
			[ $mode = attach-verify ] && extra=
			t0=$(date +%s%N)
			# shellcheck disable=SC2086
			ip netns exec "$NETNS_A" $QMIGRATE migrate --src-qmp "$src_qmp" --dst-qmp "$dst_qmp" \
				--dst-addr "$NETNS_ADDR_B" $extra --json > "$T/run.jsonl" ||
				fail "$mode: $(tail -1 "$T/run.jsonl")"
			t1=$(date +%s%N)
			kill -9 "$dst_pid" 2>/dev/null
			;;
		esac
		case $mode in agent*)
			bin=$QMIGRATE; url=$(agent_to)
			[ $mode = agent-base ] && bin=$QMIGRATE_BASE &&
				url="qmigrate+tls://$NETNS_ADDR_B:$((AGENT_PORT + 1))"
			t0=$(date +%s%N)
			ip netns exec "$NETNS_A" $bin -v migrate --src-qmp "$src_qmp" --to "$url" \
				--profile tiny --agent-tls "$C" --json > "$T/run.jsonl" 2> "$T/run.err" ||
				fail "$mode: $(tail -1 "$T/run.jsonl") $(cat "$T/run.err")"
			t1=$(date +%s%N)
			# The agent's own launch of the destination (newer agents say).
			sed -n "s/.*the agent's launch of the destination \([0-9]*\) ms.*/\1/p" \
				"$T/run.err" >> "$T/$mode.launch"
			dq=$(sed -n 's/.*"qmp":"\([^"]*\)".*/\1/p' "$T/run.jsonl" | tail -1)
			$QMIGRATE qmp "$dq" quit > /dev/null || fail "$mode: could not quit the destination $dq"
			wait_no_dst 10
			rm -rf "$STATE"/vm-* "$T/state-base"/vm-*
			;;
		esac
		measure $mode "$T/run.jsonl" "$t0" "$t1"
		kill -9 "$src_pid" 2>/dev/null
	done
done
for m in $MODES; do
	eval "b_$(echo $m | tr - _)=$(median < "$T/$m.before")"
	eval "a_$(echo $m | tr - _)=$(median < "$T/$m.after")"
done
echo "two namespaces, 128 MiB tiny guest, $RUNS runs (medians, microseconds):"
echo "                          start->first byte   completed->returned"
printf "  attach, no verify       %10s          %10s\n" "$b_attach" "$a_attach"
printf "  attach, stamps verify   %10s          %10s\n" "$b_attach_verify" "$a_attach_verify"
printf "  agent (TLS), verify     %10s          %10s\n" "$b_agent" "$a_agent"
if [ -s "$T/agent.launch" ]; then
	l=$(median < "$T/agent.launch")
	printf "  agent: the destination's launch (median) %6s ms; first byte without it %s us\n" \
		"$l" "$((b_agent - l * 1000))"
fi
if [ -n "${QMIGRATE_BASE:-}" ]; then
	printf "  agent (TLS), verify, base %8s          %10s   ($QMIGRATE_BASE)\n" "$b_agent_base" "$a_agent_base"
	awk -v b="$b_agent" -v bb="$b_agent_base" -v a="$a_agent" -v ab="$a_agent_base" 'BEGIN {
		printf "  ratio agent new/base: first byte %.2f, return %.2f\n", b / bb, a / ab }'
fi
awk -v b="$b_agent" -v ba="$b_attach" -v a="$a_agent" -v av="$a_attach_verify" 'BEGIN {
	printf "  ratio agent/attach: first byte %.2f, return %.2f (against attach with verify)\n",
		b / ba, a / av }'
