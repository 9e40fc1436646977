# qmigrate bench's qemu= key: one cell on QEMU 7.2 and its twin on 10.0 (the
# same keys otherwise), one round; each run says which QEMU it ran on, and
# summary.md compares the pair ("QEMU versions compared": 10.0 over 7.2,
# with numbers, not n/a). A cell on a QEMU that cannot be run is refused.
. tests/integration/qemu10_lib.sh
q10_fetch
unset BENCH_REPEATS
cat > "$T/s.conf" <<EOC
repeats=1
baseline=on72
on72   qemu=7.2  mem=128M wss=16M dirty-rate=10M
on100  qemu=10.0 mem=128M wss=16M dirty-rate=10M
EOC
$QMIGRATE bench "$T/s.conf" --out "$T/out" > "$T/dir.txt" 2> "$T/err.txt" || fail "bench: $(cat "$T/err.txt")"
cat "$T/err.txt"
[ "$(grep -c '"status":"completed"' "$T/out/results.jsonl")" = 2 ] || fail "a run did not complete"
grep '"cell":"on72"' "$T/out/results.jsonl" | grep -q '"qemu":"7.2"' || fail "on72 not on 7.2"
grep '"cell":"on100"' "$T/out/results.jsonl" | grep -q '"qemu":"10.0"' || fail "on100 not on 10.0"
sed -n '/^## QEMU versions compared/,$p' "$T/out/summary.md"
grep -q '^## QEMU versions compared' "$T/out/summary.md" || fail "summary lacks the comparison"
for f in "engine total ms" "guest downtime ms" "MiB sent"; do
	grep "^| on72 (7.2) vs on100 (10.0) | $f | [0-9]" "$T/out/summary.md" |
		grep -q '| [0-9.e+-]* \[[0-9.e+-]*-[0-9.e+-]*\] |$' || fail "no ratio for $f"
done
echo "broken qemu=/nonexistent mem=128M" > "$T/bad.conf"
$QMIGRATE bench "$T/bad.conf" --out "$T/bad" > /dev/null 2> "$T/bad.err"
[ $? = 3 ] && grep -q "qemu=/nonexistent: cannot run" "$T/bad.err" || fail "a missing QEMU: $(cat "$T/bad.err")"
ok "bench qemu=7.2|10.0 and the comparison in summary.md"
