# Storage migration on one host (NBD + blockdev-mirror, real QEMU): the
# Linux guest writes stamped blocks to its virtio-blk disk while it moves;
# the disks are compared after the move and the guest reads every block
# back on the destination. Then the refusals: a destination image of the
# wrong size and an unknown --migrate-disks name stop everything before
# any change, with the source running as before.
. tests/lib.sh
. tests/integration/storage_lib.sh
linux_guest_or_skip

# 1. Launch mode, the demo command.
$QMIGRATE migrate --launch --guest linux --mem 512M --disk 512M --disk-write-rate 5M \
	--guest-args qmig.dfill=32M --accel tcg --copy-storage-all --json \
	> "$T/l.jsonl" 2> "$T/l.err" || fail "launch mode: $(tail -1 "$T/l.jsonl") $(tail -3 "$T/l.err")"
res=$(tail -1 "$T/l.jsonl"); echo "launch: $res" | cut -c1-400
[ "$(json_get status "$res")" = completed ] || fail "launch: not completed"
[ "$(json_get verified "$res")" = true ] || fail "launch: not verified"
[ "$(json_get disks_verified "$res")" = true ] || fail "launch: disks not verified"
[ "$(json_get disks_migrated "$res")" = 1 ] || fail "launch: disks_migrated is not 1"
for c in nbd-server-start block-export-add blockdev-add blockdev-mirror; do
	grep -q "\"command\":\"$c\"" "$T/l.jsonl" || fail "launch: no $c in the plan"
done
grep -q '"capability":"pause-before-switchover","state":true' "$T/l.jsonl" ||
	fail "launch: pause-before-switchover not planned"
grep -q '"sync":"full"' "$T/l.jsonl" || fail "launch: the mirror is not sync=full"
grep -q 'block-job-cancel' "$T/l.jsonl" && fail "launch: a command was journaled into the records?"
ok "launch mode: completed, verified, disks identical ($(json_get disk_bytes "$res") bytes mirrored in $(json_get disk_mirror_ms "$res") ms, mirrors ended in $(json_get disk_cancel_ms "$res") ms)"

# 1b. The tiny guest: --copy-storage-synchronous (write-blocking mirror),
# --disk-bandwidth, --migrate-disks.
$QMIGRATE migrate --launch --guest tiny --mem 128M --disk 64M --accel tcg --copy-storage-all \
	--copy-storage-synchronous --disk-bandwidth 200M --migrate-disks vdisk0 --json \
	> "$T/s.jsonl" 2> "$T/s.err" || fail "synchronous: $(tail -1 "$T/s.jsonl") $(tail -3 "$T/s.err")"
res=$(tail -1 "$T/s.jsonl")
[ "$(json_get disks_verified "$res")" = true ] || fail "synchronous: disks not verified: $res"
grep '"command":"blockdev-mirror"' "$T/s.jsonl" | grep -q '"copy-mode":"write-blocking"' ||
	fail "synchronous: the mirror is not write-blocking"
grep '"command":"blockdev-mirror"' "$T/s.jsonl" | grep -q '"speed":209715200' ||
	fail "synchronous: --disk-bandwidth not applied"
ok "tiny guest: write-blocking mirror, 200 MiB/s limit, --migrate-disks vdisk0"
# The NBD clients had cache.no-flush, and the engine flushed the
# destination's images itself, after the switchover, before completing.
[ "$(switchover "$T/s.jsonl" no_flush)" = true ] || fail "synchronous: no cache.no-flush"
grep '"command":"blockdev-add"' "$T/s.jsonl" | grep -q '"no-flush":true' ||
	fail "synchronous: the NBD client was not opened with cache.no-flush"
f=$(switchover "$T/s.jsonl" flushed_ms); c=$(switchover "$T/s.jsonl" continued_ms)
[ "$f" -ge "$c" ] 2>/dev/null || fail "synchronous: not flushed after migrate-continue ($f, $c)"
[ "$(switchover "$T/s.jsonl" compared_via)" = files ] || fail "one host: not compared as files"

# 1c. That flush failing (a qemu-io that reports an I/O error): the
# destination keeps the guest, but the job is not "completed": the
# source is kept paused (its disks are the durable copy), exit 8.
mkdir -p "$T/bin"
printf '#!/bin/sh\necho "flush failed: Input/output error"\nexit 1\n' > "$T/bin/qemu-io"
chmod +x "$T/bin/qemu-io"
PATH="$T/bin:$PATH" $QMIGRATE migrate --launch --guest tiny --mem 128M --disk 64M --accel tcg \
	--copy-storage-all --json > "$T/nf.jsonl" 2> "$T/nf.err"
rc=$?; res=$(tail -1 "$T/nf.jsonl")
[ $rc = 8 ] || fail "flush failure: exit $rc, expected 8: $res"
[ "$(json_get status "$res")" = completed-with-errors ] || fail "flush failure: $res"
message "$T/nf.jsonl" | grep -q "not known to be durable" || fail "flush failure: message: $res"
grep -q "source QEMU is kept" "$T/nf.err" "$T/nf.jsonl" || fail "flush failure: the source was not kept"
ok "the engine's flush failing: completed-with-errors, the source kept"

# 2. Attach mode: the destination kept, its guest reads every block back.
launch_guest src --guest linux --mem 256M --wss 32M --dirty-rate 4M --disk 256M \
	--disk-write-rate 5M --guest-args "qmig.dfill=16M qmig.dsize=32M" --accel tcg
launch_guest dst --guest linux --mem 256M --wss 32M --disk 256M --incoming --accel tcg
wait_ready "$src_log" || fail "the source guest did not boot: $(tail -3 "$src_log")"
wait_sweeps "$src_log" 1 60 || fail "the source guest does not read its disk back"
$QMIGRATE migrate --src-qmp "$src_qmp" --dst-qmp "$dst_qmp" --src-serial "$src_serial_socket" \
	--dst-serial "$dst_serial_socket" --copy-storage-all --keep-source --json \
	> "$T/a.jsonl" 2> "$T/a.err" || fail "attach: $(tail -1 "$T/a.jsonl") $(tail -3 "$T/a.err")"
res=$(tail -1 "$T/a.jsonl"); echo "attach: $res" | cut -c1-300
[ "$(json_get status "$res")" = completed ] || fail "attach: not completed"
[ "$(json_get disks_verified "$res")" = true ] || fail "attach: disks not verified"
[ "$(status_of "$dst_qmp")" = running ] || fail "attach: destination not running"
no_storage_leftovers attach "$src_qmp" "$dst_qmp"
port=$(nbd_port "$T/a.jsonl")
[ -n "$port" ] || fail "attach: no NBD port in the plan"
ss -Htln | awk '{print $4}' | grep -q ":$port\$" && fail "attach: the NBD server still listens on $port"
# Every block the guest wrote, read back from the destination's disk.
wait_sweeps "$dst_log" 2 90 || fail "attach: the destination guest did not read its disk back"
disk_grows "$dst_log" 10 || fail "attach: the destination guest no longer writes its disk"
grep -aq CORRUPT "$dst_log" && fail "attach: the destination guest reports: $(grep CORRUPT "$dst_log" | head -3)"
echo "destination: $(grep '^HB' "$dst_log" | tail -1)"
ok "attach mode: destination reads back every block ($(ddisk "$dst_log") written), nothing left behind"
kill -9 "$src_pid" "$dst_pid"

# 3. Refusals before anything changes.
launch_guest s2 --guest linux --mem 256M --disk 64M --accel tcg
launch_guest d2 --guest linux --mem 256M --disk 32M --incoming --accel tcg
launch_guest d3 --guest linux --mem 256M --disk 64M --incoming --accel tcg
wait_ready "$s2_log" || fail "s2 did not boot"
$QMIGRATE qmp "$s2_qmp" query-migrate-capabilities > "$T/caps.before"
refused() { # CASE EXPECTED-TEXT DST_QMP ARGS...
	case_=$1; want=$2; dq=$3; shift 3
	$QMIGRATE migrate --src-qmp "$s2_qmp" --dst-qmp "$dq" "$@" --json > "$T/r.jsonl" 2>/dev/null
	rc=$?; res=$(tail -1 "$T/r.jsonl"); msg=$(message "$T/r.jsonl")
	echo "$case_: exit $rc: $msg"
	[ $rc = 3 ] || fail "$case_: exit $rc, expected 3"
	printf '%s' "$msg" | grep -q "$want" || fail "$case_: message lacks '$want'"
	[ "$(status_of "$s2_qmp")" = running ] || fail "$case_: source not running"
	[ "$(status_of "$dq")" = inmigrate ] || fail "$case_: destination touched"
	$QMIGRATE qmp "$s2_qmp" query-migrate-capabilities > "$T/caps.after"
	cmp -s "$T/caps.before" "$T/caps.after" || fail "$case_: source capabilities changed"
	grep -q '"command":"nbd-server-start"' "$T/r.jsonl" && fail "$case_: storage was planned"
	no_storage_leftovers "$case_" "$s2_qmp" "$dq"
}
refused "wrong size" "same virtual size" "$d2_qmp" --copy-storage-all
refused "unknown disk" "has no disk 'vdb'" "$d2_qmp" --copy-storage-all --migrate-disks vdisk0,vdb
refused "no backing" "no backing file" "$d3_qmp" --copy-storage-inc
# --dry-run prints the storage steps and changes nothing.
$QMIGRATE migrate --src-qmp "$s2_qmp" --dst-qmp "$d3_qmp" --copy-storage-all --dry-run \
	> "$T/dry.txt" 2>&1 || fail "dry run: $(cat "$T/dry.txt")"
for c in nbd-server-start block-export-add blockdev-add blockdev-mirror; do
	grep -q "$c" "$T/dry.txt" || fail "dry run: no $c: $(cat "$T/dry.txt")"
done
[ "$(status_of "$d3_qmp")" = inmigrate ] || fail "dry run: the destination was touched"
no_storage_leftovers "dry run" "$s2_qmp" "$d3_qmp"
$QMIGRATE migrate --help | grep -q -- "--copy-storage-inc" || fail "--help lacks the storage options"
$QMIGRATE doctor --src-qmp "$s2_qmp" --dst-qmp "$d2_qmp" > "$T/doctor.txt" 2>&1
grep -q "disk-size-differs" "$T/doctor.txt" || fail "doctor: no disk-size-differs finding: $(cat "$T/doctor.txt")"
ok "refusals: wrong image size, unknown disk, --inc without a backing file; the doctor names the size"
