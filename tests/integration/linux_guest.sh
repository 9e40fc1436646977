# The Linux test guest (Debian's kernel, busybox, our /init): it boots under
# TCG, heartbeats, and serves HTTP through QEMU user networking; then it
# migrates live between two network namespaces while writing memory, and
# its HTTP service answers from the destination afterwards.
. tests/lib.sh
. tests/netns.sh
sh tests/guests/linux/build.sh > "$T/build.txt" 2>&1
rc=$?
[ $rc = 0 ] || cat "$T/build.txt"
[ $rc = 77 ] && skip "the Debian kernel packages cannot be downloaded: $(tail -1 "$T/build.txt")"
[ $rc = 0 ] || fail "building the Linux guest (exit $rc)"
http_get() { # PORT [NETNS]: the body of http://127.0.0.1:PORT/
	if [ -n "${2:-}" ]; then
		ip netns exec "$2" bash -c "exec 3<>/dev/tcp/127.0.0.1/$1 && printf 'GET / HTTP/1.0\r\n\r\n' >&3 && timeout 5 cat <&3"
	else
		bash -c "exec 3<>/dev/tcp/127.0.0.1/$1 && printf 'GET / HTTP/1.0\r\n\r\n' >&3 && timeout 5 cat <&3"
	fi
}
wait_ready() { i=0; until grep -q '^READY linux' "$1" 2>/dev/null; do
	i=$((i + 1)); [ $i -gt 1200 ] && return 1; sleep 0.05; done; }
PORT=$((20000 + $$ % 9000))

# 1. Boot, heartbeats, HTTP through user networking.
t0=$(date +%s%N)
launch_guest g --guest linux --mem 256M --wss 32M --dirty-rate 10M --net --host-port $PORT --accel tcg
wait_ready "$g_log" || fail "the Linux guest did not boot in 60 s: $(tail -5 "$g_log")"
echo "booted in $(( ($(date +%s%N) - t0) / 1000000 )) ms"
wait_beats "$g_log" 20 10 || fail "no heartbeats"
for i in 1 2 3 4 5 6 7 8 9 10; do body=$(http_get $PORT 2>/dev/null) && break; sleep 0.5; done
echo "$body" | grep -q qmigrate-linux-guest || fail "HTTP service does not answer: $body"
grep -q CORRUPT "$g_log" && fail "the guest reports corruption"
kill -9 "$g_pid"
ok "boot, heartbeats, HTTP"

# 2. Live migration between namespaces; HTTP answers on the destination.
[ "$(id -u)" = 0 ] || skip "network namespaces need root"
CLEANUP_HOOKS="netns_down"
netns_up "qml$$" || fail "could not set up the namespaces"
launch_guest src --guest linux --mem 256M --wss 64M --dirty-rate 20M --net --host-port $PORT \
	--netns "$NETNS_A" --accel tcg
launch_guest dst --guest linux --mem 256M --wss 64M --net --host-port $PORT --incoming \
	--netns "$NETNS_B" --accel tcg
wait_ready "$src_log" || fail "source did not boot"
wait_gen "$src_log" 2 30 || fail "source does not write its working set"
http_get $PORT "$NETNS_A" | grep -q qmigrate-linux-guest || fail "no HTTP on the source"
$QMIGRATE migrate --src-qmp "$src_qmp" --dst-qmp "$dst_qmp" --dst-addr "$NETNS_ADDR_B" \
	--src-serial "$src_serial_socket" --dst-serial "$dst_serial_socket" --json \
	> "$T/m.jsonl" 2> "$T/m.err" || fail "migration: $(json_get message "$(tail -1 "$T/m.jsonl")") $(cat "$T/m.err")"
res=$(tail -1 "$T/m.jsonl"); echo "linux: $res" | cut -c1-300
[ "$(json_get status "$res")" = completed ] || fail "not completed"
wait_beats "$dst_log" 20 10 || fail "the destination guest does not heartbeat"
# Bounded retries, as for the first boot: a loaded TCG guest may answer late.
for i in 1 2 3 4 5 6 7 8 9 10; do
	body=$(http_get $PORT "$NETNS_B" 2>/dev/null)
	echo "$body" | grep -q qmigrate-linux-guest && break
	sleep 0.5
done
echo "$body" | grep -q qmigrate-linux-guest || fail "HTTP does not answer on the destination: $body"
grep -q CORRUPT "$dst_log" && fail "the destination guest reports corruption"
alive "$src_pid" && fail "the source QEMU did not quit"
ok "Linux guest migrated; its HTTP service answers on the destination"
