#!/bin/sh
# The rule of docs/ARCHITECTURE.md ("Input from peers"): json-c getters
# (json_object_get_*, json_object_array_length/get_idx,
# json_object_object_get*, json_object_object_foreach, json_object_iter_*)
# appear in the library and the CLI only in qmp/reply.c, the typed
# accessors every reply goes through, and in the files listed below, each
# with the reason its objects are safe. A new file that reads JSON with
# json-c directly fails here: use qmp/qmp_reply.h, or add it with a reason.
PATTERN='json_object_get_[a-z0-9_]+\(|json_object_array_(length|get_idx)\(|json_object_object_get(_ex)?\(|json_object_object_foreach|json_object_iter_'
ALLOWED="
qmp/reply.c             the typed accessors themselves
engine/migrate/plan.c   orig_params (validated by qm_parse_query_migrate_parameters) and the plan's own objects
engine/converge/converge.c orig_params, validated as above
engine/migrate/postcopy.c the plan's own set_params
engine/converge/steer.c the plan's own set_params
engine/journal/action.c the plan's own set_params (which parameters a change must restore)
engine/link/tls.c       orig_params, validated as above
engine/journal/journal.c the journal qmigrate wrote itself (0600 file in a private directory)
engine/migrate/recover.c the journal, read through its own typed qm_jget helpers
engine/doctor/versions.c query-machines, type-checked as an array by qm_call_get; json-c's own type checks on members
engine/migrate/phases.c qom-list reply type-checked before use; the config record it builds itself
engine/save/cpr.c       qom-get values, each type-checked (json_object_is_type) before it is read
engine/save/save_util.c a qom-get string type-checked first; caps/params validated by the qm_parse_query_migrate_* parsers
engine/agent/agent_io.c the agent protocol's own typed accessors (qm_aj_*): each checks the member's type first
engine/agent/agent_client.c only json_object_get_boolean on "ok" (defined for every type and for a missing member)
tools/cmd_agent.c       the same: "ok" read with json_object_get_boolean
tools/agent_src.c       boolean, string and int64 getters, defined for every type (a non-string prints as JSON text); its own queue notes
tools/agent_job.c       the agent's own journals (0600, in its state directory): the disk list's entries type-checked before they are read
tools/agent_profile.c   the host's own profile files (root's), every value type-checked before it is read
tools/cmd_job.c         the job control socket's replies (our own process, 0600 socket)
tools/cmd_migrate.c     the engine's own records and the job socket's replies
"
bad=0
for f in $(grep -lE "$PATTERN" qmp/*.c transport/*.c engine/*/*.c tools/*.c); do
	if ! printf '%s\n' "$ALLOWED" | awk '{print $1}' | grep -qx "$f"; then
		echo "FAIL: $f calls json-c getters directly:"
		grep -nE "$PATTERN" "$f" | head -10
		bad=1
	fi
done
[ "$bad" = 0 ] || {
	echo "read peers' JSON through qmp/qmp_reply.h (qm_rd_*), or list the file in $0 with a reason"
	exit 1
}
echo "ok: json-c getters only in qmp/reply.c and $(printf '%s\n' "$ALLOWED" | grep -c .) files with reasons"
