# --copy-storage-inc (blockdev-mirror sync=top): both sides' disks are
# qcow2 overlays on the same backing image, which holds data the guest
# never writes; only the top image crosses, and the destination sees the
# backing data through its own copy. Then the comparison's teeth: a
# destination whose backing image differs is caught after the move, the
# destination never runs and the source keeps the guest.
. tests/lib.sh
. tests/integration/storage_lib.sh
linux_guest_or_skip
command -v qemu-io >/dev/null || skip "qemu-io is not installed"

# The backing image: 512 MiB, its last 64 MiB a pattern (the guest writes
# only its first 128 MiB: qmig.dsize).
B="$T/base.raw"
qemu-img create -q -f raw "$B" 512M || fail "qemu-img create"
qemu-io -f raw -c "write -P 0xab 448M 64M" "$B" > /dev/null || fail "qemu-io write"

# 1. Launch mode: both overlays on $B.
$QMIGRATE migrate --launch --guest linux --mem 512M --disk 512M --disk-backing "$B" \
	--disk-write-rate 5M --guest-args "qmig.dfill=16M qmig.dsize=128M" --accel tcg \
	--copy-storage-inc --json > "$T/i.jsonl" 2> "$T/i.err" ||
	fail "inc: $(tail -1 "$T/i.jsonl") $(tail -3 "$T/i.err")"
res=$(tail -1 "$T/i.jsonl"); echo "inc: $res" | cut -c1-300
[ "$(json_get status "$res")" = completed ] || fail "inc: not completed"
[ "$(json_get verified "$res")" = true ] || fail "inc: not verified"
[ "$(json_get disks_verified "$res")" = true ] || fail "inc: disks not verified"
grep -q '"sync":"top"' "$T/i.jsonl" || fail "inc: the mirror is not sync=top"
bytes=$(json_get disk_bytes "$res")
# The top image only: the fill and what the guest wrote since, far below
# the 512 MiB disk (the backing's 64 MiB pattern never crosses).
[ "$bytes" -lt $((128 << 20)) ] || fail "inc: $bytes bytes mirrored: more than the top image"
ok "copy-storage-inc: completed, disks identical through the backing chain, $bytes bytes mirrored of 512 MiB"

# 2. Attach mode, the destination's backing differs (no pattern).
B2="$T/other.raw"
qemu-img create -q -f raw "$B2" 512M || fail "qemu-img create"
launch_guest src --guest linux --mem 256M --wss 16M --disk 512M --disk-backing "$B" \
	--disk-write-rate 2M --guest-args "qmig.dfill=8M qmig.dsize=64M" --accel tcg
launch_guest dst --guest linux --mem 256M --wss 16M --disk 512M --disk-backing "$B2" \
	--incoming --accel tcg
wait_ready "$src_log" || fail "the source did not boot"
wait_beats "$src_log" 5 30 || fail "no heartbeats"
$QMIGRATE migrate --src-qmp "$src_qmp" --dst-qmp "$dst_qmp" --src-serial "$src_serial_socket" \
	--dst-serial "$dst_serial_socket" --copy-storage-inc --json > "$T/d.jsonl" 2> "$T/d.err"
rc=$?; res=$(tail -1 "$T/d.jsonl")
echo "differing backing: exit $rc: $(message "$T/d.jsonl")"
[ $rc = 6 ] || fail "differing backing: exit $rc, expected 6 (verification failed)"
[ "$(json_get disks_verified "$res")" = false ] || fail "differing backing: disks_verified is not false"
message "$T/d.jsonl" | grep -q "differs" || fail "differing backing: the message does not say the disk differs"
[ "$(status_of "$src_qmp")" = running ] || fail "differing backing: the source is not running"
st=$(status_of "$dst_qmp")
[ "$st" != running ] || fail "differing backing: the destination runs"
grep -q '"side":"destination","event":"RESUME"' "$T/d.jsonl" && fail "differing backing: the destination resumed"
disk_grows "$src_log" 10 || fail "differing backing: the source guest no longer writes its disk"
no_storage_leftovers "differing backing" "$src_qmp" "$dst_qmp"
ok "a destination disk that differs is caught: exit 6, the destination ($st) never ran, the source runs"
