# qmigrate update (cpr-transfer) against real QEMU 10.0 (tools/qemu-cache.sh;
# skipped, saying so, when it cannot be had): launch mode with 256 MiB and
# 2 GiB guests writing memory (completed, verified, under 5% of RAM moved,
# guest-observed downtime), attach mode on a QEMU set up for it, the
# refusals (RAM not shared, QEMU 7.2 without cpr-transfer) leaving the
# source untouched, and a new QEMU that fails to start: the old one keeps
# the guest, running.
. tests/lib.sh
Q10=$(sh tools/qemu-cache.sh 10.0 2>"$T/qemu-cache.err") ||
	skip "QEMU 10.0 cannot be fetched: $(tail -1 "$T/qemu-cache.err")"
[ -x "$Q10" ] || skip "QEMU 10.0 wrapper $Q10 missing"
"$Q10" -version | head -1

field() { json_get "$1" "$res"; }
update() { res=$($QMIGRATE update --json "$@" 2> "$T/err"); rc=$?; }

# updated NAME RAM-BYTES: completed, verified by stamps, < 5% of RAM moved.
updated() {
	[ "$rc" = 0 ] || fail "$1: exit $rc: $res $(cat "$T/err")"
	[ "$(field status)" = completed ] || fail "$1: $res"
	[ "$(field owner)" = new ] || fail "$1: owner is not the new QEMU: $res"
	[ "$(field verified)" = true ] && [ "$(field verify_method)" = stamps ] ||
		fail "$1: not verified by stamps: $res"
	x=$(field transferred_bytes)
	[ "$x" -gt 0 ] && [ $((x * 20)) -lt "$2" ] || fail "$1: $x bytes moved, not under 5% of RAM"
	echo "$1: moved $x bytes of $2 ($(field transferred_pct_of_ram)%), guest-observed downtime $(field guest_downtime_ms) ms, QEMU downtime $(field qemu_downtime_ms) ms, total $(field total_ms) ms"
}

# ---- launch mode ----------------------------------------------------------
update --launch --guest tiny --mem 256M --wss 64M --dirty-rate 50M --accel tcg --qemu "$Q10"
updated "launch 256M" 268435456
[ "$(field guest_downtime_ms)" -ge 0 ] || fail "launch 256M: no guest-observed downtime: $res"
ok "update --launch 256 MiB: completed, verified"

update --launch --guest tiny --mem 2G --wss 256M --dirty-rate 100M --accel tcg --qemu "$Q10"
updated "launch 2G" 2147483648
ok "update --launch 2 GiB: completed, verified"

# ---- attach mode ------------------------------------------------------------
# A QEMU whose RAM is not shared: refused with the reason, untouched.
launch_guest plain --guest tiny --mem 128M --dirty-rate 10M --accel tcg --qemu "$Q10"
wait_beats "$plain_log" 3 30 || fail "guest does not heartbeat"
update --src-qmp "$plain_qmp"
[ "$rc" = 3 ] || fail "unshared RAM: exit $rc, not 3: $res"
echo "$res" | grep -q "not shared memory.*memory-backend-memfd" || fail "unshared RAM: unclear: $res"
[ "$(status_of "$plain_qmp")" = running ] || fail "refused update: source not running"
$QMIGRATE qmp "$plain_qmp" query-migrate-parameters | grep -q '"mode": *"normal"' ||
	fail "refused update changed the migration mode"
kill -9 "$plain_pid"
# QEMU 7.2 has no cpr-transfer.
launch_guest old --guest tiny --mem 128M --accel tcg
update --src-qmp "$old_qmp"
[ "$rc" = 3 ] && echo "$res" | grep -q "no cpr-transfer" || fail "7.2: exit $rc: $res"
[ "$(status_of "$old_qmp")" = running ] || fail "refused update: 7.2 source not running"
kill -9 "$old_pid"
ok "attach mode refuses unshared RAM and QEMU 7.2, changing nothing"

# A QEMU set up for it (what --launch does, by hand), with a pid file.
SHARED="-machine memory-backend=r0,aux-ram-share=on -object memory-backend-memfd,id=r0,size=128M,share=on"
launch_guest src --guest tiny --mem 128M --wss 32M --dirty-rate 20M --accel tcg --qemu "$Q10" -- \
	$SHARED -pidfile "$QDIR/qemu.pid"
wait_gen "$src_log" 2 60 || fail "source guest does not write its working set"
# A new QEMU that cannot start: the old one keeps the guest, running.
update --src-qmp "$src_qmp" --src-serial "$src_serial_socket" --qemu /bin/false
[ "$rc" = 4 ] || fail "failing new QEMU: exit $rc, not 4: $res"
[ "$(field owner)" = old ] || fail "failing new QEMU: owner: $res"
[ "$(status_of "$src_qmp")" = running ] || fail "failed update: source not running"
wait_beats "$src_log" 20 10 || fail "failed update: source guest does not heartbeat"
$QMIGRATE qmp "$src_qmp" query-migrate-parameters | grep -q '"mode": *"normal"' ||
	fail "failed update: migration mode not put back"
echo "failing new QEMU: $(field message)"
ok "a new QEMU that fails leaves the old one running the guest"

# A new QEMU that fails late: it takes the cpr state, then refuses the
# device state (another machine type), after the old QEMU sent it all and
# stopped the guest. The new one never ran it: the old one resumes.
printf '#!/bin/sh\nexec "%s" "$@" -machine pc-i440fx-9.2\n' "$Q10" > "$T/badqemu"
chmod +x "$T/badqemu"
update --src-qmp "$src_qmp" --src-serial "$src_serial_socket" --qemu "$T/badqemu"
[ "$rc" = 4 ] || fail "late-failing new QEMU: exit $rc, not 4: $res"
echo "$res" | grep -q "Machine type received" || fail "late failure: QEMU's reason missing: $res"
[ "$(field owner)" = old ] || fail "late failure: owner: $res"
[ "$(status_of "$src_qmp")" = running ] || fail "late failure: source not running"
wait_beats "$src_log" 20 10 || fail "late failure: source guest does not heartbeat"
$QMIGRATE verify --qmp "$src_qmp" > /dev/null 2>&1 || fail "late failure: source memory fails verify"
$QMIGRATE qmp "$src_qmp" cont > /dev/null
$QMIGRATE qmp "$src_qmp" query-migrate-parameters | grep -q '"mode": *"normal"' ||
	fail "late failure: migration mode not put back"
echo "late-failing new QEMU: $(field message)"
ok "a new QEMU failing after the hand-off began: the old one resumes, verified"

update --src-qmp "$src_qmp" --src-serial "$src_serial_socket" --qemu "$Q10"
updated "attach 128M" 134217728
new_pid=$(field new_pid); PIDS="$PIDS $new_pid"
new_qmp=$(field new_qmp)
dirname "$new_qmp" > "$T/rundir.$new_pid"
i=0; while alive "$src_pid"; do i=$((i + 1)); [ $i -gt 100 ] && fail "old QEMU still runs"; sleep 0.05; done
[ "$(status_of "$new_qmp")" = running ] || fail "attach: the new QEMU does not run the guest"
[ "$(cat "$QDIR/qemu.pid")" = "$new_pid" ] || fail "attach: the pid file does not name the new QEMU"
$QMIGRATE verify --qmp "$new_qmp" > /dev/null 2>&1 || fail "attach: the new QEMU's guest fails verify"
ok "update --src-qmp: the new QEMU runs the guest, verified; the old one is gone"

# qmigrate killed during an update (stopped at its migrate step, then -9):
# 'qmigrate recover' ends it by the ownership rule. Whichever way it ends,
# exactly one QEMU runs the guest, and it verifies.
kill -9 "$new_pid" 2>/dev/null
launch_guest src --guest tiny --mem 128M --wss 32M --dirty-rate 20M --accel tcg --qemu "$Q10" -- $SHARED
wait_gen "$src_log" 2 60 || fail "source guest does not write its working set"
JOBDIR=/run/qmigrate/jobs
[ "$(id -u)" = 0 ] || JOBDIR=${XDG_RUNTIME_DIR:-/tmp/qmigrate-jobs-$(id -u)}
[ "$(id -u)" = 0 ] || [ -z "${XDG_RUNTIME_DIR:-}" ] || JOBDIR=$XDG_RUNTIME_DIR/qmigrate-jobs
$QMIGRATE update --src-qmp "$src_qmp" --qemu "$Q10" --json --debug-stop-at migrate \
	> "$T/killed.json" 2>&1 &
up=$!
i=0
# It stops itself right after journaling its migrate step.
until [ "$(awk '{print $3}' "/proc/$up/stat" 2>/dev/null)" = T ]; do
	i=$((i + 1)); [ $i -gt 2400 ] && fail "the update never reached its migrate step"
	alive "$up" || fail "the update ended before it could be killed: $(cat "$T/killed.json")"
	sleep 0.05
done
grep -qs '"command":"migrate"' "$JOBDIR/$up.journal" || fail "stopped, but no migrate step journaled"
sed 's#\\/#/#g' "$JOBDIR/$up.journal" > "$T/journal"  # json-c writes \/
new_qmp=$(sed -n 's/.*"destination":{"qmp":"\([^"]*\)".*/\1/p' "$T/journal")
new_pid=$(sed -n 's/.*"destination":{[^}]*"qemu_pid":\([0-9]*\).*/\1/p' "$T/journal")
[ -n "$new_qmp" ] && [ -n "$new_pid" ] || fail "journal without the new QEMU: $(cat "$T/journal")"
PIDS="$PIDS $new_pid"; dirname "$new_qmp" > "$T/rundir.$new_pid"
sleep 1
kill -9 "$up"; wait "$up" 2>/dev/null
$QMIGRATE recover --job "$up" > "$T/rec.txt" 2>&1 || fail "recover: $(cat "$T/rec.txt")"
echo "recover: $(tr '\n' ' ' < "$T/rec.txt")"
if grep -q finished "$T/rec.txt"; then
	[ "$(status_of "$new_qmp")" = running ] || fail "recovered update: the new QEMU does not run"
	$QMIGRATE verify --qmp "$new_qmp" > /dev/null 2>&1 || fail "recovered update: new fails verify"
	i=0; while alive "$src_pid"; do i=$((i + 1)); [ $i -gt 100 ] && fail "old QEMU runs too"; sleep 0.05; done
else
	grep -q rolled-back "$T/rec.txt" || fail "recover neither finished nor rolled back"
	[ "$(status_of "$src_qmp")" = running ] || fail "rolled-back update: the old QEMU does not run"
	$QMIGRATE verify --qmp "$src_qmp" > /dev/null 2>&1 || fail "rolled back: old fails verify"
	[ "$(status_of "$new_qmp" 2>/dev/null)" = running ] && fail "rolled back, but the new QEMU runs too"
fi
ok "an update whose qmigrate died: recover leaves exactly one QEMU running the guest, verified"
