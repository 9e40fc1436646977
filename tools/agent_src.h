/* qmigrate migrate --to: the source side through a destination agent. */
#ifndef QMIG_TOOLS_AGENT_SRC_H
#define QMIG_TOOLS_AGENT_SRC_H

#include "qmigrate.h"

/* Connect to the agent, prepare, and point o at the remote destination.
 * Dies (exit 3) with the agent's reason when it refuses. */
void agent_src_start(struct qmig_migrate_opts *o, const char *to, const char *profile,
		     const char *const *sets);
/* Before agent_src_start: the stream's TLS directory (--tls) and the
 * name the destination's certificate must carry (--tls-hostname), for
 * the agent to check its own certificates against; NULL: plain. */
void agent_src_stream_tls(const char *dir, const char *hostname);
/* Before agent_src_start: --max-outbound N (0: no limit; not called:
 * $QMIGRATE_MAX_OUTBOUND, else AGENT_SRC_MAX_OUTBOUND). */
#define AGENT_SRC_MAX_OUTBOUND 2
void agent_src_max_outbound(long n);
/* qmigrate status: the migrations of this host waiting for a place (its
 * outbound limit, or the destination agent's queue), one line (or JSON
 * object) each. Returns how many were listed. */
int agent_src_list_queued(int json);
int agent_src_active(void);
int agent_src_fd(void);
void agent_src_process(void);
/* --json: hold the engine's "result" record back until the agent's
 * finish has been merged into it. 1 when held. */
int agent_src_hold(const struct qmig_migration_event *ev);
/* finish + confirm (or abort), merge the agent's verdict into res, print
 * the held result record (json). */
void agent_src_end(struct qmig_result *res, int json);

/* qmigrate status/recover on an agent's host (tools/cmd_agent.c). */
/* The jobs and queue of the agent at url (its control protocol), or read
 * from an agent state directory (NULL: the agent's default). Exit code. */
int agent_cli_status(const char *url, const char *tls_dir, const char *state, int json);
/* The ownership rule for the jobs dead agents left in state (NULL: the
 * default): 0, -ENOENT no such directory, -EIO some could not be settled. */
int agent_cli_recover(const char *state, int json);
void agent_state_default(char *buf, size_t len);

#endif
