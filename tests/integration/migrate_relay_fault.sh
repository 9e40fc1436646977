# --transport relay under faults (attach mode, precopy held by a low
# bandwidth): the destination QEMU stops reading (the relay's memory and
# CPU stay flat) and is then killed; the source QEMU is killed; qmigrate
# itself (both relay halves) is killed and `qmigrate recover` repairs the
# job; the destination QEMU is killed while it reads; the relaying process
# stops reading from both QEMUs (SIGSTOP: the source guest runs on, QEMU's
# writes wait), reads again, and the migration is then cancelled; with
# TLS (a thread per relay half) the destination stops reading, then is
# killed. Each
# time the source guest ends running (or is gone when it was the one
# killed), the destination runs no copy, and no relay directory, listener
# or journal is left behind.
. tests/lib.sh

# This run's relay directories (other tests may run relays meanwhile).
relay_dirs() { ls -d "/tmp/qmigrate-relay-$1-"* 2>/dev/null | wc -l; }

start() { # NAME [ARGS]: migrate src -> dst through the relay, in the background
	name=$1; shift
	$QMIGRATE migrate --src-qmp "$src_qmp" --dst-qmp "$dst_qmp" --transport relay \
		--max-bandwidth 5M --no-completion-timeout --json "$@" > "$T/$name.jsonl" 2> "$T/$name.err" &
	mig=$!
	i=0
	until grep -q '"relay_bytes":[1-9]' "$T/$name.jsonl" 2>/dev/null; do
		i=$((i + 1)); [ $i -gt 600 ] && fail "$name: no bytes through the relay: $(cat "$T/$name.err")"
		alive $mig || fail "$name: qmigrate ended early: $(tail -1 "$T/$name.jsonl")"
		sleep 0.05
	done
}
finish() { # NAME WANT-EXIT: wait (bounded) for qmigrate and check its exit code
	i=0
	while alive $mig; do
		i=$((i + 1)); [ $i -gt 1200 ] && { kill -9 $mig; fail "$1: qmigrate did not end"; }
		sleep 0.05
	done
	wait $mig; rc=$?
	res=$(tail -1 "$T/$1.jsonl")
	echo "$1: exit $rc: $(json_get message "$res")"
	[ "$rc" = "$2" ] || fail "$1: exit $rc, expected $2: $res $(tail -3 "$T/$1.err")"
}
nothing_left() { # NAME
	[ "$(relay_dirs $mig)" = 0 ] || fail "$1: a relay directory was left: $(ls -d /tmp/qmigrate-relay-$mig-*)"
	port=$(grep -o '"port":[0-9]*' "$T/$1.jsonl" | head -1 | cut -d: -f2)
	# Still listened on by qmigrate or one of this test's QEMUs (a child
	# that inherited it)? Another test's relay may reuse the port meanwhile.
	if [ -n "$port" ]; then
		for p in $(ss -Htlnp "sport = :$port" | grep -o 'pid=[0-9]*' | cut -d= -f2); do
			for q in $mig $src_pid $dst_pid $dst2_pid ${src3_pid:-} ${dst3_pid:-} \
				${dst4_pid:-} ${dst5_pid:-} ${dst6_pid:-}; do
				[ "$p" = "$q" ] && fail "$1: the relay's port $port is still listened on by $p"
			done
		done
	fi
	$QMIGRATE recover --list 2>/dev/null | grep -q "$src_qmp" && fail "$1: a journal is left"
	return 0
}
rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# A destination stops reading: wait until the relay stops moving (its byte
# count holds for a second), then qmigrate's RSS and CPU must stay flat.
stalled() { # NAME
	last=-1; same=0; i=0
	while [ $same -lt 10 ]; do
		b=$(grep -o '"relay_bytes":[0-9]*' "$T/$1.jsonl" | tail -1 | cut -d: -f2)
		if [ "$b" = "$last" ]; then same=$((same + 1)); else same=0; last=$b; fi
		i=$((i + 1)); [ $i -gt 600 ] && fail "$1: the relay kept moving with the destination stopped"
		sleep 0.1
	done
	rss0=$(rss_kib $mig); cpu0=$(cpu_ticks $mig)
	sleep 2
	rss1=$(rss_kib $mig); cpu1=$(cpu_ticks $mig)
	echo "$1: qmigrate RSS $rss0 -> $rss1 KiB, $((cpu1 - cpu0)) ticks of CPU in 2 s"
	[ $((rss1 - rss0)) -lt 1024 ] || fail "$1: qmigrate grew by $((rss1 - rss0)) KiB"
	# The engine still samples every 100 ms; the relay adds nothing.
	[ $((cpu1 - cpu0)) -lt 40 ] || fail "$1: qmigrate used $((cpu1 - cpu0)) ticks in 2 s"
}

# 1. The destination stops reading, then dies.
launch_guest src --guest tiny --mem 128M --dirty-rate 20M --accel tcg
launch_guest dst --guest tiny --mem 128M --incoming --accel tcg
wait_beats "$src_log" 5 30 || fail "source guest does not heartbeat"
# Its working set written once: zero pages alone would migrate in a blink,
# before the destination can be stopped.
wait_gen "$src_log" 2 120 || fail "source guest does not write its working set"
start stall
kill -STOP "$dst_pid"
stalled stall
kill -9 "$dst_pid"
finish stall 4
grep -q '"type":"relay","event":"broken"\|"event":"broken"' "$T/stall.jsonl" ||
	fail "stall: the broken channel was not reported"
[ "$(json_get rolled_back "$(tail -1 "$T/stall.jsonl")")" = true ] || fail "stall: not rolled back"
[ "$(status_of "$src_qmp")" = running ] || fail "stall: source not running"
wait_beats "$src_log" 5 30 || fail "stall: the source guest does not heartbeat"
nothing_left stall
ok "destination stopped reading (flat memory and CPU), then killed: source runs"

# 2. The source QEMU is killed mid-stream.
launch_guest dst2 --guest tiny --mem 128M --incoming --accel tcg
dst_qmp=$dst2_qmp
start srckill
kill -9 "$src_pid"
finish srckill 4
[ "$(status_of "$dst2_qmp")" = running ] && fail "srckill: the destination runs a copy"
nothing_left srckill
ok "source QEMU killed mid-stream: nothing left, destination not running"

# 3. qmigrate (both relay halves) killed mid-stream, then recover.
launch_guest src3 --guest tiny --mem 128M --dirty-rate 20M --accel tcg
launch_guest dst3 --guest tiny --mem 128M --incoming --accel tcg
src_qmp=$src3_qmp; dst_qmp=$dst3_qmp
wait_beats "$src3_log" 5 30 || fail "source guest does not heartbeat"
start selfkill
job=$(sed -n 's/.*"job_id":"\([^"]*\)".*/\1/p' "$T/selfkill.jsonl" | head -1)
kill -9 $mig
wait $mig 2>/dev/null
[ -n "$job" ] || job=$($QMIGRATE recover --list | grep "$src_qmp" | awk '{print $1}')
$QMIGRATE recover --job "$job" > "$T/rec.txt" 2>&1 || fail "recover failed: $(cat "$T/rec.txt")"
[ "$(status_of "$src3_qmp")" = running ] || fail "selfkill: source not running after recover"
wait_beats "$src3_log" 5 30 || fail "selfkill: the source guest does not heartbeat"
[ "$(status_of "$dst3_qmp")" = running ] && fail "selfkill: the destination runs a copy"
# The dead job's relay directory is removed by the next relay migration.
$QMIGRATE migrate --launch --guest tiny --mem 64M --accel tcg --transport relay --dry-run \
	> "$T/dry.txt" 2>&1 || fail "dry run: $(cat "$T/dry.txt")"
nothing_left selfkill
ok "qmigrate killed mid-stream: recovered to the source, nothing left"

# 4. The destination QEMU killed while it reads (not stopped first).
launch_guest dst4 --guest tiny --mem 128M --incoming --accel tcg
dst_qmp=$dst4_qmp
start dstkill
b0=$(grep -o '"relay_bytes":[0-9]*' "$T/dstkill.jsonl" | tail -1 | cut -d: -f2)
i=0
until [ "$(grep -o '"relay_bytes":[0-9]*' "$T/dstkill.jsonl" | tail -1 | cut -d: -f2)" -gt "$b0" ]; do
	i=$((i + 1)); [ $i -gt 600 ] && fail "dstkill: the stream does not move"
	sleep 0.05
done
kill -9 "$dst4_pid"
finish dstkill 4
[ "$(json_get rolled_back "$(tail -1 "$T/dstkill.jsonl")")" = true ] || fail "dstkill: not rolled back"
[ "$(status_of "$src3_qmp")" = running ] || fail "dstkill: source not running"
wait_beats "$src3_log" 5 30 || fail "dstkill: the source guest does not heartbeat"
nothing_left dstkill
ok "destination QEMU killed while reading: rolled back, source runs"

# 5. The relaying process stops reading from both QEMUs (SIGSTOP), then
# reads again; then the migration is cancelled (SIGTERM).
launch_guest dst5 --guest tiny --mem 128M --incoming --accel tcg
dst_qmp=$dst5_qmp
start relaystop
kill -STOP $mig
# The source QEMU's writes wait on the relay; its guest runs on (its
# heartbeats; its monitor has one client, the stopped qmigrate).
wait_beats "$src3_log" 5 30 || { kill -CONT $mig; fail "relaystop: the source guest stopped"; }
n0=$(grep -c '"relay_bytes"' "$T/relaystop.jsonl")
b0=$(grep -o '"relay_bytes":[0-9]*' "$T/relaystop.jsonl" | tail -1 | cut -d: -f2)
kill -CONT $mig
i=0
until [ "$(grep -o '"relay_bytes":[0-9]*' "$T/relaystop.jsonl" | tail -1 | cut -d: -f2)" -gt "$b0" ]; do
	i=$((i + 1)); [ $i -gt 600 ] && fail "relaystop: the stream did not move again"
	sleep 0.05
done
[ "$(grep -c '"relay_bytes"' "$T/relaystop.jsonl")" -gt "$n0" ] || fail "relaystop: no sample after SIGCONT"
kill -TERM $mig
finish relaystop 5
[ "$(status_of "$src3_qmp")" = running ] || fail "relaystop: source not running after the cancel"
wait_beats "$src3_log" 5 30 || fail "relaystop: the source guest does not heartbeat"
[ "$(status_of "$dst5_qmp")" = running ] && fail "relaystop: the destination runs a copy"
nothing_left relaystop
ok "relaying process stopped (reads nothing), resumed, cancelled: source runs, nothing left"

# 6. With TLS (each relay half on a thread of its own): the destination
# stops reading (the threads do not spin), then is killed.
$QMIGRATE tls init "$T/tls" --host 127.0.0.1 > /dev/null || fail "tls init"
launch_guest dst6 --guest tiny --mem 128M --incoming --accel tcg
dst_qmp=$dst6_qmp
start tlsstall --tls "$T/tls"
kill -STOP "$dst6_pid"
stalled tlsstall
kill -9 "$dst6_pid"
finish tlsstall 4
[ "$(json_get rolled_back "$(tail -1 "$T/tlsstall.jsonl")")" = true ] || fail "tlsstall: not rolled back"
[ "$(status_of "$src3_qmp")" = running ] || fail "tlsstall: source not running"
wait_beats "$src3_log" 5 30 || fail "tlsstall: the source guest does not heartbeat"
nothing_left tlsstall
ok "TLS: destination stopped reading (flat memory and CPU), then killed: source runs"
