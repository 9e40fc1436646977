# The predictive policy declares an infeasible migration in its first pass
# and leaves a feasible one alone, on real QEMU (TCG) between two network
# namespaces over a veth shaped by tc tbf to 200 Mbit/s (about 24 MiB/s):
#  - the tiny guest (256 MiB, 128 MiB working set) writing 150 MB/s: no
#    throttle asked for (--auto-converge), no postcopy, and the shortest
#    pause that could finish it is over the 500 ms allowed: the policy
#    aborts from its forecast (the dirty rate measured beside the doctor,
#    the link's rate from the first pass's samples), the migration rolls
#    back (exit 4) and the source guest runs on;
#  - the same guest writing 8 MB/s: it converges by itself; the policy
#    takes no action and the move verifies.
# The declaration time, from the engine's own records (the precopy phase
# to the abort action), is printed; the goal is 3 s (the bench's
# policies.conf measures it); this test holds that the declaration comes
# from the forecast, in the first pass, not passes later.
. tests/lib.sh
. tests/netns.sh
[ "$(id -u)" = 0 ] || skip "network namespaces need root"
CLEANUP_HOOKS="netns_down"
netns_up "qmd$$" || fail "could not set up the namespaces"
netns_shape 200mbit || fail "tc tbf failed"

run() { # NAME RATE
	$QMIGRATE migrate --launch --guest tiny --mem 256M --wss 128M --dirty-rate "$2" --accel tcg \
		--src-netns "$NETNS_A" --dst-netns "$NETNS_B" --dst-addr "$NETNS_ADDR_B" \
		--policy predictive --timeout 120 --json > "$T/$1.jsonl" 2> "$T/$1.err"
	rc=$?
	res=$(tail -1 "$T/$1.jsonl")
}

# ms from the precopy phase to the first record matching PATTERN.
since_precopy() { # FILE PATTERN
	awk -v pat="$2" '
		/"phase":"precopy"/ && !t0 { match($0, /"t_ms":[0-9]+/); t0 = substr($0, RSTART + 7, RLENGTH - 7) }
		$0 ~ pat && t0 { match($0, /"t_ms":[0-9]+/); print substr($0, RSTART + 7, RLENGTH - 7) - t0; exit }' "$1"
}

run far 150M
echo "far: exit $rc: $(json_get message "$res")"
[ $rc = 4 ] || fail "far: exit $rc, not 4 (rolled back): $res $(cat "$T/far.err")"
echo "$res" | grep -q '"message":"policy predictive aborted the migration: forecast: cannot converge' ||
	fail "far: not declared by the forecast: $res"
[ "$(json_get rolled_back "$res")" = true ] || fail "far: not rolled back"
echo "$res" | grep -q 'the source guest is running' || fail "far: the source guest does not run: $res"
grep '"type":"dirty-rate"' "$T/far.jsonl" | cut -c1-160
grep '"type":"action"' "$T/far.jsonl" | cut -c1-300
# In the first pass: no pass record before the abort.
awk '/"type":"pass"/ { exit 1 } /"action":"abort"/ { exit 0 }' "$T/far.jsonl" ||
	fail "far: declared after the first pass"
declared=$(since_precopy "$T/far.jsonl" '"action":"abort"')
[ -n "$declared" ] || fail "far: no abort action in the records"
echo "far: declared infeasible ${declared} ms after the precopy began (goal 3000)"

run below 8M
echo "below: exit $rc: $(json_get status "$res")"
[ $rc = 0 ] || fail "below: exit $rc: $res $(cat "$T/below.err")"
[ "$(json_get status "$res")" = completed ] || fail "below: $res"
[ "$(json_get verified "$res")" = true ] || fail "below: not verified"
grep -q '"type":"action"' "$T/below.jsonl" && fail "below: the policy acted: $(grep '"type":"action"' "$T/below.jsonl")"
grep -q '"type":"dirty-rate"' "$T/below.jsonl" || fail "below: no dirty rate measured"
echo "below: completed in $(json_get total_ms "$res") ms, no action"
ok "predictive declares the infeasible cell in its first pass (${declared} ms), not the feasible one"
