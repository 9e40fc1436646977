#!/bin/sh
# Engine overhead in attach mode against a bare QMP driver measured in the
# same run (bench/peer_tool drive: the same QMP sequence, no doctor, no
# verification, no journal; goal: within 10 ms of it), rounds interleaved in
# random order:
#  - before: command started -> destination MIGRATION "active" (the first
#    byte of the stream has arrived), by QEMU's event clock;
#  - after: source MIGRATION "completed" -> the command has returned;
# and the total time of an idle 1 GiB guest against the bound set by the
# stream throughput measured in the same run. libvirt is measured beside
# both by make bench-peers (bench/peers.sh).
# Usage: sh bench/migrate_latency.sh [RUNS]   (default 5)
set -u
cd "$(dirname "$0")/.."
. tests/lib.sh
RUNS=${1:-${BENCH_REPEATS:-5}}
PT=build/bench/peer_tool
[ -x "$PT" ] || fail "$PT missing: make build/bench/peer_tool"
ev_us() { # FILE SIDE STATUS: QEMU timestamp of that MIGRATION event
	grep "\"side\":\"$2\",\"event\":\"MIGRATION\"" "$1" | grep "\"status\":\"$3\"" |
		head -1 | sed -n 's/.*"qemu_us":\([0-9]*\).*/\1/p'
}
jnum() { echo "$2" | sed -n "s/.*\"$1\":\([0-9.]*\).*/\1/p" | head -1; }

OUT=${BENCH_OUT:-$T/latency}
mkdir -p "$OUT"
echo "cell,repeat,order,status,before_ms,after_ms,wall_ms" > "$OUT/runs.csv"
port=49600
for i in $(seq "$RUNS"); do
	o=0
	for mode in $(printf 'bare\nqmigrate\nqmigrate-verify\n' | shuf); do
		o=$((o + 1))
		launch_guest src --guest tiny --mem 128M --accel tcg
		launch_guest dst --guest tiny --mem 128M --incoming --accel tcg
		port=$((port + 1))
		case $mode in
		bare)
			r=$($PT run $PT drive "$src_qmp" "$dst_qmp" "tcp:127.0.0.1:$port" \
				--max-bandwidth 68719476736 2> "$T/run.out")
			d=$(grep src_completed_us "$T/run.out")
			act=$(jnum dst_active_us "$d"); done_us=$(jnum src_completed_us "$d") ;;
		*)
			extra=--no-verify
			[ $mode = qmigrate-verify ] &&
				extra="--src-serial $src_serial_socket --dst-serial $dst_serial_socket"
			# shellcheck disable=SC2086
			r=$($PT run $QMIGRATE migrate --src-qmp "$src_qmp" --dst-qmp "$dst_qmp" \
				$extra --json 2> "$T/run.out")
			act=$(ev_us "$T/run.out" destination active)
			done_us=$(ev_us "$T/run.out" source completed) ;;
		esac
		t0=$(jnum start_us "$r"); t1=$(jnum end_us "$r")
		if echo "$r" | grep -q '"exit":0' && [ -n "$act" ] && [ -n "$done_us" ]; then
			awk -v m="$mode" -v i="$i" -v o="$o" -v a="$act" -v t0="$t0" -v t1="$t1" \
				-v d="$done_us" -v w="$(jnum wall_ms "$r")" 'BEGIN {
				printf "%s,%d,%d,completed,%.1f,%.1f,%s\n", m, i, o, (a - t0) / 1000,
					(t1 - d) / 1000, w }' >> "$OUT/runs.csv"
		else
			echo "$mode,$i,$o,failed,,," >> "$OUT/runs.csv"
			echo "migrate_latency: $mode #$i failed: $(tail -2 "$T/run.out")" >&2
		fi
		kill -9 "$src_pid" "$dst_pid" 2>/dev/null
	done
done
$QMIGRATE bench --summarize "$OUT/runs.csv" --baseline bare > /dev/null || fail "summary"
echo "attach mode, 128 MiB idle tiny guest, $RUNS interleaved rounds (ms; medians [95% CI]):"
awk '/^\| cell / {on = 1} on && /^$/ {exit} on' "$OUT/summary.md"

# Idle 1 GiB guest against the bound 1 GiB / stream throughput, the
# throughput measured in the same run on a guest whose 768 MiB working set
# is all written (real pages on the wire).
$QMIGRATE migrate --launch --guest tiny --mem 1G --wss 768M --dirty-rate 400M --accel tcg \
	--no-verify --json > "$T/busy.jsonl" || fail "busy 1 GiB migration failed"
res=$(tail -1 "$T/busy.jsonl")
bx=$(json_get transferred_bytes "$res"); bt=$(json_get engine_total_ms "$res")
# The idle 1 GiB guest, driven by the bare QMP driver and by qmigrate
# (attach mode, its defaults but --no-verify, as the bare driver checks
# nothing), interleaved: QEMU's own time (its total_time, setup_time) and
# the command's, so what is QEMU's and what is qmigrate's is apart.
echo "cell,repeat,order,status,wall_ms,qemu_total_ms,qemu_setup_ms,bytes" > "$OUT/idle1g.csv"
mkdir -p "$OUT/idle1g"
for round in $(seq "$RUNS"); do
	o=0
	for mode in $(printf 'bare\nqmigrate\n' | shuf); do
		o=$((o + 1))
		launch_guest src --guest tiny --mem 1G --accel tcg
		launch_guest dst --guest tiny --mem 1G --incoming --accel tcg
		wait_beats "$src_log" 3 60 || fail "idle 1 GiB: the guest does not beat"
		port=$((port + 1))
		if [ $mode = bare ]; then
			r=$($PT run $PT drive "$src_qmp" "$dst_qmp" "tcp:127.0.0.1:$port" \
				--max-bandwidth 68719476736 2> "$T/run.out")
			d=$(grep src_completed_us "$T/run.out")
			tot=$(jnum total_ms "$d"); setup=$(jnum setup_ms "$d"); bytes=$(jnum transferred_bytes "$d")
		else
			r=$($PT run $QMIGRATE migrate --src-qmp "$src_qmp" --dst-qmp "$dst_qmp" \
				--no-verify --json 2> "$T/run.out")
			d=$(tail -1 "$T/run.out")
			tot=$(json_get total_ms "$d"); setup=$(json_get setup_ms "$d")
			bytes=$(json_get transferred_bytes "$d")
		fi
		if echo "$r" | grep -q '"exit":0'; then
			echo "$mode,$round,$o,completed,$(jnum wall_ms "$r"),$tot,$setup,$bytes" >> "$OUT/idle1g.csv"
		else
			echo "$mode,$round,$o,failed,,,," >> "$OUT/idle1g.csv"
			echo "migrate_latency: idle 1 GiB $mode #$round failed: $(tail -2 "$T/run.out")" >&2
		fi
		kill -9 "$src_pid" "$dst_pid" 2>/dev/null
	done
done
$QMIGRATE bench --summarize "$OUT/idle1g.csv" --baseline bare --out "$OUT/idle1g" > /dev/null ||
	fail "summary (idle 1 GiB)"
echo "idle 1 GiB guest, $RUNS interleaved rounds (ms; medians [95% CI]):"
awk '/^\| cell / {on = 1} on && /^$/ {exit} on' "$OUT/idle1g/summary.md"
awk -F, -v bx="$bx" -v bt="$bt" 'NR > 1 && $4 == "completed" {
	w[$1] = w[$1] " " $5; q[$1] = q[$1] " " $6; b[$1] = $8 }
function med(s,   a, n, i, j, t) { n = split(s, a, " ")
	for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
	return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2 }
END {
	rate = bx / (bt / 1000)
	printf "stream throughput (busy 1 GiB guest, %d MiB sent): %.0f Mbit/s\n", bx / 1048576, rate * 8 / 1e6
	for (c in w) {
		nz = b[c] / rate * 1000
		printf "%s: wall %.0f ms, QEMU total_time %.0f ms; bound (non-zero RAM, %d KiB sent, at the stream rate) %.0f ms; ratio wall %.1f, QEMU %.1f (goal 1.15)\n",
			c, med(w[c]), med(q[c]), b[c] / 1024, nz, med(w[c]) / (nz > 0 ? nz : 1), med(q[c]) / (nz > 0 ? nz : 1)
	} }' "$OUT/idle1g.csv"
