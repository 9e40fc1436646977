# The tiny guest's pace=cpu: its writes are tied to the CPU it gets, as in
# most real workloads, so QEMU's CPU throttle (auto-converge) slows them and
# a move that cannot converge plainly does; its heartbeats count the units
# of non-writing work it does, and the engine reports the guest's slowdown
# from them. With pace=time (the default) the guest keeps its rate in
# wall-clock time whatever the throttle (policy_live.sh relies on that).
. tests/lib.sh
launch_guest g --guest tiny --mem 64M --wss 16M --dirty-rate 40M --guest-args pace=cpu --accel tcg

# The heartbeats carry a count of work that grows.
i=0
until [ "$(grep -cE '^HB .* work=[1-9][0-9]* tiny' "$g_log")" -ge 2 ]; do
	i=$((i + 1)); [ $i -gt 600 ] && fail "no work= in the heartbeats: $(tail -n 2 "$g_log")"
	sleep 0.05
done
w1=$(grep -E '^HB .* work=[0-9]+ tiny' "$g_log" | tail -1 | sed -n 's/.* work=\([0-9]*\) .*/\1/p')
wait_beats "$g_log" 50 30 || fail "the guest stopped beating"
w2=$(grep -E '^HB .* work=[0-9]+ tiny' "$g_log" | tail -1 | sed -n 's/.* work=\([0-9]*\) .*/\1/p')
[ "$w2" -gt "$w1" ] || fail "work did not grow: $w1 then $w2"
$QMIGRATE qmp "$g_qmp" quit > /dev/null || fail "quit"

# A CPU-bound writer over a 4 MiB/s link: auto-converge throttles it until
# it converges (at 99% the vCPU runs 10 ms a second). The engine's guest
# slowdown then comes from the guest's work (a number, not null; its value
# over the whole precopy moves with the host's load, so it is printed).
$QMIGRATE migrate --launch --guest tiny --mem 64M --wss 16M --dirty-rate 16M --guest-args pace=cpu \
	--accel tcg --max-bandwidth 4M --auto-converge --param cpu-throttle-initial=80 \
	--param cpu-throttle-increment=19 --json > "$T/cpu.jsonl" 2>"$T/cpu.err" ||
	fail "pace=cpu with auto-converge: exit $?: $(tail -1 "$T/cpu.jsonl") $(tail -3 "$T/cpu.err")"
res=$(tail -1 "$T/cpu.jsonl")
echo "$res" | cut -c1-400
[ "$(json_get status "$res")" = completed ] || fail "not completed"
[ "$(json_get verified "$res")" = true ] || fail "not verified"
thr=$(json_get throttle_pct_max "$res")
[ "${thr:-0}" -gt 0 ] || fail "QEMU never throttled the guest (throttle_pct_max ${thr:-none})"
slow=$(json_get guest_slowdown "$res")
echo "$slow" | grep -qE '^[0-9.]+(e-?[0-9]+)?$' || fail "no guest slowdown from the guest's work: '$slow'"
ok "pace=cpu: work counted, throttled up to $thr% and converged; guest slowdown $slow"
