# Control of a running job (real QEMU, launch mode): a closed stdout does not
# kill qmigrate (SIGPIPE), `qmigrate set` reaches the job and is recorded as
# an operator action, `qmigrate postcopy` is refused without --postcopy, and
# a migration that cannot converge ends at its completion bound, rolled back.
. tests/lib.sh

# 1. qmigrate migrate --json | head -1: the migration still completes.
$QMIGRATE migrate --launch --guest tiny --mem 128M --dirty-rate 10M --accel tcg --json \
	2> "$T/pipe.err" | head -1 > "$T/first.json"
grep -q '"version"' "$T/first.json" || fail "sigpipe: no first record"
grep -q 'standard output closed' "$T/pipe.err" || fail "sigpipe: no notice: $(cat "$T/pipe.err")"
grep -q 'Segmentation\|Broken pipe$' "$T/pipe.err" && fail "sigpipe: died"
ok "closed stdout: the migration went on"

# 2. A guest dirtying its 64 MiB working set faster than 30 MiB/s can carry.
$QMIGRATE migrate --launch --guest tiny --mem 256M --wss 64M --dirty-rate 80M --accel tcg \
	--max-bandwidth 30M --json > "$T/out.jsonl" 2> "$T/err.txt" &
MIG=$!; PIDS="$PIDS $MIG"
i=0
until $QMIGRATE status --job "$MIG" --json 2>/dev/null | grep -q '"phase":"precopy"'; do
	i=$((i + 1)); [ $i -gt 600 ] && fail "never reached precopy"
	sleep 0.1
done
$QMIGRATE set --job "$MIG" downtime-limit=250 || fail "set downtime-limit"
$QMIGRATE set --job "$MIG" max-bandwidth=bogus 2>/dev/null && fail "set accepted a bogus rate"
$QMIGRATE postcopy --job "$MIG" 2> "$T/pc.err" && fail "postcopy accepted without --postcopy"
grep -q 'not enabled' "$T/pc.err" || fail "postcopy refusal unclear: $(cat "$T/pc.err")"
$QMIGRATE status --job "$MIG" --json | grep -q '"verdict"' || fail "status has no verdict"
wait $MIG; rc=$?
res=$(tail -1 "$T/out.jsonl")
[ "$rc" = 4 ] || fail "not rolled back at the completion bound: exit $rc: $res"
grep -q 'completion bound' "$T/out.jsonl" || fail "no completion-bound message: $res"
grep -q '"action":"set-downtime","value":250,"reason":"by the operator"' "$T/out.jsonl" ||
	fail "operator action not recorded"
grep -q '"verdict":"stalled"\|"verdict":"cannot-converge"' "$T/out.jsonl" || fail "no verdict"
[ "$(json_get passes "$res")" != 0 ] || fail "result lost its passes: $res"
echo "completion bound: $(json_get message "$res" | cut -c1-120)"
ok "steering and the completion bound"
