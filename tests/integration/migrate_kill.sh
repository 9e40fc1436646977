# qmigrate killed with SIGKILL in precopy (attach mode), listed as an
# orphaned job by qmigrate status and recover --list, then
# `qmigrate recover`: the source keeps the guest, running and heartbeating,
# its capabilities and parameters as before the first run, the destination
# does not run, no journal or port is left, and a second migration of the
# same guest completes and verifies.
. tests/lib.sh

launch_guest src --guest tiny --mem 128M --dirty-rate 40M --accel tcg
launch_guest dst --guest tiny --mem 128M --incoming --accel tcg
wait_beats "$src_log" 5 30 || fail "source guest does not heartbeat"
$QMIGRATE qmp "$src_qmp" query-migrate-capabilities > "$T/caps.before"
$QMIGRATE qmp "$src_qmp" query-migrate-parameters > "$T/params.before"

# A bandwidth far below the dirty rate keeps it in precopy until killed.
$QMIGRATE migrate --src-qmp "$src_qmp" --dst-qmp "$dst_qmp" --max-bandwidth 5M \
	--no-completion-timeout --json > "$T/run.jsonl" 2> "$T/run.err" &
mig=$!
i=0
until grep -q '"type":"sample"' "$T/run.jsonl" 2>/dev/null; do
	i=$((i + 1)); [ $i -gt 600 ] && fail "no precopy sample: $(cat "$T/run.err")"
	alive $mig || fail "qmigrate ended early: $(tail -1 "$T/run.jsonl")"
	sleep 0.05
done
job=$(sed -n 's/.*"job_id":"\([^"]*\)".*/\1/p' "$T/run.jsonl" | head -1)
kill -9 $mig
wait $mig 2>/dev/null
[ "$(status_of "$src_qmp")" = running ] || fail "source not running while orphaned"

$QMIGRATE recover --list > "$T/list.txt" || fail "recover --list failed"
cat "$T/list.txt"
grep "$src_qmp" "$T/list.txt" | grep -q orphaned || fail "the dead job is not listed as orphaned"
[ -n "$job" ] || job=$(grep "$src_qmp" "$T/list.txt" | awk '{print $1}')

# qmigrate status lists it too, as orphaned, naming recover.
$QMIGRATE status > "$T/status.txt" 2> "$T/status.err"
grep "orphaned job $job:" "$T/status.txt" | grep -q "qmigrate recover --job $job" ||
	fail "qmigrate status does not list the orphaned job: $(cat "$T/status.txt" "$T/status.err")"
$QMIGRATE status --json 2>/dev/null | grep "\"job\":\"$job\"" | grep -q '"orphaned":true' ||
	fail "qmigrate status --json does not list the orphaned job"

# A new migration of the same QEMUs is refused and names the job.
$QMIGRATE migrate --src-qmp "$src_qmp" --dst-qmp "$dst_qmp" --json > "$T/again.jsonl" 2>&1 &&
	fail "a migration over a dead job's QEMUs was not refused"
grep -q "recover" "$T/again.jsonl" || fail "the refusal does not say to run recover: $(tail -2 "$T/again.jsonl")"

$QMIGRATE recover --job "$job" > "$T/rec.txt" 2>&1 || fail "recover failed: $(cat "$T/rec.txt")"
cat "$T/rec.txt"
grep -q 'rolled-back' "$T/rec.txt" || fail "recover did not roll back: $(cat "$T/rec.txt")"
[ "$(status_of "$src_qmp")" = running ] || fail "source not running after recover"
wait_beats "$src_log" 5 30 || fail "source guest stopped heartbeating after recover"
[ "$(status_of "$dst_qmp")" = running ] && fail "destination runs a second copy"
$QMIGRATE qmp "$src_qmp" query-migrate-capabilities > "$T/caps.after"
$QMIGRATE qmp "$src_qmp" query-migrate-parameters > "$T/params.after"
cmp -s "$T/caps.before" "$T/caps.after" || fail "capabilities not restored: $(diff "$T/caps.before" "$T/caps.after")"
cmp -s "$T/params.before" "$T/params.after" || fail "parameters not restored: $(diff "$T/params.before" "$T/params.after")"
$QMIGRATE recover --list | grep -q "$src_qmp" && fail "journal left behind"
ok "killed in precopy, recovered to the source"

# The same guest migrates again, to a fresh destination, and verifies.
kill -9 "$dst_pid" 2>/dev/null
launch_guest dst2 --guest tiny --mem 128M --incoming --accel tcg
$QMIGRATE migrate --src-qmp "$src_qmp" --dst-qmp "$dst2_qmp" --src-serial "$src_serial_socket" \
	--dst-serial "$dst2_serial_socket" --json > "$T/second.jsonl" ||
	fail "second migration failed: $(tail -1 "$T/second.jsonl")"
res=$(tail -1 "$T/second.jsonl")
[ "$(json_get status "$res")" = completed ] || fail "second migration: $res"
[ "$(json_get verified "$res")" = true ] || fail "second migration not verified: $res"
ok "second migration after recovery"
