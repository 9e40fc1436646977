#!/bin/sh
# The relay (--transport relay) against QEMU's own channels, in the same
# run: direct plain TCP vs relay plain (goal >= 0.9x), QEMU's TLS vs the
# relay's TLS (goal >= 1.0x), single channel and multifd 4. Each run moves
# a paused tiny guest whose 448 MiB working set is written (offline
# migration: the stream alone), on loopback. Per row: throughput, CPU
# seconds per GiB moved (both QEMUs plus qmigrate, which carries the relay),
# qmigrate's peak RSS, and the relay's fixed memory per channel.
# Usage: sh bench/relay_bench.sh [REPEATS]   (default 2; medians)
set -u
cd "$(dirname "$0")/.."
. tests/lib.sh
REPS=${1:-2}
HZ=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
[ -x /usr/bin/time ] || skip "GNU time (/usr/bin/time) is needed for qmigrate's own CPU"
$QMIGRATE tls init "$T/certs" --host 127.0.0.1 > /dev/null || fail "tls init"
echo "mode channels run mbps cpu_s_per_gib rss_kib mem_per_channel" > "$T/rows"
for rep in $(seq "$REPS"); do
	for ch in 1 4; do
		for mode in direct relay qemu-tls relay-tls; do
			launch_guest src --guest tiny --mem 512M --wss 448M --dirty-rate 2G --accel tcg
			wait_gen "$src_log" 2 60 || fail "guest did not write its working set"
			$QMIGRATE qmp "$src_qmp" stop > /dev/null
			launch_guest dst --guest tiny --mem 512M --incoming --accel tcg
			c0=$(( $(cpu_ticks "$src_pid") + $(cpu_ticks "$dst_pid") ))
			extra=""
			[ "$ch" -gt 1 ] && extra="--multifd $ch"
			case $mode in
			relay) extra="$extra --transport relay" ;;
			qemu-tls) extra="$extra --tls $T/certs" ;;
			relay-tls) extra="$extra --transport relay --tls $T/certs" ;;
			esac
			# shellcheck disable=SC2086
			/usr/bin/time -f '%U %S %M' -o "$T/time" \
				$QMIGRATE migrate --src-qmp "$src_qmp" --dst-qmp "$dst_qmp" --keep-source \
				--no-verify --json $extra > "$T/run.jsonl" ||
				fail "$mode/$ch: $(tail -1 "$T/run.jsonl")"
			c1=$(( $(cpu_ticks "$src_pid") + $(cpu_ticks "$dst_pid") ))
			res=$(tail -1 "$T/run.jsonl")
			x=$(json_get transferred_bytes "$res"); t=$(json_get engine_total_ms "$res")
			mpc=$(grep '"event":"summary"' "$T/run.jsonl" | sed -n 's/.*"mem_per_channel":\([0-9]*\).*/\1/p')
			read -r us ss rss < "$T/time"
			awk -v m="$mode" -v c="$ch" -v r="$rep" -v x="$x" -v t="$t" -v cpu=$((c1 - c0)) \
				-v hz="$HZ" -v us="$us" -v ss="$ss" -v rss="$rss" -v mpc="${mpc:-0}" \
				'BEGIN { printf "%s %d %d %.0f %.2f %d %d\n", m, c, r, x * 8 / t / 1000,
					(cpu / hz + us + ss) / (x / 1073741824), rss, mpc }' >> "$T/rows"
			tail -1 "$T/rows"
			kill -9 "$src_pid" "$dst_pid" 2>/dev/null
		done
	done
done
echo "relay vs QEMU's own channels, loopback, 448 MiB of written pages, $REPS repeats (medians):"
awk 'NR > 1 { k = $1 " " $2; n[k]++; tp[k, n[k]] = $4; cpu[k, n[k]] = $5; rss[k, n[k]] = $6; mpc[k] = $7 }
	function med(a, k, c,   i, j, t, v) { for (i = 1; i <= c; i++) v[i] = a[k, i]
		for (i = 1; i <= c; i++) for (j = i + 1; j <= c; j++) if (v[j] < v[i]) { t = v[i]; v[i] = v[j]; v[j] = t }
		return v[int((c + 1) / 2)] }
	END {
		printf "  %-9s %-8s %10s %14s %16s %18s\n", "mode", "channels", "Mbit/s", "CPU s per GiB",
			"qmigrate RSS KiB", "relay KiB/channel"
		split("direct 1,relay 1,qemu-tls 1,relay-tls 1,direct 4,relay 4,qemu-tls 4,relay-tls 4", keys, ",")
		for (i = 1; i <= 8; i++) { k = keys[i]; split(k, p, " ")
			T[k] = med(tp, k, n[k]); C[k] = med(cpu, k, n[k]); R[k] = med(rss, k, n[k])
			printf "  %-9s %-8s %10.0f %14.2f %16d %18d\n", p[1], p[2], T[k], C[k], R[k], mpc[k] / 1024 }
		for (c = 1; c <= 4; c += 3) {
			printf "  multifd %s: relay/direct %.2f (goal >= 0.90), relay-tls/qemu-tls %.2f (goal >= 1.00); CPU per GiB relay/direct %.2f, relay-tls/qemu-tls %.2f\n",
				c == 1 ? "off" : "4", T["relay " c] / T["direct " c], T["relay-tls " c] / T["qemu-tls " c],
				C["relay " c] / C["direct " c], C["relay-tls " c] / C["qemu-tls " c]
		}
	}' "$T/rows"
