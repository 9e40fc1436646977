#!/bin/sh
# make check: every fuzzer replays its regression inputs and its seed
# corpus, then fuzzes for a few seconds (FUZZ_CHECK_SECONDS, default 4).
# The long runs are `make fuzz`.
secs=${FUZZ_CHECK_SECONDS:-4}
targets="qmp_core qmp_reply qmp_schema tls_check trace job_request policy"
for t in $targets; do
	[ -x "build/fuzz/fuzz_$t" ] || {
		echo "skipped: build/fuzz/fuzz_$t is missing: clang is not installed" \
			"(sh tools/deps.sh installs it as root; then make fuzz-build)"
		exit 77
	}
done
T=$(mktemp -d /tmp/qmig-fuzz.XXXXXX)
trap 'rm -rf "$T"' EXIT
fail=0
for t in $targets; do
	bin=build/fuzz/fuzz_$t
	if [ -d "tests/fuzz/regress/$t" ] && [ -n "$(ls "tests/fuzz/regress/$t")" ]; then
		"$bin" tests/fuzz/regress/"$t"/* > "$T/$t.regress" 2>&1 ||
			{ echo "FAIL: fuzz_$t: a regression input fails"; tail -30 "$T/$t.regress"; fail=1; }
	fi
	mkdir -p "$T/$t"
	"$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
		-artifact_prefix="$T/crash-$t-" "$T/$t" "tests/fuzz/corpus/$t" > "$T/$t.log" 2>&1
	rc=$?
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$T/$t.log")
	echo "fuzz_$t: ${execs:-?} executions in ${secs}s, exit $rc"
	if [ "$rc" != 0 ]; then
		fail=1
		grep -m5 -E "ERROR|runtime error|SUMMARY|#0 |#1 |#2 " "$T/$t.log"
		for c in "$T"/crash-"$t"-*; do [ -f "$c" ] && { echo "input:"; od -c "$c" | head -20; }; done
	fi
done
[ "$fail" = 0 ] || { echo "FAIL: a fuzzer crashed (make fuzz reproduces; fix, and add the input to tests/fuzz/regress/)"; exit 1; }
echo "ok: 7 fuzzers, no crashes"
