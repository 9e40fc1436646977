# Who owns the guest, on real QEMU (attach mode):
# 1. A guest that is not one of qmigrate's test guests (no serial socket
#    given) is checked for running on the destination and never stopped
#    again there: verified true ("running"), guest-observed downtime null
#    with a reason, and the summary says why instead of "-1 ms".
# 2. The same guest moved on with --verify=memory: verified by the RAM
#    comparison, no stop on the destination after it resumed.
# 3. The destination's QMP connection dropped right after its RESUME
#    (tests/helpers/qmp_cut): "completed with errors", exit 8, the source
#    stays paused and is never resumed, the destination guest runs on;
#    the journal is kept and `qmigrate recover` finishes the job.
. tests/lib.sh
CUT=build/tests/helpers/qmp_cut
[ -x "$CUT" ] || fail "$CUT is not built (make check builds it)"

# The records of side $2 after its first event $3 in trace $1: does event
# $4 follow? (exit 0 when it does)
event_after() {
	awk -v side="\"side\":\"$2\"" -v first="\"event\":\"$3\"" -v then="\"event\":\"$4\"" '
		index($0, "\"type\":\"event\"") && index($0, side) {
			if (seen && index($0, then)) found = 1
			if (index($0, first)) seen = 1
		}
		END { exit !found }' "$1"
}

# ---- 1. a guest that is not a test guest, default verification ----------
launch_guest src --guest tiny --mem 64M --dirty-rate 20M --accel tcg
launch_guest dst --guest tiny --mem 64M --incoming --accel tcg
wait_beats "$src_log" 5 30 || fail "source guest does not heartbeat"

$QMIGRATE migrate --src-qmp "$src_qmp" --dst-qmp "$dst_qmp" --trace "$T/plain.trace" \
	2> "$T/plain.err" || fail "migration of a non-test guest failed: $(cat "$T/plain.err")"
cat "$T/plain.err"
res=$(grep '"type":"result"' "$T/plain.trace")
[ "$(json_get status "$res")" = completed ] || fail "not completed: $res"
[ "$(json_get verified "$res")" = true ] || fail "verified is not true: $res"
[ "$(json_get verify_method "$res")" = running ] || fail "verify_method is not running: $res"
printf '%s' "$res" | grep -q '"guest_downtime_ms":null' || fail "guest_downtime_ms is not null: $res"
[ -n "$(json_get guest_downtime_reason "$res")" ] || fail "no guest_downtime_reason: $res"
grep -q -- '-1 ms' "$T/plain.err" && fail "the summary prints -1 ms: $(cat "$T/plain.err")"
grep -q 'guest-observed not measured (no heartbeats' "$T/plain.err" ||
	fail "the summary does not say why the guest's downtime is missing"
grep '"side":"destination"' "$T/plain.trace" | grep -q '"event":"RESUME"' ||
	fail "no RESUME of the destination in the trace"
event_after "$T/plain.trace" destination RESUME STOP &&
	fail "the destination was stopped after it resumed (a foreign guest must be left alone)"
[ "$(status_of "$dst_qmp")" = running ] || fail "destination not running"
wait_beats "$dst_log" 5 30 || fail "the destination guest does not run on"
ok "non-test guest: verified by running, no stop after RESUME, downtime null with a reason"

# ---- 2. the same guest onwards, --verify=memory ---------------------------
launch_guest dst2 --guest tiny --mem 64M --incoming --accel tcg
$QMIGRATE migrate --src-qmp "$dst_qmp" --dst-qmp "$dst2_qmp" --verify=memory --json \
	--trace "$T/mem.trace" > "$T/mem.jsonl" 2> "$T/mem.err" ||
	fail "--verify=memory of a non-test guest failed: $(tail -1 "$T/mem.jsonl") $(cat "$T/mem.err")"
res=$(tail -1 "$T/mem.jsonl")
[ "$(json_get verified "$res")" = true ] || fail "--verify=memory passed but verified is not true: $res"
[ "$(json_get verify_method "$res")" = memory ] || fail "verify_method is not memory: $res"
[ "$(json_get memory_verified "$res")" = true ] || fail "memory_verified is not true: $res"
printf '%s' "$res" | grep -q '"guest_downtime_ms":null' || fail "guest_downtime_ms is not null: $res"
event_after "$T/mem.trace" destination RESUME STOP &&
	fail "the destination was stopped after it resumed"
wait_beats "$dst2_log" 5 30 || fail "the destination guest does not run on"
ok "non-test guest, --verify=memory: verified by the RAM comparison, no extra stop"

# ---- 3. the destination's QMP lost right after RESUME ---------------------
launch_guest src3 --guest tiny --mem 64M --dirty-rate 20M --accel tcg
launch_guest dst3 --guest tiny --mem 64M --incoming --accel tcg
wait_beats "$src3_log" 5 30 || fail "source guest does not heartbeat"
$CUT "$T/cut.sock" "$dst3_qmp" RESUME 2> "$T/cut.err" &
cut=$!
PIDS="$PIDS $cut"
i=0
until [ -S "$T/cut.sock" ]; do
	i=$((i + 1)); [ $i -gt 200 ] && fail "qmp_cut did not listen: $(cat "$T/cut.err")"
	sleep 0.05
done
rc=0
$QMIGRATE migrate --src-qmp "$src3_qmp" --dst-qmp "$T/cut.sock" --src-serial "$src3_serial_socket" \
	--dst-serial "$dst3_serial_socket" --keep-source --json > "$T/cut.jsonl" 2> "$T/cut.run.err" ||
	rc=$?
res=$(tail -1 "$T/cut.jsonl")
cat "$T/cut.err"
[ $rc -eq 8 ] || fail "exit $rc, not 8 (completed with errors): $res $(cat "$T/cut.run.err")"
[ "$(json_get status "$res")" = completed-with-errors ] || fail "status: $res"
[ "$(json_get owner "$res")" = destination ] || fail "owner is not the destination: $res"
grep -q 'seen, connections closed' "$T/cut.err" || fail "the proxy never cut the connection"
# The RESUME that came just before the hang-up is not lost with it.
grep '"side":"destination"' "$T/cut.jsonl" | grep -q '"event":"RESUME"' ||
	fail "the destination's RESUME, sent before the cut, was lost"
st=$(status_of "$src3_qmp")
[ "$st" = postmigrate ] || [ "$st" = paused ] || fail "source is '$st', not paused"
grep '"side":"source"' "$T/cut.jsonl" | grep -q '"event":"RESUME"' &&
	fail "the source was resumed after the hand-over"
grep '"command":"cont"' "$T/cut.jsonl" | grep -q '"side":"source"' &&
	fail "a cont was sent to the source"
[ "$(status_of "$dst3_qmp")" = running ] || fail "destination not running"
# The destination beats on; the source, paused, writes none meanwhile.
s0=$(hb_count "$src3_log")
wait_beats "$dst3_log" 20 30 || fail "the destination guest does not run on"
[ "$(hb_count "$src3_log")" -eq "$s0" ] || fail "the source guest ran after the hand-over"
st=$(status_of "$src3_qmp")
[ "$st" = postmigrate ] || [ "$st" = paused ] || fail "source is '$st' later, not paused"
ok "QMP lost after RESUME: completed with errors (exit 8), source paused, destination runs"

# The journal stays (the destination could not be restored) until recover.
job=$(json_get job "$res")
$QMIGRATE recover --list > "$T/list.txt"
grep -q "^$job " "$T/list.txt" || fail "no journal kept for job $job: $(cat "$T/list.txt")"
$QMIGRATE recover --job "$job" > "$T/rec.txt" 2>&1 || fail "recover failed: $(cat "$T/rec.txt")"
grep -q finished "$T/rec.txt" || fail "recover did not finish the hand-over: $(cat "$T/rec.txt")"
st=$(status_of "$src3_qmp")
[ "$st" = postmigrate ] || [ "$st" = paused ] || fail "recover changed the source to '$st'"
wait_beats "$dst3_log" 5 30 || fail "the destination guest stopped after recover"
$QMIGRATE recover --list | grep -q "^$job " && fail "journal left after recover"
ok "recover finished the job: destination runs, source paused, journal gone"
