# Shared by the agent_*.sh tests: two namespaces as two hosts, certificates,
# `qmigrate agent` in namespace B, source guests in namespace A. Source
# after tests/lib.sh and tests/netns.sh.
#   agent_setup PREFIX [AGENT-OPTIONS...]   namespaces, certs ($C), agent
#   agent_start [AGENT-OPTIONS...]          (re)start the agent; AGENT_PID
#   agent_to                                qmigrate+tls://ADDR:PORT
#   migrate_to NAME SRC_QMP [MIGRATE-OPTIONS...]  $T/NAME.jsonl/.err, rc in MRC
#   peer ARGS...                            tests/helpers/agent_peer.py against the agent
#   dst_qemus                               QEMU processes in namespace B
#   assert_clean WHAT                       no job, no destination, no port held
[ "$(id -u)" = 0 ] || skip "network namespaces need root"
command -v python3 > /dev/null || skip "python3 (for the hostile test client) not installed"
AGENT_PORT=49100
PEER="python3 tests/helpers/agent_peer.py"

agent_setup() {
	_p=$1; shift
	CLEANUP_HOOKS="agent_stop netns_down"
	netns_up "$_p$$" || fail "could not set up the namespaces"
	C="$T/certs"
	$QMIGRATE tls init "$C" --host "$NETNS_ADDR_B" > /dev/null || fail "tls init"
	STATE="$T/state"
	mkdir -p "$STATE"
	# This test's own outbound slots (qmigrate migrate --max-outbound),
	# not the host's, which tests running beside it share.
	export QMIGRATE_OUTBOUND_DIR="$T/outbound"
	agent_start "$@"
}

agent_start() {
	: > "$T/agent.log"
	ip netns exec "$NETNS_B" $QMIGRATE agent --listen "$NETNS_ADDR_B:$AGENT_PORT" --tls "$C" \
		--profiles "${PROFILES:-examples/profiles}" --state "$STATE" \
		--port-lock-dir "$T/ports-b" "$@" 2>> "$T/agent.log" &
	AGENT_PID=$!
	_i=0
	until grep -q 'listening on' "$T/agent.log"; do
		_i=$((_i + 1))
		[ $_i -gt 100 ] && fail "agent did not start: $(cat "$T/agent.log")"
		alive "$AGENT_PID" || fail "agent exited: $(cat "$T/agent.log")"
		sleep 0.05
	done
}

agent_stop() {
	[ -n "${AGENT_PID:-}" ] && kill "$AGENT_PID" 2>/dev/null
	AGENT_PID=
	return 0
}

# jf KEY [JSON]: a top-level field of one JSON object (true/false lower-case).
jf() {
	printf '%s' "$2" | python3 -c 'import json,sys
v = json.loads(sys.stdin.read() or "{}").get(sys.argv[1])
print(json.dumps(v) if isinstance(v, (bool, dict, list)) or v is None else v)' "$1"
}

agent_to() { echo "qmigrate+tls://$NETNS_ADDR_B:$AGENT_PORT"; }

migrate_to() { # NAME SRC_QMP OPTIONS...
	_n=$1; _q=$2; shift 2
	timeout 300 ip netns exec "$NETNS_A" $QMIGRATE migrate --src-qmp "$_q" --to "$(agent_to)" \
		--json "$@" > "$T/$_n.jsonl" 2> "$T/$_n.err"
	MRC=$?
}

peer() { ip netns exec "$NETNS_A" env AGENT_CA="$C/ca-cert.pem" $PEER "$NETNS_ADDR_B" "$AGENT_PORT" "$@"; }

dst_qemus() {
	for _p in $(ip netns pids "$NETNS_B" 2>/dev/null); do
		grep -q qemu-system "/proc/$_p/cmdline" 2>/dev/null && echo "$_p"
	done
}

# Wait (at most SECS) until namespace B runs no QEMU.
wait_no_dst() {
	_i=0
	while [ -n "$(dst_qemus)" ]; do
		_i=$((_i + 1)); [ $_i -gt $(($1 * 20)) ] && return 1
		sleep 0.05
	done
	return 0
}

assert_clean() {
	wait_no_dst 15 || fail "$1: a destination QEMU was left in $NETNS_B"
	[ -z "$(ls "$STATE/jobs" 2>/dev/null)" ] || fail "$1: job journal left: $(ls "$STATE/jobs")"
	[ -z "$(ls -d "$STATE"/vm-* 2>/dev/null)" ] || fail "$1: runtime dir left: $(ls -d "$STATE"/vm-*)"
	ip netns exec "$NETNS_B" sh -c '! ss -Htln | awk "{print \$4}" | sed "s/.*://" |
		awk "\$1 >= 49152 && \$1 <= 49215 {f=1} END {exit !f}"' ||
		fail "$1: a migration port still listens in $NETNS_B"
	alive "$AGENT_PID" || fail "$1: the agent died"
	peer "$C" hello | grep -q "\"op\": \"hello\"" || fail "$1: the agent no longer answers"
}
