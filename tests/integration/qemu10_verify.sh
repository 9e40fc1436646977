# QEMU 10.0 has the TCG dirty-bitmap fix (03bfc2188f, in 9.0): with a RAM
# size that IS a multiple of 256 KiB and the tiny guest's hot-page canary,
# --verify=memory finds 0 differing pages (QMIG_REPEAT runs, default 1;
# check-full runs 5). The same run on 7.2 finds the bug (verify_memory.sh).
. tests/integration/qemu10_lib.sh
q10_fetch
SRCQ=$Q10 DSTQ=$Q10 PAIR="10.0->10.0"
i=0
while [ $i -lt "${QMIG_REPEAT:-1}" ]; do
	i=$((i + 1))
	xv canary$i --mem 256M --wss 32M --dirty-rate 200M --guest-args "mode=hot hot=1024" \
		--no-mem-workaround --verify=memory --downtime-limit 1 --max-bandwidth 100M --pause-after 8
	xv_ok canary$i
	# At least two passes after the first (dirty pages re-sent twice): a
	# loaded machine managed only 4 passes in 3 s, so the pause comes late.
	[ "$(json_get passes "$res")" -ge 3 ] || fail "canary$i: only $(json_get passes "$res") passes"
	[ "$(json_get pages_differ "$res")" = 0 ] || fail "canary$i: pages differ: $res"
	grep -q '"mem_bytes":268435456' "$T/canary$i.jsonl" || true
done
ok "QEMU 10.0: 256 KiB-aligned RAM, $i of $i canary runs with 0 differing pages"
