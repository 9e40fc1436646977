#!/bin/sh
# The rule of docs/ARCHITECTURE.md ("Never waiting"): inside the library
# (qmp/, transport/, engine/) only qmp/wait.c waits. Everything else waits
# through qm_wait_fd / qm_sleep_until / qm_wait_pid / qm_yield, which block
# on a plain stack and suspend the engine's fiber inside process(). A new
# poll(), sleep, or blocking waitpid() anywhere else fails here; the files
# below are allowed one, each with its reason.
PATTERN='(^|[^_a-z])(poll|usleep|nanosleep|sleep|ppoll|select|epoll_wait)\(|waitpid\([^,]*,[^,]*, *0\)'
ALLOWED="
qmp/wait.c              the one place that waits
engine/migrate/migrate.c qmig_migration_run(): the caller's own blocking loop, by definition
transport/port.c        reaping a child it has just SIGKILLed (returns at once)
engine/doctor/versions.c reaping a child it has just SIGKILLed (returns at once)
engine/launch/launch_spawn.c reaping a child whose exec failed (it has already exited when the pipe says so)
"
bad=0
for f in qmp/*.c transport/*.c engine/*/*.c; do
	hits=$(grep -nE "$PATTERN" "$f" | grep -vE '^[0-9]+:\s*(/?\*|//)') || continue
	if echo "$ALLOWED" | grep -q "^$f "; then
		continue
	fi
	echo "FAIL: $f waits outside qmp/wait.c (use qm_wait_fd / qm_sleep_until / qm_wait_pid):"
	echo "$hits"
	bad=1
done
[ $bad = 0 ] || exit 1
echo "ok: library waits only in qmp/wait.c and $(echo "$ALLOWED" | grep -c .) files with reasons"
