# Shared by the QEMU 10.0 tests and the matrix (qemu72_same.sh,
# qemu10_same.sh, cross_version.sh, qemu10_verify.sh): fetch QEMU 10.0 with
# tools/qemu-cache.sh (skip with exit 77 when it cannot be had), and the
# migration scenarios every pair of QEMUs must pass. Set SRCQ and DSTQ
# (binaries) and PAIR (a label) first.
. tests/lib.sh
. tests/netns.sh

q10_fetch() {
	Q10=$(sh tools/qemu-cache.sh 10.0 2>"$T/qemu-cache.err") ||
		skip "QEMU 10.0 cannot be fetched: $(tail -1 "$T/qemu-cache.err")"
	[ -x "$Q10" ] || skip "QEMU 10.0 wrapper $Q10 missing"
	Q72=$(command -v qemu-system-x86_64) || skip "qemu-system-x86_64 (7.2) not installed"
}

# xv NAME ARGS...: one launch-mode migration of the tiny guest from SRCQ to
# DSTQ; sets rc and res (the result line).
xv() {
	_n=$1; shift
	$QMIGRATE migrate --launch --guest tiny --accel tcg --src-qemu "$SRCQ" --dst-qemu "$DSTQ" \
		--json "$@" > "$T/$_n.jsonl" 2> "$T/$_n.err"
	rc=$?; res=$(tail -1 "$T/$_n.jsonl")
	echo "$PAIR $_n: exit $rc: $(json_get message "$res") (passes $(json_get passes "$res"), downtime $(json_get guest_downtime_ms "$res") ms)"
}
xv_ok() { # NAME: completed and verified
	[ "$rc" = 0 ] || fail "$PAIR $1: exit $rc: $res $(tail -3 "$T/$1.err")"
	[ "$(json_get status "$res")" = completed ] || fail "$PAIR $1: not completed: $res"
	[ "$(json_get verified "$res")" = true ] || fail "$PAIR $1: not verified: $res"
}

# The versions each side really ran (query-version through the trace's
# plan is not recorded, so ask the binaries).
q10_versions() {
	"$SRCQ" -version | head -1 | sed 's/^/source:      /'
	"$DSTQ" -version | head -1 | sed 's/^/destination: /'
}

# The matrix: every scenario on the pair SRCQ -> DSTQ (qemu72_same.sh,
# qemu10_same.sh, cross_version.sh run it on 7.2->7.2, 10.0->10.0 and
# 7.2->10.0). Each run must complete and verify. The cases between two
# network namespaces (precopy, then postcopy with the link cut and
# recovered) run beside the local ones: they share nothing with them (their
# own namespaces; ports are locked across processes) and spend most of
# their time waiting on the link.
# A failure of the local cases ends the test: stop the namespace cases too
# (their qmigrate, which then stops its QEMUs), before the namespaces go.
xv_stop_bg() {
	[ -n "${ns_pid:-}" ] || return 0
	for c in $(ps -o pid= --ppid "$ns_pid" 2>/dev/null); do kill "$c" 2>/dev/null; done
	kill "$ns_pid" 2>/dev/null
	wait "$ns_pid" 2>/dev/null
	return 0
}

xv_scenarios() {
	q10_versions
	ns_pid=""
	if [ "$(id -u)" = 0 ]; then
		CLEANUP_HOOKS="xv_stop_bg netns_down"
		netns_up "q10$$" || fail "could not set up the namespaces"
		xv_netns > "$T/netns.out" 2>&1 &
		ns_pid=$!
	else
		echo "$PAIR: netns and postcopy cases skipped: network namespaces need root"
	fi
	xv_local
	if [ -n "$ns_pid" ]; then
		wait "$ns_pid"; ns_rc=$?
		cat "$T/netns.out"
		ns_pid=""
		[ "$ns_rc" = 0 ] || fail "$PAIR: the namespace cases failed"
		netns_down
		CLEANUP_HOOKS=""
	fi
}

# The cases on one host (loopback).
xv_local() {
	xv basic --mem 256M --dirty-rate 50M
	xv_ok basic

	xv multifd --mem 256M --dirty-rate 50M --multifd 2
	xv_ok multifd
	grep -q '"multifd":true\|"capability":"multifd"\|multifd-channels' "$T/multifd.jsonl" ||
		fail "$PAIR multifd: the plan does not enable multifd"

	xv memory --mem 256M --wss 64M --dirty-rate 50M --verify=memory
	xv_ok memory
	[ "$(json_get pages_differ "$res")" = 0 ] || fail "$PAIR memory: pages differ: $res"

	$QMIGRATE tls init "$T/tls" --host 127.0.0.1 > /dev/null || fail "tls init"
	xv tls --mem 128M --dirty-rate 20M --tls "$T/tls"
	xv_ok tls
	grep -q 'tls-creds' "$T/tls.jsonl" || fail "$PAIR tls: the plan sets no tls-creds"

	# A link (2 MB/s) well below what the guest writes even when the
	# machine is so loaded that the guest manages a few MB/s of its 200:
	# the policy must act (throttle, allowed by --auto-converge, then a
	# pause to finish).
	xv policy --mem 128M --wss 8M --dirty-rate 200M --max-bandwidth 2M --max-pause 20000 \
		--policy predictive --auto-converge
	xv_ok policy
	grep -q '"reason":"[^"]*","type":"action"' "$T/policy.jsonl" ||
		fail "$PAIR policy: no policy decision recorded"
}

# Two network namespaces (run in the background: fail() ends only this
# subshell, whose status xv_scenarios reads): a precopy migration, then
# postcopy with the link cut mid-postcopy and restored, recovered on a
# fresh port, then verified.
xv_netns() {
	xv netns --mem 256M --dirty-rate 50M \
		--src-netns "$NETNS_A" --dst-netns "$NETNS_B" --dst-addr "$NETNS_ADDR_B"
	xv_ok netns
	$QMIGRATE migrate --launch --guest tiny --accel tcg --src-qemu "$SRCQ" --dst-qemu "$DSTQ" \
		--mem 256M --wss 160M --dirty-rate 300M \
		--src-netns "$NETNS_A" --dst-netns "$NETNS_B" --dst-addr "$NETNS_ADDR_B" \
		--max-bandwidth 100M --postcopy --param max-postcopy-bandwidth=10485760 \
		--json > "$T/pc.jsonl" 2> "$T/pc.err" &
	mig=$!
	i=0
	until grep -q '"phase":"postcopy"' "$T/pc.jsonl" 2>/dev/null; do
		i=$((i + 1)); [ $i -gt 600 ] && fail "$PAIR postcopy: never reached postcopy"
		kill -0 $mig 2>/dev/null ||
			fail "$PAIR postcopy: ended before postcopy: $(tail -1 "$T/pc.jsonl")"
		sleep 0.1
	done
	sleep 1
	netns_link_down || fail "link down"
	sleep 5 # longer than the engine's 3 s stall bound
	netns_link_up || fail "link up"
	wait $mig; rc=$?; res=$(tail -1 "$T/pc.jsonl")
	echo "$PAIR netns postcopy recovery: exit $rc: $(json_get message "$res") (recoveries $(json_get recoveries "$res"))"
	xv_ok pc
	[ "$(json_get recoveries "$res")" -ge 1 ] || fail "$PAIR postcopy: no recovery recorded"
}
