#!/bin/sh
# make demo-two-hosts: two network namespaces joined by a veth pair play two
# hosts; each gets its certificate from one CA; `qmigrate agent` runs on
# host B; the tiny test guest runs on host A and moves to B through the
# agent, with a TLS control channel and a TLS migration stream. Prints the
# summary (DEMO_JSON=1: the result JSON as the last line) and cleans up.
set -u
QMIGRATE=${QMIGRATE:-./tools/qmigrate}
[ "$(id -u)" = 0 ] || { echo "demo-two-hosts: network namespaces need root" >&2; exit 1; }
. tests/netns.sh
D=$(mktemp -d /tmp/qmig-demo.XXXXXX)
AGENT=; SRC=
done_() {
	[ -n "$AGENT" ] && kill "$AGENT" 2>/dev/null
	[ -n "$SRC" ] && kill -9 "$SRC" 2>/dev/null
	netns_down
	rm -rf "$D"
}
trap done_ EXIT
trap 'exit 1' INT TERM
say() { [ "${DEMO_JSON:-0}" = 1 ] && echo "$*" >&2 || echo "$*"; }

netns_up "qdemo$$" || exit 1
say "== hosts: A=$NETNS_A ($NETNS_ADDR_A), B=$NETNS_B ($NETNS_ADDR_B), one veth link"
# One CA; a certificate for each host (the CA key stays with B's copy here;
# keep it offline in real life).
$QMIGRATE tls init "$D/tls-b" --host "$NETNS_ADDR_B" > /dev/null || exit 1
mkdir -m 700 "$D/tls-a" && cp "$D/tls-b/ca-cert.pem" "$D/tls-b/ca-key.pem" "$D/tls-a/" &&
	$QMIGRATE tls init "$D/tls-a" --host "$NETNS_ADDR_A" --reuse-ca > /dev/null &&
	rm "$D/tls-a/ca-key.pem" || exit 1
say "== certificates: CA + host A + host B ($D)"
mkdir "$D/state"
ip netns exec "$NETNS_B" $QMIGRATE agent --listen "$NETNS_ADDR_B" --tls "$D/tls-b" \
	--allow "$NETNS_ADDR_A" --profiles examples/profiles --state "$D/state" \
	--max-inbound 2 2> "$D/agent.log" &
AGENT=$!
i=0; until grep -q 'listening on' "$D/agent.log"; do
	i=$((i + 1)); [ $i -gt 100 ] && { cat "$D/agent.log" >&2; exit 1; }; sleep 0.05
done
say "== host B: $(head -1 "$D/agent.log")"
out=$($QMIGRATE launch --guest tiny --mem 256M --dirty-rate 20M --accel tcg --netns "$NETNS_A" --json) || exit 1
SRC=$(printf '%s' "$out" | sed -n 's/.*"pid":\([0-9]*\).*/\1/p')
QMP=$(printf '%s' "$out" | sed -n 's/.*"qmp":"\([^"]*\)".*/\1/p')
say "== host A: tiny guest, 256 MiB writing 20 MiB/s, QMP $QMP"
say "== host A: qmigrate migrate --src-qmp $QMP --to qmigrate+tls://$NETNS_ADDR_B --profile tiny --tls $D/tls-a --multifd 2"
ip netns exec "$NETNS_A" $QMIGRATE migrate --src-qmp "$QMP" --to "qmigrate+tls://$NETNS_ADDR_B" \
	--profile tiny --tls "$D/tls-a" --multifd 2 --json > "$D/result.jsonl"
rc=$?
res=$(tail -1 "$D/result.jsonl")
say "== the agent's audit (host B):"
grep '"audit"' "$D/agent.log" | sed 's/^/   /' >&2
printf '%s\n' "$res" | python3 -c 'import json, sys
r = json.loads(sys.stdin.read())
a = r.get("agent", {}).get("reply", {})
out = sys.stderr if len(sys.argv) > 1 and sys.argv[1] == "1" else sys.stdout
print("== result: %s via %s in %s ms (downtime %s ms by QEMU), %.0f Mbit/s, %d passes" % (
    r.get("status"), r.get("via"), r.get("engine_total_ms"), r.get("downtime_ms"),
    r.get("throughput_mbps") or 0, r.get("passes") or 0), file=out)
print("== destination on host B: %s, owner %s, verified %s (%s, %s pages), pid %s" % (
    a.get("status"), a.get("owner"), r.get("verified"), r.get("verify_method"),
    a.get("pages_checked"), a.get("pid")), file=out)' "${DEMO_JSON:-0}"
[ "${DEMO_JSON:-0}" = 1 ] && printf '%s\n' "$res"
exit $rc
