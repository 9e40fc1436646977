# Migration between two "hosts" through `qmigrate agent`: namespace A runs
# the source QEMU and `qmigrate migrate --to qmigrate+tls://...` (given no
# destination QMP socket), namespace B the agent, which launches the
# destination from its tiny profile. Plain stream, TLS stream, TLS +
# multifd 4; the agent verifies the destination's memory stamps each time.
. tests/lib.sh
. tests/netns.sh
. tests/integration/agent_lib.sh
agent_setup qag

run() { # NAME MIGRATE-OPTIONS...
	_name=$1; shift
	launch_guest src --guest tiny --mem 128M --dirty-rate 20M --accel tcg --netns "$NETNS_A"
	migrate_to "$_name" "$src_qmp" --profile tiny "$@"
	res=$(tail -1 "$T/$_name.jsonl")
	echo "$_name: exit $MRC: $(printf '%s' "$res" | cut -c1-260)"
	[ $MRC = 0 ] || fail "$_name: exit $MRC: $res $(cat "$T/$_name.err")"
	[ "$(jf status "$res")" = completed ] || fail "$_name: $res"
	[ "$(jf via "$res")" = agent ] || fail "$_name: no via=agent"
	[ "$(jf verified "$res")" = true ] || fail "$_name: not verified"
	[ "$(jf verify_method "$res")" = stamps ] || fail "$_name: not verified by stamps"
	grep -q '"dst-qmp"\|--dst-qmp' "$T/$_name.err" && fail "$_name: a dst QMP was used"
	# The source quit; exactly one QEMU runs: the agent's, in namespace B.
	i=0; while alive "$src_pid"; do i=$((i + 1)); [ $i -gt 100 ] && fail "$_name: source still runs"; sleep 0.05; done
	[ "$(dst_qemus | wc -l)" = 1 ] || fail "$_name: expected one destination QEMU, have $(dst_qemus | wc -l)"
	dq=$(sed -n 's/.*"qmp":"\([^"]*\)".*/\1/p' "$T/$_name.jsonl" | tail -1)
	[ "$(status_of "$dq")" = running ] || fail "$_name: destination not running"
	grep -q "\"job\":\"[^\"]*\",\"result\":\"kept\"" "$T/agent.log" || fail "$_name: no 'kept' audit"
	[ -z "$(ls "$STATE/jobs")" ] || fail "$_name: job journal left"
	$QMIGRATE qmp "$dq" quit > /dev/null || fail "$_name: could not quit the destination"
	wait_no_dst 10 || fail "$_name: destination did not quit"
	rm -rf "$STATE"/vm-* # a kept destination's runtime dir is its owner's
}

run plain --agent-tls "$C"
run tls --tls "$C"
grep -q '"qom-type":"tls-creds-x509"' "$T/tls.jsonl" || fail "tls: no tls-creds-x509 object"
run tls-multifd4 --tls "$C" --multifd 4
grep -q '"multifd-channels":4' "$T/tls-multifd4.jsonl" || fail "multifd 4 not planned"
# --dry-run: both halves of the plan, the destination's through the agent.
launch_guest src --guest tiny --mem 128M --accel tcg --netns "$NETNS_A"
ip netns exec "$NETNS_A" $QMIGRATE migrate --src-qmp "$src_qmp" --to "$(agent_to)" --profile tiny \
	--agent-tls "$C" --dry-run > "$T/dry.out" 2>&1 || fail "dry run: $(cat "$T/dry.out")"
grep -q "^destination  migrate-incoming.*tcp:$NETNS_ADDR_B:" "$T/dry.out" || fail "dry run: no destination half"
grep -q "^source       migrate .*tcp:$NETNS_ADDR_B:" "$T/dry.out" || fail "dry run: no source half"
[ "$(status_of "$src_qmp")" = running ] || fail "dry run: the source changed"
assert_clean "dry run"
echo "dry run: both halves planned, nothing left on host B"
# The agent's per-migration bandwidth limit lowers the source's.
agent_stop; agent_start --max-bandwidth 400M
migrate_to bw "$src_qmp" --profile tiny --agent-tls "$C" --dry-run
grep -q '"max-bandwidth":419430400' "$T/bw.jsonl" || fail "the agent's --max-bandwidth was not applied"
assert_clean "bandwidth"
n=$(grep -c '"op":"prepare".*"result":"prepared"' "$T/agent.log")
[ "$n" = 1 ] || fail "expected 1 prepared audit line, have $n"
ok "three migrations through the agent (plain, TLS, TLS + multifd 4), verified"
