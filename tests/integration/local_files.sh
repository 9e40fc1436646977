# Local files: --trace makes a new file and refuses an existing one (or a
# symbolic link) unless --trace-overwrite; QEMU's stderr in its runtime
# directory is never written through a link; a job killed while its RAM
# dumps (--verify=memory) and TLS credential copies exist leaves them to
# `qmigrate recover`, which removes them.
. tests/lib.sh

# 1. --trace.
echo "not a trace" > "$T/existing"
$QMIGRATE migrate --launch --guest tiny --mem 64M --accel tcg --trace "$T/existing" \
	> "$T/o1" 2>&1
rc=$?; echo "existing trace: exit $rc: $(cat "$T/o1")"
[ $rc = 2 ] || fail "an existing --trace file: exit $rc, wanted 2"
grep -q "already exists (--trace-overwrite replaces it)" "$T/o1" || fail "unclear: $(cat "$T/o1")"
[ "$(cat "$T/existing")" = "not a trace" ] || fail "the existing file was changed"
ln -s "$T/victim" "$T/link"
echo "victim" > "$T/victim"
$QMIGRATE migrate --launch --guest tiny --mem 64M --accel tcg --trace "$T/link" \
	--trace-overwrite > "$T/o2" 2>&1
rc=$?; echo "symlink trace: exit $rc: $(cat "$T/o2")"
[ $rc = 2 ] || fail "a symlinked --trace: exit $rc, wanted 2"
[ "$(cat "$T/victim")" = victim ] || fail "written through the symbolic link"
$QMIGRATE migrate --launch --guest tiny --mem 128M --dirty-rate 10M --accel tcg \
	--trace "$T/existing" --trace-overwrite --json > "$T/o3" 2>&1 ||
	fail "--trace-overwrite: $(tail -1 "$T/o3")"
head -1 "$T/existing" | grep -q '"type":"config"' || fail "trace not replaced"
[ "$(stat -c %a "$T/existing")" ] || fail "no trace"
$QMIGRATE migrate --launch --guest tiny --mem 128M --dirty-rate 10M --accel tcg --trace "$T/new.jsonl" \
	--json > "$T/o4" 2>&1 || fail "new --trace file: $(tail -1 "$T/o4")"
grep -q '"type":"result"' "$T/new.jsonl" || fail "new trace lacks the result"
ok "--trace: new file, refuses existing or symlink, --trace-overwrite replaces"

# 2. A job killed while comparing RAM (and holding TLS copies for its QEMUs
# of another uid): its dumps and copies stay until qmigrate recover.
$QMIGRATE tls init "$T/tls" --host 127.0.0.1 > /dev/null || fail "tls init"
launch_guest src --guest tiny --mem 1G --wss 64M --dirty-rate 20M --accel tcg
launch_guest dst --guest tiny --mem 1G --incoming --accel tcg
wait_beats "$src_log" 5 30 || fail "source guest does not heartbeat"
$QMIGRATE migrate --src-qmp "$src_qmp" --dst-qmp "$dst_qmp" --verify=memory --tls "$T/tls" \
	--json > "$T/run.jsonl" 2> "$T/run.err" &
mig=$!
i=0
until ls -d /dev/shm/qmigrate-verify-$mig.* > /dev/null 2>&1; do
	i=$((i + 1)); [ $i -gt 1200 ] && fail "no RAM dump directory: $(tail -2 "$T/run.jsonl")"
	alive $mig || fail "qmigrate ended before dumping: $(tail -1 "$T/run.jsonl")"
	sleep 0.05
done
kill -9 $mig
wait $mig 2>/dev/null
dump=$(ls -d /dev/shm/qmigrate-verify-$mig.*)
echo "left by job $mig: $dump ($(stat -c '%U %a' "$dump")): $(ls "$dump" | tr '\n' ' ')"
for f in "$dump"/*; do
	[ -e "$f" ] || continue
	echo "  $(stat -c '%n %U %a' "$f")"
done
copies=$(ls -d /tmp/qmigrate-tls-$mig-* 2>/dev/null)
if [ "$(id -u)" = 0 ] && id qmigrate-qemu > /dev/null 2>&1; then
	[ -n "$copies" ] || fail "no TLS credential copies for the unprivileged QEMUs"
	for c in $copies; do
		echo "  TLS copy $c: $(ls "$c" | tr '\n' ' ')"
		[ "$(stat -c %U "$c"/*-key.pem)" = qmigrate-qemu ] || fail "key copy not QEMU's"
		[ "$(stat -c %a "$c"/*-key.pem)" = 600 ] || fail "key copy mode"
	done
fi
$QMIGRATE recover --job "$mig" > "$T/rec.txt" 2>&1 || fail "recover: $(cat "$T/rec.txt")"
cat "$T/rec.txt"
[ ! -e "$dump" ] || fail "recover left the RAM dumps $dump"
for c in $copies; do [ ! -e "$c" ] || fail "recover left the TLS copy $c"; done
[ "$(status_of "$src_qmp")" = running ] || fail "source not running after recover"
ok "recover removes a dead job's RAM dumps and TLS copies"
