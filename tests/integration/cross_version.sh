# Cross-version migration: QEMU 7.2 -> 10.0 passes every scenario (the
# destination pinned to the source's machine type and RAM size), and the
# unsupported direction 10.0 -> 7.2 is refused by the doctor before
# anything changes, the source left running.
. tests/integration/qemu10_lib.sh
q10_fetch

# 1. The refusal first (quick): 10.0's machine type does not exist in 7.2.
SRCQ=$Q10 DSTQ=$Q72 PAIR="10.0->7.2"
xv refused --mem 128M
[ "$rc" = 4 ] || [ "$rc" = 3 ] || fail "10.0 -> 7.2: exit $rc, expected a refusal: $res"
echo "$res" | grep -q 'older QEMU 7.2' || fail "10.0 -> 7.2: unclear message: $res"
echo "$res" | grep -q 'source guest is running' || fail "10.0 -> 7.2: source not said running: $res"
grep -q '"id":"qemu-downgrade"' "$T/refused.jsonl" || fail "10.0 -> 7.2: no qemu-downgrade finding"
grep -q '"command":"migrate"' "$T/refused.jsonl" && fail "10.0 -> 7.2: a migrate step was planned"

# 2. Upgrade: 7.2 -> 10.0.
SRCQ=$Q72 DSTQ=$Q10 PAIR="7.2->10.0"
xv_scenarios
ok "QEMU 7.2 -> 10.0, and 10.0 -> 7.2 refused"
