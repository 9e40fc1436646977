#!/bin/sh
# TLS against plain TCP, single channel and multifd, in the same run:
# stream throughput and the CPU it costs (QEMU source + destination, per
# GiB sent). Each run moves a paused tiny guest whose 448 MiB working set
# is written (offline migration): the stream alone, no dirtying.
# Usage: sh bench/tls_bench.sh [REPEATS]   (default 2)
set -u
cd "$(dirname "$0")/.."
. tests/lib.sh
REPS=${1:-2}
HZ=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
$QMIGRATE tls init "$T/certs" --host 127.0.0.1 > /dev/null || fail "tls init"
echo "mode channels run throughput_mbps cpu_s_per_gib" > "$T/rows"
for rep in $(seq "$REPS"); do
	for mode in plain tls; do
		for ch in 1 4; do
			launch_guest src --guest tiny --mem 512M --wss 448M --dirty-rate 2G --accel tcg
			wait_gen "$src_log" 2 60 || fail "guest did not write its working set"
			$QMIGRATE qmp "$src_qmp" stop > /dev/null
			launch_guest dst --guest tiny --mem 512M --incoming --accel tcg
			c0=$(( $(cpu_ticks "$src_pid") + $(cpu_ticks "$dst_pid") ))
			extra=""
			[ "$ch" -gt 1 ] && extra="--multifd $ch"
			[ "$mode" = tls ] && extra="$extra --tls $T/certs"
			# shellcheck disable=SC2086
			$QMIGRATE migrate --src-qmp "$src_qmp" --dst-qmp "$dst_qmp" --keep-source \
				--no-verify --json $extra > "$T/run.jsonl" ||
				fail "$mode/$ch: $(tail -1 "$T/run.jsonl")"
			c1=$(( $(cpu_ticks "$src_pid") + $(cpu_ticks "$dst_pid") ))
			res=$(tail -1 "$T/run.jsonl")
			x=$(json_get transferred_bytes "$res"); t=$(json_get engine_total_ms "$res")
			awk -v m="$mode" -v c="$ch" -v r="$rep" -v x="$x" -v t="$t" -v cpu=$((c1 - c0)) -v hz="$HZ" \
				'BEGIN { printf "%s %d %d %.0f %.2f\n", m, c, r, x * 8 / t / 1000, cpu / hz / (x / 1073741824) }' \
				>> "$T/rows"
			kill -9 "$src_pid" "$dst_pid" 2>/dev/null
		done
	done
done
echo "TLS vs plain TCP, loopback, 448 MiB of written pages, $REPS repeats (medians):"
awk 'NR > 1 { k = $1 " " $2; n[k]++; tp[k, n[k]] = $4; cpu[k, n[k]] = $5 }
	function med(a, k, c,   i, j, t, v) { for (i = 1; i <= c; i++) v[i] = a[k, i]
		for (i = 1; i <= c; i++) for (j = i + 1; j <= c; j++) if (v[j] < v[i]) { t = v[i]; v[i] = v[j]; v[j] = t }
		return v[int((c + 1) / 2)] }
	END {
		printf "  %-6s %-8s %14s %16s\n", "mode", "channels", "Mbit/s", "CPU s per GiB"
		split("plain 1,tls 1,plain 4,tls 4", keys, ",")
		for (i = 1; i <= 4; i++) { k = keys[i]; split(k, p, " ")
			T[k] = med(tp, k, n[k]); C[k] = med(cpu, k, n[k])
			printf "  %-6s %-8s %14.0f %16.2f\n", p[1], p[2], T[k], C[k] }
		printf "  TLS/plain throughput: single %.2f, multifd-4 %.2f; CPU per GiB: single %.2f, multifd-4 %.2f\n",
			T["tls 1"] / T["plain 1"], T["tls 4"] / T["plain 4"], C["tls 1"] / C["plain 1"], C["tls 4"] / C["plain 4"]
	}' "$T/rows"
