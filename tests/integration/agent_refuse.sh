# `qmigrate agent` refuses what it must, with a clear error, keeps serving,
# and leaves nothing behind (no destination QEMU, no job journal, no
# runtime directory, no migration port): a client with no certificate,
# one from another CA, a subject not on the allow list, an unknown
# profile, a value outside the profile, a key the profile does not allow,
# malformed, wrong-version and oversized requests, and a client that
# vanishes before the destination ran (removed) or after (kept running).
. tests/lib.sh
. tests/netns.sh
. tests/integration/agent_lib.sh
agent_setup qar

launch_guest src --guest tiny --mem 64M --dirty-rate 5M --accel tcg --netns "$NETNS_A"

refused() { # CASE EXPECTED-TEXT MIGRATE-OPTIONS...
	_c=$1; _w=$2; shift 2
	migrate_to "r" "$src_qmp" "$@"
	_m=$(tail -1 "$T/r.err")
	echo "$_c: exit $MRC: $_m"
	[ $MRC = 3 ] || fail "$_c: exit $MRC, expected 3"
	printf '%s' "$_m" | grep -q "$_w" || fail "$_c: message lacks '$_w'"
	[ "$(status_of "$src_qmp")" = running ] || fail "$_c: source not running"
	assert_clean "$_c"
}

# Certificates.
out=$(peer - hello); echo "no certificate: $out"
case $out in ERROR*) ;; *) fail "no certificate: not refused: $out" ;; esac
grep -q '"result":"tls-refused"' "$T/agent.log" || fail "no certificate: no audit line"
assert_clean "no certificate"
$QMIGRATE tls init "$T/other" --host "$NETNS_ADDR_B" > /dev/null
mkdir "$T/mixed"; cp "$C/ca-cert.pem" "$T/mixed/"; cp "$T/other/client-"*.pem "$T/mixed/"
out=$(peer "$T/mixed" hello); echo "another CA (raw): $out"
case $out in ERROR*) ;; *) fail "another CA: not refused: $out" ;; esac
refused "another CA" "certificate" --profile tiny --agent-tls "$T/other"
assert_clean "another CA"
agent_stop; agent_start --allow ops.example
refused "subject not allowed" "allow list" --profile tiny --agent-tls "$C"
agent_stop; agent_start --allow "$NETNS_ADDR_B"
# The request against the profile.
refused "unknown profile" "no profile 'nosuch'" --profile nosuch --agent-tls "$C"
refused "bad profile name" "not a profile name" --profile ../tiny --agent-tls "$C"
refused "cpus outside" "outside the profile's range" --profile tiny --set cpus=4 --agent-tls "$C"
refused "mem outside" "outside the profile's range" --profile tiny --set mem=64G --agent-tls "$C"
refused "key not allowed" "does not let a request set 'disk'" --profile tiny \
	--set disk=/etc/shadow --agent-tls "$C"
refused "accel not allowed" "not allowed here" --profile tiny --set accel=xen --agent-tls "$C"
# Malformed, wrong version, oversized.
out=$(peer "$C" raw 'this is not json\n'); echo "malformed: $out"
[ "$(jf error "$out")" = bad-request ] || fail "malformed: $out"
out=$(peer "$C" raw '{"op":"hello","version":99}\n'); echo "version: $out"
[ "$(jf error "$out")" = version ] || fail "version: $out"
out=$(peer "$C" oversize); echo "oversized: $(printf '%s' "$out" | cut -c1-200)"
[ "$(jf error "$out")" = too-large ] || fail "oversized: $out"
out=$(peer "$C" raw '{"op":"hello","version":1}\n{"op":"prepare","job":"a/b","profile":"tiny"}\n')
# Requests in the wrong place, a tunnel without the right token, unknown ops.
out=$(peer "$C" rawall '{"op":"hello","version":1}\n{"op":"finish","job":"x"}\n{"op":"nosuch"}\n{"op":"prepare","job":"a/b","profile":"tiny"}\n{"op":"prepare","job":"ok1"}\n{"op":"qmp","job":"x","token":"y"}\n')
echo "wrong place:"; printf '%s\n' "$out" | sed 's/^/  /'
for e in unknown-job bad-request forbidden; do
	printf '%s' "$out" | grep -q "\"error\": \"$e\"" || fail "wrong place: no '$e' reply"
done
[ "$(printf '%s\n' "$out" | wc -l)" = 6 ] || fail "wrong place: expected 6 replies"
assert_clean "malformed requests"
# A client that vanishes after prepare, before any stream: removed.
out=$(peer "$C" prepare gone1 tiny mem=64M); echo "vanish before: $(printf '%s' "$out" | cut -c1-120)"
[ "$(jf status "$out")" = prepared ] || fail "vanish before: $out"
assert_clean "vanish before the destination ran"
grep -q '"job":"gone1","result":"removed"' "$T/agent.log" || fail "vanish before: no 'removed' audit"
# A client that vanishes after the destination ran: kept, running.
# (exec: $! is the client itself, for kill -9)
ip netns exec "$NETNS_A" $PEER "$NETNS_ADDR_B" "$AGENT_PORT" "$C" hold held1 tiny mem=64M > "$T/hold.out" 2>&1 &
hp=$!
i=0; until grep -q '^PORT' "$T/hold.out"; do i=$((i + 1)); [ $i -gt 200 ] && fail "hold: $(cat "$T/hold.out")"; sleep 0.05; done
port=$(sed -n 's/^PORT //p' "$T/hold.out")
$QMIGRATE qmp "$src_qmp" migrate "{\"uri\":\"tcp:$NETNS_ADDR_B:$port\"}" > /dev/null || fail "source migrate"
i=0; until grep -q '^RUNNING' "$T/hold.out"; do i=$((i + 1)); [ $i -gt 600 ] && fail "hold: never ran: $(cat "$T/hold.out")"; sleep 0.05; done
kill -9 $hp; wait $hp 2>/dev/null
i=0; until grep -q '"job":"held1","result":"kept"' "$T/agent.log"; do i=$((i + 1)); [ $i -gt 200 ] && fail "vanish after: no 'kept' audit"; sleep 0.05; done
[ "$(dst_qemus | wc -l)" = 1 ] || fail "vanish after: the destination is gone"
dq=$(ls "$STATE"/vm-*/qmp.sock)
[ "$(status_of "$dq")" = running ] || fail "vanish after: the destination is not running"
[ "$(status_of "$src_qmp")" = postmigrate ] || fail "vanish after: the source is not in postmigrate"
echo "vanish after the destination ran: kept, running"
$QMIGRATE qmp "$dq" quit > /dev/null || fail "vanish after: could not quit the destination"
rm -rf "$STATE"/vm-*
assert_clean "vanish after the destination ran"
ok "every refusal clear, the agent serving, nothing left behind"
