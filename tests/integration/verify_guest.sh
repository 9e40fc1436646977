# The default verification of the tiny guest, with no second pause: once
# it runs on the destination, the guest checks every page of its working
# set (asked by an NMI) and answers on its serial line.
#  1. A clean migration (attach mode, serial sockets given) is verified by
#     stamps, and the destination is never stopped after it resumed (one
#     RESUME, no STOP in the trace's destination events).
#  2. A page corrupted on the source before the move (serial "corrupt") is
#     found on the destination: completed-with-errors (exit 8), the page
#     named, the destination keeps the guest.
#  3. QEMU 7.2's TCG canary (256 KiB-aligned RAM, a hot set, enough
#     passes; --force past the doctor) is caught by the default check too.
#     A run that did not reach 5 passes did not arm the canary: it is
#     repeated (at most 3 runs); any run that did must be caught: pages
#     found wrong by the guest's check or its writer, a stale header, or
#     a guest that no longer runs (the bug also hits its code and stack).
#  4. A guest whose working set is all of a small RAM (32 MiB) verifies
#     before it ever moved, in its first generation: the firmware leaves its
#     stack in that RAM, and a page not yet written must read as zero.
. tests/lib.sh
command -v python3 > /dev/null || skip "python3 (to write to the guest's serial socket) not installed"

mig() { # NAME ARGS...
	n=$1; shift
	$QMIGRATE migrate --src-qmp "$src_qmp" --dst-qmp "$dst_qmp" --src-serial "$src_serial_socket" \
		--dst-serial "$dst_serial_socket" --json "$@" > "$T/$n.jsonl" 2> "$T/$n.err"
	rc=$?; res=$(tail -1 "$T/$n.jsonl")
	echo "$n: exit $rc: $(json_get message "$res") (passes $(json_get passes "$res"), verify_ms $(json_get verify_ms "$res"))"
}
stop_pair() { kill -9 "$src_pid" "$dst_pid" 2>/dev/null; }
dst_events() { grep '"side":"destination","event":"'"$1"'"' "$T/$2.jsonl" | wc -l; }

# 1. Clean.
launch_guest src --guest tiny --mem 128M --wss 32M --dirty-rate 20M --accel tcg
launch_guest dst --guest tiny --mem 128M --wss 32M --dirty-rate 20M --incoming --accel tcg
wait_gen "$src_log" 2 60 || fail "source guest does not write"
mig clean
[ $rc = 0 ] || fail "clean: exit $rc: $res"
[ "$(json_get verified "$res")" = true ] && [ "$(json_get verify_method "$res")" = stamps ] ||
	fail "clean: not verified by stamps: $res"
[ "$(dst_events RESUME clean)" = 1 ] && [ "$(dst_events STOP clean)" = 0 ] ||
	fail "clean: the destination was paused again ($(dst_events STOP clean) STOP, $(dst_events RESUME clean) RESUME)"
# QEMU writes its serial log just after the socket the engine reads: wait for it.
i=0; until grep -q '^VERIFY pages=8192 bad=0' "$dst_log"; do
	i=$((i + 1)); [ $i -gt 200 ] && fail "clean: no VERIFY line in the guest's serial log: $(grep '^VERIFY' "$dst_log")"
	sleep 0.05
done
stop_pair

# 2. A page corrupted before the move.
launch_guest src --guest tiny --mem 128M --wss 32M --accel tcg
launch_guest dst --guest tiny --mem 128M --wss 32M --incoming --accel tcg
wait_beats "$src_log" 3 60 || fail "source guest does not beat"
# (the connection stays until the guest says it is done: QEMU takes the
# command a byte at a time)
python3 -c '
import socket, sys, time
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.settimeout(30)
s.sendall(b"corrupt 300\n"); buf = b""
while b"INJECTED page=300" not in buf:
    d = s.recv(65536)
    if not d: break
    buf += d
sys.exit(0 if b"INJECTED page=300" in buf else 1)' "$src_serial_socket" ||
	fail "the source guest did not corrupt page 300"
mig corrupt
[ $rc = 8 ] || fail "corrupt: exit $rc, expected 8 (completed with errors): $res"
grep -q '"message":"destination: 1 of 8192 guest pages are wrong, first at 0x92c000: page 300 should hold generation 0' "$T/corrupt.jsonl" ||
	fail "corrupt: page 300 not named: $(grep -o '"message":"[^"]*' "$T/corrupt.jsonl")"
[ "$(json_get owner "$res")" = destination ] || fail "corrupt: the destination should keep the guest"
[ "$(status_of "$dst_qmp")" = running ] || fail "corrupt: destination not running"
stop_pair

# 3. The canary, default verification.
CANARY="--wss 32M --dirty-rate 200M --mode hot --guest-args hot=1024 --no-mem-workaround"
armed=0
for attempt in 1 2 3; do
	# shellcheck disable=SC2086
	launch_guest src --guest tiny --mem 256M --accel tcg $CANARY
	# shellcheck disable=SC2086
	launch_guest dst --guest tiny --mem 256M --incoming --accel tcg $CANARY
	wait_gen "$src_log" 2 60 || fail "canary: source guest does not write"
	mig canary$attempt --force --downtime-limit 1 --max-bandwidth 100M --pause-after 6
	passes=$(json_get passes "$res")
	stop_pair
	if [ "${passes:-0}" -lt 5 ]; then
		echo "canary: only $passes passes, not armed; again"
		continue
	fi
	armed=1
	[ $rc = 8 ] || fail "canary: $passes passes and not caught: exit $rc: $res"
	grep -q '"message":"destination: [^"]*\(guest pages are wrong\|reports corrupt memory\|stale memory\|it does not run on\)' "$T/canary$attempt.jsonl" ||
		fail "canary: unclear message: $(grep -o '"message":"[^"]*' "$T/canary$attempt.jsonl")"
	break
done
[ $armed = 1 ] || fail "canary: never reached 5 passes in 3 runs"

# 4. Unmigrated, first generation, working set = all RAM above 8 MiB.
launch_guest small --guest tiny --mem 32M --dirty-rate 256K --accel tcg
i=0; until grep -q '^READY' "$small_log" 2>/dev/null; do
	i=$((i + 1)); [ $i -gt 600 ] && fail "small: the guest never said READY"; sleep 0.05; done
v=$($QMIGRATE verify --qmp "$small_qmp" 2>&1) || fail "small: unmigrated guest does not verify: $v"
echo "small: $v"
case $v in *"generation 1"*) ;; *) fail "small: expected generation 1 (pages still unwritten): $v" ;; esac
kill -9 "$small_pid" 2>/dev/null
ok "the guest's own check: clean verified without a second pause, a corrupt page and the TCG canary caught; an unmigrated small guest verifies"
