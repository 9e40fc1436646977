# Shared helpers for the shell integration tests. Source it first thing:
#   . tests/lib.sh
# Every test gets a private temp dir and a trap that kills what it launched.
set -u
QMIGRATE=${QMIGRATE:-./tools/qmigrate}
T=$(mktemp -d /tmp/qmig-test.XXXXXX)
PIDS=""
CLEANUP_HOOKS=""

cleanup() {
	for h in $CLEANUP_HOOKS; do "$h" || true; done
	for p in $PIDS; do kill -9 "$p" 2>/dev/null; done
	for p in $PIDS; do
		d=$(cat "$T/rundir.$p" 2>/dev/null) && [ -n "$d" ] && rm -rf "$d"
	done
	rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 1' INT TERM  # the EXIT trap cleans up

# QEMUs a test starts itself run as qmigrate's unprivileged user, like the
# ones qmigrate launches (as root, when that user exists): `$AS_QEMU CMD...`
# runs CMD as that user (setpriv execs it: $! of `$AS_QEMU qemu... &` is
# QEMU's pid); QDIR is a directory of the test it may write in.
QEMU_USER=qmigrate-qemu
AS_QEMU=""
QDIR=$T
if [ "$(id -u)" = 0 ] && id "$QEMU_USER" > /dev/null 2>&1 && command -v setpriv > /dev/null; then
	chmod 711 "$T"
	QDIR=$T/qemu
	mkdir -m 700 "$QDIR" && chown "$QEMU_USER:" "$QDIR"
	AS_QEMU="setpriv --reuid=$QEMU_USER --regid=$QEMU_USER --clear-groups --no-new-privs"
fi

fail() { echo "FAIL: $*" >&2; exit 1; }
skip() { echo "skipped: $*"; exit 77; }
ok() { echo "ok: $*"; }

# json_get KEY FILE-OR-STRING: the value of a top-level string or number key
# of a flat one-line JSON object (enough for our own output).
json_get() {
	printf '%s\n' "$2" | sed -n "s/.*\"$1\":\"\{0,1\}\([^\",}]*\).*/\1/p" | head -1
}

# launch_guest NAME ARGS...: start a detached test guest with qmigrate
# launch; sets NAME_qmp, NAME_serial_socket, NAME_log, NAME_pid.
launch_guest() {
	name=$1; shift
	out=$($QMIGRATE launch --json "$@") || fail "qmigrate launch $*: $out"
	pid=$(json_get pid "$out")
	PIDS="$PIDS $pid"
	json_get runtime_dir "$out" > "$T/rundir.$pid"
	eval "${name}_pid=$pid"
	eval "${name}_qmp=$(json_get qmp "$out")"
	eval "${name}_serial_socket=$(json_get serial_socket "$out")"
	eval "${name}_log=$(json_get serial "$out")"
}

# hb_count LOG: heartbeat lines so far in a serial log.
hb_count() { _n=$(grep -c '^HB ' "$1" 2>/dev/null); echo "${_n:-0}"; }

# wait_beats LOG N SECS: wait until N more heartbeats than now appear.
wait_beats() {
	start=$(hb_count "$1"); want=$((start + $2)); i=0
	while [ "$(hb_count "$1")" -lt "$want" ]; do
		i=$((i + 1)); [ $i -gt $(($3 * 20)) ] && return 1
		sleep 0.05
	done
	return 0
}

# wait_gen LOG G SECS: until the guest's heartbeats report generation G
# (generation 2: the whole working set has been written once).
wait_gen() {
	i=0
	until tail -n 3 "$1" 2>/dev/null | grep -q "gen=$2 \|gen=[$(($2 + 1))-9]"; do
		i=$((i + 1)); [ $i -gt $(($3 * 20)) ] && return 1
		sleep 0.05
	done
	return 0
}

# alive PID: the process exists and is not a zombie.
alive() { [ -d "/proc/$1" ] && ! grep -q '^State:.*Z' "/proc/$1/status" 2>/dev/null; }

# status_of QMP: the QEMU run state (running, paused, postmigrate, ...).
status_of() { $QMIGRATE qmp "$1" query-status | sed -n 's/.*"status": *"\([^"]*\)".*/\1/p'; }

# no_leftover_ports LO HI: nothing listens in the range any more.
no_leftover_ports() {
	! ss -Htln 2>/dev/null | awk '{print $4}' | sed 's/.*://' |
		awk -v lo="$1" -v hi="$2" '$1 >= lo && $1 <= hi {f=1} END {exit !f}'
}
