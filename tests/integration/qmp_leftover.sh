#!/bin/sh
# A client killed while QEMU runs its command leaves the reply behind: QEMU's
# monitor is one character device, so the reply goes to whoever connects
# next (qmigrate recover after kill -9 of qmigrate, or qmigrate qmp; this
# failed make check in CI). The next client must drop it and work.
# Reproduced for certain: the command is a dump of guest memory into a FIFO
# nobody reads, so QEMU's main loop blocks in open() until the test reads.
. tests/lib.sh

command -v qemu-system-x86_64 >/dev/null || skip "qemu-system-x86_64 not installed"
command -v ss >/dev/null || skip "ss (iproute2) not installed"
mkfifo "$QDIR/fifo" && chmod 666 "$QDIR/fifo"
$AS_QEMU qemu-system-x86_64 -M pc -S -m 16 -display none -nodefaults -name leftover \
	-qmp "unix:$QDIR/qmp.sock,server=on,wait=off" </dev/null >"$T/qemu.log" 2>&1 &
qpid=$!
PIDS="$PIDS $qpid"
i=0
while [ ! -S "$QDIR/qmp.sock" ]; do
	i=$((i + 1)); [ $i -gt 1500 ] && fail "no QMP socket: $(cat "$T/qemu.log")"
	sleep 0.02
done

# Client A: its command blocks QEMU's main loop; then it dies.
$QMIGRATE qmp "$QDIR/qmp.sock" dump-guest-memory \
	"{\"paging\": false, \"protocol\": \"file:$QDIR/fifo\"}" > "$T/a.out" 2>&1 &
apid=$!
i=0  # openat (257) or open (2) in QEMU's main thread
until awk '{ exit !($1 == 257 || $1 == 2) }' "/proc/$qpid/syscall" 2>/dev/null; do
	i=$((i + 1)); [ $i -gt 1500 ] && fail "QEMU never opened the FIFO: $(cat "$T/a.out")"
	sleep 0.02
done
kill -9 "$apid"; wait "$apid" 2>/dev/null

# Client B connects; QEMU's monitor thread accepts it (and greets it) while
# the main loop is still blocked.
$QMIGRATE -v qmp "$QDIR/qmp.sock" query-status > "$T/b.out" 2> "$T/b.err" &
bpid=$!
i=0
until ss -xp 2>/dev/null | grep -F "$QDIR/qmp.sock" | grep -q "pid=$qpid,"; do
	i=$((i + 1)); [ $i -gt 1500 ] && fail "QEMU never accepted client B"
	sleep 0.02
done
# A's dump runs to its end; its reply goes to B.
timeout 120 cat "$QDIR/fifo" > /dev/null || fail "the dump never wrote"
wait "$bpid"; rc=$?
[ $rc = 0 ] || fail "client B: exit $rc: $(cat "$T/b.err")"
grep -q '"status":"prelaunch"' "$T/b.out" || fail "client B printed: $(cat "$T/b.out")"
grep -q "dropped a reply with id [0-9]* left by an earlier client" "$T/b.err" ||
	fail "the leftover reply was not seen: $(cat "$T/b.err")"
ok "a killed client's leftover reply dropped; the next client works: $(cat "$T/b.out")"
