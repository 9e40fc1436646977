# qmigrate caps on a real pair, and a schema mismatch: a destination that
# lacks a capability (a real QEMU 7.2 presented as an older one without
# postcopy-preempt) is refused before anything changes on either side.
. tests/lib.sh
OLDER=build/tests/helpers/qmp_older
launch_guest src --guest tiny --mem 64M --dirty-rate 10M --accel tcg
launch_guest dst --guest tiny --mem 64M --incoming --accel tcg

$QMIGRATE caps --src-qmp "$src_qmp" --dst-qmp "$dst_qmp" > "$T/caps.txt" || fail "caps"
cat "$T/caps.txt" | head -5
grep -Eq '^events +false +false +yes +true/true' "$T/caps.txt" || fail "caps: events row"
grep -Eq '^max-bandwidth +134217728 +134217728 +yes +68719476736/-' "$T/caps.txt" ||
	fail "caps: max-bandwidth row"
$QMIGRATE caps --src-qmp "$src_qmp" --dst-qmp "$dst_qmp" --json | grep -q '"name":"multifd-channels"' ||
	fail "caps --json"

$OLDER "$T/older.sock" "$dst_qmp" postcopy-preempt > "$T/older.out" &
PIDS="$PIDS $!"
i=0; until grep -q ready "$T/older.out"; do i=$((i+1)); [ $i -gt 50 ] && fail "proxy"; sleep 0.1; done
$QMIGRATE caps --src-qmp "$src_qmp" --dst-qmp "$T/older.sock" > "$T/caps2.txt"
grep -Eq '^postcopy-preempt +false +- +NO' "$T/caps2.txt" || fail "caps does not show the mismatch"
$QMIGRATE qmp "$src_qmp" query-migrate-capabilities > "$T/before"
$QMIGRATE migrate --src-qmp "$src_qmp" --dst-qmp "$T/older.sock" --postcopy --cap postcopy-preempt \
	--json > "$T/m.jsonl"
rc=$?; res=$(tail -1 "$T/m.jsonl"); echo "mismatch: exit $rc: $(json_get message "$res")"
[ $rc = 3 ] || fail "mismatch: exit $rc, expected 3"
grep -q "capability 'postcopy-preempt' is not supported by the destination" "$T/m.jsonl" ||
	fail "mismatch: unclear message"
$QMIGRATE qmp "$src_qmp" query-migrate-capabilities > "$T/after"
cmp -s "$T/before" "$T/after" || fail "mismatch: source capabilities changed"
[ "$(status_of "$dst_qmp")" = inmigrate ] || fail "mismatch: destination touched"
[ "$(status_of "$src_qmp")" = running ] || fail "mismatch: source not running"
ok "caps and schema mismatch"
