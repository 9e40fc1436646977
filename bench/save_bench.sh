#!/bin/sh
# Save/restore and live update, each against a baseline measured in the
# same run:
#  1. save of a 1 GiB tiny guest writing memory (768 MiB working set, all
#     written once): mapped-ram with multifd 4 (QEMU 10.0) against the plain
#     stream on the same QEMU 10.0 (and QEMU 7.2's plain stream for
#     reference); every file restored and verified (stamps, heartbeats);
#  2. qmigrate update (cpr-transfer) against a normal local migration of
#     the same guest (256 MiB and 2 GiB, writing 50 MB/s): guest-observed
#     downtime and bytes moved.
# Medians of RUNS rounds; every round runs each cell once, in a fresh
# random order (interleaved, so the load of a shared machine falls on all
# cells alike). QEMU 10.0 comes from tools/qemu-cache.sh. The
# guest is stopped while it is saved (as virsh save does), so the save
# time is the time to write its RAM (to a file in /tmp).
# Usage: sh bench/save_bench.sh [RUNS]   (default 3)
set -u
cd "$(dirname "$0")/.."
. tests/lib.sh
RUNS=${1:-3}
Q72=$(command -v qemu-system-x86_64) || skip "qemu-system-x86_64 not installed"
Q10=$(sh tools/qemu-cache.sh 10.0 2>"$T/qc.err") || skip "QEMU 10.0: $(tail -1 "$T/qc.err")"
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }

# save_cell NAME QEMU SAVE-OPTIONS: one save and restore of a fresh guest.
save_cell() {
	cell=$1 q=$2; shift 2
	for i in 1; do
		launch_guest src --guest tiny --mem 1G --wss 768M --dirty-rate 200M --accel tcg --qemu "$q"
		wait_gen "$src_log" 2 180 || fail "$cell: the guest does not write its working set"
		rm -f "$T/f.sav"
		res=$($QMIGRATE save --src-qmp "$src_qmp" --json "$@" "$T/f.sav") ||
			fail "$cell: save: $res"
		json_get save_ms "$res" >> "$T/$cell.save"
		json_get stream_bytes "$res" >> "$T/$cell.size"
		json_get disk_bytes "$res" >> "$T/$cell.disk"
		m=$(json_get method "$res")
		launch_guest dst --guest tiny --mem 1G --incoming --accel tcg --qemu "$q"
		res=$($QMIGRATE restore "$T/f.sav" --dst-qmp "$dst_qmp" \
			--dst-serial "$dst_serial_socket" --json) || fail "$cell: restore: $res"
		[ "$(json_get verified "$res")" = true ] || fail "$cell: not verified: $res"
		json_get load_ms "$res" >> "$T/$cell.load"
		kill -9 "$src_pid" "$dst_pid" 2>/dev/null
		rm -f "$T/f.sav"
	done
	echo "  $cell: save $(tail -1 "$T/$cell.save") ms, restore $(tail -1 "$T/$cell.load") ms ($m)"
}
save_sum() { # NAME: the medians of its rounds
	cell=$1
	eval "${cell}_save=$(median < "$T/$cell.save") ${cell}_load=$(median < "$T/$cell.load")"
	eval "${cell}_size=$(median < "$T/$cell.size") ${cell}_disk=$(median < "$T/$cell.disk")"
	echo "  $cell: save $(median < "$T/$cell.save") ms, restore $(median < "$T/$cell.load") ms (saves: $(tr '\n' ' ' < "$T/$cell.save"))"
}

# move_cell NAME COMMAND MEM: one update or migration of a launched guest.
move_cell() {
	cell=$1 cmd=$2 mem=$3
	for i in 1; do
		res=$($QMIGRATE "$cmd" --launch --guest tiny --mem "$mem" --wss 128M --dirty-rate 50M \
			--accel tcg --qemu "$Q10" --json | tail -1) || fail "$cell: $res"
		[ "$(json_get verified "$res")" = true ] || fail "$cell: not verified: $res"
		json_get guest_downtime_ms "$res" >> "$T/$cell.dt"
		json_get transferred_bytes "$res" >> "$T/$cell.bytes"
		if [ "$cmd" = update ]; then json_get total_ms "$res"; else json_get engine_total_ms "$res"; fi >> "$T/$cell.total"
	done
	echo "  $cell: guest downtime $(tail -1 "$T/$cell.dt") ms, $(tail -1 "$T/$cell.bytes") bytes"
}
move_sum() { # NAME: the medians of its rounds
	cell=$1
	eval "${cell}_dt=$(median < "$T/$cell.dt") ${cell}_bytes=$(median < "$T/$cell.bytes") ${cell}_total=$(median < "$T/$cell.total")"
	echo "  $cell: guest downtime $(median < "$T/$cell.dt") ms, $(median < "$T/$cell.bytes") bytes, $(median < "$T/$cell.total") ms (downtimes: $(tr '\n' ' ' < "$T/$cell.dt"))"
}

run_cell() {
	case $1 in
	mr10) save_cell mr10 "$Q10" --multifd 4 ;;
	mr10x1) save_cell mr10x1 "$Q10" --no-multifd ;;
	plain10) save_cell plain10 "$Q10" --plain ;;
	plain72) save_cell plain72 "$Q72" ;;
	upd256) move_cell upd256 update 256M ;;
	mig256) move_cell mig256 migrate 256M ;;
	upd2g) move_cell upd2g update 2G ;;
	mig2g) move_cell mig2g migrate 2G ;;
	esac
}
SAVE_CELLS="mr10 mr10x1 plain10 plain72"
MOVE_CELLS="upd256 mig256 upd2g mig2g"
for c in $SAVE_CELLS; do : > "$T/$c.save"; : > "$T/$c.load"; : > "$T/$c.size"; : > "$T/$c.disk"; done
for c in $MOVE_CELLS; do : > "$T/$c.dt"; : > "$T/$c.bytes"; : > "$T/$c.total"; done
for r in $(seq "$RUNS"); do
	echo "round $r/$RUNS:"
	for c in $(printf '%s\n' $SAVE_CELLS $MOVE_CELLS | shuf); do run_cell "$c"; done
done
echo "save/restore, 1 GiB guest writing 200 MB/s, $RUNS rounds (medians):"
for c in $SAVE_CELLS; do save_sum "$c"; done
echo "update vs migrate (QEMU 10.0, writing 50 MB/s), $RUNS rounds (medians):"
for c in $MOVE_CELLS; do move_sum "$c"; done

echo
echo "summary (ratios against the baseline of the same run)"
printf '  %-34s %8s %8s %12s %12s\n' cell save_ms load_ms stream_bytes disk_bytes
printf '  %-34s %8s %8s %12s %12s\n' "10.0 mapped-ram + multifd 4" "$mr10_save" "$mr10_load" "$mr10_size" "$mr10_disk"
printf '  %-34s %8s %8s %12s %12s\n' "10.0 mapped-ram, one channel" "$mr10x1_save" "$mr10x1_load" "$mr10x1_size" "$mr10x1_disk"
printf '  %-34s %8s %8s %12s %12s\n' "10.0 plain stream (baseline)" "$plain10_save" "$plain10_load" "$plain10_size" "$plain10_disk"
printf '  %-34s %8s %8s %12s %12s\n' "7.2 plain stream" "$plain72_save" "$plain72_load" "$plain72_size" "$plain72_disk"
echo "  save time, mapped-ram+multifd 4 / plain stream (10.0): $(ratio "$mr10_save" "$plain10_save")"
echo "  save time, mapped-ram one channel / plain stream (10.0): $(ratio "$mr10x1_save" "$plain10_save")"
echo "  restore time, mapped-ram+multifd 4 / plain stream (10.0): $(ratio "$mr10_load" "$plain10_load")"
echo "  save time, 7.2 plain / 10.0 plain: $(ratio "$plain72_save" "$plain10_save")"
printf '  %-34s %8s %12s %8s\n' cell downtime bytes total_ms
printf '  %-34s %8s %12s %8s\n' "update 256 MiB" "$upd256_dt" "$upd256_bytes" "$upd256_total"
printf '  %-34s %8s %12s %8s\n' "migrate 256 MiB (baseline)" "$mig256_dt" "$mig256_bytes" "$mig256_total"
printf '  %-34s %8s %12s %8s\n' "update 2 GiB" "$upd2g_dt" "$upd2g_bytes" "$upd2g_total"
printf '  %-34s %8s %12s %8s\n' "migrate 2 GiB (baseline)" "$mig2g_dt" "$mig2g_bytes" "$mig2g_total"
echo "  update / migrate, 256 MiB: downtime $(ratio "$upd256_dt" "$mig256_dt"), bytes $(ratio "$upd256_bytes" "$mig256_bytes"), total $(ratio "$upd256_total" "$mig256_total")"
echo "  update / migrate, 2 GiB:   downtime $(ratio "$upd2g_dt" "$mig2g_dt"), bytes $(ratio "$upd2g_bytes" "$mig2g_bytes"), total $(ratio "$upd2g_total" "$mig2g_total")"
