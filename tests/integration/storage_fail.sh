# Storage migration failures, each while the disk mirror runs (real QEMU,
# the Linux guest writing stamped blocks): the destination killed, the
# cancel, the link cut between two namespaces. Each must end with the
# source guest running on its own disk (still writing and reading back
# every block, no corruption), and nothing of ours left in either QEMU:
# no mirror job, no NBD client node, no export, no NBD server listening.
. tests/lib.sh
. tests/integration/storage_lib.sh
. tests/netns.sh
linux_guest_or_skip

# start_pair NAME [NETNS_A NETNS_B]: a source writing 16 MiB of disk first
# (so the mirror, limited to 1 MiB/s, runs for ~16 s) and a destination.
start_pair() {
	launch_guest src --guest linux --mem 256M --wss 16M --dirty-rate 2M --disk 256M \
		--disk-write-rate 2M --guest-args qmig.dfill=16M --accel tcg ${2:+--netns $2}
	launch_guest dst --guest linux --mem 256M --wss 16M --disk 256M --incoming --accel tcg \
		${3:+--netns $3}
	wait_ready "$src_log" || fail "$1: the source guest did not boot: $(tail -3 "$src_log")"
	wait_beats "$src_log" 5 30 || fail "$1: no heartbeats"
	$QMIGRATE qmp "$src_qmp" query-migrate-capabilities > "$T/caps.before"
}

# migrate_bg NAME ARGS...: the migration in the background; waits until
# the mirror is copying.
migrate_bg() {
	_name=$1; shift
	$QMIGRATE migrate --src-qmp "$src_qmp" --dst-qmp "$dst_qmp" --src-serial "$src_serial_socket" \
		--copy-storage-all --disk-bandwidth 1M --json "$@" > "$T/$_name.jsonl" 2> "$T/$_name.err" &
	mig=$!
	_i=0
	until grep -q '"what":"mirroring".*"remaining":[1-9]' "$T/$_name.jsonl" 2>/dev/null; do
		_i=$((_i + 1)); [ $_i -gt 300 ] && fail "$_name: the mirror did not start: $(tail -2 "$T/$_name.jsonl")"
		alive $mig || fail "$_name: the migration ended early: $(tail -1 "$T/$_name.jsonl")"
		sleep 0.1
	done
}

# ended NAME WANT-RC RC: the migration's exit code and its rolled-back source.
ended() {
	_rc=$3
	[ $_rc = "$2" ] || fail "$1: exit $_rc, expected $2: $(tail -3 "$T/$1.err")"
	[ "$(status_of "$src_qmp")" = running ] || fail "$1: the source is not running"
	$QMIGRATE qmp "$src_qmp" query-block | grep -q '"node-name": *"disk0"' ||
		fail "$1: the source's disk is not its own node any more"
	disk_grows "$src_log" 10 || fail "$1: the source guest no longer writes its disk"
	wait_sweeps "$src_log" 1 120 || fail "$1: the source guest does not read its disk back"
	grep -aq CORRUPT "$src_log" && fail "$1: the source guest reports: $(grep CORRUPT "$src_log" | head -2)"
	$QMIGRATE qmp "$src_qmp" query-migrate-capabilities > "$T/caps.after"
	cmp -s "$T/caps.before" "$T/caps.after" || fail "$1: source capabilities not restored"
}

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
kill -9 "$src_pid" "$dst_pid" 2>/dev/null

# 4. The link cut between two namespaces during the mirror.
[ "$(id -u)" = 0 ] || skip "network namespaces need root"
CLEANUP_HOOKS="netns_down"
netns_up "qsf$$" || fail "could not set up the namespaces"
start_pair cut "$NETNS_A" "$NETNS_B"
migrate_bg cut --dst-addr "$NETNS_ADDR_B"
netns_link_down || fail "cut: could not take the link down"
t0=$(date +%s%N)
wait $mig; rc=$?
echo "cut: exit $rc after $(( ($(date +%s%N) - t0) / 1000000 )) ms: $(message "$T/cut.jsonl")"
netns_link_up
message "$T/cut.jsonl" | grep -q "moved nothing" || fail "cut: not the stall message"
ended cut 4 $rc
no_storage_leftovers cut "$src_qmp" "$dst_qmp"
port=$(nbd_port "$T/cut.jsonl")
ip netns exec "$NETNS_B" ss -Htln | awk '{print $4}' | grep -q ":$port\$" &&
	fail "cut: the NBD server still listens on $port"
ok "link cut during the mirror: stall detected, source runs on its disk, nothing left"
