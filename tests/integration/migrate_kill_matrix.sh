# The kill matrix (attach mode): qmigrate is stopped as it enters a phase
# (the hidden --debug-stop-at PHASE raises SIGSTOP there, so even the
# shortest phases are hit every time), killed with SIGKILL, and
# `qmigrate recover --job` repairs what it left. After each:
#   - exactly one guest runs, and heartbeats; the other side is paused or
#     gone; the running guest's memory stamps verify;
#   - capabilities, parameters and QOM objects of every side still there
#     equal what they were before the first run;
#   - no port held (a private port range, nothing listening, no lock
#     file), no journal, no RAM dump of the job left;
#   - a second migration of the same guest completes and verifies.
# KILL_PHASES picks the cases (default: a representative subset for make
# check; migrate_kill_matrix_full.sh, in make check-full, runs them all:
# about 10 s alone, minutes beside the rest of the suite).
# A SIDE:EVENT entry stops at that QEMU event instead: destination:RESUME
# is the moment the destination has taken the guest over and runs, while
# the source has not yet been told to quit and the guest's own check after
# the move is still to come (recover must keep the destination and never
# resume the source). PHASE+tls adds --tls: recover then
# also removes the job's tls-creds-x509 objects and the tls parameters.
# PHASE+mem adds --verify=memory: the destination is held paused until the
# RAM comparison, so at confirm it has not run and the source gets the
# guest back. "rollback" is entered by a cancel during precopy.
. tests/lib.sh

PHASES=${KILL_PHASES:-"negotiate precopy+tls postcopy confirm destination:RESUME"}
# A range no other test uses: "no port held" is then exact.
LO=49300 HI=49309
PORTDIR=/run/qmigrate/ports
[ "$(id -u)" = 0 ] || PORTDIR=${XDG_RUNTIME_DIR:-/tmp}/qmigrate-ports
[ "$(id -u)" = 0 ] || [ -n "${XDG_RUNTIME_DIR:-}" ] || PORTDIR=/tmp/qmigrate-ports-$(id -u)

# snapshot NAME QMP: capabilities, parameters and objects of a QEMU.
snapshot() {
	$QMIGRATE qmp "$2" query-migrate-capabilities > "$T/$1.caps" || fail "$1: caps"
	$QMIGRATE qmp "$2" query-migrate-parameters > "$T/$1.params" || fail "$1: params"
	$QMIGRATE qmp "$2" qom-list '{"path":"/objects"}' | tr '{' '\n' | sort > "$T/$1.objs" ||
		fail "$1: objects"
}

same_as_before() {
	for k in caps params objs; do
		cmp -s "$T/$1.$k" "$T/$1.after.$k" ||
			fail "$ph: $1's $k differ from before: $(diff "$T/$1.$k" "$T/$1.after.$k")"
	done
}

# QEMU's run state, or "gone" when its QMP does not answer.
state_of() {
	s=$($QMIGRATE qmp --timeout 3000 "$1" query-status 2>/dev/null |
		sed -n 's/.*"status": *"\([^"]*\)".*/\1/p')
	echo "${s:-gone}"
}

# wait_stopped PID: until the process is stopped (state T), or fail.
wait_stopped() {
	i=0
	until [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" = T ]; do
		i=$((i + 1))
		[ $i -gt 1200 ] && fail "$ph: qmigrate never stopped at $ph: $(tail -3 "$T/$ph.err")"
		alive "$1" || fail "$ph: qmigrate ended before $ph: $(tail -1 "$T/$ph.jsonl") $(tail -3 "$T/$ph.err")"
		sleep 0.05
	done
}

kill_case() {
	ph=$1
	opts="" lopts="" rate=""
	case $ph in
	*+tls)
		[ -d "$T/certs" ] || $QMIGRATE tls init "$T/certs" --host 127.0.0.1 > /dev/null ||
			fail "tls init"
		opts="--tls $T/certs" ;;
	*+mem) opts="--verify=memory" ;;
	esac
	base=${ph%+tls}
	base=${base%+mem}
	case $base in
	precopy|rollback) opts="$opts --max-bandwidth 5M --no-completion-timeout" ;; # stays in precopy
	postcopy) # a guest that dirties faster than the link: precopy never ends
		opts="--max-bandwidth 5M --postcopy-after 1"; lopts="--postcopy"; rate=200M ;;
	esac
	launch_guest s --guest tiny --mem 128M --wss 32M --dirty-rate "${rate:-20M}" --accel tcg $lopts
	launch_guest d --guest tiny --mem 128M --wss 32M --incoming --accel tcg $lopts
	wait_beats "$s_log" 5 30 || fail "$ph: source guest does not heartbeat"
	# Its working set written (twice): zero pages alone would let the
	# migration finish before the phase under test, on a fast machine.
	wait_gen "$s_log" 2 120 || fail "$ph: source guest does not write its working set"
	snapshot src "$s_qmp"
	snapshot dst "$d_qmp"

	$QMIGRATE migrate --src-qmp "$s_qmp" --dst-qmp "$d_qmp" --src-serial "$s_serial_socket" \
		--dst-serial "$d_serial_socket" --port-range $LO-$HI --debug-stop-at "$base" $opts \
		--json > "$T/$ph.jsonl" 2> "$T/$ph.err" &
	mig=$!
	if [ "$base" = rollback ]; then
		# A cancel from another shell sends it into the rollback.
		i=0
		until grep -q '"type":"sample"' "$T/$ph.jsonl" 2>/dev/null; do
			i=$((i + 1)); [ $i -gt 600 ] && fail "$ph: no precopy sample"
			sleep 0.05
		done
		$QMIGRATE cancel --job $mig > /dev/null || fail "$ph: cancel refused"
	fi
	wait_stopped $mig
	case $ph in
	*+tls) grep -q '"qom-type":"tls-creds-x509"' "$T/$ph.jsonl" || fail "$ph: no TLS object planned" ;;
	esac
	kill -9 $mig
	wait $mig 2>/dev/null

	if $QMIGRATE recover --list | grep -q "^$mig "; then
		$QMIGRATE recover --job $mig > "$T/$ph.rec" 2>&1 ||
			fail "$ph: recover failed: $(cat "$T/$ph.rec")"
	else
		# Killed before its first journal write: nothing was changed.
		echo "(no journal: nothing to recover)" > "$T/$ph.rec"
	fi
	echo "$ph: $(cat "$T/$ph.rec")"

	ss=$(state_of "$s_qmp") ds=$(state_of "$d_qmp")
	case "$ss/$ds" in
	running/running) fail "$ph: two running copies of the guest" ;;
	running/*) run=s other=d ;;
	*/running) run=d other=s ;;
	*) fail "$ph: no guest runs (source $ss, destination $ds)" ;;
	esac
	eval "run_qmp=\$${run}_qmp run_log=\$${run}_log run_serial=\$${run}_serial_socket"
	eval "other_state=\$${other}s"
	case "$other_state" in
	paused|postmigrate|inmigrate|finish-migrate|gone) ;;
	*) fail "$ph: the other side is '$other_state', neither paused nor gone" ;;
	esac
	wait_beats "$run_log" 5 30 || fail "$ph: the running guest does not heartbeat (state $(state_of "$run_qmp"), last log line: $(tail -c 200 "$run_log" | tail -1), $($QMIGRATE qmp "$run_qmp" human-monitor-command '{"command-line":"info chardev"}'))"
	$QMIGRATE verify --qmp "$run_qmp" > "$T/$ph.verify" 2>&1 ||
		fail "$ph: the running guest's memory does not verify: $(cat "$T/$ph.verify")"
	[ "$(state_of "$run_qmp")" = running ] || fail "$ph: verify left the guest stopped"

	# Each side still there is as it was before the first run.
	[ "$ss" = gone ] || { snapshot src.after "$s_qmp"; same_as_before src; }
	[ "$ds" = gone ] || { snapshot dst.after "$d_qmp"; same_as_before dst; }
	no_leftover_ports $LO $HI || fail "$ph: a port in $LO-$HI is still held: $(ss -Htln)"
	for p in $(seq $LO $HI); do
		[ -e "$PORTDIR/$p.lock" ] && fail "$ph: port lock $PORTDIR/$p.lock left"
	done
	$QMIGRATE recover --list | grep -q "^$mig " && fail "$ph: journal of job $mig left"
	ls -d /dev/shm/qmigrate-verify-$mig.* /tmp/qmigrate-verify-$mig.* 2>/dev/null &&
		fail "$ph: RAM dumps of job $mig left"

	# The same guest migrates again and verifies.
	launch_guest n --guest tiny --mem 128M --wss 32M --incoming --accel tcg
	$QMIGRATE migrate --src-qmp "$run_qmp" --dst-qmp "$n_qmp" --src-serial "$run_serial" \
		--dst-serial "$n_serial_socket" --port-range $LO-$HI --json > "$T/$ph.again" \
		2> "$T/$ph.again.err" ||
		fail "$ph: second migration failed: $(tail -1 "$T/$ph.again") $(cat "$T/$ph.again.err")"
	res=$(tail -1 "$T/$ph.again")
	[ "$(json_get verified "$res")" = true ] || fail "$ph: second migration not verified: $res"
	wait_beats "$n_log" 5 30 || fail "$ph: guest does not run after the second migration"
	ok "killed at $ph: recovered to the $( [ $run = s ] && echo source || echo destination), clean, migrates again"
	# Free the CPU for the next case.
	kill -9 "$s_pid" "$d_pid" "$n_pid" 2>/dev/null || true
}

for ph in $PHASES; do
	kill_case "$ph"
done
