#!/bin/sh
# qmigrate qmp against a real QEMU: JSON on stdout, error classes on stderr,
# exit codes 0 / 1 (error reply) / 2 (usage, bad JSON) / 3 (cannot connect).
. tests/lib.sh

command -v qemu-system-x86_64 >/dev/null || skip "qemu-system-x86_64 not installed"
[ -x "$QMIGRATE" ] || fail "$QMIGRATE not built"

$AS_QEMU qemu-system-x86_64 -M none -display none -nodefaults -name cli-test \
	-qmp "unix:$QDIR/qmp.sock,server=on,wait=off" </dev/null >"$T/qemu.log" 2>&1 &
PIDS="$PIDS $!"
i=0
while [ ! -S "$QDIR/qmp.sock" ]; do
	i=$((i + 1)); [ $i -gt 250 ] && fail "no QMP socket: $(cat "$T/qemu.log")"
	sleep 0.02
done

# A reply's return, as one line of JSON when stdout is not a terminal.
out=$($QMIGRATE qmp "$QDIR/qmp.sock" query-status) || fail "query-status exit $?"
[ "$out" = '{"status":"running","singlestep":false,"running":true}' ] ||
	fail "query-status printed: $out"
[ "$(printf '%s\n' "$out" | wc -l)" -eq 1 ] || fail "not one line"
ok "query-status: $out"

out=$($QMIGRATE qmp "$QDIR/qmp.sock" query-name) || fail "query-name"
[ "$out" = '{"name":"cli-test"}' ] || fail "query-name printed: $out"

# Arguments as JSON.
out=$($QMIGRATE qmp "$QDIR/qmp.sock" qom-list '{"path": "/"}') || fail "qom-list exit $?"
case $out in *'"name":"machine"'*) ;; *) fail "qom-list: $out" ;; esac
$QMIGRATE qmp "$QDIR/qmp.sock" migrate-set-parameters '{"downtime-limit": 777}' >/dev/null ||
	fail "migrate-set-parameters"
out=$($QMIGRATE qmp "$QDIR/qmp.sock" query-migrate-parameters)
case $out in *'"downtime-limit":777'*) ok "parameters round trip" ;;
	*) fail "downtime-limit not set: $out" ;; esac

# An error reply: exit 1, "qmigrate: CLASS: desc" on stderr, nothing on stdout.
rc=0
$QMIGRATE qmp "$QDIR/qmp.sock" no-such-command >"$T/out" 2>"$T/err" || rc=$?
[ $rc -eq 1 ] || fail "error reply exit $rc"
[ ! -s "$T/out" ] || fail "stdout on error: $(cat "$T/out")"
grep -q '^qmigrate: CommandNotFound: The command no-such-command has not been found$' \
	"$T/err" || fail "stderr: $(cat "$T/err")"
ok "error reply: $(cat "$T/err")"

rc=0
$QMIGRATE qmp "$QDIR/qmp.sock" migrate-set-parameters '{"multifd-channels": 0}' \
	2>"$T/err" >/dev/null || rc=$?
[ $rc -eq 1 ] && grep -q '^qmigrate: GenericError: ' "$T/err" ||
	fail "GenericError: exit $rc, $(cat "$T/err")"

# Bad JSON arguments: exit 2 with a clear message, QEMU never asked.
rc=0
$QMIGRATE qmp "$QDIR/qmp.sock" qom-list '{"path": ' 2>"$T/err" || rc=$?
[ $rc -eq 2 ] && grep -q 'arguments are not valid JSON' "$T/err" ||
	fail "bad JSON: exit $rc, $(cat "$T/err")"
rc=0
$QMIGRATE qmp "$QDIR/qmp.sock" qom-list '[1, 2]' 2>"$T/err" || rc=$?
[ $rc -eq 2 ] && grep -q 'must be a JSON object' "$T/err" ||
	fail "array args: exit $rc, $(cat "$T/err")"
ok "bad JSON refused"

# Usage and connection errors.
rc=0; $QMIGRATE qmp 2>/dev/null || rc=$?
[ $rc -eq 2 ] || fail "no arguments: exit $rc"
$QMIGRATE qmp --help | grep -q '^usage: qmigrate qmp' || fail "--help"
rc=0; $QMIGRATE qmp "$T/nonexistent.sock" query-status 2>"$T/err" || rc=$?
[ $rc -eq 3 ] && grep -q 'cannot connect to QMP socket' "$T/err" ||
	fail "missing socket: exit $rc, $(cat "$T/err")"
ok "usage and connection errors"

# Pretty output on a terminal (when script(1) can give us one).
if command -v script >/dev/null; then
	script -qec "$QMIGRATE qmp $QDIR/qmp.sock query-status" /dev/null >"$T/tty" 2>&1 ||
		fail "on a tty"
	[ "$(grep -c . "$T/tty")" -gt 1 ] && grep -q '"status": "running"' "$T/tty" ||
		fail "not pretty on a tty: $(cat "$T/tty")"
	ok "pretty on a terminal"
fi

# The monitor is free again after each run: quit works and QEMU exits.
$QMIGRATE qmp "$QDIR/qmp.sock" quit >/dev/null || fail "quit"
for p in $PIDS; do
	i=0
	while alive "$p"; do
		i=$((i + 1)); [ $i -gt 250 ] && fail "QEMU still running after quit"
		sleep 0.02
	done
done
ok "quit"
