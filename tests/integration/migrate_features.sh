# QEMU's migration features through qmigrate (real QEMU, TCG): multifd,
# postcopy, auto-converge, pause-to-finish, offline migration, --param,
# and refusals before anything is changed.
. tests/lib.sh

result_of() { tail -1 "$T/$1.jsonl"; }
run() { # NAME ARGS...: a launch-mode migration that must complete and verify
	name=$1; shift
	$QMIGRATE migrate --launch --guest tiny --accel tcg --json "$@" > "$T/$name.jsonl" \
		2> "$T/$name.err" || fail "$name: $(result_of $name) $(cat "$T/$name.err")"
	res=$(result_of $name)
	echo "$name: $res" | cut -c1-400
	[ "$(json_get status "$res")" = completed ] || fail "$name: $res"
	[ "$(json_get verified "$res")" = true ] || fail "$name: not verified"
}

# multifd with 4 channels, the guest writing 100 MiB/s.
run multifd --mem 256M --wss 64M --dirty-rate 100M --multifd 4
grep -q '"multifd-channels":4' "$T/multifd.jsonl" || fail "multifd: channels not set"
grep -q '"capability":"multifd","state":true' "$T/multifd.jsonl" || fail "multifd: cap not set"

# postcopy: a guest dirtying 300 MiB/s over a 50 MiB/s precopy would never
# converge; after the first pass it switches and completes.
run postcopy --mem 256M --wss 128M --dirty-rate 300M --max-bandwidth 50M --postcopy \
	--param max-postcopy-bandwidth=20971520
[ "$(json_get postcopy "$res")" = true ] || fail "postcopy: never switched"
[ "$(json_get postcopy_requests "$res")" -gt 0 ] || fail "postcopy: no page requests"
grep -q '"action":"start-postcopy"' "$T/postcopy.jsonl" || fail "postcopy: no action record"

# auto-converge raises the throttle on a guest that would not converge.
run autoconverge --mem 256M --wss 128M --dirty-rate 300M --max-bandwidth 60M \
	--auto-converge --param cpu-throttle-initial=30 --param cpu-throttle-increment=20 --timeout 120
[ "$(json_get throttle_pct_max "$res")" -gt 0 ] || fail "auto-converge: throttle never rose"
grep '"type":"sample"' "$T/autoconverge.jsonl" | grep -q '"throttle_pct":[1-9]' ||
	fail "auto-converge: the samples do not show the throttle"

# pause to finish: the same guest, stopped after 2 s, completes non-live.
run pause --mem 256M --wss 128M --dirty-rate 300M --max-bandwidth 60M --pause-after 2
[ "$(json_get paused_to_finish "$res")" = true ] || fail "pause: the guest was not paused"

# Refused before anything changes: an unknown capability, an unknown
# parameter, a bad value; the source stays as it was.
launch_guest src --guest tiny --mem 128M --dirty-rate 10M --accel tcg
launch_guest dst --guest tiny --mem 128M --incoming --accel tcg
$QMIGRATE qmp "$src_qmp" query-migrate-capabilities > "$T/caps.before"
for bad in "--cap no-such-cap" "--param no-such-param=1" "--param downtime-limit=abc"; do
	# shellcheck disable=SC2086
	$QMIGRATE migrate --src-qmp "$src_qmp" --dst-qmp "$dst_qmp" $bad --json > "$T/bad.jsonl"
	rc=$?; res=$(tail -1 "$T/bad.jsonl")
	echo "refused ($bad): exit $rc: $(json_get message "$res")"
	[ $rc = 3 ] || fail "$bad: exit $rc, expected 3"
done
grep -q "capability 'no-such-cap' is not supported by the source" "$T/bad.jsonl" ||
	grep -q "'abc' is not a number" "$T/bad.jsonl" || fail "unclear refusal message"
$QMIGRATE qmp "$src_qmp" query-migrate-capabilities > "$T/caps.after"
cmp -s "$T/caps.before" "$T/caps.after" || fail "a refused migration changed capabilities"
[ "$(status_of "$dst_qmp")" = inmigrate ] || fail "a refused migration touched the destination"

# Offline: a paused source moves, and the destination stays paused.
$QMIGRATE qmp "$src_qmp" stop > /dev/null || fail "stop of the source failed"
$QMIGRATE migrate --src-qmp "$src_qmp" --dst-qmp "$dst_qmp" --json > "$T/offline.jsonl" ||
	fail "offline: $(tail -1 "$T/offline.jsonl")"
[ "$(status_of "$dst_qmp")" = paused ] || fail "offline: destination is not paused"
$QMIGRATE verify --qmp "$dst_qmp" --keep-stopped || fail "offline: destination does not verify"
ok "multifd, postcopy, auto-converge, pause-to-finish, refusals, offline"
