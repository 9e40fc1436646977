#!/bin/sh
# Storage migration (--copy-storage-all) against RAM only, for the same
# Linux guest in the same run: total time and guest-observed downtime
# (heartbeats), and how the guest's disk write rate changes both. The
# mirrors end inside the pause-before-switchover pause, so the downtime
# may grow by the time that takes (disk_cancel_ms, measured) and no more.
# Last, the time a cancel during the mirror takes to leave the source as
# it was (SIGINT to exit, rollback included).
# Usage: sh bench/storage_bench.sh [REPEATS]   (default 2)
set -u
cd "$(dirname "$0")/.."
. tests/lib.sh
. tests/integration/storage_lib.sh
REPS=${1:-2}
linux_guest_or_skip
GUEST="--guest linux --mem 512M --wss 64M --dirty-rate 4M --disk 512M --accel tcg"
echo "case run total_ms guest_downtime_ms qemu_downtime_ms mirror_ms cancel_ms disk_bytes" > "$T/rows"
one() { # CASE ARGS...
	c=$1; shift
	# shellcheck disable=SC2086
	$QMIGRATE migrate --launch $GUEST --json "$@" > "$T/run.jsonl" 2> "$T/run.err" ||
		fail "$c: $(tail -1 "$T/run.jsonl") $(tail -2 "$T/run.err")"
	res=$(tail -1 "$T/run.jsonl")
	[ "$(json_get verified "$res")" = true ] || fail "$c: not verified: $res"
	printf '%s %s %s %s %s %s %s %s\n' "$c" "$rep" "$(json_get engine_total_ms "$res")" \
		"$(json_get guest_downtime_ms "$res")" "$(json_get downtime_ms "$res")" \
		"$(json_get disk_mirror_ms "$res")" "$(json_get disk_cancel_ms "$res")" \
		"$(json_get disk_bytes "$res")" | sed 's/  / - /g; s/ $/ -/' >> "$T/rows"
}
for rep in $(seq "$REPS"); do
	one ram-only --guest-args qmig.dfill=32M
	one storage-idle-disk --copy-storage-all --guest-args qmig.dfill=32M
	for r in 2M 8M; do
		one "storage-disk-$r/s" --copy-storage-all --disk-write-rate "$r" --guest-args qmig.dfill=32M
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
	echo "cancel-during-mirror $rep $(( ($(date +%s%N) - t0) / 1000000 )) - - - - -" >> "$T/rows"
done
echo "Storage migration vs RAM only, Linux guest 512 MiB RAM (4 MiB/s dirtied), 512 MiB disk,"
echo "one host, TCG, $REPS repeats (medians; ms):"
awk 'NR > 1 { k = $1; if (!(k in n)) order[++nk] = k; n[k]++
		for (f = 3; f <= 8; f++) v[k, f, n[k]] = $f }
	function med(k, f,   i, j, t, a, c) { c = n[k]; for (i = 1; i <= c; i++) a[i] = v[k, f, i]
		if (a[1] == "-") return "-"
		for (i = 1; i <= c; i++) for (j = i + 1; j <= c; j++) if (a[j] + 0 < a[i] + 0) { t = a[i]; a[i] = a[j]; a[j] = t }
		return a[int((c + 1) / 2)] }
	END {
		printf "  %-22s %9s %15s %12s %10s %10s %12s\n", "case", "total", "guest downtime", "QEMU downtime",
			"mirror", "cancel", "disk bytes"
		for (i = 1; i <= nk; i++) { k = order[i]
			for (f = 3; f <= 8; f++) M[k, f] = med(k, f)
			printf "  %-22s %9s %15s %12s %10s %10s %12s\n", k, M[k, 3], M[k, 4], M[k, 5], M[k, 6], M[k, 7], M[k, 8] }
		b = "ram-only"
		for (i = 1; i <= nk; i++) { k = order[i]
			if (k == b || k ~ /^cancel/ || M[b, 3] <= 0) continue
			printf "  %-22s total x%.2f of RAM only; guest downtime %+d ms (mirrors ended in %s ms)\n",
				k, M[k, 3] / M[b, 3], M[k, 4] - M[b, 4], M[k, 7] }
	}' "$T/rows"
