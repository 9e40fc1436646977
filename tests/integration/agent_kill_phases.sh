# kill -9 of the agent, and of the source's qmigrate, at each two-sided
# phase: begin (the prepare has arrived), prepare (the destination is
# launched and journaled, the reply not sent), finish and confirm (the
# stream has completed). The agent is held at the phase by
# QMIGRATE_AGENT_DEBUG_STOP (it stops itself with SIGSTOP), so the kill
# lands exactly there; perform (mid-stream) is agent_kill.sh's. Then
# `qmigrate recover` on each host, and exactly one copy of the guest runs:
# its heartbeats go on, and the other QEMU is gone.
. tests/lib.sh
. tests/netns.sh
. tests/integration/agent_lib.sh
agent_setup qkp

stopped() { grep -q '^State:.*T' "/proc/$1/status" 2>/dev/null; }
# hb_grows LOG WHAT: the guest writing LOG still runs (two new heartbeats).
hb_grows() {
	_n0=$(hb_count "$1"); _i=0
	until [ "$(hb_count "$1")" -ge $((_n0 + 2)) ]; do
		_i=$((_i + 1)); [ $_i -gt 600 ] && fail "$2: no new heartbeats in $1"; sleep 0.05
	done
}

case_run() { # PHASE SIDE(agent|source)
	_p=$1; _s=$2; _n=$1-$2
	agent_stop; [ -n "${_apid:-}" ] && wait "$_apid" 2>/dev/null
	QMIGRATE_AGENT_DEBUG_STOP=$_p; export QMIGRATE_AGENT_DEBUG_STOP
	agent_start
	unset QMIGRATE_AGENT_DEBUG_STOP
	_apid=$AGENT_PID
	launch_guest g --guest tiny --mem 128M --dirty-rate 5M --accel tcg --netns "$NETNS_A"
	ip netns exec "$NETNS_A" $QMIGRATE migrate --src-qmp "$g_qmp" --to "$(agent_to)" \
		--profile tiny --agent-tls "$C" --json > "$T/$_n.jsonl" 2> "$T/$_n.err" &
	_mpid=$!
	_i=0
	until grep -q "\"op\":\"$_p\",\"job\":\"[^\"]*\",\"result\":\"debug-stop\"" "$T/agent.log" &&
		stopped "$_apid"; do
		_i=$((_i + 1))
		[ $_i -gt 1200 ] && fail "$_n: the agent never reached $_p: $(cat "$T/$_n.err") $(tail -3 "$T/agent.log")"
		sleep 0.05
	done
	_job=$(sed -n "s/.*\"op\":\"$_p\",\"job\":\"\\([^\"]*\\)\",\"result\":\"debug-stop\".*/\\1/p" "$T/agent.log")
	if [ "$_s" = agent ]; then
		kill -9 "$_apid"; wait "$_apid" 2>/dev/null; AGENT_PID=
		wait "$_mpid"; _rc=$?
		echo "$_n: agent killed; the source's qmigrate exit $_rc: $(tail -1 "$T/$_n.err" | cut -c1-160)"
		# The agent's host, alone: its journals.
		_jl=$(ls "$STATE/jobs")
		ip netns exec "$NETNS_B" $QMIGRATE recover --agent-state "$STATE" --json \
			> "$T/$_n.recover-b" 2>&1 || fail "$_n: recover on the agent's host: $(cat "$T/$_n.recover-b")"
		echo "$_n: recover on the agent's host: $(grep -o '"job":"[^"]*","result":"[a-z]*"' "$T/$_n.recover-b" || echo "no journal: nothing to do")"
		case $_p in
		prepare) grep -q "\"job\":\"$_job\",\"result\":\"removed\"" "$T/$_n.recover-b" ;;
		finish|confirm) grep -q "\"job\":\"$_job\",\"result\":\"kept\"" "$T/$_n.recover-b" ;;
		esac || fail "$_n: recover did not settle job $_job: $(cat "$T/$_n.recover-b"); journals before: '$_jl'; agent: $(tail -4 "$T/agent.log")"
	else
		kill -9 "$_mpid"; wait "$_mpid" 2>/dev/null
		kill -CONT "$_apid"
		# The agent goes on and applies the ownership rule itself.
		_i=0
		until grep -q "\"op\":\"end\",\"job\":\"$_job\"" "$T/agent.log"; do
			_i=$((_i + 1)); [ $_i -gt 1200 ] && fail "$_n: the agent did not end the job"; sleep 0.05
		done
		ip netns exec "$NETNS_B" $QMIGRATE recover --agent-state "$STATE" --json \
			> "$T/$_n.recover-b" 2>&1 || fail "$_n: recover on the agent's host: $(cat "$T/$_n.recover-b")"
		echo "$_n: source's qmigrate killed; the agent: $(grep -o "\"op\":\"end\",\"job\":\"$_job\",\"result\":\"[a-z]*\"" "$T/agent.log")"
	fi
	# The source's host: its migration journal, if the engine had begun.
	if $QMIGRATE recover --list --json 2>/dev/null | grep -q "\"job\":\"$_mpid\""; then
		$QMIGRATE recover --job "$_mpid" --json > "$T/$_n.recover-a" 2>&1
		echo "$_n: recover on the source's host: $(cut -c1-160 "$T/$_n.recover-a")"
	fi
	[ -z "$(ls "$STATE/jobs")" ] || fail "$_n: journal left on the agent's host: $(ls "$STATE/jobs")"
	case $_p in
	begin|prepare)
		# No stream ever began: the source keeps the guest.
		wait_no_dst 20 || fail "$_n: a destination QEMU is left"
		[ "$(status_of "$g_qmp")" = running ] || fail "$_n: the source is not running"
		hb_grows "$g_log" "$_n: source"
		echo "$_n: one copy: the source runs (heartbeats), no destination"
		;;
	finish|confirm)
		# The stream completed and the destination ran: it keeps the guest.
		_i=0; while alive "$g_pid"; do
			_i=$((_i + 1)); [ $_i -gt 400 ] && fail "$_n: the source QEMU still runs ($(status_of "$g_qmp"))"; sleep 0.05
		done
		[ "$(dst_qemus | wc -l)" = 1 ] || fail "$_n: expected one destination QEMU, have $(dst_qemus | wc -l)"
		_dq=$(ls "$STATE"/vm-*/qmp.sock)
		[ "$(status_of "$_dq")" = running ] || fail "$_n: the destination does not run"
		hb_grows "$(dirname "$_dq")/serial.log" "$_n: destination"
		echo "$_n: one copy: the destination runs (heartbeats), the source QEMU is gone"
		$QMIGRATE qmp "$_dq" quit > /dev/null || fail "$_n: could not quit the destination"
		wait_no_dst 10 || fail "$_n: destination did not quit"
		rm -rf "$STATE"/vm-*
		;;
	esac
	[ -z "$(ls "$STATE/queue" 2>/dev/null)" ] || fail "$_n: queue entry left"
}

for p in begin prepare finish confirm; do
	case_run "$p" agent
	case_run "$p" source
done
agent_stop; [ -n "${_apid:-}" ] && wait "$_apid" 2>/dev/null
agent_start
assert_clean "after every phase"
ok "kill -9 of the agent or the source's qmigrate at begin, prepare, finish, confirm: one copy of the guest runs"
