# Storage migration on newer QEMU: 10.0 -> 10.0 and 7.2 -> 10.0 (the tiny
# guest with a 64 MiB disk, --copy-storage-all): completed, verified, the
# disks identical. QEMU 10.0 comes from tools/qemu-cache.sh (skipped when
# it cannot be fetched).
. tests/integration/qemu10_lib.sh
command -v qemu-img >/dev/null || skip "qemu-img is not installed"
q10_fetch
for pair in "$Q10 $Q10 10.0->10.0" "$Q72 $Q10 7.2->10.0"; do
	set -- $pair
	SRCQ=$1 DSTQ=$2 PAIR=$3
	xv storage --mem 128M --disk 64M --copy-storage-all
	xv_ok storage
	[ "$(json_get disks_verified "$res")" = true ] || fail "$PAIR: disks not verified: $res"
	grep -q '"command":"blockdev-mirror"' "$T/storage.jsonl" || fail "$PAIR: no mirror planned"
done
ok "storage migration on QEMU 10.0 (10.0->10.0, 7.2->10.0)"
