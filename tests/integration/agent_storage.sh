# Storage through the agent: `migrate --to ... --copy-storage-all`. The
# agent creates the destination's image in its profile's disk directory
# (disks.dir) at the source disk's size, gives its QEMU the same device,
# and reserves a second port for the NBD server the migration starts
# there; the Linux guest writes stamped blocks while it moves and reads
# every block back on the destination. (The refusals and compression:
# agent_options.sh.)
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
agent_setup qad

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
