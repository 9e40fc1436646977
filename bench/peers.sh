#!/bin/sh
# make bench-peers: the same guest migrated over the same link, in the
# same run, by
#   libvirt       virsh migrate --live between two libvirtd (9.0, Debian),
#                 one per network namespace, each with its own /run, /var
#                 and /etc (private mount namespaces)
#   qemu-defaults the bare QMP driver (bench/peer_tool drive), QEMU's own
#                 parameters (max-bandwidth 128 MiB/s in 7.2)
#   bare-plan     the bare QMP driver sending what qmigrate's plan sends for
#                 this guest (events on, max-bandwidth unlimited): no doctor,
#                 no plan, no verification, no journal
#   qmigrate      qmigrate migrate, attach mode, its defaults
#   qmigrate-predictive  the same with --policy predictive
# Cells interleaved: every round runs each cell once, in a fresh random
# order. The tiny guest (128 MiB + 8 KiB, 64 MiB working set stamped at
# boot, then idle unless BENCH_DIRTY is set), TCG, two namespaces joined by
# a veth (shaped with tbf when BENCH_LINK is set, e.g. 1gbit).
# Results: bench/results/peers-DATE/ (runs.csv, summary.md, SVG, the
# configuration of each peer).
# Environment: BENCH_REPEATS (default 5), BENCH_CELLS (a subset, in any
# order), BENCH_LINK, BENCH_WSS (64M), BENCH_DIRTY (0), BENCH_OUT.
#
# BENCH_GUEST=linux: network disruption instead (make bench-net). The Linux
# test guest (512 MiB + 8 KiB, idle, make linux-guest) with a virtio-net NIC
# on a tap; each "host" namespace bridges its tap to a veth into a switch
# namespace, where a client namespace also plugs in. From the client,
# bench/peer_tool netprobe pings the guest every 200 ms and keeps a TCP
# session to its httpd that sends a line every 200 ms: longest reply gap,
# pings lost, longest time with data unacknowledged, session survived.
# Cells: qemu-defaults, bare-plan, qmigrate-noverify (--verify none),
# qmigrate (libvirt is left out: it rounds RAM to whole MiB, which QEMU 7.2
# under TCG cannot migrate safely for a Linux guest).
set -u
cd "$(dirname "$0")/.."
ROOT=$PWD
REPEATS=${BENCH_REPEATS:-5}
GUEST=${BENCH_GUEST:-tiny}
if [ "$GUEST" = linux ]; then
	CELLS=${BENCH_CELLS:-qemu-defaults bare-plan qmigrate-noverify qmigrate}
else
	CELLS=${BENCH_CELLS:-libvirt qemu-defaults bare-plan qmigrate qmigrate-predictive}
fi
WSS=${BENCH_WSS:-64M}
DIRTY=${BENCH_DIRTY:-0}
LINK=${BENCH_LINK:-}
OUT=${BENCH_OUT:-bench/results/peers-$(date +%Y%m%d-%H%M%S)}
PT=$ROOT/build/bench/peer_tool
QM=$ROOT/tools/qmigrate
TINY=$ROOT/tests/guests/tiny/tiny.elf
QEMU=$(command -v qemu-system-x86_64)
# 129 MiB for libvirt, which rounds guest RAM to whole MiB, so to a
# multiple of 256 KiB: QEMU 7.2's TCG dirty-bitmap bug (DESIGN.md) can then
# lose dirty pages, and qmigrate's check of the guest catches it (a stale
# header page, seen here). The peers driven by QMP get the doctor's
# workaround, 8 KiB more (129 MiB + 8 KiB), which changes no timing.
LV_MEM_KIB=132096
MEM_KIB=132104
APPEND="rate=$(echo "$DIRTY" | sed 's/M$/000000/') hb=1 wss=$(($(echo "$WSS" | sed 's/M$//') * 1048576))"
KERNEL_ARGS="-kernel $TINY"
if [ "$GUEST" = linux ]; then
	LDIR=${QMIGRATE_LINUX_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/qmigrate/linux}
	[ -r "$LDIR/vmlinux" ] && [ -r "$LDIR/initramfs.cpio.gz" ] ||
		{ echo "bench-peers: the Linux guest is not built: make linux-guest" >&2; exit 1; }
	MEM_KIB=524296 # 512 MiB + 8 KiB
	APPEND="console=ttyS0 quiet qmig.rate=0 qmig.hb=5 qmig.net=1"
	KERNEL_ARGS="-kernel $LDIR/vmlinux -initrd $LDIR/initramfs.cpio.gz"
	GUEST_IP=10.0.2.15 GUEST_MAC=52:54:00:12:34:56
fi

[ "$(id -u)" = 0 ] || { echo "bench-peers: needs root (namespaces, libvirtd)" >&2; exit 1; }
for x in "$PT" "$QM" "$TINY" "$QEMU"; do
	[ -x "$x" ] || [ -r "$x" ] || { echo "bench-peers: $x missing (make all build/bench/peer_tool)" >&2; exit 1; }
done
case " $CELLS " in *" libvirt "*)
	command -v virsh >/dev/null && command -v libvirtd >/dev/null ||
		{ echo "bench-peers: libvirt missing: sh tools/deps.sh bench" >&2; exit 1; } ;;
esac

W=$(mktemp -d /tmp/qmb-peers.XXXXXX)
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
. tests/netns.sh
PIDS=""
LVPIDS=""
cleanup() {
	for p in $PIDS; do kill -9 "$p" 2>/dev/null; done
	for p in $LVPIDS; do kill "$p" 2>/dev/null; done
	for p in $LVPIDS; do
		i=0
		while kill -0 "$p" 2>/dev/null && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
	done
	for ns in ${NETNS_EXTRA:-}; do
		p=$(ip netns pids "$ns" 2>/dev/null); [ -n "$p" ] && kill $p 2>/dev/null
		ip netns del "$ns" 2>/dev/null
	done
	netns_down
	rm -rf "$W"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
netns_up "qmp$$" || exit 1
[ -n "$LINK" ] && { netns_shape "$LINK" || exit 1; }
A=$NETNS_A B=$NETNS_B
NIC=
if [ "$GUEST" = linux ]; then
	# The guests' LAN: a tap bridged to a veth on each host, both veths and
	# the client's in a switch namespace.
	S=qmp$$-s C=qmp$$-c
	ip netns add "$S" && ip netns add "$C" || exit 1
	NETNS_EXTRA="$S $C"
	ip -n "$S" link add br0 type bridge && ip -n "$S" link set br0 up || exit 1
	for h in a b; do
		ns=$A; [ $h = b ] && ns=$B
		ip -n "$ns" link add qmbbr type bridge &&
		ip -n "$ns" tuntap add qmbtap-$h mode tap &&
		ip -n "$ns" link set qmbtap-$h master qmbbr &&
		ip -n "$ns" link add qmbup netns "$ns" type veth peer name up-$h netns "$S" &&
		ip -n "$ns" link set qmbup master qmbbr &&
		ip -n "$S" link set up-$h master br0 &&
		ip -n "$ns" link set qmbtap-$h up && ip -n "$ns" link set qmbup up &&
		ip -n "$ns" link set qmbbr up && ip -n "$S" link set up-$h up || exit 1
	done
	ip -n "$C" link add eth0 type veth peer name up-c netns "$S" &&
	ip -n "$S" link set up-c master br0 && ip -n "$S" link set up-c up &&
	ip -n "$C" addr add 10.0.2.100/24 dev eth0 && ip -n "$C" link set eth0 up &&
	ip -n "$C" link set lo up || exit 1
	NIC=1
fi

# ---- libvirt: one daemon per namespace, private /run, /var, /etc --------
lv_start() { # NAME NETNS
	d=$W/lv-$1
	for x in run lib cache log etc; do mkdir -p "$d/$x"; done
	cat > "$d/etc/qemu.conf" <<EOF
user = "root"
group = "root"
dynamic_ownership = 0
remember_owner = 0
security_driver = "none"
namespaces = [ ]
cgroup_controllers = [ ]
stdio_handler = "file"
EOF
	cat > "$d/etc/libvirtd.conf" <<EOF
unix_sock_rw_perms = "0700"
auth_unix_rw = "none"
auth_unix_ro = "none"
log_filters = "1:qemu.qemu_monitor_json"
log_outputs = "1:file:$d/libvirtd.log"
EOF
	ip netns exec "$2" unshare -m --propagation private sh -c "
		mkdir -p /run/libvirt /var/lib/libvirt /var/cache/libvirt /var/log/libvirt /etc/libvirt &&
		mount --bind $d/run /run/libvirt && mount --bind $d/lib /var/lib/libvirt &&
		mount --bind $d/cache /var/cache/libvirt && mount --bind $d/log /var/log/libvirt &&
		mount --bind $d/etc /etc/libvirt && exec libvirtd -f /etc/libvirt/libvirtd.conf -p /run/libvirt/libvirtd.pid" \
		> "$d/stderr" 2>&1 &
	LVPIDS="$LVPIDS $!"
	i=0
	until virsh -q -c "qemu+unix:///system?socket=$d/run/libvirt-sock" version >/dev/null 2>&1; do
		i=$((i + 1))
		[ $i -lt 300 ] || { echo "bench-peers: libvirtd $1 did not start: $(tail -3 "$d/stderr")" >&2; exit 1; }
		sleep 0.1
	done
}
LA="qemu+unix:///system?socket=$W/lv-a/run/libvirt-sock"
LB="qemu+unix:///system?socket=$W/lv-b/run/libvirt-sock"
case " $CELLS " in *" libvirt "*) lv_start a "$A"; lv_start b "$B" ;; esac

UUID=$(cat /proc/sys/kernel/random/uuid)
domxml() { # SERIAL-SOCKET
	cat <<EOF
<domain type='qemu'>
  <name>qmb-$$</name>
  <uuid>$UUID</uuid>
  <memory unit='KiB'>$LV_MEM_KIB</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <kernel>$TINY</kernel>
    <cmdline>$APPEND</cmdline>
  </os>
  <on_poweroff>destroy</on_poweroff>
  <devices>
    <emulator>$QEMU</emulator>
    <serial type='unix'><source mode='bind' path='$1'/></serial>
    <controller type='usb' model='none'/>
    <memballoon model='none'/>
  </devices>
</domain>
EOF
}

# ---- our own QEMUs: qmigrate launch's command line for the tiny guest ------
qemu_argv() { # NAME [incoming]
	echo "$QEMU -display none -nodefaults -no-user-config -accel tcg -m ${MEM_KIB}k" \
	     "-qmp unix:$W/$1.qmp,server=on,wait=off" \
	     "-chardev socket,id=ser0,path=$W/$1.ser,server=on,wait=off -serial chardev:ser0" \
	     "$KERNEL_ARGS -append '$APPEND'${2:+ -incoming defer}" \
	     "${NIC:+-netdev tap,id=n0,ifname=$(nic_of "$1"),script=no,downscript=no}" \
	     "${NIC:+-device virtio-net-pci,netdev=n0,romfile=,mac=$GUEST_MAC}"
}
nic_of() { [ "$1" = src ] && echo qmbtap-a || echo qmbtap-b; }
qemu_start() { # NETNS NAME [incoming]
	rm -f "$W/$2.qmp" "$W/$2.ser"
	# exec: $! is QEMU itself, so qemu_stop kills it.
	(eval "exec ip netns exec $1 $(qemu_argv "$2" ${3:-})") > "$W/$2.log" 2>&1 &
	PIDS="$PIDS $!"
	eval "pid_$2=$!"
	i=0
	until [ -S "$W/$2.qmp" ]; do
		i=$((i + 1))
		[ $i -lt 200 ] || { echo "bench-peers: QEMU $2 did not start: $(cat "$W/$2.log")" >&2; return 1; }
		sleep 0.05
	done
}
qemu_stop() { for p in "$@"; do kill -9 "$p" 2>/dev/null; wait "$p" 2>/dev/null; done; }

# The client's probes (BENCH_GUEST=linux): started once the guest answers,
# stopped 3 s after the migration returned (TCP retransmits back off).
probe_start() {
	rm -f "$W/probe.out" "$W/probe.err"
	ip netns exec "$C" "$PT" netprobe "$GUEST_IP" 80 > "$W/probe.out" 2> "$W/probe.err" &
	PPID_=$!
	i=0
	until grep -q ready "$W/probe.err" 2>/dev/null; do
		i=$((i + 1))
		kill -0 "$PPID_" 2>/dev/null && [ $i -lt 1200 ] ||
			{ echo "bench-peers: the guest does not answer on the network: $(cat "$W/probe.err")" >&2; kill "$PPID_" 2>/dev/null; return 1; }
		sleep 0.05
	done
}
probe_end() {
	sleep 3
	kill "$PPID_" 2>/dev/null
	wait "$PPID_" 2>/dev/null
	pr=$(cat "$W/probe.out")
	pgap=$(jget ping_max_gap_ms "$pr"); plost=$(jget ping_lost "$pr")
	tgap=$(jget tcp_max_unacked_ms "$pr"); tsurv=$(jget tcp_survived "$pr")
}

# The heartbeat watcher: guest-observed downtime. Returns once the source
# guest beats (so it has booted and stamped its working set).
# With TAP, qmigrate reads the guest's serial line through the watcher (its
# --src-serial/--dst-serial: heartbeats, the guest's check of its memory).
watch_start() { # SRC-SERIAL DST-SERIAL [TAP]
	rm -f "$W/watch.out" "$W/watch.err"
	"$PT" watch "$1" "$2" 300 ${3:+--tap-src "$W/src.tap" --tap-dst "$W/dst.tap"} \
		> "$W/watch.out" 2> "$W/watch.err" &
	WPID=$!
	i=0
	until grep -q ready "$W/watch.err" 2>/dev/null; do
		i=$((i + 1))
		[ $i -lt 2400 ] || { echo "bench-peers: no heartbeat from $1" >&2; return 1; }
		sleep 0.05
	done
}
watch_end() { # -> gdt (guest downtime ms) and gmax (largest beat gap), or empty
	i=0
	while kill -0 "$WPID" 2>/dev/null && [ $i -lt 200 ]; do sleep 0.05; i=$((i + 1)); done
	kill "$WPID" 2>/dev/null
	wait "$WPID" 2>/dev/null
	gdt=$(sed -n 's/.*"guest_downtime_ms":\([0-9.]*\).*/\1/p' "$W/watch.out")
	gmax=$(sed -n 's/.*"guest_max_gap_ms":\([0-9.]*\).*/\1/p' "$W/watch.out")
}
jget() { echo "$2" | sed -n "s/.*\"$1\":\(-\{0,1\}[0-9.]*\).*/\1/p" | head -1; }
# The QEMU timestamp (us) of a MIGRATION event with that status in a file.
ev_qemu_us() { # FILE SIDE STATUS  (qmigrate --json records)
	grep "\"side\":\"$2\",\"event\":\"MIGRATION\"" "$1" | grep "\"status\":\"$3\"" | head -1 |
		sed -n 's/.*"qemu_us":\([0-9]*\).*/\1/p'
}
# libvirt logs each QMP event it receives, with QEMU's timestamp.
lv_ev_us() { # LOG EVENT [STATUS]
	grep 'QEMU_MONITOR_RECV_EVENT' "$1" | grep "\"event\": *\"$2\"" |
		{ if [ -n "${3:-}" ]; then grep "\"status\": *\"$3\""; else cat; fi; } | tail -1 |
		sed -n 's/.*"seconds": *\([0-9]*\), *"microseconds": *\([0-9]*\).*/\1 \2/p' |
		awk '{printf "%.0f", $1 * 1000000 + $2}'
}

PORT=49400
SER="--src-serial $W/src.tap --dst-serial $W/dst.tap"
echo "cell,repeat,order,status,wall_ms,before_ms,after_ms,qemu_total_ms,overhead_ms,guest_downtime_ms,guest_max_gap_ms,qemu_downtime_ms,bytes,cmd_cpu_ms,engine_cpu_ms,q_startup_ms,q_prepare_ms,q_negotiate_ms,q_start_ms,q_precopy_ms,q_switchover_ms,q_confirm_ms,q_finish_ms,ping_max_gap_ms,ping_lost,tcp_max_unacked_ms,tcp_survived,q_caps_ms,q_doctor_ms,q_plan_ms,q_verify_ms" > "$OUT/runs.csv"

run_cell() { # CELL ROUND ORDER
	cell=$1 r=$2 o=$3
	PORT=$((PORT + 1))
	uri=tcp:$NETNS_ADDR_B:$PORT
	status=setup-failed phases=,,,,,,, items=,,, pgap= plost= tgap= tsurv= wall= before= after= qtot= gdt= gmax= qdt= bytes= cpu= ecpu=
	case $cell in
	libvirt)
		domxml "$W/lv-src.ser" > "$W/src.xml"
		domxml "$W/lv-dst.ser" > "$W/dst.xml"
		rm -f "$W/lv-src.ser" "$W/lv-dst.ser"
		: > "$W/lv-a/libvirtd.log"; : > "$W/lv-b/libvirtd.log"
		virsh -q -c "$LA" create "$W/src.xml" > "$W/virsh.out" 2>&1 ||
			{ echo "bench-peers: virsh create: $(cat "$W/virsh.out")" >&2; return; }
		watch_start "$W/lv-src.ser" "$W/lv-dst.ser" || { virsh -q -c "$LA" destroy "qmb-$$" >/dev/null 2>&1; return; }
		: > "$W/lv-a/libvirtd.log"; : > "$W/lv-b/libvirtd.log"
		status=failed
		res=$("$PT" run virsh -q -c "$LA" migrate --live --xml "$W/dst.xml" \
			--migrateuri "tcp://$NETNS_ADDR_B:$PORT" --listen-address "$NETNS_ADDR_B" \
			"qmb-$$" "$LB" 2> "$W/virsh.out")
		watch_end
		if [ "$(jget exit "$res")" = 0 ]; then
			status=completed
			t0=$(jget start_us "$res"); t1=$(jget end_us "$res")
			act=$(lv_ev_us "$W/lv-b/libvirtd.log" MIGRATION active)
			done_us=$(lv_ev_us "$W/lv-a/libvirtd.log" MIGRATION completed)
			stop=$(lv_ev_us "$W/lv-a/libvirtd.log" STOP)
			res_us=$(lv_ev_us "$W/lv-b/libvirtd.log" RESUME)
			[ -n "$act" ] && before=$(( (act - t0) / 1000 ))
			[ -n "$done_us" ] && after=$(( (t1 - done_us) / 1000 ))
			[ -n "$act" ] && [ -n "$done_us" ] && qtot=$(( (done_us - act) / 1000 ))
			[ -n "$stop" ] && [ -n "$res_us" ] && qdt=$(( (res_us - stop) / 1000 ))
			virsh -c "$LB" domjobinfo --completed "qmb-$$" > "$W/jobinfo" 2>&1
			bytes=$(awk -F: '/^(Data|Memory) processed/ {print $2; exit}' "$W/jobinfo" |
				awk '{v=$1; u=$2; m=(u=="KiB")?1024:(u=="MiB")?1048576:(u=="GiB")?1073741824:1; printf "%.0f", v*m}')
			cp "$W/jobinfo" "$OUT/libvirt-jobinfo-$r.txt"
		else
			echo "bench-peers: libvirt #$r: $(cat "$W/virsh.out")" >&2
		fi
		wall=$(jget wall_ms "$res"); cpu=$(awk -v u="$(jget user_ms "$res")" -v s="$(jget sys_ms "$res")" 'BEGIN {print u + s}')
		[ "$r" = 1 ] && { cp "$W/lv-a/libvirtd.log" "$OUT/libvirt-a-1.log"; cp "$W/lv-b/libvirtd.log" "$OUT/libvirt-b-1.log"; cp "$W/src.xml" "$OUT/libvirt-domain.xml"; cp "$W/lv-a/log/qemu/qmb-$$.log" "$OUT/libvirt-qemu-cmdline.log" 2>/dev/null; }
		virsh -q -c "$LB" destroy "qmb-$$" > /dev/null 2>&1
		virsh -q -c "$LA" destroy "qmb-$$" > /dev/null 2>&1
		;;
	*)
		qemu_start "$A" src || return
		qemu_start "$B" dst incoming || { qemu_stop "$pid_src"; return; }
		tap=; case $cell in qmigrate*) tap=1 ;; esac
		if ! watch_start "$W/src.ser" "$W/dst.ser" $tap; then qemu_stop "$pid_src" "$pid_dst"; return; fi
		if [ -n "$NIC" ] && ! probe_start; then qemu_stop "$pid_src" "$pid_dst"; return; fi
		status=failed
		case $cell in
		qemu-defaults) "$PT" run "$PT" drive "$W/src.qmp" "$W/dst.qmp" "$uri" 2> "$W/cmd.err" > "$W/cmd.out" ;;
		bare-plan) "$PT" run "$PT" drive "$W/src.qmp" "$W/dst.qmp" "$uri" --max-bandwidth 68719476736 2> "$W/cmd.err" > "$W/cmd.out" ;;
		qmigrate) "$PT" run "$QM" migrate --src-qmp "$W/src.qmp" --dst-qmp "$W/dst.qmp" --dst-addr "$NETNS_ADDR_B" $SER --json 2> "$W/cmd.err" > "$W/cmd.out" ;;
		qmigrate-noverify) "$PT" run "$QM" migrate --src-qmp "$W/src.qmp" --dst-qmp "$W/dst.qmp" --dst-addr "$NETNS_ADDR_B" $SER --verify none --json 2> "$W/cmd.err" > "$W/cmd.out" ;;
		qmigrate-predictive) "$PT" run "$QM" migrate --src-qmp "$W/src.qmp" --dst-qmp "$W/dst.qmp" --dst-addr "$NETNS_ADDR_B" $SER --policy predictive --json 2> "$W/cmd.err" > "$W/cmd.out" ;;
		esac
		# peer_tool run: its line on stdout, the command's output on stderr.
		watch_end
		[ -n "$NIC" ] && probe_end
		run=$(tail -1 "$W/cmd.out")
		wall=$(jget wall_ms "$run"); cpu=$(awk -v u="$(jget user_ms "$run")" -v s="$(jget sys_ms "$run")" 'BEGIN {print u + s}')
		t0=$(jget start_us "$run"); t1=$(jget end_us "$run")
		if [ "$(jget exit "$run")" = 0 ]; then
			status=completed
			case $cell in
			qmigrate*)
				act=$(ev_qemu_us "$W/cmd.err" destination active)
				done_us=$(ev_qemu_us "$W/cmd.err" source completed)
				last=$(grep '"status":"completed"' "$W/cmd.err" | grep engine_cpu_ms | tail -1)
				qdt=$(jget downtime_ms "$last"); bytes=$(jget transferred_bytes "$last")
				ecpu=$(jget engine_cpu_ms "$last")
				# qmigrate's time itemised by its own phase records: start-up and
				# exit of the process, then each phase of the engine.
				phases=$(awk -v wall="$(jget wall_ms "$run")" '
					/"type":"phase"/ {
						match($0, /"from":"[a-z]*"/); f = substr($0, RSTART + 8, RLENGTH - 9)
						match($0, /"t_ms":[0-9]*/); t = substr($0, RSTART + 7, RLENGTH - 7) + 0
						d[f] = t - prev; prev = t }
					/"type":"result"/ { match($0, /"t_ms":[0-9]*/); end = substr($0, RSTART + 7) + 0 }
					END { printf "%.1f,%s,%s,%s,%s,%s,%s,%s", wall - end, d["prepare"], d["negotiate"],
						d["start"], d["precopy"], d["switchover"], d["confirm"], d["finish"] }' "$W/cmd.err")
				# Inside negotiate: capability queries, doctor, plan; and the
				# verification in confirm (the guest's own check).
				tm=$(grep -m1 '"type":"timing"' "$W/cmd.err")
				items="$(jget caps_ms "$tm"),$(jget doctor_ms "$tm"),$(jget plan_ms "$tm"),$(jget verify_ms "$last")"
				[ "$r" = 1 ] && grep -m1 '"type":"config"' "$W/cmd.err" > "$OUT/$cell-config.json" ;;
			*)
				d=$(grep '"src_completed_us"' "$W/cmd.err" | tail -1)
				act=$(jget dst_active_us "$d"); done_us=$(jget src_completed_us "$d")
				qdt=$(jget downtime_ms "$d"); bytes=$(jget transferred_bytes "$d") ;;
			esac
			[ -n "$act" ] && [ "$act" != 0 ] && before=$(( (act - t0) / 1000 ))
			[ -n "$done_us" ] && [ "$done_us" != 0 ] && after=$(( (t1 - done_us) / 1000 ))
			[ -n "$act" ] && [ -n "$done_us" ] && qtot=$(( (done_us - act) / 1000 ))
		else
			echo "bench-peers: $cell #$r failed: $(grep -v '^{' "$W/cmd.err" | tail -3)" \
				"(source QEMU: $(tail -2 "$W/src.log"); destination QEMU: $(tail -2 "$W/dst.log"))" >&2
		fi
		cp "$W/cmd.err" "$OUT/run-$cell-$r.log" # the command's records (qmigrate: JSONL)
		if [ "$r" = 1 ]; then
			qemu_argv src > "$OUT/$cell-qemu-cmdline.txt"
			qemu_argv dst incoming >> "$OUT/$cell-qemu-cmdline.txt"
		fi
		qemu_stop "$pid_src" "$pid_dst"
		;;
	esac
}

# One row per run, whatever happened (a run that could not even start is
# "setup-failed", never left out).
row() { # CELL ROUND ORDER
	ovh=
	[ -n "$wall" ] && [ -n "$qtot" ] && ovh=$(awk -v w="$wall" -v q="$qtot" 'BEGIN {printf "%.1f", w - q}')
	echo "$1,$2,$3,$status,$wall,$before,$after,$qtot,$ovh,$gdt,$gmax,$qdt,$bytes,$cpu,$ecpu,$phases,$pgap,$plost,$tgap,$tsurv,$items" >> "$OUT/runs.csv"
	echo "bench-peers: round $2: $1 $status wall ${wall:-?} ms, overhead ${ovh:-?} ms, guest downtime ${gdt:-?} ms" >&2
}

{
	echo "# How each peer was run (rerun any cell by hand with these)"
	echo "guest: tiny, -m ${MEM_KIB}k, -append '$APPEND', TCG; link: veth between namespaces $A and $B, ${LINK:-unshaped}"
	echo "libvirt:  virsh -c $LA migrate --live --xml dst.xml --migrateuri tcp://$NETNS_ADDR_B:PORT --listen-address $NETNS_ADDR_B qmb-$$ $LB"
	echo "          (libvirtd 9.0 in each namespace with the qemu.conf in libvirt-qemu.conf; domain in libvirt-domain.xml)"
	echo "qemu-defaults: $PT drive SRC.qmp DST.qmp tcp:$NETNS_ADDR_B:PORT"
	echo "bare-plan: $PT drive SRC.qmp DST.qmp tcp:$NETNS_ADDR_B:PORT --max-bandwidth 68719476736"
	echo "qmigrate: $QM migrate --src-qmp SRC.qmp --dst-qmp DST.qmp --dst-addr $NETNS_ADDR_B --src-serial SRC.tap --dst-serial DST.tap --json"
	echo "          (SRC.tap, DST.tap: the guest's serial sockets through bench/peer_tool watch, which times the"
	echo "          heartbeats for every peer alike; qmigrate's defaults then verify the guest's memory)"
	echo "          (RAM: 129 MiB + 8 KiB for the peers driven by QMP, the doctor's workaround for QEMU 7.2's TCG"
	echo "          dirty-bitmap bug; libvirt gets 129 MiB, it allows only whole MiB)"
	echo "qmigrate-predictive: the same with --policy predictive"
	echo "QEMU (all but libvirt): $(qemu_argv src)"
	echo "repeats: $REPEATS, cells interleaved in a fresh random order every round"
	qemu-system-x86_64 --version | head -1
	virsh --version 2>/dev/null | sed 's/^/libvirt /'
} > "$OUT/config.txt"
[ -f "$W/lv-a/etc/qemu.conf" ] && cp "$W/lv-a/etc/qemu.conf" "$OUT/libvirt-qemu.conf"

for r in $(seq "$REPEATS"); do
	o=0
	for cell in $(for c in $CELLS; do echo "$c"; done | shuf); do
		o=$((o + 1))
		run_cell "$cell" "$r" "$o"
		row "$cell" "$r" "$o"
	done
done
[ -n "${BENCH_NO_SUMMARY:-}" ] && exit 0
"$QM" bench --summarize "$OUT/runs.csv" --baseline bare-plan --out "$OUT" > /dev/null || exit 1
echo "results in $OUT:"
ls "$OUT"
cat "$OUT/summary.md"
