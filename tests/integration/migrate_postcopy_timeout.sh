# --timeout bounds precopy only: a postcopy that lasts longer than it
# (slowed by max-postcopy-bandwidth) runs to the end and verifies; the
# destination owns the guest from the switch on, so no timeout may roll
# it back. (No time is asserted: the numbers are printed for the log.)
. tests/lib.sh

launch_guest src --guest tiny --mem 128M --wss 64M --dirty-rate 10M --postcopy --accel tcg
launch_guest dst --guest tiny --mem 128M --incoming --postcopy --accel tcg
wait_gen "$src_log" 2 60 || fail "source guest did not write its working set"

# Precopy for 1 s at 20 MB/s, then the rest of the 64 MiB working set at
# 4 MiB/s in postcopy (16 s): well past the 10 s --timeout, which must also
# leave a loaded host time to start (4 s ran out in start at load 24).
$QMIGRATE migrate --src-qmp "$src_qmp" --dst-qmp "$dst_qmp" --src-serial "$src_serial_socket" \
	--dst-serial "$dst_serial_socket" --max-bandwidth 20M --postcopy-after 1 \
	--param max-postcopy-bandwidth=4194304 --timeout 10 --json > "$T/run.jsonl" 2> "$T/run.err" ||
	fail "postcopy longer than --timeout failed: $(tail -1 "$T/run.jsonl") $(cat "$T/run.err")"
res=$(tail -1 "$T/run.jsonl")
echo "$res"
[ "$(json_get status "$res")" = completed ] || fail "not completed: $res"
[ "$(json_get postcopy "$res")" = true ] || fail "postcopy never began: $res"
[ "$(json_get verified "$res")" = true ] || fail "not verified: $res"
grep -q '"timed out' "$T/run.jsonl" && fail "a timeout fired: $(grep 'timed out' "$T/run.jsonl")"
wait_beats "$dst_log" 5 30 || fail "destination guest does not run on"
echo "postcopy phase to done: engine_total_ms $(json_get engine_total_ms "$res") (--timeout 10 s)"
ok "postcopy longer than --timeout completed and verified"
