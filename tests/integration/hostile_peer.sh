# A hostile QMP peer against the real CLI: doctor, caps and migrate, with
# the peer as the source, as the destination, and in front of a real
# destination QEMU answering one chosen command wrongly. Every wrong shape
# must end in a clear error naming what was wrong and the documented exit
# code, never a signal; the real QEMUs end as they were (the source running,
# its settings unchanged), nothing is left listening. Also: memory stays
# bounded for the worst message under the limits.
. tests/lib.sh
H=build/tests/helpers/qmp_hostile
[ -x "$H" ] || fail "$H is not built (make check builds it)"
SHAPES="obj arr null str hugenum both otherid trunc oversize greeting"

# What each shape must be reported as (a grep -E pattern on stderr).
why() {
	case $1 in
	obj) echo "member '[a-z-]+' is missing|(returned|got) an object" ;;
	arr) echo "(returned|got) an array|is an array, not" ;;
	null) echo "returned null|got null|is null" ;;
	str) echo "(returned|got) a string|is a string, not" ;;
	hugenum) echo "(returned|got) an integer|is an integer, not|out of range" ;;
	both) echo "reply carries both 'return' and 'error'" ;;
	otherid) echo "reply with id [0-9]+, which answers no command in flight" ;;
	trunc) echo "peer closed in the middle of a message" ;;
	oversize) echo "message larger than 4194304 bytes \(limit max_message\)" ;;
	greeting) echo "greeting larger than 16384 bytes \(limit max_greeting\)" ;;
	esac
}

# peer NAME SHAPE ARGS...: start a hostile peer on $T/NAME.sock.
peer() {
	_n=$1; shift
	rm -f "$T/$_n.out"
	$H "$T/$_n.sock" "$@" > "$T/$_n.out" &
	PIDS="$PIDS $!"
	eval "${_n}_pid=$!"
	i=0; until grep -q ready "$T/$_n.out" 2>/dev/null; do
		i=$((i + 1)); [ $i -gt 100 ] && fail "qmp_hostile did not start"; sleep 0.05; done
}
stop_peer() { eval "kill \$${1}_pid; wait \$${1}_pid 2>/dev/null"; }

# run CMD...: run it, rc in $rc, stderr in $T/err; it must leave no
# journal or control socket behind in the jobs directory.
run() {
	"$@" > "$T/out" 2> "$T/err" &
	_p=$!
	wait $_p; rc=$?
	for _d in /run/qmigrate/jobs "${XDG_RUNTIME_DIR:-/nonexistent}/qmigrate-jobs" \
		"/tmp/qmigrate-jobs-$(id -u)"; do
		for _f in "$_d/$_p".*; do
			[ -e "$_f" ] || continue
			# A hand-over whose destination could not be restored keeps
			# its journal for qmigrate recover (checked by the caller).
			[ "$_f" = "$_d/$_p.journal" ] && [ -n "${KEEP_JOURNAL:-}" ] &&
				{ JOURNAL=$_f; continue; }
			fail "$* left $_f behind"
		done
	done
	return 0
}

# expect WHAT WANT-RC PATTERN: the last command's rc and stderr ($T/err).
expect() {
	[ "$rc" -gt 128 ] && fail "$1: killed by signal $((rc - 128))"
	[ "$rc" = "$2" ] || { cat "$T/err" >&2; fail "$1: exit $rc, expected $2"; }
	grep -Eq "$3" "$T/err" || { cat "$T/err" >&2; fail "$1: no clear error (want /$3/)"; }
	echo "ok: $1: exit $rc: $(grep -Eo "$3" "$T/err" | head -1)"
}

# A hostile --trace for replay: refused naming the line and the member.
run $QMIGRATE replay tests/fuzz/regress/trace/sim-float-cast-overflow.jsonl
expect "replay of a trace with a rate out of range" 2 "line 2: a rate is out of range"
printf '{"type":"sample","status":"active","t_ms":"soon"}\n' > "$T/bad.jsonl"
run $QMIGRATE replay "$T/bad.jsonl"
expect "replay of a trace with a string for a number" 2 "line 1: member 't_ms' is a string, not an integer"
head -c 70000 /dev/zero | tr '\0' x > "$T/long.jsonl"
run $QMIGRATE replay "$T/long.jsonl"
expect "replay of a trace with an endless line" 2 "line 1 is longer than 65535 bytes"

PR=49216-49231 # a slice of our own, checked empty at the end
launch_guest src --guest tiny --mem 64M --dirty-rate 5M --accel tcg
launch_guest dst --guest tiny --mem 64M --incoming --accel tcg
$QMIGRATE qmp "$src_qmp" query-migrate-capabilities > "$T/src.caps0" || fail "source caps"
$QMIGRATE qmp "$src_qmp" query-migrate-parameters > "$T/src.params0" || fail "source params"
wait_beats "$src_log" 2 30 || fail "the source guest does not beat"

# The source as it was: running, beating, settings unchanged, no migration.
source_intact() {
	[ "$(status_of "$src_qmp")" = running ] || fail "$1: the source is not running"
	$QMIGRATE qmp "$src_qmp" query-migrate-capabilities > "$T/src.caps1"
	$QMIGRATE qmp "$src_qmp" query-migrate-parameters > "$T/src.params1"
	cmp -s "$T/src.caps0" "$T/src.caps1" || fail "$1: the source's capabilities changed"
	cmp -s "$T/src.params0" "$T/src.params1" || fail "$1: the source's parameters changed"
	wait_beats "$src_log" 1 30 || fail "$1: the source guest stopped beating"
}

for s in $SHAPES; do
	peer h "$s"
	# doctor: 3 when a QEMU answers with a reply of the wrong shape.
	run $QMIGRATE doctor --src-qmp "$T/h.sock"
	expect "doctor, source $s" 3 "$(why "$s")"
	run $QMIGRATE doctor --src-qmp "$src_qmp" --dst-qmp "$T/h.sock"
	expect "doctor, destination $s" 3 "$(why "$s")"
	# caps: 3 (setup failed).
	run $QMIGRATE caps --src-qmp "$T/h.sock" --dst-qmp "$dst_qmp"
	expect "caps, source $s" 3 "$(why "$s")"
	run $QMIGRATE caps --src-qmp "$src_qmp" --dst-qmp "$T/h.sock"
	expect "caps, destination $s" 3 "$(why "$s")"
	# migrate, the peer as the source: nothing starts; the real destination
	# is still waiting for a migration.
	run $QMIGRATE migrate --src-qmp "$T/h.sock" --dst-qmp "$dst_qmp" --port-range $PR
	expect "migrate, source $s" 3 "$(why "$s")"
	[ "$(status_of "$dst_qmp")" = inmigrate ] || fail "migrate, source $s: destination touched"
	# migrate, the peer as the destination: the real source runs as before.
	run $QMIGRATE migrate --src-qmp "$src_qmp" --dst-qmp "$T/h.sock" --port-range $PR
	expect "migrate, destination $s" 3 "$(why "$s")"
	source_intact "migrate, destination $s"
	stop_peer h
done

# In front of a real destination, one command answered wrongly once the
# migration is under way (the destination's settings changed, its incoming
# side opened): rolled back (4), the source as it was. A fresh destination
# each time (a rollback may leave the old one half set up).
for case in "migrate-set-capabilities both" "migrate-incoming otherid" \
	"migrate-incoming trunc" "migrate-set-capabilities oversize"; do
	set -- $case
	launch_guest d2 --guest tiny --mem 64M --incoming --accel tcg
	peer r "$2" --only "$1" --qemu "$d2_qmp"
	run $QMIGRATE migrate --src-qmp "$src_qmp" --dst-qmp "$T/r.sock" --port-range $PR
	expect "migrate, destination answers $1 with $2" 4 "$1: .*($(why "$2"))"
	source_intact "migrate, destination answers $1 with $2"
	stop_peer r
	kill "$d2_pid"
done

# After the migration completed: the destination's query-status (its third)
# answered wrongly, its RESUME event never seen (lost, or late: a loaded
# machine did that, and the engine then resumed the source beside a running
# destination). The destination may run: it keeps the guest (8), the
# source is never resumed.
for ev in --drop-events ""; do
	launch_guest s3 --guest tiny --mem 256M --dirty-rate 5M --accel tcg
	launch_guest d3 --guest tiny --mem 256M --incoming --accel tcg
	peer r both --only query-status --skip 2 --qemu "$d3_qmp" $ev
	JOURNAL=
	KEEP_JOURNAL=1 run $QMIGRATE migrate --src-qmp "$s3_qmp" --dst-qmp "$T/r.sock" --port-range $PR
	expect "migrate, destination answers query-status after completion with both $ev" 8 \
		"reply carries both 'return' and 'error'; the destination had taken over"
	# Its settings could not be put back: the journal stays, and recover
	# (once the destination answers again) restores them and removes it.
	if [ -n "$JOURNAL" ]; then
		grep -q "qmigrate recover" "$T/err" || fail "a kept journal, but no word of recover"
		job=$(basename "$JOURNAL" .journal)
		$QMIGRATE recover --job "$job" > "$T/rec" 2>&1 || fail "recover $job: $(cat "$T/rec")"
		[ -e "$JOURNAL" ] && fail "recover left $JOURNAL"
		echo "recover: $(head -c 300 "$T/rec")"
	fi
	d3=$(status_of "$d3_qmp"); s3=$(status_of "$s3_qmp" 2>/dev/null)
	[ "$d3" = running ] || fail "after completion: the destination is $d3"
	[ "$s3" = running ] && fail "after completion: the source runs too"
	stop_peer r
	kill "$s3_pid" "$d3_pid"
done

# The source's connection breaks while it migrates (its second
# query-migrate answered wrongly): the engine can no longer cancel on the
# source; whatever it can still do, never two running copies.
launch_guest s4 --guest tiny --mem 256M --dirty-rate 20M --accel tcg
launch_guest d4 --guest tiny --mem 256M --incoming --accel tcg
peer r both --only query-migrate --skip 1 --qemu "$s4_qmp"
run $QMIGRATE migrate --src-qmp "$T/r.sock" --dst-qmp "$d4_qmp" --port-range $PR --max-bandwidth 200M
stop_peer r
[ "$rc" -gt 128 ] && fail "source breaks mid-migration: killed by signal $((rc - 128))"
grep -q "reply carries both 'return' and 'error'" "$T/err" ||
	{ cat "$T/err"; fail "source breaks mid-migration: no clear error"; }
# The destination first: QEMU may still finish the migration on its own
# (nothing could cancel it), and a destination seen running means the
# source has stopped for good, unless something resumed it.
d4=$(status_of "$d4_qmp"); s4=$(status_of "$s4_qmp")
echo "source breaks mid-migration: exit $rc, source $s4, destination $d4"
[ "$s4" = running ] && [ "$d4" = running ] && fail "two running copies"
kill "$s4_pid" "$d4_pid"
# The destination still listens until it is gone: wait for both to exit.
for _p in $s4_pid $d4_pid; do
	i=0; while kill -0 "$_p" 2>/dev/null; do
		i=$((i + 1)); [ $i -gt 600 ] && fail "QEMU $_p does not exit"; sleep 0.05; done
done

no_leftover_ports 49216 49231 || fail "a port of $PR is still listening"

# Memory: the worst message under the limits (47600 empty objects in
# arrays of 16000, just under max_nodes; json-c makes ~790 bytes of each)
# is parsed in bounded memory; one more object is refused, naming the limit.
peer w objects --count 47600 --group 16000
/usr/bin/time -f %M -o "$T/rss" $QMIGRATE qmp "$T/w.sock" query-status > "$T/out" 2> "$T/err"
rc=$?
[ $rc = 0 ] || { cat "$T/err"; fail "the largest message under the limits is refused"; }
echo "ok: the worst message under the limits: peak RSS $(cat "$T/rss") KiB"
[ "$(cat "$T/rss")" -lt 131072 ] || fail "peak RSS $(cat "$T/rss") KiB for one message"
stop_peer w
peer w objects --count 48000 --group 16000
$QMIGRATE qmp "$T/w.sock" query-status > "$T/out" 2> "$T/err"; rc=$?
expect "a message over max_nodes" 1 "more than 524288 parse nodes \(limit max_nodes"
stop_peer w
peer w objects --count 20000
$QMIGRATE qmp "$T/w.sock" query-status > "$T/out" 2> "$T/err"; rc=$?
expect "an array over max_elements" 1 "more than 16384 elements \(limit max_elements\)"
stop_peer w
source_intact "the end"
ok "hostile peers: doctor, caps, migrate on both sides"
