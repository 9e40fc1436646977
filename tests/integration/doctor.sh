# qmigrate doctor on real QEMU pairs: the QEMU 7.2 TCG dirty-bitmap bug
# (and its absence with the RAM workaround), a destination running another
# machine type, a disk missing on the destination, a full port range; and
# the same checks refusing a migration before anything changes.
. tests/lib.sh
HOLD=build/tests/helpers/holdports
doctor() { $QMIGRATE doctor --src-qmp "$src_qmp" --dst-qmp "$dst_qmp" "$@" > "$T/doc.txt"; rc=$?; cat "$T/doc.txt"; }
stop_pair() { kill -9 "$src_pid" "$dst_pid" 2>/dev/null; }

# 1. Aligned RAM under TCG on QEMU < 9.0.
launch_guest src --guest tiny --mem 256M --no-mem-workaround --accel tcg
launch_guest dst --guest tiny --mem 256M --no-mem-workaround --incoming --accel tcg
doctor
grep -q 'WARN   tcg-dirty-bitmap-256k: source' "$T/doc.txt" || fail "aligned RAM not reported"
$QMIGRATE migrate --src-qmp "$src_qmp" --dst-qmp "$dst_qmp" --json > "$T/m.jsonl" 2>/dev/null
rc=$?; echo "migrate refused: exit $rc: $(json_get message "$(tail -1 "$T/m.jsonl")")"
[ $rc = 3 ] || fail "the engine did not refuse the aligned-RAM TCG migration"
grep -q '"type":"finding"' "$T/m.jsonl" || fail "no finding record"
[ "$(status_of "$dst_qmp")" = inmigrate ] || fail "refused, yet the destination was touched"
stop_pair
launch_guest src --guest tiny --mem 256M --accel tcg
launch_guest dst --guest tiny --mem 256M --incoming --accel tcg
doctor
grep -q tcg-dirty-bitmap "$T/doc.txt" && fail "reported despite the workaround"
[ $rc = 0 ] || fail "a clean pair did not pass"
stop_pair

# 2. The destination runs another machine type.
launch_guest src --guest tiny --mem 64M --accel tcg
launch_guest dst --guest tiny --mem 64M --incoming --accel tcg -- -M q35
doctor
grep -q 'REFUSE machine-type-differs' "$T/doc.txt" || fail "machine type mismatch not reported"
[ $rc = 1 ] || fail "exit $rc with a refusal"
stop_pair

# 3. A disk missing on the destination.
qemu-img create -q -f raw "$T/d.img" 1M && qemu-img create -q -f raw "$T/d2.img" 1M
# Launched QEMUs run as qmigrate's unprivileged user: the disks are its own.
chmod 711 "$T"
if [ "$(id -u)" = 0 ] && id qmigrate-qemu > /dev/null 2>&1; then
	chown qmigrate-qemu: "$T/d.img" "$T/d2.img"
fi
launch_guest src --guest tiny --mem 64M --accel tcg -- \
	-drive "file=$T/d.img,if=none,id=d0,format=raw" -device virtio-blk-pci,drive=d0
launch_guest dst --guest tiny --mem 64M --incoming --accel tcg -- \
	-drive "file=$T/d2.img,if=none,id=d0,format=raw" -device virtio-blk-pci,drive=d0
rm "$T/d2.img"
doctor
grep -q "REFUSE disk-missing: the destination's disk d0 uses $T/d2.img" "$T/doc.txt" ||
	fail "missing disk not reported"
stop_pair

# 4. The port range fully occupied.
launch_guest src --guest tiny --mem 64M --accel tcg
launch_guest dst --guest tiny --mem 64M --incoming --accel tcg
$HOLD 127.0.0.1 49200 49203 > "$T/hold.txt" &
PIDS="$PIDS $!"
i=0; until grep -q ready "$T/hold.txt"; do i=$((i+1)); [ $i -gt 50 ] && fail "holdports"; sleep 0.1; done
doctor --port-range 49200-49203 --listen-addr 127.0.0.1
grep -q 'REFUSE port-range-full: no free port in 49200-49203' "$T/doc.txt" || fail "full range not reported"
ok "doctor"
