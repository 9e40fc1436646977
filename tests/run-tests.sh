#!/bin/sh
# Run each test with a timeout. Exit 77 means "skipped" (the test says why).
# Ends with the line "N passed, N failed, N skipped".
TIMEOUT=${QMIG_TEST_TIMEOUT:-300}
pass=0; fail=0; skip=0; failed=""
log_dir=build/test-logs
mkdir -p "$log_dir"
for t in "$@"; do
	name=$(basename "$t")
	log="$log_dir/$name.log"
	start=$(date +%s)
	case "$t" in
	*.sh) timeout -k 10 "$TIMEOUT" sh "$t" >"$log" 2>&1 ;;
	*) timeout -k 10 "$TIMEOUT" "./$t" >"$log" 2>&1 ;;
	esac
	rc=$?
	secs=$(( $(date +%s) - start ))
	case $rc in
	0) pass=$((pass + 1)); echo "PASS  $name (${secs}s)" ;;
	77) skip=$((skip + 1)); echo "SKIP  $name: $(grep -i skipped "$log" | tail -1)" ;;
	124|137) fail=$((fail + 1)); failed="$failed $name"
		echo "FAIL  $name: timed out after ${TIMEOUT}s"; tail -20 "$log" ;;
	*) fail=$((fail + 1)); failed="$failed $name"
		echo "FAIL  $name (exit $rc)"; tail -40 "$log" ;;
	esac
done
[ -n "$failed" ] && echo "failed:$failed"
echo "$pass passed, $fail failed, $skip skipped"
[ "$fail" -eq 0 ]
