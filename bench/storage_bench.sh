#!/bin/sh
# Storage migration (--copy-storage-all, local disks) against shared
# storage (both QEMUs on one image, RAM only), for the same Linux guest
# writing its disk at the same rate, in the same run: total time and
# guest-observed downtime (heartbeats), and how the disk write rate
# changes both.
#
# The must-show: the guest-observed downtime may grow, against shared
# storage, by the time it takes to end the mirrors and no more. Both are
# printed side by side from the same runs: "growth" is the copied run's
# guest downtime minus the shared run's (run by run, median), "cancel" the
# mirrors' end on QEMU's clock (from the source's pre-switchover event to
# the last BLOCK_JOB_COMPLETED: the engine's reaction, block-job-cancel,
# the mirrors' last copy). The destination is then held paused while the
# disks are compared, as long as the comparison (started in the switchover)
# is not done: that wait is verification, reported apart ("verify hold"),
# not counted in either downtime; "raw" adds it back.
# What the downtime consists of, on QEMU's clocks (one host: one clock):
#   stop    STOP -> completed on the source, less the pause: the vm stop
#           (drain and flush of every block node: "flush" is STOP ->
#           pre-switchover alone; the NBD clients have cache.no-flush, so
#           it no longer includes the destination's fdatasync, which
#           before made most of the growth), the last RAM, the device state
#   pause   pre-switchover -> device: the mirrors ended (copied only)
#   load    completed (source) -> RESUME (destination), less the verify
#           hold: the destination loads the state and runs
#   s2r     STOP -> RESUME less the verify hold: the three above
#   dflush  the engine's flush of the destination's images after the
#           switchover (the NBD clients have cache.no-flush, so the vm
#           stop's flush no longer reaches the destination): not downtime,
#           the job completes only after it
# "guest" is the heartbeats' gap (less the verify hold): on a loaded host
# it also holds the guest's own scheduling delays, so s2r is the steadier.
# Last, the time a cancel during the mirror takes to leave the source as
# it was (SIGINT to exit, rollback included).
# Usage: sh bench/storage_bench.sh [REPEATS]   (default 2)
set -u
cd "$(dirname "$0")/.."
. tests/lib.sh
. tests/integration/storage_lib.sh
REPS=${1:-2}
linux_guest_or_skip
MEM="--guest linux --mem 512M --wss 16M --dirty-rate 4M --accel tcg"
GUEST="$MEM --disk 512M"
echo "case run total_ms guest_downtime_ms raw_ms s2r_ms qemu_downtime_ms stop_ms flush_ms pause_ms cancel_ms load_ms hold_ms mirror_ms disk_bytes dflush_ms" > "$T/rows"
# qemu_ms JSONL SIDE EVENT [PATTERN [last]]: QEMU's timestamp (ms) of the
# side's first (last) matching event.
qemu_ms() {
	_us=$(grep "\"side\":\"$2\",\"event\":\"$3\"" "$1" | grep -- "${4:-}" |
		if [ "${5:-}" = last ]; then tail -1; else head -1; fi |
		sed -n 's/.*"qemu_us":\([0-9]*\).*/\1/p')
	[ -n "$_us" ] && echo $((_us / 1000))
}
# row CASE JSONL: one line of $T/rows from a run's records.
row() {
	res=$(tail -1 "$2")
	[ "$(json_get verified "$res")" = true ] || fail "$1: not verified: $res"
	f() { _v=$(json_get "$1" "$res"); echo "${_v:--}"; }
	stop=$(qemu_ms "$2" source STOP); dev=$(qemu_ms "$2" source MIGRATION '"status":"device"')
	pre=$(qemu_ms "$2" source MIGRATION '"status":"pre-switchover"')
	done_=$(qemu_ms "$2" source MIGRATION '"status":"completed"')
	jc=$(qemu_ms "$2" source BLOCK_JOB_COMPLETED '' last)
	resu=$(qemu_ms "$2" destination RESUME)
	hold=$(f disk_verify_ms); [ "$hold" = - ] && hold=0
	g=$(f guest_downtime_ms); raw=-
	[ "$g" != - ] && [ "$g" != null ] && raw=$((g + hold))
	flush=-; pause=0; cancel=-; st=-; load=-; s2r=-
	if [ -n "$pre" ] && [ -n "$dev" ]; then
		flush=$((pre - stop)); pause=$((dev - pre))
		[ -n "$jc" ] && cancel=$((jc - pre))
	fi
	[ -n "$stop" ] && [ -n "$done_" ] && st=$((done_ - stop - pause))
	[ -n "$done_" ] && [ -n "$resu" ] && load=$((resu - done_ - hold))
	[ -n "$stop" ] && [ -n "$resu" ] && s2r=$((resu - stop - hold))
	# The engine's flush of the destination's images after the switchover
	# (NBD clients with cache.no-flush): outside the downtime.
	df=$(grep '"what":"switchover"' "$2" | sed -n 's/.*"flush_ms":\([0-9]*\).*/\1/p')
	cp "$2" "$T/$(echo "$1" | tr '/' '_').${rep:-0}.jsonl"
	echo "$1 ${rep:-0} $(f engine_total_ms) $g $raw $s2r $(f downtime_ms) $st $flush $pause $cancel $load $hold $(f disk_mirror_ms) $(f disk_bytes) ${df:--}" >> "$T/rows"
}
# BENCH_ROWS=DIR: only the summary, from the records a run kept in DIR
# (BENCH_KEEP=DIR): the same analysis over earlier runs.
if [ -n "${BENCH_ROWS:-}" ]; then
	for j in "$BENCH_ROWS"/*-disk-*.jsonl; do
		b=$(basename "$j" .jsonl); rep=${b##*.}
		row "$(echo "${b%.*}" | tr '_' '/')" "$j"
	done
	REPS=$(ls "$BENCH_ROWS"/shared-disk-0M_s.*.jsonl | wc -l)
	SUMMARY_ONLY=1
fi
# Shared storage (the baseline): both QEMUs on one image, RAM only.
shared() { # CASE DRATE
	img="$QDIR/shared.img" # QEMU runs as qmigrate's user (tests/lib.sh)
	qemu-img create -q -f raw "$img" 512M || fail "qemu-img"
	[ "$QDIR" = "$T" ] || chown "$QEMU_USER:" "$img"
	disk="-blockdev driver=file,node-name=f0,filename=$img -blockdev driver=raw,node-name=disk0,file=f0 -device virtio-blk-pci,drive=disk0,id=vdisk0"
	g="qmig.dfill=16M"
	[ "$2" != 0 ] && g="$g qmig.drate=$2"
	# shellcheck disable=SC2086
	launch_guest src $MEM --guest-args "$g" -- $disk
	# shellcheck disable=SC2086
	launch_guest dst $MEM --incoming -- $disk
	wait_ready "$src_log" || fail "$1: the guest did not boot"
	wait_beats "$src_log" 20 30 || fail "$1: no heartbeats"
	$QMIGRATE migrate --src-qmp "$src_qmp" --dst-qmp "$dst_qmp" --src-serial "$src_serial_socket" \
		--dst-serial "$dst_serial_socket" --json > "$T/run.jsonl" 2> "$T/run.err" ||
		fail "$1: $(tail -1 "$T/run.jsonl") $(tail -2 "$T/run.err")"
	grep -aq CORRUPT "$dst_log" && fail "$1: the guest reports corruption"
	row "$1" "$T/run.jsonl"
	kill -9 "$src_pid" "$dst_pid" 2>/dev/null
	rm -f "$img"
}
# Local disks, copied: the same guest, launch mode.
copied() { # CASE DRATE
	extra=""
	[ "$2" != 0 ] && extra="--disk-write-rate $2"
	# shellcheck disable=SC2086
	$QMIGRATE migrate --launch $GUEST $extra --guest-args qmig.dfill=16M --copy-storage-all \
		--json > "$T/run.jsonl" 2> "$T/run.err" ||
		fail "$1: $(tail -1 "$T/run.jsonl") $(tail -2 "$T/run.err")"
	row "$1" "$T/run.jsonl"
}
if [ -z "${SUMMARY_ONLY:-}" ]; then
for rep in $(seq "$REPS"); do
	for r in 0 2097152 8388608; do
		n=$((r >> 20))
		shared "shared-disk-${n}M/s" "$r"
		copied "copied-disk-${n}M/s" "$r"
	done
done
# A cancel while the mirror copies (limited to 4 MiB/s so it is still
# copying): SIGINT to the process's exit, the rollback included.
for rep in $(seq "$REPS"); do
	# shellcheck disable=SC2086
	$QMIGRATE migrate --launch $GUEST --disk-write-rate 2M --guest-args qmig.dfill=64M \
		--copy-storage-all --disk-bandwidth 4M --json > "$T/c.jsonl" 2>/dev/null &
	pid=$!
	i=0
	until grep -q '"what":"mirroring".*"remaining":[1-9]' "$T/c.jsonl" 2>/dev/null; do
		i=$((i + 1)); [ $i -gt 1200 ] && fail "cancel: the mirror did not start"
		sleep 0.05
	done
	t0=$(date +%s%N)
	kill -INT $pid
	wait $pid
	echo "cancel-during-mirror $rep $(( ($(date +%s%N) - t0) / 1000000 )) - - - - - - - - - - - - -" >> "$T/rows"
	echo "cancel-during-mirror: $(tail -1 "$T/c.jsonl" | sed -n 's/.*"message":"\([^"]*\)".*/\1/p')"
done
fi
echo "Storage copied (--copy-storage-all) vs shared storage (RAM only), the same Linux guest:"
echo "512 MiB RAM (16 MiB working set, 4 MiB/s dirtied), 512 MiB disk (16 MiB written first,"
echo "then 0/2/8 MiB/s), one host, TCG, $REPS repeats (medians; ms; QEMU's clocks but guest/raw):"
[ -n "${BENCH_KEEP:-}" ] && mkdir -p "$BENCH_KEEP" && cp "$T"/*.jsonl "$T/rows" "$BENCH_KEEP/"
awk 'NR > 1 { k = $1; if (!(k in n)) order[++nk] = k; n[k]++
		for (f = 3; f <= 16; f++) v[k, f, n[k]] = $f }
	function sortmed(a, c,   i, j, t) {
		for (i = 1; i <= c; i++) for (j = i + 1; j <= c; j++) if (a[j] + 0 < a[i] + 0) { t = a[i]; a[i] = a[j]; a[j] = t }
		return c % 2 ? a[(c + 1) / 2] : int((a[c / 2] + a[c / 2 + 1]) / 2) }
	function med(k, f,   i, a, c) { c = 0
		for (i = 1; i <= n[k]; i++) if (v[k, f, i] != "-" && v[k, f, i] != "null") a[++c] = v[k, f, i]
		return c ? sortmed(a, c) : "-" }
	# the median over runs of copied minus shared (run i against run i)
	function dmed(k, b, f,   i, a, c) { c = 0
		for (i = 1; i <= n[k] && i <= n[b]; i++)
			if (v[k, f, i] ~ /^-?[0-9]/ && v[b, f, i] ~ /^-?[0-9]/) a[++c] = v[k, f, i] - v[b, f, i]
		return c ? sortmed(a, c) : "-" }
	function verdict(g, c) { return (g == "-" || c == "-") ? "?" : (g <= c ? "yes" : "NO") }
	END {
		fmt = "  %-20s %6s %6s %6s %6s %6s | %6s %6s %6s %6s %6s %6s | %6s %10s %6s\n"
		printf fmt, "case", "total", "guest", "raw", "s2r", "QEMU", "stop", "flush", "pause", "cancel", "load", "hold", "mirror", "disk bytes", "dflush"
		for (i = 1; i <= nk; i++) { k = order[i]
			printf fmt, k, med(k, 3), med(k, 4), med(k, 5), med(k, 6), med(k, 7), med(k, 8),
				med(k, 9), med(k, 10), med(k, 11), med(k, 12), med(k, 13), med(k, 14), med(k, 15), med(k, 16) }
		print ""
		print "  Downtime growth (copied - shared, run against run, median) vs the time to end the mirrors"
		print "  (cancel, median), same run; growth on QEMU'"'"'s clocks (s2r) and as the guest saw it; the"
		print "  QEMU growth by part (copied - shared): stop, pause, load; hold: the verify wait, in neither:"
		fmt2 = "  %-20s %7s %7s %-4s %7s %-4s | %7s %7s %7s | %7s\n"
		printf fmt2, "", "s2r+", "cancel", "ok?", "guest+", "ok?", "dstop", "pause", "dload", "hold"
		for (i = 1; i <= nk; i++) { k = order[i]
			if (k !~ /^copied/) continue
			b = k; sub(/^copied/, "shared", b)
			if (!(b in n)) continue
			g = dmed(k, b, 6); gg = dmed(k, b, 4); c = med(k, 11)
			printf fmt2, k, g, c, verdict(g, c), gg, verdict(gg, c), dmed(k, b, 8), med(k, 10),
				dmed(k, b, 12), med(k, 13) }
	}' "$T/rows"
