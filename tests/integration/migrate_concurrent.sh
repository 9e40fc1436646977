# Two migrations at once on one host get different ports and both complete.
. tests/lib.sh
for i in 1 2; do
	$QMIGRATE migrate --launch --guest tiny --mem 128M --dirty-rate 20M --accel tcg \
		--json > "$T/m$i.jsonl" 2> "$T/m$i.err" &
	eval "P$i=\$!"
done
wait $P1; rc1=$?
wait $P2; rc2=$?
r1=$(tail -1 "$T/m1.jsonl"); r2=$(tail -1 "$T/m2.jsonl")
echo "1: exit $rc1 $r1"; echo "2: exit $rc2 $r2"
[ $rc1 = 0 ] && [ $rc2 = 0 ] || fail "a migration failed: $(cat "$T/m1.err" "$T/m2.err")"
p1=$(json_get port "$r1"); p2=$(json_get port "$r2")
[ -n "$p1" ] && [ "$p1" != "$p2" ] || fail "both used port $p1"
[ "$(json_get verified "$r1")" = true ] && [ "$(json_get verified "$r2")" = true ] ||
	fail "not both verified"
ok "two concurrent migrations on ports $p1 and $p2"
