#!/bin/sh
# The relay (--transport relay) against QEMU's own channels, in the same
# run: direct plain TCP vs relay plain (goal >= 0.9x), QEMU's TLS vs the
# relay's TLS (goal >= 1.0x), single channel and multifd 4. Each run moves
# a paused tiny guest whose 448 MiB working set is written (offline
# migration: the stream alone), on loopback.
#
# Robustness on a shared 2-core machine: every repeat runs all 8 rows, in an
# order rotated by one at each repeat; ratios are taken within a repeat
# (relay and its baseline measured minutes apart at most) and reported as
# the median with the lowest and highest of the repeats.
#
# Per row: throughput; CPU seconds per GiB moved, split into the two QEMUs
# and qmigrate (which carries the relay); qmigrate's peak RSS; the relay's
# fixed memory per channel (from its summary record) and the whole arena it
# allocates (per channel x (multifd + 4) channels x 2 halves). qmigrate's
# RSS over its baseline row (relay over direct, relay-tls over qemu-tls) is
# the relay's measured memory.
# Usage: sh bench/relay_bench.sh [REPEATS]   (default 5)
#        RELAY_BENCH_ROWS="relay-tls:1 qemu-tls:1" to run some rows only.
#        RELAY_BENCH_BASE=/path/to/an/older/qmigrate adds rows "relay@base"
#        and "relay-tls@base" (that binary, same guests, interleaved with
#        the others): a before/after comparison within one run.
set -u
cd "$(dirname "$0")/.."
. tests/lib.sh
REPS=${1:-5}
ROWS=${RELAY_BENCH_ROWS:-"direct:1 relay:1 qemu-tls:1 relay-tls:1 direct:4 relay:4 qemu-tls:4 relay-tls:4"}
HZ=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
[ -x /usr/bin/time ] || skip "GNU time (/usr/bin/time) is needed for qmigrate's own CPU"
$QMIGRATE tls init "$T/certs" --host 127.0.0.1 > /dev/null || fail "tls init"
set -- $ROWS
NROWS=$#
echo "rep mode channels mbps qemu_cpu_s_per_gib qmigrate_cpu_s_per_gib rss_kib mem_per_channel" > "$T/rows"
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
for rep in $(seq "$REPS"); do
	# Rotate the order: row k of this repeat is row (k + rep) of the list.
	# (Names of our own: the helpers of tests/lib.sh use i.)
	row_i=0
	while [ $row_i -lt "$NROWS" ]; do
		row_k=$(( (row_i + rep - 1) % NROWS + 1 ))
		row_i=$((row_i + 1))
		eval "row=\${$row_k}"
		mode=${row%:*}; ch=${row#*:}
		qm=$QMIGRATE
		case $mode in
		*@base) qm=${RELAY_BENCH_BASE:?RELAY_BENCH_BASE names the older qmigrate} ;;
		esac
		launch_guest src --guest tiny --mem 512M --wss 448M --dirty-rate 2G --accel tcg
		wait_gen "$src_log" 2 120 || fail "guest did not write its working set"
		$QMIGRATE qmp "$src_qmp" stop > /dev/null
		launch_guest dst --guest tiny --mem 512M --incoming --accel tcg
		c0=$(( $(cpu_ticks "$src_pid") + $(cpu_ticks "$dst_pid") ))
		extra=""
		[ "$ch" -gt 1 ] && extra="--multifd $ch"
		case $mode in
		direct) ;;
		relay|relay@base) extra="$extra --transport relay" ;;
		qemu-tls) extra="$extra --tls $T/certs" ;;
		relay-tls|relay-tls@base) extra="$extra --transport relay --tls $T/certs" ;;
		*) fail "unknown row $row" ;;
		esac
		# shellcheck disable=SC2086
		/usr/bin/time -f '%U %S %M' -o "$T/time" \
			$qm migrate --src-qmp "$src_qmp" --dst-qmp "$dst_qmp" --keep-source \
			--no-verify --json $extra > "$T/run.jsonl" ||
			fail "$mode/$ch: $(tail -1 "$T/run.jsonl")"
		c1=$(( $(cpu_ticks "$src_pid") + $(cpu_ticks "$dst_pid") ))
		res=$(tail -1 "$T/run.jsonl")
		x=$(json_get transferred_bytes "$res"); t=$(json_get engine_total_ms "$res")
		mpc=$(grep '"event":"summary"' "$T/run.jsonl" | sed -n 's/.*"mem_per_channel":\([0-9]*\).*/\1/p')
		read -r us ss rss < "$T/time"
		awk -v m="$mode" -v c="$ch" -v r="$rep" -v x="$x" -v t="$t" -v cpu=$((c1 - c0)) \
			-v hz="$HZ" -v us="$us" -v ss="$ss" -v rss="$rss" -v mpc="${mpc:-0}" \
			'BEGIN { g = x / 1073741824
				printf "%d %s %d %.0f %.2f %.2f %d %d\n", r, m, c, x * 8 / t / 1000,
					cpu / hz / g, (us + ss) / g, rss, mpc }' >> "$T/rows"
		tail -1 "$T/rows"
		kill -9 "$src_pid" "$dst_pid" 2>/dev/null
	done
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
cp "$T/rows" "${RELAY_BENCH_OUT:-/dev/null}" 2>/dev/null
echo "relay vs QEMU's own channels, loopback, 448 MiB of written pages, $REPS repeats:"
echo "(median [lowest .. highest] of the repeats)"
awk 'NR > 1 { k = $2 " " $3; n[k]++; tp[k, n[k]] = $4; qc[k, n[k]] = $5; mc[k, n[k]] = $6
		rss[k, n[k]] = $7; mpc[k] = $8; rep[k, n[k]] = $1; by[$1, k] = NR; v4[NR] = $4; v5[NR] = $5 + $6 }
	function sortv(a, k, c, v,   i, j, t) { for (i = 1; i <= c; i++) v[i] = a[k, i]
		for (i = 1; i <= c; i++) for (j = i + 1; j <= c; j++) if (v[j] < v[i]) { t = v[i]; v[i] = v[j]; v[j] = t } }
	function med(a, k, c,   v) { sortv(a, k, c, v); return v[int((c + 1) / 2)] }
	function span(a, k, c,   v) { sortv(a, k, c, v); return sprintf("[%s .. %s]", v[1], v[c]) }
	# Ratio of two rows within each repeat: median [lowest .. highest].
	function ratio(num, den, what,   r, c, x, v, i, j, t) { c = 0
		for (r = 1; r <= nrep; r++) if ((r, num) in by && (r, den) in by) {
			x = what == "tp" ? v4[by[r, num]] / v4[by[r, den]] : v5[by[r, num]] / v5[by[r, den]]
			v[++c] = x }
		if (!c) return "n/a"
		for (i = 1; i <= c; i++) for (j = i + 1; j <= c; j++) if (v[j] < v[i]) { t = v[i]; v[i] = v[j]; v[j] = t }
		return sprintf("%.2f [%.2f .. %.2f]", v[int((c + 1) / 2)], v[1], v[c]) }
	NR > 1 && $1 + 0 > nrep { nrep = $1 + 0 }
	END {
		printf "  %-9s %-3s %-20s %-22s %-9s %-9s %-12s %-8s %s\n", "mode", "ch", "Mbit/s",
			"CPU s/GiB QEMUs+qmig", "qmig RSS", "over base", "relay/chan", "arena", ""
		split("direct 1,relay@base 1,relay 1,qemu-tls 1,relay-tls@base 1,relay-tls 1,direct 4,relay@base 4,relay 4,qemu-tls 4,relay-tls@base 4,relay-tls 4", keys, ",")
		for (i = 1; i <= 12; i++) { k = keys[i]; if (!n[k]) continue; split(k, p, " ")
			R = med(rss, k, n[k]); base = (p[1] ~ /^relay-tls/ ? "qemu-tls " : "direct ") p[2]
			over = p[1] ~ /relay/ && n[base] ? sprintf("%+.1fM", (R - med(rss, base, n[base])) / 1024) : "-"
			printf "  %-9s %-3s %5d %-14s %5.2f + %-5.2f = %5.2f %7.1fM %9s %9s %7s\n", p[1], p[2],
				med(tp, k, n[k]), span(tp, k, n[k]), med(qc, k, n[k]), med(mc, k, n[k]),
				med(qc, k, n[k]) + med(mc, k, n[k]), R / 1024, over,
				mpc[k] ? sprintf("%dK", mpc[k] / 1024) : "-",
				mpc[k] ? sprintf("%.1fM", mpc[k] * (p[2] == 1 ? 4 : p[2] + 4) * 2 / 1048576) : "-" }
		for (i = 1; i <= 12; i++) { k = keys[i]; split(k, p, " ")
			if (mpc[k] && p[1] ~ /^relay(-tls)?$/) mem[p[1]] = mpc[k] }
		if (mem["relay"] || mem["relay-tls"])
			printf "  relay memory per channel, fixed, allocated up front: %s plain, %s TLS (OpenSSL included);\n" \
				"  the arena is that x (multifd + 4) channels x 2 halves; the kernel adds the\n" \
				"  socket buffers: 1 MiB on each QEMU-side unix socket, TCP autotuned\n",
				mem["relay"] ? sprintf("%d KiB", mem["relay"] / 1024) : "-",
				mem["relay-tls"] ? sprintf("%d KiB", mem["relay-tls"] / 1024) : "-"
		for (c = 1; c <= 4; c += 3) {
			if (n["relay@base " c] || n["relay-tls@base " c])
				printf "  multifd %s: before (RELAY_BENCH_BASE): relay/direct %s, relay-tls/qemu-tls %s\n",
					c == 1 ? "off" : "4", ratio("relay@base " c, "direct " c, "tp"),
					ratio("relay-tls@base " c, "qemu-tls " c, "tp")
			printf "  multifd %s: throughput relay/direct %s (goal >= 0.90), relay-tls/qemu-tls %s (goal >= 1.00)\n",
				c == 1 ? "off" : "4", ratio("relay " c, "direct " c, "tp"),
				ratio("relay-tls " c, "qemu-tls " c, "tp")
			printf "             CPU per GiB relay/direct %s, relay-tls/qemu-tls %s\n",
				ratio("relay " c, "direct " c, "cpu"), ratio("relay-tls " c, "qemu-tls " c, "cpu")
		}
	}' "$T/rows"
