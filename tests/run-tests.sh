#!/bin/bash
# Run tests, several at a time, each with a timeout. Exit 77 means
# "skipped" (the test says why). Ends with "N passed, N failed, N skipped".
#
# QMIG_TEST_JOBS (default 3) tests run at once: most of a test's time is
# spent waiting on QEMU, so a small pool shortens the suite without
# starving the guests of CPU. Tests named in QMIG_TEST_SERIAL (or the
# built-in list below) occupy machine-wide resources, such as a fixed
# slice of the port range, and run alone after the pool has drained.
TIMEOUT=${QMIG_TEST_TIMEOUT:-300}
JOBS=${QMIG_TEST_JOBS:-3}
SERIAL=" migrate_fail.sh doctor.sh ${QMIG_TEST_SERIAL:-} "
log_dir=build/test-logs
mkdir -p "$log_dir"
pass=0; fail=0; skip=0; failed=""
declare -A started names

run_one() {
	local t=$1 log=$2
	case "$t" in
	*.sh) exec timeout -k 10 "$TIMEOUT" sh "$t" >"$log" 2>&1 ;;
	*) exec timeout -k 10 "$TIMEOUT" "./$t" >"$log" 2>&1 ;;
	esac
}

report() {
	local name=$1 rc=$2 secs=$3 log="$log_dir/$1.log"
	case $rc in
	0) pass=$((pass + 1)); echo "PASS  $name (${secs}s)" ;;
	77) skip=$((skip + 1)); echo "SKIP  $name: $(grep -i skipped "$log" | tail -1)" ;;
	124|137) fail=$((fail + 1)); failed="$failed $name"
		echo "FAIL  $name: timed out after ${TIMEOUT}s"; tail -20 "$log" ;;
	*) fail=$((fail + 1)); failed="$failed $name"
		echo "FAIL  $name (exit $rc)"; tail -40 "$log" ;;
	esac
}

# Reap one finished test (any), report it.
reap() {
	local pid rc
	wait -n -p pid
	rc=$?
	report "${names[$pid]}" "$rc" $(( $(date +%s) - started[$pid] ))
	unset "names[$pid]" "started[$pid]"
}

start() {
	local t=$1 name
	name=$(basename "$t")
	run_one "$t" "$log_dir/$name.log" &
	names[$!]=$name
	started[$!]=$(date +%s)
}

serial=()
for t in "$@"; do
	case "$SERIAL" in
	*" $(basename "$t") "*) serial+=("$t"); continue ;;
	esac
	while [ "${#names[@]}" -ge "$JOBS" ]; do reap; done
	start "$t"
done
while [ "${#names[@]}" -gt 0 ]; do reap; done
for t in "${serial[@]}"; do
	start "$t"
	reap
done

[ -n "$failed" ] && echo "failed:$failed"
echo "$pass passed, $fail failed, $skip skipped"
[ "$fail" -eq 0 ]
