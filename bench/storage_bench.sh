#!/bin/sh
# Storage migration (--copy-storage-all, local disks) against shared
# storage (both QEMUs on one image, RAM only), for the same Linux guest
# writing its disk at the same rate, in the same run: total time and
# guest-observed downtime (heartbeats), and how the disk write rate
# changes both. The mirrors end inside the pause-before-switchover pause,
# so the downtime may grow by that pause (measured on QEMU's clock, from
# the pre-switchover event to the device state: the engine's reaction and
# the mirrors' end, disk_cancel_ms) and no more; stop->end (QEMU's
# clock, from the source's STOP to its "completed") shows where the rest
# goes.
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
echo "case run total_ms guest_downtime_ms qemu_downtime_ms stop_to_completed_ms pause_ms mirror_ms cancel_ms disk_bytes" > "$T/rows"
# qemu_ms JSONL EVENT [STATUS]: the source's QEMU timestamp (ms) of an event.
qemu_ms() {
	_us=$(grep "\"side\":\"source\",\"event\":\"$2\"" "$1" | grep "${3:-}" | head -1 |
		sed -n 's/.*"qemu_us":\([0-9]*\).*/\1/p')
	[ -n "$_us" ] && echo $((_us / 1000))
}
row() { # CASE JSONL
	res=$(tail -1 "$2")
	[ "$(json_get verified "$res")" = true ] || fail "$1: not verified: $res"
	f() { _v=$(json_get "$1" "$res"); echo "${_v:--}"; }
	# From the source's STOP to its "completed" (vm stop and its block
	# flush, the pre-switchover pause of a copy, the last RAM and the
	# devices), and the pause alone (pre-switchover to device): QEMU's
	# own clock, whatever the engine reports.
	stop=$(qemu_ms "$2" STOP); dev=$(qemu_ms "$2" MIGRATION '"status":"device"')
	pre=$(qemu_ms "$2" MIGRATION '"status":"pre-switchover"')
	done_=$(qemu_ms "$2" MIGRATION '"status":"completed"')
	s2d=-; pause=-
	[ -n "$stop" ] && [ -n "$done_" ] && s2d=$((done_ - stop))
	[ -n "$pre" ] && [ -n "$dev" ] && pause=$((dev - pre))
	echo "$1 $rep $(f engine_total_ms) $(f guest_downtime_ms) $(f downtime_ms) $s2d $pause $(f disk_mirror_ms) $(f disk_cancel_ms) $(f disk_bytes)" >> "$T/rows"
}
# Shared storage (the baseline): both QEMUs on one image, RAM only.
shared() { # CASE DRATE
	img="$T/shared.img"
	qemu-img create -q -f raw "$img" 512M || fail "qemu-img"
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
	echo "cancel-during-mirror $rep $(( ($(date +%s%N) - t0) / 1000000 )) - - - - - - -" >> "$T/rows"
	echo "cancel-during-mirror: $(tail -1 "$T/c.jsonl" | sed -n 's/.*"message":"\([^"]*\)".*/\1/p')"
done
echo "Storage copied (--copy-storage-all) vs shared storage (RAM only), the same Linux guest:"
echo "512 MiB RAM (16 MiB working set, 4 MiB/s dirtied), 512 MiB disk (16 MiB written first,"
echo "then 0/2/8 MiB/s), one host, TCG,"
echo "$REPS repeats (medians; ms):"
awk 'NR > 1 { k = $1; if (!(k in n)) order[++nk] = k; n[k]++
		for (f = 3; f <= 10; f++) v[k, f, n[k]] = $f }
	function med(k, f,   i, j, t, a, c) { c = n[k]; for (i = 1; i <= c; i++) a[i] = v[k, f, i]
		if (a[1] == "-") return "-"
		for (i = 1; i <= c; i++) for (j = i + 1; j <= c; j++) if (a[j] + 0 < a[i] + 0) { t = a[i]; a[i] = a[j]; a[j] = t }
		return a[int((c + 1) / 2)] }
	END {
		printf "  %-21s %7s %8s %8s %9s %7s %7s %7s %10s\n", "case", "total", "guest", "QEMU",
			"stop->end", "pause", "mirror", "cancel", "disk bytes"
		printf "  %-21s %7s %8s %8s %9s %7s %7s %7s %10s\n", "", "", "downtime", "downtime", "", "", "", "", ""
		for (i = 1; i <= nk; i++) { k = order[i]
			for (f = 3; f <= 10; f++) M[k, f] = med(k, f)
			printf "  %-21s %7s %8s %8s %9s %7s %7s %7s %10s\n", k, M[k, 3], M[k, 4], M[k, 5], M[k, 6],
				M[k, 7], M[k, 8], M[k, 9], M[k, 10] }
		for (i = 1; i <= nk; i++) { k = order[i]
			if (k !~ /^copied/) continue
			b = k; sub(/^copied/, "shared", b)
			if (M[b, 3] <= 0) continue
			printf "  %-21s total x%.2f of shared; guest downtime %+d ms, stop->completed %+d ms against shared; the pause (reaction + mirrors ended) %s ms, of it the mirrors %s ms\n",
				k, M[k, 3] / M[b, 3], M[k, 4] - M[b, 4], M[k, 6] - M[b, 6], M[k, 7], M[k, 9] }
	}' "$T/rows"
