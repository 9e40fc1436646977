# qmigrate bench on a 2-cell, 1-repeat matrix: every output exists and
# holds what it should (a line per run, the baseline ratio, the plots).
. tests/lib.sh
cat > "$T/s.conf" <<EOC
repeats=1
baseline=defaults
defaults  mem=128M wss=32M dirty-rate=20M max-bandwidth=134217728
ours      mem=128M wss=32M dirty-rate=20M
EOC
$QMIGRATE bench "$T/s.conf" --out "$T/out" > "$T/dir.txt" 2> "$T/err.txt" || fail "bench: $(cat "$T/err.txt")"
cat "$T/err.txt"
[ "$(wc -l < "$T/out/results.jsonl")" = 2 ] || fail "results.jsonl: not 2 lines"
grep -c '"status":"completed"' "$T/out/results.jsonl" | grep -q 2 || fail "a run did not complete"
[ "$(wc -l < "$T/out/results.csv")" = 3 ] || fail "results.csv: not a header and 2 rows"
head -1 "$T/out/results.csv" | grep -q '^cell,repeat,status,verified,total_ms' || fail "CSV header"
grep -q 'baseline cell \*\*defaults\*\*' "$T/out/summary.md" || fail "summary lacks the baseline"
grep -q '^| ours | 1/1 | 1/1 |' "$T/out/summary.md" || fail "summary lacks the cell"
grep -q '^| defaults .* 1.00 |' "$T/out/summary.md" || fail "baseline ratio not 1.00"
for s in progress-defaults progress-ours; do
	head -1 "$T/out/$s.svg" | grep -q '^<?xml' || fail "$s.svg is not SVG"
	grep -q '<polyline' "$T/out/$s.svg" || fail "$s.svg has no series"
done
grep -q '<rect' "$T/out/compare.svg" && grep -q '>ours<' "$T/out/compare.svg" || fail "compare.svg"
ok "bench outputs"
