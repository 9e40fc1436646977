# qmigrate bench on a 3-cell, 1-repeat matrix: every output exists and
# holds what it should (a line per run, the baseline ratio, a cell that
# cannot complete shown as n/a and not as zeros, the plots, the engine's CPU
# per second of precopy); then --summarize on a runs CSV made here, whose
# medians and intervals can be checked by hand.
. tests/lib.sh
unset BENCH_REPEATS
cat > "$T/s.conf" <<EOC
repeats=1
baseline=defaults
defaults  mem=128M wss=32M dirty-rate=20M max-bandwidth=134217728
ours      mem=128M wss=32M dirty-rate=20M
broken    mem=128M cap=no-such-capability
EOC
$QMIGRATE bench "$T/s.conf" --out "$T/out" > "$T/dir.txt" 2> "$T/err.txt" || fail "bench: $(cat "$T/err.txt")"
cat "$T/err.txt"
[ "$(wc -l < "$T/out/results.jsonl")" = 3 ] || fail "results.jsonl: not 3 lines"
[ "$(grep -c '"status":"completed"' "$T/out/results.jsonl")" = 2 ] || fail "a run did not complete"
[ "$(wc -l < "$T/out/results.csv")" = 4 ] || fail "results.csv: not a header and 3 rows"
head -1 "$T/out/results.csv" | grep -q '^cell,repeat,order,status,verified,total_ms' || fail "CSV header"
head -1 "$T/out/results.csv" | grep -q ',cpu_ms_per_precopy_s,migrate_to_end_ms$' || fail "CSV lacks the engine CPU column"
# Interleaved: the three cells ran in some order, each once in the round.
[ "$(cut -d, -f3 "$T/out/results.csv" | sed 1d | sort | tr '\n' ' ')" = "1 2 3 " ] ||
	fail "the order column is not a permutation: $(cut -d, -f3 "$T/out/results.csv")"
# A completed run with a precopy phase has its precopy time and CPU.
grep '^ours,' "$T/out/results.csv" | awk -F, '$(NF-3) == "" || $(NF-2) == "" || $NF == "" {exit 1}' ||
	fail "no precopy time or CPU for ours: $(grep '^ours,' "$T/out/results.csv")"
grep -q 'baseline cell \*\*defaults\*\*' "$T/out/summary.md" || fail "summary lacks the baseline"
grep -q '^| ours | 1/1 | 1/1 |' "$T/out/summary.md" || fail "summary lacks the cell"
grep -q '^| defaults | 1/1 | 1/1 | [0-9][0-9]* \[[0-9]*-[0-9]*\] | 1.00 |' "$T/out/summary.md" ||
	fail "baseline ratio not 1.00: $(grep '^| defaults' "$T/out/summary.md")"
grep -q '^| broken | 0/1 | 0/1 | n/a (0/1 completed) | n/a |' "$T/out/summary.md" ||
	fail "a cell with no completed run is not n/a: $(grep '^| broken' "$T/out/summary.md")"
grep '^| broken' "$T/out/summary.md" | grep -q '| 0 \[' && fail "n/a cell shown with zeros"
for s in progress-defaults progress-ours; do
	head -1 "$T/out/$s.svg" | grep -q '^<?xml' || fail "$s.svg is not SVG"
	grep -q '<polyline' "$T/out/$s.svg" || fail "$s.svg has no series"
done
grep -q '<rect' "$T/out/compare.svg" && grep -q '>ours<' "$T/out/compare.svg" || fail "compare.svg"
grep -q '<rect' "$T/out/box-engine_total_ms.svg" && grep -q '>broken<' "$T/out/box-engine_total_ms.svg" ||
	fail "box-engine_total_ms.svg"
ok "bench outputs"

# --summarize: medians of 10,20,30 and 40,60,50 (ratio 2.5), a cell with
# no completed run, a figure one cell does not measure.
mkdir "$T/sum"
cat > "$T/sum/runs.csv" <<EOC
cell,repeat,order,status,wall_ms,overhead_ms,engine_cpu_ms
base,1,1,completed,10,1,
fast,1,2,completed,40,2,5
none,1,3,failed,,,
base,2,2,completed,20,1,
fast,2,1,completed,60,2,6
none,2,3,failed,,,
base,3,3,completed,30,1,
fast,3,1,completed,50,2,7
EOC
$QMIGRATE bench --summarize "$T/sum/runs.csv" --baseline base > "$T/sum.out" 2>&1 ||
	fail "--summarize: $(cat "$T/sum.out")"
[ "$(cat "$T/sum.out")" = "$T/sum" ] || fail "--summarize printed $(cat "$T/sum.out")"
grep -q '^| base | 3/3 | 20.0 \[10.0-30.0\] | 1.00 |' "$T/sum/summary.md" ||
	fail "base: $(grep '^| base' "$T/sum/summary.md")"
grep -q '^| fast | 3/3 | 50.0 \[40.0-60.0\] | 2.50 \[' "$T/sum/summary.md" ||
	fail "fast: $(grep '^| fast' "$T/sum/summary.md")"
grep -q '^| none | 0/2 | n/a (0/2 completed) | n/a |' "$T/sum/summary.md" ||
	fail "none: $(grep '^| none' "$T/sum/summary.md")"
sed -n '/^### engine_cpu_ms/,/^###/p' "$T/sum/summary.md" | grep -q '^| base | n/a (not measured) |' ||
	fail "a figure not measured is not n/a"
sed -n '/^### overhead_ms/,/^###/p' "$T/sum/summary.md" | grep -q '^| fast | 2.00 \[2.00-2.00\] | 2.00 \[2.00-2.00\] |' ||
	fail "overhead ratio: $(sed -n '/^### overhead_ms/,/^###/p' "$T/sum/summary.md")"
[ -s "$T/sum/box-wall_ms.svg" ] || fail "no box plot of wall_ms"
$QMIGRATE bench --summarize "$T/nonexistent.csv" > /dev/null 2> "$T/e.txt" && fail "a missing CSV was accepted"
grep -q 'nonexistent.csv' "$T/e.txt" || fail "the error does not name the file: $(cat "$T/e.txt")"
ok "bench --summarize"
