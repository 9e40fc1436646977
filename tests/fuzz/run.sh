#!/bin/sh
# run.sh SECONDS TARGET...: replay each target's regression inputs, then
# fuzz it for SECONDS from its seed corpus. One line per target:
# executions, corpus size, crashes. Exits 1 if anything crashed.
secs=$1; shift
crashed=0
mkdir -p build/fuzz/corpus build/fuzz/crashes
for t in "$@"; do
	bin=build/fuzz/fuzz_$t
	work=build/fuzz/corpus/$t
	log=build/fuzz/$t.log
	mkdir -p "$work"
	if [ -d "tests/fuzz/regress/$t" ] && [ -n "$(ls "tests/fuzz/regress/$t")" ]; then
		if ! "$bin" tests/fuzz/regress/"$t"/* > "$log.regress" 2>&1; then
			echo "fuzz_$t: a regression input crashes (see $log.regress)"
			crashed=$((crashed + 1))
			continue
		fi
	fi
	"$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
		-artifact_prefix="build/fuzz/crashes/$t-" "$work" "tests/fuzz/corpus/$t" > "$log" 2>&1
	rc=$?
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
	n=$(ls build/fuzz/crashes | grep -c "^$t-")
	printf 'fuzz_%-12s %10s executions in %ss, corpus %s inputs, exit %s, %s crash files\n' \
		"$t" "${execs:-?}" "$secs" "$(ls "$work" | wc -l)" "$rc" "$n"
	if [ "$rc" != 0 ]; then
		crashed=$((crashed + 1))
		grep -m3 -E "ERROR|runtime error|SUMMARY" "$log"
	fi
done
[ "$crashed" = 0 ] || { echo "$crashed target(s) crashed: inputs in build/fuzz/crashes"; exit 1; }
echo "no crashes"
