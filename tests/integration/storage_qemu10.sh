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

# --copy-storage-synchronous where the source has block-job-change (10.0):
# the mirror copies in the background, and when it stops converging (the
# Linux guest writes 8 MiB/s, the mirror may copy 3 MiB/s) the engine
# turns it write-blocking; then it converges and the move completes with
# identical disks. On 7.2 (no block-job-change) the mirror is
# write-blocking from its start.
. tests/integration/storage_lib.sh
linux_guest_or_skip
SRCQ=$Q10 DSTQ=$Q10 PAIR="10.0->10.0"
$QMIGRATE migrate --launch --guest linux --mem 256M --accel tcg --src-qemu "$SRCQ" --dst-qemu "$DSTQ" \
	--disk 256M --disk-write-rate 8M --guest-args qmig.dfill=4M --disk-bandwidth 3M \
	--copy-storage-all --copy-storage-synchronous --json > "$T/sync.jsonl" 2> "$T/sync.err"
rc=$?; res=$(tail -1 "$T/sync.jsonl")
[ $rc = 0 ] || fail "$PAIR synchronous: exit $rc: $res $(tail -3 "$T/sync.err")"
[ "$(json_get disks_verified "$res")" = true ] || fail "$PAIR synchronous: disks not verified: $res"
grep -q '"command":"blockdev-mirror".*write-blocking' "$T/sync.jsonl" &&
	fail "$PAIR synchronous: the mirror started write-blocking although QEMU has block-job-change"
grep -q '"what":"write-blocking"' "$T/sync.jsonl" ||
	fail "$PAIR synchronous: the mirror never turned write-blocking"
grep '"type":"sample"' "$T/sync.jsonl" | grep -q '"disk_prediction":{' ||
	fail "$PAIR synchronous: no disk forecast in the samples"
ok "$PAIR --copy-storage-synchronous: background mirror turned write-blocking when it stopped converging ($(grep -c '"type":"sample"' "$T/sync.jsonl") samples), disks identical"

SRCQ=$Q72 PAIR="7.2->10.0"
$QMIGRATE migrate --launch --guest tiny --mem 128M --accel tcg --src-qemu "$SRCQ" --dst-qemu "$DSTQ" \
	--disk 64M --copy-storage-all --copy-storage-synchronous --json > "$T/sync72.jsonl" 2> "$T/sync72.err"
rc=$?; res=$(tail -1 "$T/sync72.jsonl")
[ $rc = 0 ] || fail "$PAIR synchronous: exit $rc: $res $(tail -3 "$T/sync72.err")"
grep -q '"command":"blockdev-mirror".*write-blocking' "$T/sync72.jsonl" ||
	fail "$PAIR synchronous: 7.2 has no block-job-change, the mirror must start write-blocking"
ok "$PAIR --copy-storage-synchronous: write-blocking from the start (no block-job-change in 7.2)"
