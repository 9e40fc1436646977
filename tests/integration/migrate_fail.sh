# The failure matrix: each case must end with the source guest running and
# heartbeating, nothing of the engine's left behind, a clear message and
# the documented exit code.
. tests/lib.sh
HOLD=build/tests/helpers/holdports
LO=49152; HI=49215

# start_pair [DST-MEM]: a fresh source (writing) and destination (incoming).
start_pair() {
	launch_guest src --guest tiny --mem 256M --wss 64M --dirty-rate 40M --accel tcg
	launch_guest dst --guest tiny --mem "${1:-256M}" --incoming --accel tcg
	wait_beats "$src_log" 3 30 || fail "source guest does not heartbeat"
	# Real pages to move: the whole working set written once.
	wait_gen "$src_log" 2 30 || fail "source guest does not write its working set"
}

# source_ok CASE: source running, heartbeating, capabilities back as they were.
source_ok() {
	st=$(status_of "$src_qmp")
	[ "$st" = running ] || fail "$1: source is '$st', not running"
	wait_beats "$src_log" 5 10 || fail "$1: source guest stopped heartbeating"
	$QMIGRATE qmp "$src_qmp" query-migrate-capabilities | tr -d ' \n' |
		grep -Eq '"capability":"events","state":true|"state":true,"capability":"events"' && fail "$1: capabilities not restored"
	$QMIGRATE verify --qmp "$src_qmp" > /dev/null || fail "$1: source memory does not verify"
}

stop_pair() {
	kill -9 "$src_pid" "$dst_pid" 2>/dev/null
	sleep 0.2
}

# Nothing of this run's left: its port neither listening nor locked, its
# job socket gone (other migrations on the host may hold their own).
no_leftovers() {
	port=$(json_get port "$(tail -1 "$T/out.jsonl")")
	if [ -n "$port" ] && [ "$port" != 0 ]; then
		no_leftover_ports "$port" "$port" || fail "$1: port $port is still listening"
		[ -e "/run/qmigrate/ports/$port.lock" ] && fail "$1: port $port is still locked"
	fi
	[ -n "${MIG:-}" ] && [ -e "/run/qmigrate/jobs/$MIG.sock" ] && fail "$1: job socket left behind"
	return 0
}

# wait_phase PHASE: until the running job reports that phase (or later).
wait_precopy() {
	i=0
	until $QMIGRATE status --job "$MIG" --json 2>/dev/null | grep -q '"phase":"precopy"'; do
		i=$((i + 1)); [ $i -gt 300 ] && fail "migration never reached precopy"
		sleep 0.1
	done
	sleep 0.5
}

migrate_bg() {
	$QMIGRATE migrate --src-qmp "$src_qmp" --dst-qmp "$dst_qmp" \
		--src-serial "$src_serial_socket" --max-bandwidth 10M --json "$@" \
		> "$T/out.jsonl" 2> "$T/err.txt" &
	MIG=$!
}

expect_exit() { # CODE CASE
	wait $MIG; rc=$?
	res=$(tail -1 "$T/out.jsonl")
	echo "$2: exit $rc: $(json_get message "$res")"
	[ "$rc" = "$1" ] || fail "$2: exit $rc, expected $1: $res $(cat "$T/err.txt")"
	[ "$(json_get rolled_back "$res")" = true ] || fail "$2: not rolled back: $res"
}

# 1. The destination is killed mid-migration.
start_pair
migrate_bg; wait_precopy
kill -9 "$dst_pid"
expect_exit 4 "destination killed"
source_ok "destination killed"; stop_pair; no_leftovers "destination killed"

# 2. Ctrl-C during precopy.
start_pair
migrate_bg; wait_precopy
kill -INT $MIG
expect_exit 5 "SIGINT"
source_ok "SIGINT"; stop_pair; no_leftovers "SIGINT"

# 3. qmigrate cancel.
start_pair
migrate_bg; wait_precopy
$QMIGRATE cancel --job "$MIG" || fail "qmigrate cancel failed"
expect_exit 5 "cancel"
source_ok "cancel"; stop_pair; no_leftovers "cancel"

# 4. The engine's timeout.
start_pair
migrate_bg --timeout 2
expect_exit 4 "timeout"
grep -q 'timed out' "$T/out.jsonl" || fail "timeout: no clear message"
source_ok "timeout"; stop_pair; no_leftovers "timeout"

# 5. A destination that refuses the stream (RAM size differs; the doctor
#    would refuse this up front, --force makes the stream itself fail).
start_pair 128M
migrate_bg --force
expect_exit 4 "destination refuses"
source_ok "destination refuses"; stop_pair; no_leftovers "destination refuses"

# 6. Nothing listening where the source connects (launch mode: the
#    destination listens on 127.0.0.1, the source is sent to 127.0.0.2).
$QMIGRATE migrate --launch --guest tiny --mem 128M --dirty-rate 10M --accel tcg \
	--listen-addr 127.0.0.1 --dst-addr 127.0.0.2 --json > "$T/out.jsonl"
rc=$?; res=$(tail -1 "$T/out.jsonl")
echo "nothing listening: exit $rc: $(json_get message "$res")"
[ $rc = 4 ] || fail "nothing listening: exit $rc: $res"
[ "$(json_get rolled_back "$res")" = true ] || fail "nothing listening: not rolled back"
no_leftovers "nothing listening"

# 7. The whole port range is occupied by someone else.
start_pair
$HOLD 127.0.0.1 49200 49203 > "$T/hold.txt" &
HOLDPID=$!; PIDS="$PIDS $HOLDPID"
i=0; until grep -q ready "$T/hold.txt"; do i=$((i+1)); [ $i -gt 50 ] && fail "holdports"; sleep 0.1; done
$QMIGRATE migrate --src-qmp "$src_qmp" --dst-qmp "$dst_qmp" --port-range 49200-49203 \
	--json > "$T/out.jsonl" 2> "$T/err.txt"
rc=$?; res=$(tail -1 "$T/out.jsonl")
echo "range full: exit $rc: $(json_get message "$res")"
[ $rc = 3 ] || fail "range full: exit $rc, expected 3: $res"
grep -q 'no free port in 49200-49203' "$T/out.jsonl" || fail "range full: unclear message: $res"
[ "$(status_of "$dst_qmp")" = inmigrate ] || fail "range full: destination was touched"
source_ok "range full"
kill $HOLDPID; stop_pair; no_leftovers "range full"
ok "failure matrix"
