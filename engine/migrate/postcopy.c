/* Decisions taken while the migration runs: switching to postcopy,
 * pausing the guest to finish, and recovering a postcopy stream that
 * broke. Once postcopy has begun the source no longer holds the guest's
 * whole memory, so a failure cannot be rolled back: the engine pauses
 * both sides and re-opens the stream on a fresh port instead, retrying
 * with backoff for a bounded time. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "migrate.h"
#include "journal/journal.h"
#include "link/link.h"

#define MS 1000000LL
#define DEFAULT_STALL_MS 3000
#define DEFAULT_RECOVER_MS 120000
#define BACKOFF_MIN_MS 250
#define BACKOFF_MAX_MS 4000

static int start_postcopy(struct qmig_migration *m, const char *why)
{
	int r;

	qm_action(m, "start-postcopy", 0, why);
	r = qmig_cmd_migrate_start_postcopy(m->side[SRC].qmp);
	if (r < 0)
		return qm_qmp_fail(m, &m->side[SRC], r, "migrate-start-postcopy");
	m->res.postcopy_started = 1;
	/* From the switch on the destination runs the guest. */
	qm_set_owner(m, OWNER_DESTINATION, "switched to postcopy");
	return 0;
}

/* Called with each precopy sample. */
int qm_precopy_decide(struct qmig_migration *m, const struct qmig_migrate_info *mi)
{
	int64_t elapsed = (qm_now_ns() - m->t_migrate_ns) / MS;
	char why[128];

	if (strcmp(mi->status, "active"))
		return 0;
	if (m->o.postcopy && !m->res.postcopy_started) {
		int passes = m->o.postcopy_after_passes > 0 ? m->o.postcopy_after_passes : 1;

		if (m->o.postcopy_after_ms > 0 && elapsed >= m->o.postcopy_after_ms) {
			snprintf(why, sizeof(why), "%lld ms of precopy", (long long)elapsed);
			return start_postcopy(m, why);
		}
		/* The dirty-sync count is 1 during the first pass. */
		if (m->o.postcopy_after_ms <= 0 && mi->ram_dirty_sync_count > (uint64_t)passes) {
			snprintf(why, sizeof(why), "%d precopy pass%s done", passes,
				 passes > 1 ? "es" : "");
			return start_postcopy(m, why);
		}
	}
	if (m->o.pause_after_ms > 0 && !m->res.paused_to_finish &&
	    elapsed >= m->o.pause_after_ms) {
		int r;

		snprintf(why, sizeof(why), "not converged after %lld ms: finish with the guest paused",
			 (long long)elapsed);
		qm_action(m, "pause-to-finish", elapsed, why);
		r = qmig_cmd_stop(m->side[SRC].qmp);
		if (r < 0)
			return qm_qmp_fail(m, &m->side[SRC], r, "stop (pause to finish)");
		m->res.paused_to_finish = 1;
	}
	return 0;
}

static int side_status(struct side *s, struct qmig_migrate_info *mi)
{
	int r = qmig_cmd_query_migrate(s->qmp, mi);

	if (r < 0)
		snprintf(mi->status, sizeof(mi->status), "unknown");
	return r;
}

/* One attempt: the destination listens again (a fresh port unless it is
 * already waiting), the source resumes towards it. */
static int recover_attempt(struct qmig_migration *m)
{
	struct side *src = &m->side[SRC], *dst = &m->side[DST];
	struct qmig_migrate_info smi, dmi;
	char uri[QMIG_HOST_MAX + 64];
	int r;

	side_status(src, &smi);
	side_status(dst, &dmi);
	if (!strcmp(dmi.status, "postcopy-active"))
		qmig_cmd_migrate_pause(dst->qmp); /* it has not noticed yet */
	if (!strcmp(dmi.status, "postcopy-paused") || !strcmp(dmi.status, "postcopy-active")) {
		if (qm_relay_on(m)) {
			/* A fresh socket: the relay's destination half connects
			 * the recovered channel there. */
			qm_relay_renew_in(m);
			qm_relay_in_uri(m, uri, sizeof(uri));
		} else {
			if (qm_alloc_port(m) < 0)
				return m->error;
			qm_tcp_uri(uri, sizeof(uri), m->o.listen_addr, m->res.port);
		}
		qm_journal(m, dst->name, "migrate-recover", NULL);
		r = qmig_cmd_migrate_recover(dst->qmp, uri);
		if (r < 0) {
			qm_log(m, QMIG_LOG_WARN, "destination: migrate-recover: %s",
			       qmig_qmp_conn_error(dst->qmp));
			return 0;
		}
		qm_action(m, "migrate-recover", m->res.port, "destination listens again");
	}
	if (!strcmp(smi.status, "postcopy-paused")) {
		/* The relay: a fresh pair of halves for the new channel,
		 * and the source resumes only once it reaches the far half. */
		if (qm_relay_on(m)) {
			r = qm_relay_recover_ready(m);
			if (r <= 0)
				return r < 0 ? r : 0;
			qm_relay_out_uri(m, uri, sizeof(uri));
		}
		else
			qm_tcp_uri(uri, sizeof(uri), m->o.dst_addr, m->res.port);
		r = qmig_cmd_migrate(src->qmp, uri, 1);
		m->res.recovery_attempts++;
		if (r < 0)
			qm_log(m, QMIG_LOG_INFO, "source: resume: %s", qmig_qmp_conn_error(src->qmp));
		else
			qm_action(m, "migrate-resume", m->res.port, "source resumes the stream");
	}
	return 0;
}

/* Called with each postcopy sample (status postcopy-*). */
int qm_postcopy_step(struct qmig_migration *m, const struct qmig_migrate_info *mi)
{
	int64_t now = qm_now_ns();
	int stall_ms = m->o.postcopy_stall_ms > 0 ? m->o.postcopy_stall_ms : DEFAULT_STALL_MS;
	int limit_ms = m->o.recover_timeout_ms > 0 ? m->o.recover_timeout_ms : DEFAULT_RECOVER_MS;
	int backoff;

	m->res.postcopy_requests = mi->ram_postcopy_requests;
	if (!strcmp(mi->status, "postcopy-active")) {
		if (m->rec_active) {
			m->rec_active = 0;
			m->res.recoveries++;
			qm_action(m, "postcopy-recovered", m->res.recoveries,
				  "the stream runs again");
		}
		if (mi->ram_transferred != m->pc_last_bytes || !m->pc_last_progress_ns) {
			m->pc_last_bytes = mi->ram_transferred;
			m->pc_last_progress_ns = now;
		} else if (now - m->pc_last_progress_ns > stall_ms * MS) {
			/* A cut link leaves TCP waiting for minutes: do not wait. */
			qm_action(m, "migrate-pause", stall_ms, "no postcopy progress: pause both sides");
			qmig_cmd_migrate_pause(m->side[SRC].qmp);
			qmig_cmd_migrate_pause(m->side[DST].qmp);
			m->pc_last_progress_ns = now;
		}
		return 0;
	}
	if (strcmp(mi->status, "postcopy-paused") && strcmp(mi->status, "postcopy-recover"))
		return 0;
	if (!m->rec_active) {
		m->rec_active = 1;
		m->rec_start_ns = now;
		m->rec_next_ns = now;
		m->rec_attempt = 0;
		qm_action(m, "postcopy-paused", 0, "the postcopy stream broke: recovering");
	}
	if (now - m->rec_start_ns > (int64_t)limit_ms * MS)
		return qm_fail(m, -ETIMEDOUT,
			       "postcopy: the stream broke and could not be re-established in %d s "
			       "(%d attempts); both QEMUs stay paused in postcopy-paused because the "
			       "guest's memory is split between them: restore the link and run "
			       "migrate-recover on the destination and migrate with resume=true "
			       "on the source",
			       limit_ms / 1000, m->res.recovery_attempts);
	if (now < m->rec_next_ns || !strcmp(mi->status, "postcopy-recover"))
		return 0;
	backoff = BACKOFF_MIN_MS << (m->rec_attempt < 5 ? m->rec_attempt : 5);
	if (backoff > BACKOFF_MAX_MS)
		backoff = BACKOFF_MAX_MS;
	m->rec_attempt++;
	m->rec_next_ns = now + backoff * MS;
	return recover_attempt(m);
}
