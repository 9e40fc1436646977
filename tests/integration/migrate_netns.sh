# Between two "hosts": the source QEMU in one network namespace, the
# destination in another, joined by veth; then again with the link shaped
# to 1 Gbit/s by tc tbf.
. tests/lib.sh
. tests/netns.sh
[ "$(id -u)" = 0 ] || skip "network namespaces need root"
CLEANUP_HOOKS="netns_down"
netns_up "qmn$$" || fail "could not set up the namespaces"

run() { # NAME
	$QMIGRATE migrate --launch --guest tiny --mem 256M --dirty-rate 50M --accel tcg \
		--src-netns "$NETNS_A" --dst-netns "$NETNS_B" --dst-addr "$NETNS_ADDR_B" \
		--json > "$T/$1.jsonl" 2> "$T/$1.err" || fail "$1: $(tail -1 "$T/$1.jsonl") $(cat "$T/$1.err")"
	res=$(tail -1 "$T/$1.jsonl")
	echo "$1: $res"
	[ "$(json_get status "$res")" = completed ] || fail "$1: $res"
	[ "$(json_get verified "$res")" = true ] || fail "$1: not verified"
}

run unshaped
netns_shape 1gbit || fail "tc tbf failed"
run shaped
mbps=$(json_get throughput_mbps "$res" | cut -d. -f1)
# The shaper must bound the stream (QEMU's own total time includes setup,
# so the average is below the link rate).
[ "$mbps" -le 1100 ] || fail "shaped link carried $mbps Mbit/s, more than 1 Gbit/s"
ok "migrations across namespaces (shaped: $mbps Mbit/s)"
