# qmigrate launch --json and qmigrate verify, as other tools and the shell
# tests use them: the JSON fields, verify on an untouched guest (exit 0, the
# guest resumed), --keep-stopped, a page changed behind the guest's back
# (exit 1, that page named), a QEMU that runs no guest of ours (exit 3),
# and launch failures with QEMU's own message.
. tests/lib.sh
command -v qemu-system-x86_64 >/dev/null || skip "qemu-system-x86_64 not installed"

g_json=$($QMIGRATE launch --json --guest tiny --mem 64M --wss 8M --dirty-rate 16M --accel tcg) ||
	fail "launch: $g_json"
echo "$g_json"
g_pid=$(json_get pid "$g_json"); PIDS="$PIDS $g_pid"
json_get runtime_dir "$g_json" > "$T/rundir.$g_pid"
g_qmp=$(json_get qmp "$g_json")
g_serial_socket=$(json_get serial_socket "$g_json")
g_log=$(json_get serial "$g_json")
out=$($QMIGRATE launch --json --guest none --accel tcg --paused) || fail "launch --guest none: $out"
n_pid=$(json_get pid "$out"); PIDS="$PIDS $n_pid"
json_get runtime_dir "$out" > "$T/rundir.$n_pid"
n_qmp=$(json_get qmp "$out")

# The JSON object has what other tools need.
for f in pid qmp serial serial_socket runtime_dir accel mem_bytes stderr; do
	[ -n "$(json_get $f "$g_json")" ] || fail "launch --json lacks $f"
done
[ "$(json_get accel "$g_json")" = tcg ] || fail "accel not tcg"
[ "$(json_get mem_bytes "$g_json")" = $((64 * 1048576 + 8192)) ] || fail "mem_bytes not adjusted"
[ -S "$g_qmp" ] || fail "qmp is not a socket: $g_qmp"
[ -S "$g_serial_socket" ] || fail "serial_socket is not a socket: $g_serial_socket"
[ -f "$g_log" ] || fail "serial log missing: $g_log"
dir=$(cat "$T/rundir.$g_pid")
[ "$(stat -c %a "$dir")" = 700 ] || fail "runtime dir mode $(stat -c %a "$dir")"
wait_beats "$g_log" 20 10 || fail "no heartbeats in $g_log"
grep -q '^READY tiny wss=8388608 ' "$g_log" || fail "no READY line"
ok "launch: pid $g_pid, qmp $g_qmp, log $g_log"

# Let it finish its first pass, so every page carries a stamp.
i=0
until grep -q '^HB .* gen=2 ' "$g_log"; do
	i=$((i + 1)); [ $i -gt 200 ] && fail "the guest never finished its first pass"
	sleep 0.05
done

# Untouched: verifies, and the guest runs on.
$QMIGRATE verify --qmp "$g_qmp" > "$T/v1" || fail "verify of an untouched guest: $(cat "$T/v1")"
cat "$T/v1"
grep -q '^verified: 2048 pages' "$T/v1" || fail "verify output: $(cat "$T/v1")"
[ "$(status_of "$g_qmp")" = running ] || fail "guest not resumed after verify"
$QMIGRATE verify --qmp "$g_qmp" --json > "$T/v2" || fail "verify --json"
[ "$(json_get verified "$(cat "$T/v2")")" = true ] || fail "verify --json: $(cat "$T/v2")"

# --keep-stopped leaves it paused.
$QMIGRATE verify --qmp "$g_qmp" --keep-stopped >/dev/null || fail "verify --keep-stopped"
[ "$(status_of "$g_qmp")" = paused ] || fail "guest not left paused"

# Change a word of page 300 through /proc/PID/mem, the way a lost or
# stale write would look: verify must fail and name that page.
gpa=$(printf '0x%x' $((0x800000 + 300 * 4096)))
hva=$($QMIGRATE qmp "$g_qmp" human-monitor-command "{\"command-line\": \"gpa2hva $gpa\"}" |
	sed -n 's/.* is \(0x[0-9a-f]*\).*/\1/p')
[ -n "$hva" ] || fail "gpa2hva gave no address for $gpa"
printf 'ABCD' | dd of=/proc/"$g_pid"/mem bs=1 seek=$((hva + 1024)) count=4 conv=notrunc \
	status=none || fail "could not write guest memory"
$QMIGRATE verify --qmp "$g_qmp" > "$T/v3"
rc=$?
cat "$T/v3"
[ $rc -eq 1 ] || fail "verify of a corrupted guest exited $rc, want 1"
grep -q "page 300 (gpa $gpa)" "$T/v3" || fail "verify did not name page 300: $(cat "$T/v3")"
grep -q "first at gpa $gpa" "$T/v3" || fail "first bad gpa not $gpa"
# verify resumes only a guest it stopped itself
[ "$(status_of "$g_qmp")" = paused ] || fail "verify resumed a guest it had not stopped"
$QMIGRATE qmp "$g_qmp" cont >/dev/null || fail "cont"
ok "corrupted page found: $(cut -c1-80 "$T/v3")"

# Not our guest: cannot check (3).
$QMIGRATE verify --qmp "$n_qmp" 2> "$T/v4"
rc=$?
[ $rc -eq 3 ] || fail "verify of a QEMU without our guest exited $rc, want 3"
grep -q 'no tiny-guest header' "$T/v4" || fail "message: $(cat "$T/v4")"
# A destination whose incoming migration has not finished: not yet (3).
out=$($QMIGRATE launch --json --guest tiny --mem 64M --accel tcg --incoming) ||
	fail "launch --incoming: $out"
i_pid=$(json_get pid "$out"); PIDS="$PIDS $i_pid"
json_get runtime_dir "$out" > "$T/rundir.$i_pid"
i_qmp=$(json_get qmp "$out")
[ "$(status_of "$i_qmp")" = inmigrate ] || fail "--incoming guest is not inmigrate"
$QMIGRATE verify --qmp "$i_qmp" 2> "$T/v5"
rc=$?
[ $rc -eq 3 ] || fail "verify of an inmigrate guest exited $rc, want 3"
grep -q 'incoming migration has not finished' "$T/v5" || fail "message: $(cat "$T/v5")"
$QMIGRATE qmp "$i_qmp" quit >/dev/null || fail "quit of the incoming guest failed"
$QMIGRATE verify --qmp "$T/nonexistent.sock" 2>/dev/null
[ $? -eq 3 ] || fail "verify of a missing socket should exit 3"
ok "verify exit codes 0, 1, 3"

# Launch failures: QEMU's own message, exit 3, nothing left (in a runtime
# base of this test's own: other tests launch in /tmp meanwhile).
RB=$T/rb
mkdir -m 711 "$RB"
before=$(ls -d "$RB"/qmig-vm-* 2>/dev/null | wc -l)
XDG_RUNTIME_DIR=$RB $QMIGRATE launch --guest none --accel tcg -- -no-such-option 2> "$T/e1"
[ $? -eq 3 ] || fail "bad option: exit status"
grep -q 'no-such-option: invalid option' "$T/e1" || fail "bad option: $(cat "$T/e1")"
XDG_RUNTIME_DIR=$RB $QMIGRATE launch --guest none --qemu /nonexistent/qemu 2> "$T/e2"
[ $? -eq 3 ] || fail "missing binary: exit status"
grep -q 'No such file or directory' "$T/e2" || fail "missing binary: $(cat "$T/e2")"
after=$(ls -d "$RB"/qmig-vm-* 2>/dev/null | wc -l)
[ "$after" -le "$before" ] || fail "failed launches left runtime directories"
ok "launch failures: $(head -1 "$T/e1")"

$QMIGRATE qmp "$g_qmp" quit >/dev/null || fail "quit of the guest failed"
$QMIGRATE qmp "$n_qmp" quit >/dev/null || fail "quit of the guest-less QEMU failed"
exit 0
