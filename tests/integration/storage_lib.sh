# Helpers of the storage_*.sh tests (source after tests/lib.sh): the Linux
# guest with a disk, and checks that a migration left nothing behind.

# linux_guest_or_skip: build the Linux test guest (cached), or skip.
linux_guest_or_skip() {
	sh tests/guests/linux/build.sh > "$T/build.txt" 2>&1
	_rc=$?
	[ $_rc = 77 ] && skip "the Debian kernel packages cannot be downloaded: $(tail -1 "$T/build.txt")"
	[ $_rc = 0 ] || { cat "$T/build.txt"; fail "building the Linux guest (exit $_rc)"; }
	command -v qemu-img >/dev/null || skip "qemu-img is not installed"
}

wait_ready() { _i=0; until grep -q '^READY linux' "$1" 2>/dev/null; do
	_i=$((_i + 1)); [ $_i -gt 1200 ] && return 1; sleep 0.05; done; }

# dsweep LOG: the last heartbeat's count of full read-back sweeps of the disk.
dsweep() { _v=$(grep -a '^HB .*dsweep=' "$1" 2>/dev/null | tail -1 | sed 's/.*dsweep=\([0-9]*\).*/\1/'); echo "${_v:-0}"; }
# ddisk LOG: blocks the guest has written to its disk.
ddisk() { _v=$(grep -a '^HB .*disk=' "$1" 2>/dev/null | tail -1 | sed 's/.* disk=\([0-9]*\).*/\1/'); echo "${_v:-0}"; }

# wait_sweeps LOG N SECS: until N more full sweeps than now were read back
# (every block written so far verified from the disk the guest now runs on).
wait_sweeps() {
	_s0=$(dsweep "$1"); _s0=${_s0:-0}; _i=0
	while [ "$(dsweep "$1")" -lt $((_s0 + $2)) ]; do
		_i=$((_i + 1)); [ $_i -gt $(($3 * 10)) ] && return 1
		sleep 0.1
	done
}

# disk_grows LOG SECS: the guest is still writing its disk.
disk_grows() {
	_d0=$(ddisk "$1"); _i=0
	while [ "$(ddisk "$1")" = "$_d0" ]; do
		_i=$((_i + 1)); [ $_i -gt $(($2 * 10)) ] && return 1
		sleep 0.1
	done
}

# no_storage_leftovers CASE SRC_QMP [DST_QMP]: no mirror job, no NBD node
# and no export of ours in either QEMU.
no_storage_leftovers() {
	_j=$($QMIGRATE qmp "$2" query-block-jobs) || fail "$1: query-block-jobs"
	case $_j in *qmigrate*) fail "$1: a mirror job is left on the source: $_j" ;; esac
	_n=$($QMIGRATE qmp "$2" query-named-block-nodes) || fail "$1: query-named-block-nodes"
	case $_n in *qmigrate-nbd*) fail "$1: an NBD client node is left on the source" ;; esac
	# The source's own read-only exports (the comparison across hosts).
	_e=$($QMIGRATE qmp "$2" query-block-exports) || fail "$1: query-block-exports (source)"
	case $_e in *qmigrate*) fail "$1: an NBD export is left on the source: $_e" ;; esac
	if [ -n "${3:-}" ]; then
		_e=$($QMIGRATE qmp "$3" query-block-exports) || fail "$1: query-block-exports"
		case $_e in *qmigrate*) fail "$1: an NBD export is left on the destination: $_e" ;; esac
	fi
}

# nbd_port JSONL: the port of the plan's nbd-server-start.
nbd_port() { grep '"command":"nbd-server-start"' "$1" | sed -n 's/.*"port":"\([0-9]*\)".*/\1/p' | head -1; }

# switchover JSONL KEY: a key of the engine's switchover timeline record.
switchover() { json_get "$2" "$(grep '"what":"switchover"' "$1" | tail -1)"; }

# result_field JSONL KEY: a key of the result record (last line).
result_field() { json_get "$2" "$(tail -1 "$1")"; }

# message JSONL: the result's message, whole (json_get stops at a comma).
message() { tail -1 "$1" | sed -n 's/.*"message":"\([^"]*\)".*/\1/p'; }

# ---- failure tests (storage_fail.sh, storage_cut.sh) ----

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
