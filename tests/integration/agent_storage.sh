# Storage through the agent: `migrate --to ... --copy-storage-all`. The
# agent creates the destination's image in its profile's disk directory
# (disks.dir) at the source disk's size, gives its QEMU the same device,
# and reserves a second port for the NBD server the migration starts
# there; the Linux guest writes stamped blocks while it moves and reads
# every block back on the destination. Refused with a clear error, nothing
# left: a profile without a "disks" rule (tiny), a disk over the profile's
# max_size, --copy-storage-inc, --transport relay. Then multifd 4 with
# zlib compression through the agent.
. tests/lib.sh
. tests/netns.sh
. tests/integration/storage_lib.sh
. tests/integration/agent_lib.sh
linux_guest_or_skip
PROFILES="$T/profiles"
mkdir -p "$PROFILES"
mkdir -m 711 "$T/disks"
cp examples/profiles/tiny.json "$PROFILES/"
sed "s|/var/lib/qmigrate/disks|$T/disks|; s|\"64G\"|\"256M\"|" examples/profiles/linux.json \
	> "$PROFILES/linux.json"
grep -q "\"dir\": \"$T/disks\"" "$PROFILES/linux.json" || fail "linux.json has no disks.dir to point at $T/disks"
agent_setup qas

# 1. The Linux guest and its 256 MiB disk, copied through the agent.
launch_guest s --guest linux --mem 256M --wss 32M --dirty-rate 4M --disk 256M \
	--disk-write-rate 5M --guest-args "qmig.dfill=4M qmig.dsize=8M" --accel tcg --netns "$NETNS_A"
wait_ready "$s_log" || fail "the source guest did not boot: $(tail -3 "$s_log")"
disk_grows "$s_log" 60 || fail "the source guest does not write its disk"
t0=$(date +%s)
migrate_to st "$s_qmp" --profile linux --agent-tls "$C" --copy-storage-all
res=$(tail -1 "$T/st.jsonl"); echo "storage: exit $MRC: $res" | cut -c1-400
[ $MRC = 0 ] || fail "storage: exit $MRC: $(tail -5 "$T/st.err")"
[ "$(jf status "$res")" = completed ] || fail "storage: not completed"
[ "$(jf via "$res")" = agent ] || fail "storage: not through the agent"
[ "$(jf disks_migrated "$res")" = 1 ] || fail "storage: disks_migrated is not 1"
for c in nbd-server-start block-export-add blockdev-add blockdev-mirror; do
	grep -q "\"command\":\"$c\"" "$T/st.jsonl" || fail "storage: no $c in the plan"
done
# The NBD server and the stream: the agent's two neighbouring ports.
np=$(nbd_port "$T/st.jsonl")
mp=$(grep '"command":"migrate-incoming"' "$T/st.jsonl" | sed -n 's/.*tcp:[^:]*:\([0-9]*\).*/\1/p' | head -1)
[ -n "$np" ] && [ -n "$mp" ] || fail "storage: no NBD ($np) or stream ($mp) port in the plan"
[ $((np - mp)) = 1 ] || [ $((mp - np)) = 1 ] || fail "storage: NBD port $np, stream port $mp: not the agent's pair"
grep '"command":"nbd-server-start"' "$T/st.jsonl" | grep -q "\"host\":\"$NETNS_ADDR_B\"" ||
	fail "storage: the NBD server does not listen on the agent's address"
# The image: in the profile's directory, the source disk's size.
img=$(ls "$T"/disks/*-vdisk0.raw) || fail "storage: no image in the profile's disk directory"
[ "$(stat -c %s "$img")" = 268435456 ] || fail "storage: $img is $(stat -c %s "$img") bytes"
echo "storage: $img, NBD on $np, stream on $mp"
# One copy: the destination, reading back every block the guest wrote.
[ "$(dst_qemus | wc -l)" = 1 ] || fail "storage: expected one destination QEMU"
dq=$(ls "$STATE"/vm-*/qmp.sock)
[ "$(status_of "$dq")" = running ] || fail "storage: the destination does not run"
i=0; while alive "$s_pid"; do i=$((i + 1)); [ $i -gt 200 ] && fail "storage: the source still runs"; sleep 0.05; done
echo "storage: migrated in $(($(date +%s) - t0)) s; waiting for the destination's read-back"
# Two sweeps: the second one reads every block from the destination's disk.
# (The log's tail only: the whole log is megabytes of heartbeats.)
sweeps() { tail -c 4096 "$1" | grep -a '^HB .*dsweep=' | tail -1 | sed 's/.*dsweep=\([0-9]*\).*/\1/'; }
dlog=$(dirname "$dq")/serial.log
s0=$(sweeps "$dlog"); s0=${s0:-0}; dl=$(($(date +%s) + 200))
until [ "$(sweeps "$dlog")" -ge $((s0 + 2)) ] 2>/dev/null; do
	[ "$(date +%s)" -gt $dl ] &&
		fail "storage: the destination guest did not read its disk back twice: $(tail -c 300 "$dlog")"
	sleep 0.2
done
e=$($QMIGRATE qmp "$dq" query-block-exports) || fail "storage: query-block-exports"
case $e in *qmigrate*) fail "storage: an NBD export is left: $e" ;; esac
ip netns exec "$NETNS_B" ss -Htln | awk '{print $4}' | grep -q ":$np\$" &&
	fail "storage: the NBD server still listens on $np"
echo "storage: the destination guest read every block back ($(($(date +%s) - t0)) s after the start)"
$QMIGRATE qmp "$dq" quit > /dev/null || fail "storage: could not quit the destination"
wait_no_dst 10 || fail "storage: destination did not quit"
rm -rf "$STATE"/vm-* "$T"/disks/* # a kept destination's files are its owner's
assert_clean "storage through the agent"
ok "--copy-storage-all through the agent: image made by the profile's rule, NBD on the agent's second port, every block read back"

# 2. Refusals: nothing launched, no image made, the source runs on.
launch_guest t --guest tiny --mem 128M --disk 512M --accel tcg --netns "$NETNS_A"
refused() { # NAME WANT-RC WANT-TEXT OPTIONS...
	_n=$1; _rc=$2; _w=$3; shift 3
	migrate_to "$_n" "$t_qmp" --agent-tls "$C" "$@"
	[ "$MRC" = "$_rc" ] || fail "$_n: exit $MRC, expected $_rc: $(cat "$T/$_n.err")"
	grep -q "$_w" "$T/$_n.err" || fail "$_n: no '$_w' in: $(cat "$T/$_n.err")"
	echo "$_n: $(grep -m1 "$_w" "$T/$_n.err")"
	[ "$(status_of "$t_qmp")" = running ] || fail "$_n: the source is not running"
	[ -z "$(ls "$T/disks")" ] || fail "$_n: an image was left: $(ls "$T/disks")"
	assert_clean "$_n"
}
refused no-rule 3 "allows no disk copies" --profile tiny --copy-storage-all
grep -q '"op":"prepare","job":"[^"]*","result":"not-allowed"' "$T/agent.log" ||
	fail "no-rule: no audit line"
refused too-big 3 "over profile 'linux''s max_size" --profile linux --copy-storage-all
refused inc 2 "only --copy-storage-all" --profile linux --copy-storage-inc
refused relay 2 "transport relay" --profile tiny --transport relay
ok "disk copies refused by a profile without a disks rule and over max_size; -inc and relay refused by the source"

# 3. multifd 4 with zlib compression, through the agent (a guest without
# a disk: the tiny profile's destination has none).
# zlib costs CPU: a small working set written slowly converges even on a
# loaded host; migrated once it has been written whole (generation 2).
launch_guest z --guest tiny --mem 64M --wss 8M --dirty-rate 1M --accel tcg --netns "$NETNS_A"
wait_gen "$z_log" 2 60 || fail "compress: the guest did not write its working set: $(tail -2 "$z_log")"
migrate_to z "$z_qmp" --profile tiny --agent-tls "$C" --multifd 4 --compress zlib
res=$(tail -1 "$T/z.jsonl"); echo "compress: exit $MRC: $res" | cut -c1-300
[ $MRC = 0 ] || fail "compress: exit $MRC: $(tail -5 "$T/z.err")"
[ "$(jf verified "$res")" = true ] || fail "compress: not verified"
[ "$(jf verify_method "$res")" = stamps ] || fail "compress: not verified by stamps"
[ "$(grep -c '"multifd-compression":"zlib"' "$T/z.jsonl")" -ge 2 ] ||
	fail "compress: zlib not set on both QEMUs"
dq=$(ls "$STATE"/vm-*/qmp.sock)
$QMIGRATE qmp "$dq" quit > /dev/null || fail "compress: could not quit the destination"
wait_no_dst 10 || fail "compress: destination did not quit"
rm -rf "$STATE"/vm-*
assert_clean "compress"
ok "multifd 4 with zlib compression through the agent, verified by the agent's stamp check"
