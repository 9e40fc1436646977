# Live migration end to end with real QEMU (TCG): launch mode, attach mode,
# --dry-run and --keep-source. Each run's destination must verify.
. tests/lib.sh

# 1. Launch mode: the README's demo, as JSON (-v: the log names QEMU's pids).
$QMIGRATE -v migrate --launch --guest tiny --mem 256M --dirty-rate 50M --json \
	> "$T/launch.jsonl" 2> "$T/launch.err" ||
	fail "launch-mode migration failed: $(tail -1 "$T/launch.jsonl")"
res=$(tail -1 "$T/launch.jsonl")
echo "launch: $res"
[ "$(json_get type "$res")" = result ] || fail "last line is not the result"
[ "$(json_get status "$res")" = completed ] || fail "status: $res"
[ "$(json_get verified "$res")" = true ] || fail "not verified: $res"
for k in total_ms setup_ms downtime_ms engine_total_ms transferred_bytes passes; do
	[ -n "$(json_get $k "$res")" ] || fail "result lacks $k"
done
[ "$(json_get guest_downtime_ms "$res")" -ge 0 ] || fail "no guest downtime measured"
grep -q '"type":"sample"' "$T/launch.jsonl" || fail "no samples"
grep -q '"command":"migrate-incoming"' "$T/launch.jsonl" || fail "no plan records"
pids=$(sed -n 's/.*QEMU pid \([0-9]*\).*/\1/p' "$T/launch.err")
[ "$(echo $pids | wc -w)" = 2 ] || fail "the log does not name both QEMU pids: $(cat "$T/launch.err")"
sleep 0.5
for p in $pids; do alive "$p" && fail "QEMU $p left behind"; done
ok "launch mode"

# 2. Attach mode, with the guests' serial sockets for heartbeats.
launch_guest src --guest tiny --mem 256M --dirty-rate 50M --accel tcg
launch_guest dst --guest tiny --mem 256M --incoming --accel tcg
wait_beats "$src_log" 5 30 || fail "source guest does not heartbeat"
$QMIGRATE qmp "$src_qmp" query-migrate-capabilities > "$T/caps.before"

# --dry-run prints the plan and changes nothing.
$QMIGRATE migrate --src-qmp "$src_qmp" --dst-qmp "$dst_qmp" --dry-run > "$T/plan.txt" ||
	fail "dry run failed"
cat "$T/plan.txt"
grep -q '^destination *migrate-incoming' "$T/plan.txt" || fail "plan lacks migrate-incoming"
grep -q '^source *migrate ' "$T/plan.txt" || fail "plan lacks migrate"
grep -q 'max-bandwidth' "$T/plan.txt" || fail "plan does not set max-bandwidth"
$QMIGRATE qmp "$src_qmp" query-migrate-capabilities > "$T/caps.after"
cmp -s "$T/caps.before" "$T/caps.after" || fail "dry run changed capabilities"
[ "$(status_of "$src_qmp")" = running ] || fail "source not running after dry run"
[ "$(status_of "$dst_qmp")" = inmigrate ] || fail "destination not waiting after dry run"

$QMIGRATE migrate --src-qmp "$src_qmp" --dst-qmp "$dst_qmp" \
	--src-serial "$src_serial_socket" --dst-serial "$dst_serial_socket" \
	--keep-source --json > "$T/attach.jsonl" || fail "attach migration: $(tail -1 "$T/attach.jsonl")"
res=$(tail -1 "$T/attach.jsonl")
echo "attach: $res"
[ "$(json_get status "$res")" = completed ] || fail "status: $res"
[ "$(json_get verified "$res")" = true ] || fail "not verified: $res"
[ "$(status_of "$src_qmp")" = postmigrate ] || fail "--keep-source: source is not paused"
[ "$(status_of "$dst_qmp")" = running ] || fail "destination is not running"
wait_beats "$dst_log" 5 10 || fail "destination guest does not heartbeat"
$QMIGRATE verify --qmp "$dst_qmp" || fail "destination memory does not verify"
$QMIGRATE qmp "$src_qmp" query-migrate-parameters > "$T/params.after"
grep -q '"max-bandwidth": *134217728' "$T/params.after" ||
	fail "source max-bandwidth not restored: $(cat "$T/params.after")"
ok "attach mode, dry run, keep-source"

# 3. A destination socket that does not exist: the error names it, the
# source is left alone and says so.
$QMIGRATE migrate --src-qmp "$dst_qmp" --dst-qmp "$T/no-such.sock" > /dev/null 2> "$T/nodst.err" &&
	fail "a missing destination socket was accepted"
grep -q "no-such.sock" "$T/nodst.err" || fail "the error does not name the socket: $(cat "$T/nodst.err")"
grep -q "the source guest was not touched" "$T/nodst.err" ||
	fail "the source was never touched, the message says otherwise: $(cat "$T/nodst.err")"
[ "$(status_of "$dst_qmp")" = running ] || fail "the untouched source is not running"
ok "missing destination socket"

# 4. Attach mode without --keep-source: the source quits as planned and
# that is not reported as an error.
launch_guest dst2 --guest tiny --mem 256M --incoming --accel tcg
$QMIGRATE migrate --src-qmp "$dst_qmp" --dst-qmp "$dst2_qmp" \
	--src-serial "$dst_serial_socket" --dst-serial "$dst2_serial_socket" \
	> /dev/null 2> "$T/quit.err" || fail "second attach migration: $(cat "$T/quit.err")"
grep -q 'error' "$T/quit.err" && fail "a planned quit was reported as an error: $(cat "$T/quit.err")"
wait_beats "$dst2_log" 3 10 || fail "the second destination does not heartbeat"
ok "planned quit of the source is quiet"
