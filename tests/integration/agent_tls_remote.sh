# Two real hosts do not share files: the agent's certificates are where
# the agent runs, and the source cannot read them. Here the agent runs in a
# mount namespace of its own with its TLS directory on a private tmpfs (a
# path that does not exist in the source's view of the filesystem), and
# the source holds only its client files. A TLS-stream migration through
# it completes and verifies: the source leaves the check of the
# destination's certificates to the agent, which does it at prepare and
# refuses clearly when they do not fit (wrong host name, another CA).
. tests/lib.sh
. tests/netns.sh
command -v unshare > /dev/null || skip "unshare (util-linux) not installed"
. tests/integration/agent_lib.sh
CLEANUP_HOOKS="agent_stop netns_down"
netns_up "qat$$" || fail "could not set up the namespaces"
C="$T/certs"
$QMIGRATE tls init "$C" --host "$NETNS_ADDR_B" > /dev/null || fail "tls init"
# The source host's files: CA certificate and its client pair only.
SRC_TLS="$T/src-tls"
mkdir -m 700 "$SRC_TLS"
cp "$C/ca-cert.pem" "$C/client-cert.pem" "$C/client-key.pem" "$SRC_TLS/"
PRIV="$T/agent-host"
mkdir -p "$PRIV"
# Everything of the agent's host lives on a private tmpfs on $PRIV, seen
# by the agent (and the QEMUs it launches) alone: its server files, its
# journals and the destinations' runtime directories (where a QEMU of
# another uid gets its copy of the certificates).
AGENT_TLS="$PRIV/tls"
STATE="$PRIV/state"
# on_b CMD...: run CMD in the agent's host's view (mounts and network).
on_b() { nsenter -t "$AGENT_PID" -m -n --wd="$PWD" "$@"; }
agent_start() {
	: > "$T/agent.log"
	ip netns exec "$NETNS_B" unshare -m --propagation private sh -c '
		mount -t tmpfs -o mode=0711,size=256m qmig-agent-host "$1" || exit 1
		mkdir -m 700 "$1/tls" && mkdir -m 755 "$1/state" &&
			cp "$2/ca-cert.pem" "$2/server-cert.pem" "$2/server-key.pem" "$1/tls/" ||
			exit 1
		shift 2
		exec "$@"' sh "$PRIV" "$C" $QMIGRATE agent --listen "$NETNS_ADDR_B:$AGENT_PORT" \
		--tls "$AGENT_TLS" --profiles examples/profiles --state "$STATE" \
		--port-lock-dir "$STATE/ports" 2>> "$T/agent.log" &
	AGENT_PID=$!
	_i=0
	until grep -q 'listening on' "$T/agent.log"; do
		_i=$((_i + 1))
		[ $_i -gt 200 ] && fail "agent did not start: $(cat "$T/agent.log")"
		alive "$AGENT_PID" || fail "agent exited: $(cat "$T/agent.log")"
		sleep 0.05
	done
}
# Nothing left on the agent's host, and it still serves.
assert_clean_b() {
	wait_no_dst 15 || fail "$1: a destination QEMU was left in $NETNS_B"
	[ -z "$(on_b ls "$STATE/jobs")" ] || fail "$1: job journal left: $(on_b ls "$STATE/jobs")"
	[ -z "$(on_b sh -c "ls -d $STATE/vm-* 2>/dev/null")" ] || fail "$1: runtime dir left"
	alive "$AGENT_PID" || fail "$1: the agent died"
	peer "$C" hello | grep -q "\"op\": \"hello\"" || fail "$1: the agent no longer answers"
}
agent_start
# The premise: the agent's directory is not there for the source.
on_b test -r "$AGENT_TLS/server-key.pem" || fail "the agent does not see its own files"
[ -e "$AGENT_TLS" ] || [ -e "$STATE" ] && fail "the agent's files are visible outside its namespace"
ip netns exec "$NETNS_A" test -e "$AGENT_TLS" && fail "the source host sees $AGENT_TLS"
[ -e "$SRC_TLS/server-key.pem" ] && fail "the source holds server files"
echo "the agent's TLS and state directories exist only in its own mount namespace"

# 1. A TLS stream, the source with its own directory only.
launch_guest src --guest tiny --mem 128M --dirty-rate 5M --accel tcg --netns "$NETNS_A"
Q0=$QMIGRATE; QMIGRATE="$Q0 -v" # the engine says whose check it relied on
migrate_to tls "$src_qmp" --profile tiny --tls "$SRC_TLS" --pause-after 30
QMIGRATE=$Q0
res=$(tail -1 "$T/tls.jsonl")
echo "tls: exit $MRC: $(printf '%s' "$res" | cut -c1-240)"
[ $MRC = 0 ] || fail "tls: exit $MRC: $res $(cat "$T/tls.err")"
[ "$(jf status "$res")" = completed ] || fail "tls: $res"
[ "$(jf via "$res")" = agent ] || fail "tls: no via=agent"
[ "$(jf verified "$res")" = true ] || fail "tls: not verified: $res"
# The destination's tls-creds-x509 loads a directory on the agent's host.
dd=$(grep -o '"qom-type":"tls-creds-x509","id":"[^"]*","dir":"[^"]*","endpoint":"server"' \
	"$T/tls.jsonl" | sed 's/.*"dir":"\([^"]*\)".*/\1/' | head -1)
case $dd in "$PRIV"/*) ;; *) fail "tls: the destination's credentials are '$dd', not the agent's" ;; esac
[ -e "$dd" ] && fail "tls: $dd is visible on the source host"
echo "tls: the destination QEMU loaded $dd (on the agent's host only)"
grep -q "are on the agent's host; the agent checked them" "$T/tls.err" ||
	fail "tls: no log line about the agent's check: $(cat "$T/tls.err")"
i=0; while alive "$src_pid"; do i=$((i + 1)); [ $i -gt 100 ] && fail "tls: source still runs"; sleep 0.05; done
[ "$(dst_qemus | wc -l)" = 1 ] || fail "tls: expected one destination QEMU"
dq=$(sed -n 's/.*"qmp":"\([^"]*\)".*/\1/p' "$T/tls.jsonl" | tail -1)
[ "$(on_b $QMIGRATE qmp "$dq" query-status | sed -n 's/.*"status": *"\([^"]*\)".*/\1/p')" = running ] ||
	fail "tls: destination not running"
on_b $QMIGRATE qmp "$dq" quit > /dev/null || fail "tls: could not quit the destination"
wait_no_dst 10 || fail "tls: destination did not quit"
on_b sh -c "rm -rf $STATE/vm-*"

# 2. The source connects to a name the agent's certificate does not carry.
launch_guest src2 --guest tiny --mem 64M --accel tcg --netns "$NETNS_A"
migrate_to badname "$src2_qmp" --profile tiny --tls "$SRC_TLS" --tls-hostname wrong.example
echo "wrong host name: exit $MRC: $(tail -1 "$T/badname.err")"
[ $MRC = 3 ] || fail "badname: exit $MRC: $(cat "$T/badname.err")"
grep -q "tls-invalid" "$T/badname.err" && grep -q "wrong.example" "$T/badname.err" ||
	fail "badname: not a clear refusal: $(cat "$T/badname.err")"
grep -q '"op":"prepare","job":"[^"]*","result":"tls-invalid"' "$T/agent.log" ||
	fail "badname: no audit line"
[ "$(status_of "$src2_qmp")" = running ] || fail "badname: the source is not running"
assert_clean_b "wrong host name"

# 3. Stream certificates from another CA (the control channel's are fine).
$QMIGRATE tls init "$T/other" --host "$NETNS_ADDR_B" > /dev/null || fail "tls init other"
migrate_to otherca "$src2_qmp" --profile tiny --agent-tls "$SRC_TLS" --tls "$T/other"
echo "another CA: exit $MRC: $(tail -1 "$T/otherca.err")"
[ $MRC = 3 ] || fail "otherca: exit $MRC: $(cat "$T/otherca.err")"
grep -q "do not trust each other" "$T/otherca.err" || fail "otherca: $(cat "$T/otherca.err")"
[ "$(status_of "$src2_qmp")" = running ] || fail "otherca: the source is not running"
assert_clean_b "another CA"
ok "TLS stream to an agent whose certificates the source cannot see; refusals checked by the agent"
