#!/bin/sh
# Engine overhead in attach mode, against libvirt's 0.3-0.4 s before the
# stream starts and 1.2-1.9 s after QEMU completes (goal: under 50 ms each):
#  - before: `qmigrate migrate` started -> destination MIGRATION "active"
#    (the first byte of the stream has arrived), by QEMU's event clock;
#  - after: source MIGRATION "completed" -> the command has returned;
# and the total time of an idle 1 GiB guest against the bound set by the
# stream throughput measured in the same run.
# Usage: sh bench/migrate_latency.sh [RUNS]   (default 5)
set -u
cd "$(dirname "$0")/.."
. tests/lib.sh
RUNS=${1:-5}
ev_us() { # FILE SIDE STATUS: QEMU timestamp of that MIGRATION event
	grep "\"side\":\"$2\",\"event\":\"MIGRATION\"" "$1" | grep "\"status\":\"$3\"" |
		head -1 | sed -n 's/.*"qemu_us":\([0-9]*\).*/\1/p'
}
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

: > "$T/before"; : > "$T/after"; : > "$T/after_verify"
for i in $(seq "$RUNS"); do
	for verify in no yes; do
		launch_guest src --guest tiny --mem 128M --accel tcg
		launch_guest dst --guest tiny --mem 128M --incoming --accel tcg
		extra=--no-verify
		[ $verify = yes ] && extra="--src-serial $src_serial_socket --dst-serial $dst_serial_socket"
		t0=$(date +%s%N)
		# shellcheck disable=SC2086
		$QMIGRATE migrate --src-qmp "$src_qmp" --dst-qmp "$dst_qmp" $extra --json \
			> "$T/run.jsonl" || fail "migration failed: $(tail -1 "$T/run.jsonl")"
		t1=$(date +%s%N)
		act=$(ev_us "$T/run.jsonl" destination active)
		done_us=$(ev_us "$T/run.jsonl" source completed)
		if [ $verify = no ]; then
			echo $(( (act * 1000 - t0) / 1000 )) >> "$T/before"
			echo $(( (t1 - done_us * 1000) / 1000 )) >> "$T/after"
		else
			echo $(( (t1 - done_us * 1000) / 1000 )) >> "$T/after_verify"
		fi
		kill -9 "$src_pid" "$dst_pid" 2>/dev/null
	done
done
b=$(median < "$T/before"); a=$(median < "$T/after"); av=$(median < "$T/after_verify")
echo "attach mode, 128 MiB idle tiny guest, $RUNS runs (medians, microseconds):"
echo "  start -> first byte at destination: $b us   (libvirt ~300000-400000; goal < 50000)"
echo "  completed -> command returned:      $a us   (libvirt ~1200000-1900000; goal < 50000)"
echo "  same, with heartbeat + memory verification: $av us"
awk -v b="$b" -v a="$a" 'BEGIN {printf "  ratio to libvirt (best case): before %.3f, after %.4f\n", b/300000, a/1200000}'

# Idle 1 GiB guest: total time against transferred bytes / peak stream rate.
$QMIGRATE migrate --launch --guest tiny --mem 1G --accel tcg --no-verify --json > "$T/big.jsonl" ||
	fail "1 GiB migration failed"
res=$(tail -1 "$T/big.jsonl")
total=$(json_get total_ms "$res"); xfer=$(json_get transferred_bytes "$res")
peak=$(grep '"type":"sample"' "$T/big.jsonl" | sed -n 's/.*"bandwidth":\([0-9]*\).*/\1/p' | sort -n | tail -1)
awk -v t="$total" -v x="$xfer" -v p="$peak" 'BEGIN {
	bound = p > 0 ? x / p * 1000 : 0
	printf "idle 1 GiB guest: total %d ms, %d bytes sent, peak stream %.0f Mbit/s, bound %.0f ms, ratio %.2f\n",
		t, x, p * 8 / 1e6, bound, bound > 0 ? t / bound : 0 }'
