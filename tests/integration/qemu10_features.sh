# Newer QEMU features used when both QEMUs have them (engine/features.c),
# probed from the schemas: the plan (--dry-run) says which are used and
# why on 10.0->10.0 and on 7.2->7.2; real migrations with them complete and
# verify (10.0->10.0: zstd, zero-page-detection, the channels form (TCP and
# the relay's unix sockets), avail-switchover-bandwidth fed live (and
# --no-feature turning it off), switchover-ack asked for; 7.2->10.0:
# zlib in the uri form); a method a QEMU lacks is refused by name; and
# `qmigrate caps` shows the features table.
. tests/integration/qemu10_lib.sh
q10_fetch

# feature NAME FILE: the plan record of feature NAME.
feature() { grep "\"command\":\"feature\".*\"name\":\"$1\"" "$2"; }
used() { feature "$1" "$2" | grep -q '"used":true'; }

# Two tests: this file alone the plans, the refusal and qmigrate caps;
# qemu10_features_run.sh (FEAT_PART=run) the real migrations. Together they
# came near the 300 s a test may take under a load of 21.
if [ "${FEAT_PART:-plan}" = plan ]; then
# 1. The plan on 10.0 -> 10.0, multifd with zstd.
SRCQ=$Q10 DSTQ=$Q10 PAIR="10.0->10.0"
xv plan10 --mem 128M --multifd 2 --compress zstd --dry-run
[ "$rc" = 0 ] || fail "plan10: exit $rc: $res"
for f in zero-page-detection multifd-compression channels avail-switchover-bandwidth; do
	used $f "$T/plan10.jsonl" || fail "10.0: feature $f not used: $(feature $f "$T/plan10.jsonl")"
done
used switchover-ack "$T/plan10.jsonl" && fail "10.0: switchover-ack used without a VFIO device"
feature switchover-ack "$T/plan10.jsonl" | grep -q 'only VFIO' ||
	fail "10.0: switchover-ack: no reason given"
grep '"command":"migrate-incoming"' "$T/plan10.jsonl" | grep -q '"channels":\[{"channel-type":"main","addr":{"transport":"socket","type":"inet"' ||
	fail "10.0: migrate-incoming not in the channels form"
grep '"command":"migrate"' "$T/plan10.jsonl" | grep -q '"channels"' ||
	fail "10.0: migrate not in the channels form"
grep '"side":"source","command":"migrate-set-parameters"' "$T/plan10.jsonl" |
	grep '"zero-page-detection":"multifd"' | grep -q '"multifd-compression":"zstd"' ||
	fail "10.0: the source's parameters lack zero-page-detection or zstd"
grep '"side":"destination","command":"migrate-set-parameters"' "$T/plan10.jsonl" |
	grep -q '"multifd-compression":"zstd"' || fail "10.0: the destination does not get zstd"
# The human form says why.
$QMIGRATE migrate --launch --guest tiny --accel tcg --qemu "$Q10" --mem 128M --dry-run \
	--no-feature channels > "$T/plan10h.out" 2>&1 || fail "plan10h: $(tail -3 "$T/plan10h.out")"
grep -q 'feature {"name":"channels","used":false.*turned off' "$T/plan10h.out" ||
	fail "--no-feature channels: $(grep channels "$T/plan10h.out")"
grep -q 'migrate-incoming {"uri":"tcp:' "$T/plan10h.out" || fail "--no-feature channels: not the uri form"
grep -q 'feature {"name":"zero-page-detection","used":false.*only with multifd' "$T/plan10h.out" ||
	fail "zero-page-detection without multifd: $(grep zero-page "$T/plan10h.out")"

# 2. The plan on 7.2 -> 7.2: the uri form, no zero-page-detection or
# avail-switchover-bandwidth; zstd used, as 7.2's schema lists it.
SRCQ=$Q72 DSTQ=$Q72 PAIR="7.2->7.2"
xv plan72 --mem 128M --multifd 2 --compress zstd --dry-run
[ "$rc" = 0 ] || fail "plan72: exit $rc: $res"
for f in zero-page-detection channels avail-switchover-bandwidth switchover-ack; do
	used $f "$T/plan72.jsonl" && fail "7.2: feature $f used"
	feature $f "$T/plan72.jsonl" | grep -q 'neither QEMU has\|source QEMU lacks' ||
		fail "7.2: $f: no reason: $(feature $f "$T/plan72.jsonl")"
done
used multifd-compression "$T/plan72.jsonl" || fail "7.2: zstd not used"
grep '"command":"migrate-incoming"' "$T/plan72.jsonl" | grep -q '"uri":"tcp:' ||
	fail "7.2: migrate-incoming not in the uri form"
# A method neither was built with is refused, by name, before any change.
xv qpl --mem 128M --multifd 2 --compress qpl
[ "$rc" = 3 ] || fail "qpl: exit $rc, expected 3: $res"
echo "$res" | grep -q "compress qpl: the source QEMU does not have multifd compression 'qpl'" ||
	fail "qpl: unclear message: $res"
grep -q '"command":"migrate"' "$T/qpl.jsonl" && fail "qpl: a migrate step was planned"

fi
if [ "${FEAT_PART:-plan}" = run ]; then
# 3. Real migrations with them.
SRCQ=$Q10 DSTQ=$Q10 PAIR="10.0->10.0"
xv zstd --mem 256M --dirty-rate 50M --multifd 2 --compress zstd
xv_ok zstd
n=$(grep -c '"type":"feature"' "$T/zstd.jsonl")
grep '"type":"feature"' "$T/zstd.jsonl" | grep -q '"name":"avail-switchover-bandwidth","value":[1-9]' ||
	fail "zstd: avail-switchover-bandwidth never set"
echo "10.0->10.0 zstd: avail-switchover-bandwidth set $n times, last $(grep '"type":"feature"' "$T/zstd.jsonl" | tail -1 | sed 's/.*"value":\([0-9]*\).*/\1/') B/s"

xv ack --mem 128M --dirty-rate 20M --cap switchover-ack
xv_ok ack
feature switchover-ack "$T/ack.jsonl" | grep -q '"used":true' || fail "ack: switchover-ack not used"
grep '"side":"source","command":"migrate-set-capabilities"' "$T/ack.jsonl" |
	grep '"capability":"switchover-ack","state":true' |
	grep -q '"capability":"return-path","state":true' || fail "ack: return-path not enabled with it"

# The relay's unix sockets in the channels form too; and the live feed off.
xv relay --mem 128M --dirty-rate 10M --transport relay --multifd 2 \
	--no-feature avail-switchover-bandwidth
xv_ok relay
grep '"command":"migrate-incoming"' "$T/relay.jsonl" | grep -q '"type":"unix","path":' ||
	fail "relay: migrate-incoming not a unix channel"
feature avail-switchover-bandwidth "$T/relay.jsonl" | grep -q '"used":false' ||
	fail "relay: --no-feature avail-switchover-bandwidth ignored"
grep -q '"type":"feature"' "$T/relay.jsonl" && fail "relay: avail-switchover-bandwidth set though off"

SRCQ=$Q72 DSTQ=$Q10 PAIR="7.2->10.0"
# zlib costs CPU (4 MiB/s on the wire here under load): a slow writer, and a
# small working set (it is written once before the move: 64 MiB at 2 MiB/s
# left a loaded host less than half of the 60 s boot limit).
xv zlib --mem 128M --wss 16M --dirty-rate 2M --multifd 2 --compress zlib
xv_ok zlib
used channels "$T/zlib.jsonl" && fail "7.2->10.0: channels used though 7.2 lacks it"
used multifd-compression "$T/zlib.jsonl" || fail "7.2->10.0: zlib not used"

ok "features: zstd, switchover-ack, relay channels on 10.0->10.0 and zlib on 7.2->10.0 migrated and verified"
exit 0
fi

# 4. qmigrate caps: the features table, both forms.
launch_guest a --guest tiny --mem 128M --accel tcg --qemu "$Q10"
launch_guest b --guest tiny --mem 128M --accel tcg --qemu "$Q10" --incoming
$QMIGRATE caps --src-qmp "$a_qmp" --dst-qmp "$b_qmp" > "$T/caps.out" || fail "caps failed"
grep -A6 '^features' "$T/caps.out"
grep -q '^channels  *yes  *yes  *YES' "$T/caps.out" || fail "caps: channels row"
grep -q '^switchover-ack  *yes  *yes  *no  *no device' "$T/caps.out" || fail "caps: switchover-ack row"
$QMIGRATE caps --src-qmp "$a_qmp" --dst-qmp "$b_qmp" --json > "$T/caps.json" || fail "caps --json"
grep -q '"features":\[{"name":"zero-page-detection"' "$T/caps.json" || fail "caps --json: no features"
ok "features: plans on 10.0 and 7.2, qpl refused, caps"
