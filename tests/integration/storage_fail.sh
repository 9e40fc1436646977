# Storage migration failures, each while the disk mirror runs (real QEMU,
# the Linux guest writing stamped blocks): the destination killed, the
# cancel, qmigrate itself killed then `qmigrate recover` (the link cut
# between two namespaces: storage_cut.sh). Each must end with the
# source guest running on its own disk (still writing and reading back
# every block, no corruption), and nothing of ours left in either QEMU:
# no mirror job, no NBD client node, no export, no NBD server listening.
. tests/lib.sh
. tests/integration/storage_lib.sh
linux_guest_or_skip

# 1. The destination killed during the mirror.
start_pair kill
migrate_bg kill
t0=$(date +%s%N)
kill -9 "$dst_pid"
wait $mig; rc=$?
echo "kill: exit $rc $(( ($(date +%s%N) - t0) / 1000000 )) ms after the kill: $(message "$T/kill.jsonl")"
ended kill 4 $rc
no_storage_leftovers kill "$src_qmp"
ok "destination killed during the mirror: source runs on its disk, nothing left"
kill -9 "$src_pid"

# 2. Cancel during the mirror (SIGINT, as ^C does).
start_pair cancel
migrate_bg cancel
t0=$(date +%s%N)
kill -INT $mig
wait $mig; rc=$?
echo "cancel: exit $rc $(( ($(date +%s%N) - t0) / 1000000 )) ms after the signal: $(message "$T/cancel.jsonl")"
ended cancel 5 $rc
no_storage_leftovers cancel "$src_qmp" "$dst_qmp"
[ "$(status_of "$dst_qmp")" = inmigrate ] || fail "cancel: the destination is not waiting any more"
port=$(nbd_port "$T/cancel.jsonl")
ss -Htln | awk '{print $4}' | grep -q ":$port\$" && fail "cancel: the NBD server still listens on $port"
ok "cancel during the mirror: source runs on its disk, nothing left, NBD server stopped"
kill -9 "$src_pid" "$dst_pid"

# 3. qmigrate itself killed (SIGKILL) during the mirror, then
# `qmigrate recover`: the mirror and the NBD pieces are found by name.
start_pair recover
migrate_bg recover
job=$(sed -n 's/.*"job_id":"\([^"]*\)".*/\1/p' "$T/recover.jsonl" | head -1)
[ -n "$job" ] || job=$(sed -n 's/.*"job":"\([^"]*\)".*/\1/p' "$T/recover.jsonl" | head -1)
kill -9 $mig
wait $mig 2>/dev/null
[ -n "$job" ] || job=$($QMIGRATE recover --list | grep "$src_qmp" | awk '{print $1}')
$QMIGRATE recover --job "$job" > "$T/rec.txt" 2>&1 || fail "recover: $(cat "$T/rec.txt")"
cat "$T/rec.txt"
grep -q 'rolled-back' "$T/rec.txt" || fail "recover did not roll back"
grep -q "leftovers were removed" "$T/rec.txt" || fail "recover did not remove the storage leftovers"
ended recover 0 0
no_storage_leftovers recover "$src_qmp"
alive "$dst_pid" && no_storage_leftovers recover "$src_qmp" "$dst_qmp"
ok "qmigrate killed during the mirror: recover removes the mirror and NBD pieces, source runs"
kill -9 "$src_pid" "$dst_pid" 2>/dev/null || true
