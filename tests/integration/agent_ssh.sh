# --to ssh://: the source reaches the destination host's agent through ssh
# (`qmigrate agent --stdio`, one ssh session per connection: control and
# QMP tunnel). An sshd started for the test in namespace B with a
# throwaway host key and client key; the tiny guest migrates and verifies.
. tests/lib.sh
. tests/netns.sh
[ -x /usr/sbin/sshd ] || skip "openssh-server (sshd) not installed"
command -v ssh-keygen > /dev/null || skip "ssh-keygen not installed"
. tests/integration/agent_lib.sh
CLEANUP_HOOKS="sshd_stop netns_down"
sshd_stop() { [ -f "$T/sshd.pid" ] && kill "$(cat "$T/sshd.pid")" 2>/dev/null; return 0; }
netns_up "qas$$" || fail "could not set up the namespaces"
mkdir -p /run/sshd "$T/state"
ssh-keygen -q -t ed25519 -N '' -f "$T/hostkey" || fail "host key"
ssh-keygen -q -t ed25519 -N '' -f "$T/key" || fail "client key"
cp "$T/key.pub" "$T/authorized_keys"
cat > "$T/sshd_config" <<EOC
Port 2222
ListenAddress $NETNS_ADDR_B
HostKey $T/hostkey
AuthorizedKeysFile $T/authorized_keys
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PidFile $T/sshd.pid
EOC
ip netns exec "$NETNS_B" /usr/sbin/sshd -f "$T/sshd_config" -E "$T/sshd.log" || fail "sshd: $(cat "$T/sshd.log")"
i=0; until [ -s "$T/sshd.pid" ]; do i=$((i + 1)); [ $i -gt 100 ] && fail "sshd did not start"; sleep 0.05; done
export QMIGRATE_SSH="ssh -i $T/key -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR"
export QMIGRATE_AGENT_COMMAND="$PWD/tools/qmigrate agent --stdio --profiles $PWD/examples/profiles --state $T/state --port-lock-dir $T/ports-b --audit $T/agent.log"

launch_guest src --guest tiny --mem 128M --dirty-rate 20M --accel tcg --netns "$NETNS_A"
timeout 200 ip netns exec "$NETNS_A" $QMIGRATE migrate --src-qmp "$src_qmp" \
	--to "ssh://root@$NETNS_ADDR_B:2222" --profile tiny --json > "$T/ssh.jsonl" 2> "$T/ssh.err"
rc=$?
res=$(tail -1 "$T/ssh.jsonl")
echo "ssh: exit $rc: $(printf '%s' "$res" | cut -c1-200)"
[ $rc = 0 ] || fail "ssh: exit $rc: $res $(cat "$T/ssh.err") $(cat "$T/agent.log" 2>/dev/null)"
[ "$(jf via "$res")" = agent ] || fail "ssh: no via=agent"
[ "$(jf verified "$res")" = true ] || fail "ssh: not verified"
grep -q '"peer":"ssh:' "$T/agent.log" || fail "ssh: no audit line naming the ssh peer"
[ "$(dst_qemus | wc -l)" = 1 ] || fail "ssh: expected one destination QEMU"
[ -z "$(ls "$T/state/jobs")" ] || fail "ssh: job journal left"
# A refusal comes back through ssh as clearly as through TLS.
launch_guest src2 --guest tiny --mem 64M --accel tcg --netns "$NETNS_A"
ip netns exec "$NETNS_A" $QMIGRATE migrate --src-qmp "$src2_qmp" \
	--to "ssh://root@$NETNS_ADDR_B:2222" --profile nosuch > /dev/null 2> "$T/r.err"
rc=$?; echo "unknown profile over ssh: exit $rc: $(tail -1 "$T/r.err")"
[ $rc = 3 ] && grep -q "no profile 'nosuch'" "$T/r.err" || fail "ssh refusal: $(cat "$T/r.err")"
# A TLS stream needs the agent's own certificates (--tls DIR on its host):
# this one has none, and says so before launching anything.
$QMIGRATE tls init "$T/certs" --host "$NETNS_ADDR_B" > /dev/null || fail "tls init"
ip netns exec "$NETNS_A" $QMIGRATE migrate --src-qmp "$src2_qmp" --tls "$T/certs" \
	--to "ssh://root@$NETNS_ADDR_B:2222" --profile tiny > /dev/null 2> "$T/t.err"
rc=$?; echo "TLS stream to an agent without --tls: exit $rc: $(tail -1 "$T/t.err")"
[ $rc = 3 ] && grep -q "tls-unavailable" "$T/t.err" || fail "ssh tls refusal: $(cat "$T/t.err")"
[ "$(status_of "$src2_qmp")" = running ] || fail "ssh tls refusal: the source is not running"
[ "$(dst_qemus | wc -l)" = 1 ] || fail "ssh tls refusal: a destination was launched"
ok "migration through ssh to 'qmigrate agent --stdio', verified; refusal clear"
