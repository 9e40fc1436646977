# qmigrate save / restore against real QEMU: the plain stream on QEMU 7.2,
# mapped-ram with multifd on QEMU 10.0 (tools/qemu-cache.sh; that half,
# save_restore10.sh, is skipped when 10.0 cannot be had), the guest verified after
# each restore (stamps while stopped, then heartbeats), and the refusals:
# an existing file or a symbolic link, a damaged or truncated or
# headerless file, an older QEMU, another RAM size; a save that fails
# half-way (a full disk) leaves the source running and no file.
. tests/lib.sh
Q72=$(command -v qemu-system-x86_64) || skip "qemu-system-x86_64 not installed"
Q10=$(sh tools/qemu-cache.sh 10.0 2>"$T/qemu-cache.err") || Q10=""

# field KEY: from the last result ($res).
field() { json_get "$1" "$res"; }

# saved FILE: the save result says saved, the file is 0600 and has a header.
saved() {
	[ "$rc" = 0 ] || fail "save $1: exit $rc: $res $(cat "$T/err")"
	[ "$(field status)" = saved ] || fail "save $1: $res"
	[ "$(field owner)" = file ] || fail "save $1: owner is not the file: $res"
	[ "$(stat -c %a "$1")" = 600 ] || fail "save $1: mode $(stat -c %a "$1"), not 600"
	head -c 16 "$1" | grep -q '^QMIGRATE-SAVE 1' || fail "save $1: no header"
}

# restored: verified by stamps (16384+ pages) and running.
restored() {
	[ "$rc" = 0 ] || fail "restore $1: exit $rc: $res $(cat "$T/err")"
	[ "$(field status)" = restored ] || fail "restore $1: $res"
	[ "$(field verified)" = true ] || fail "restore $1: not verified: $res"
	[ "$(field verify_method)" = stamps ] || fail "restore $1: not verified by stamps: $res"
	[ "$(field pages_checked)" -gt 0 ] || fail "restore $1: no pages checked: $res"
	[ "$(field running)" = true ] || fail "restore $1: the guest does not run: $res"
}

save() { res=$($QMIGRATE save --json "$@" 2> "$T/err"); rc=$?; }
restore() { res=$($QMIGRATE restore --json "$@" 2> "$T/err"); rc=$?; }

# Two tests: this file alone runs the QEMU 7.2 half; save_restore10.sh
# (SR_PART=10.0) the QEMU 10.0 half, with the one 7.2 file it needs. Both
# in one test took longer than a test may (300 s) under a load of 21.
if [ "${SR_PART:-7.2}" = 10.0 ]; then
	save --launch --guest tiny --mem 128M --wss 32M --dirty-rate 20M --accel tcg "$T/b72.sav"
	saved "$T/b72.sav"
else

# ---- QEMU 7.2: the plain stream, attach mode ------------------------------
launch_guest src --guest tiny --mem 256M --wss 96M --dirty-rate 40M --accel tcg
wait_gen "$src_log" 2 60 || fail "7.2 source guest does not write its working set"
save --src-qmp "$src_qmp" "$T/a72.sav"
saved "$T/a72.sav"
[ "$(field method)" = stream ] || fail "7.2: method is not the plain stream: $res"
[ "$(field source_quit)" = true ] || fail "7.2: the source was not quit: $res"
i=0; while alive "$src_pid"; do i=$((i + 1)); [ $i -gt 100 ] && fail "7.2 source still runs"; sleep 0.05; done
echo "7.2 save (stream): $(field stream_bytes) bytes, $(field save_ms) ms"
launch_guest dst --guest tiny --mem 256M --incoming --accel tcg
restore "$T/a72.sav" --dst-qmp "$dst_qmp" --dst-serial "$dst_serial_socket"
restored "7.2 attach"
[ "$(status_of "$dst_qmp")" = running ] || fail "7.2: restored guest is not running"
$QMIGRATE verify --qmp "$dst_qmp" > /dev/null 2>&1 || fail "7.2: restored guest fails verify"
ok "7.2 plain stream: saved (attach), restored (attach), stamps and heartbeats verified"
kill -9 "$dst_pid"

# Launch mode both ways.
save --launch --guest tiny --mem 128M --wss 32M --dirty-rate 20M --accel tcg "$T/b72.sav"
saved "$T/b72.sav"
restore "$T/b72.sav" --launch --accel tcg
restored "7.2 launch"
ok "7.2 launch mode: save and restore verified"

# ---- refusals that need no second QEMU --------------------------------------
launch_guest src --guest tiny --mem 128M --dirty-rate 10M --accel tcg
wait_beats "$src_log" 3 30 || fail "source guest does not heartbeat"
echo keep > "$T/exists"
save --src-qmp "$src_qmp" "$T/exists"
[ "$rc" = 3 ] || fail "save over an existing file: exit $rc, not 3: $res"
echo "$res" | grep -q "never overwrites" || fail "save over a file: unclear: $res"
[ "$(cat "$T/exists")" = keep ] || fail "save over a file changed it"
ln -s "$T/elsewhere" "$T/link"
save --src-qmp "$src_qmp" "$T/link"
[ "$rc" = 3 ] && [ ! -e "$T/elsewhere" ] || fail "save through a symlink: exit $rc, $res"
[ "$(status_of "$src_qmp")" = running ] || fail "refused save left the source not running"
ok "save refuses an existing file and a symbolic link; the source runs on"

# A save that fails half-way: a 2 MiB file system fills up.
if [ "$(id -u)" = 0 ] && mkdir "$T/small" && mount -t tmpfs -o size=2m tmpfs "$T/small" 2>/dev/null; then
	CLEANUP_HOOKS="umount_small"
	umount_small() { umount "$T/small" 2>/dev/null; }
	save --src-qmp "$src_qmp" "$T/small/full.sav"
	[ "$rc" = 4 ] || fail "save to a full disk: exit $rc, not 4: $res"
	[ "$(field owner)" = source ] || fail "save to a full disk: owner: $res"
	[ ! -e "$T/small/full.sav" ] || fail "save to a full disk left the file"
	[ "$(status_of "$src_qmp")" = running ] || fail "failed save: source not running"
	wait_beats "$src_log" 20 10 || fail "failed save: source guest does not heartbeat"
	$QMIGRATE qmp "$src_qmp" query-migrate-parameters | grep -q '"max-bandwidth": *134217728' ||
		fail "failed save: max-bandwidth not put back"
	echo "full disk: $(field message)"
	ok "a save failing half-way (disk full) resumes the source, removes the file"
	umount_small; CLEANUP_HOOKS=""
else
	echo "full-disk case skipped: needs root and tmpfs"
fi
kill -9 "$src_pid"

# Interrupted saves. --max-bandwidth 16M makes the save of a 96 MiB working
# set last about 6 s: time to act once the journal says it is migrating.
JOBDIR=$([ "$(id -u)" = 0 ] && echo /run/qmigrate/jobs || echo "${XDG_RUNTIME_DIR:-/tmp}/qmigrate-jobs")
[ "$(id -u)" = 0 ] || [ -n "${XDG_RUNTIME_DIR:-}" ] || JOBDIR=/tmp/qmigrate-jobs-$(id -u)
# save_bg FILE: start a slow save of src; sets sv once it is migrating.
save_bg() {
	$QMIGRATE save --src-qmp "$src_qmp" --max-bandwidth 16M --json "$1" > "$T/bg.json" 2>&1 &
	sv=$!
	i=0
	until grep -qs '"command":"migrate"' "$JOBDIR/$sv.journal"; do
		i=$((i + 1)); [ $i -gt 2000 ] && fail "the save never journaled its migrate step"
		alive "$sv" || fail "the save ended before it was interrupted: $(cat "$T/bg.json")"
		sleep 0.005
	done
}
launch_guest src --guest tiny --mem 256M --wss 96M --dirty-rate 40M --accel tcg
wait_gen "$src_log" 2 60 || fail "source guest does not write its working set"

# SIGINT: cancelled, rolled back, exit 5, no file.
save_bg "$T/int.sav"
kill -INT "$sv"; wait "$sv"; rc=$?
[ "$rc" = 5 ] || fail "SIGINT during a save: exit $rc, not 5: $(cat "$T/bg.json")"
grep -q '"status":"cancelled"' "$T/bg.json" || fail "SIGINT: not cancelled: $(cat "$T/bg.json")"
[ ! -e "$T/int.sav" ] || fail "SIGINT: the file was left"
[ "$(status_of "$src_qmp")" = running ] || fail "SIGINT: the source does not run"
$QMIGRATE qmp "$src_qmp" query-migrate-parameters | grep -q '"max-bandwidth": *134217728' ||
	fail "SIGINT: max-bandwidth not put back"
ok "SIGINT during a save: cancelled, the source runs, no file"

# kill -9: the journal stays, and 'qmigrate recover' gives the guest back
# to the source (the file has no header: it can never be restored too).
save_bg "$T/killed.sav"
kill -9 "$sv"; wait "$sv" 2>/dev/null
[ "$(status_of "$src_qmp")" = running ] && fail "the killed save had not stopped the source?"
$QMIGRATE recover --list | grep -q "$sv" || fail "recover --list does not show the dead save"
$QMIGRATE recover --job "$sv" > "$T/rec.txt" 2>&1 || fail "recover: $(cat "$T/rec.txt")"
[ "$(status_of "$src_qmp")" = running ] || fail "recover did not resume the source"
wait_beats "$src_log" 20 10 || fail "recovered source does not heartbeat"
$QMIGRATE verify --qmp "$src_qmp" > /dev/null 2>&1 || fail "recovered source fails verify"
$QMIGRATE qmp "$src_qmp" query-migrate-parameters | grep -q '"max-bandwidth": *134217728' ||
	fail "recover: max-bandwidth not put back"
[ ! -e "$JOBDIR/$sv.journal" ] || fail "recover left the journal"
restore "$T/killed.sav" --launch --accel tcg
[ "$rc" = 3 ] || fail "the killed save's file was not refused: $res"
echo "recover: $(tr '\n' ' ' < "$T/rec.txt")"
ok "a save killed mid-write: recover resumes the source; the headerless file is refused"
kill -9 "$src_pid"

# Damaged files, all refused before any QEMU starts (exit 3).
cp "$T/b72.sav" "$T/bad.sav"
printf 'X' | dd of="$T/bad.sav" bs=1 seek=70000 conv=notrunc 2>/dev/null
restore "$T/bad.sav" --launch --accel tcg
[ "$rc" = 3 ] && echo "$res" | grep -q "SHA-256 does not match" || fail "damaged file: exit $rc: $res"
head -c 100000 "$T/b72.sav" > "$T/short.sav"
restore "$T/short.sav" --launch --accel tcg
[ "$rc" = 3 ] && echo "$res" | grep -q "length does not match" || fail "truncated: exit $rc: $res"
dd if=/dev/zero of="$T/zero.sav" bs=64k count=2 2>/dev/null
restore "$T/zero.sav" --launch --accel tcg
[ "$rc" = 3 ] && echo "$res" | grep -q "did not complete" || fail "headerless: exit $rc: $res"
ok "damaged, truncated and headerless files are refused"

fi
[ "${SR_PART:-7.2}" = 10.0 ] || exit 0

# ---- QEMU 10.0: mapped-ram with multifd ----------------------------------------
[ -n "$Q10" ] || skip "QEMU 10.0: tools/qemu-cache.sh 10.0 failed: $(tail -1 "$T/qemu-cache.err")"
"$Q10" -version | head -1
# A 1 GiB guest writing memory; saved once its working set is all written.
launch_guest src --guest tiny --mem 1G --wss 256M --dirty-rate 200M --accel tcg --qemu "$Q10"
wait_gen "$src_log" 2 120 || fail "10.0 source guest does not write its working set"
save --src-qmp "$src_qmp" --multifd 4 "$T/a10.sav"
saved "$T/a10.sav"
[ "$(field method)" = mapped-ram ] || fail "10.0: not mapped-ram: $res"
[ "$(field multifd_channels)" = 4 ] || fail "10.0: not 4 multifd channels: $res"
# mapped-ram: the file is bounded by RAM (plus device state).
[ "$(field stream_bytes)" -le $((1073741824 + 16777216)) ] || fail "10.0: stream larger than RAM: $res"
echo "10.0 save (mapped-ram, multifd 4): $(field stream_bytes) bytes ($(field disk_bytes) on disk), $(field save_ms) ms"
launch_guest dst --guest tiny --mem 1G --incoming --accel tcg --qemu "$Q10"
restore "$T/a10.sav" --dst-qmp "$dst_qmp" --dst-serial "$dst_serial_socket"
restored "10.0 attach"
echo "10.0 restore: $(field load_ms) ms (checksum $(field checksum_ms) ms)"
kill -9 "$dst_pid"
ok "10.0 mapped-ram + multifd 4, 1 GiB writing guest: saved, restored, verified"

save --launch --guest tiny --mem 256M --wss 64M --dirty-rate 50M --accel tcg --qemu "$Q10" "$T/b10.sav"
saved "$T/b10.sav"
[ "$(field method)" = mapped-ram ] || fail "10.0 launch: not mapped-ram: $res"
restore "$T/b10.sav" --launch --qemu "$Q10" --accel tcg
restored "10.0 launch"
save --launch --guest tiny --mem 256M --wss 64M --dirty-rate 50M --accel tcg --qemu "$Q10" \
	--plain "$T/c10.sav"
saved "$T/c10.sav"
[ "$(field method)" = stream ] || fail "10.0 --plain: not the plain stream: $res"
restore "$T/c10.sav" --launch --qemu "$Q10" --accel tcg
restored "10.0 plain"
ok "10.0 launch mode: mapped-ram and --plain saved and restored, verified"

# Refusals: an older QEMU, another RAM size.
restore "$T/b10.sav" --launch --accel tcg
[ "$rc" = 3 ] || fail "10.0 file into 7.2: exit $rc, not 3: $res"
echo "$res" | grep -q "saved by QEMU 10.0.*older" || fail "10.0 file into 7.2: unclear: $res"
launch_guest small --guest tiny --mem 512M --incoming --accel tcg --qemu "$Q10"
restore "$T/a10.sav" --dst-qmp "$small_qmp"
[ "$rc" = 3 ] && echo "$res" | grep -q "KiB of RAM" || fail "RAM size mismatch: exit $rc: $res"
[ "$(status_of "$small_qmp")" = inmigrate ] || fail "refused restore changed the QEMU"
kill -9 "$small_pid"
ok "restore refuses an older QEMU and another RAM size before loading"

# Cross-version: a 7.2 stream restored by 10.0.
restore "$T/b72.sav" --launch --qemu "$Q10" --accel tcg
restored "7.2 file into 10.0"
ok "a 7.2 save restores into QEMU 10.0"
