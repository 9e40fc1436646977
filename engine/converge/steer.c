/* Steering a running migration from outside (the operator: qmigrate set,
 * qmigrate postcopy, through the job's control socket), the convergence
 * verdict as people read it, its one-time hint, and the completion bound
 * that ends a migration which cannot finish instead of letting it run
 * forever. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "converge.h"
#include "journal/journal.h"

#define MS 1000000LL
#define GIB (1024.0 * 1024.0 * 1024.0)
#define DEFAULT_PER_GIB_S 150      /* KubeVirt's completionTimeoutPerGiB default */
#define MIN_BOUND_MS 60000
#define OPERATOR "by the operator"

__attribute__((format(printf, 3, 4))) static void say(char *msg, size_t len, const char *fmt,
							 ...)
{
	va_list ap;

	if (!msg || !len)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, len, fmt, ap);
	va_end(ap);
}

/* Steering is for a migration in precopy: before it the plan would
 * overwrite the change, after it there is nothing left to steer. */
static int steerable(struct qmig_migration *m, char *msg, size_t len)
{
	if (m->finished || m->phase >= QMIG_PHASE_DONE || m->error || m->cancel_requested) {
		say(msg, len, "the migration is %s", m->finished ? "over" : "ending");
		return -ESRCH;
	}
	if (m->res.postcopy_started) {
		say(msg, len, "%s", "the migration is in postcopy already");
		return -EALREADY;
	}
	if (m->phase != QMIG_PHASE_PRECOPY || !m->side[SRC].qmp) {
		say(msg, len, "the migration is not in precopy (phase %s)",
		    qmig_phase_name(m->phase));
		return -EBUSY;
	}
	return 0;
}

int qmig_migration_set_limit(struct qmig_migration *m, enum qmig_limit which, int64_t value,
			     char *msg, size_t len)
{
	const char *name = which == QMIG_LIMIT_DOWNTIME_MS ? "downtime-limit" : "max-bandwidth";
	struct side *src = &m->side[SRC];
	struct json_object *a;
	int r;

	if (which != QMIG_LIMIT_DOWNTIME_MS && which != QMIG_LIMIT_BANDWIDTH) {
		say(msg, len, "%s", "unknown limit");
		return -EINVAL;
	}
	/* QEMU's own bounds: downtime-limit up to 2000 s, a bandwidth > 0. */
	if (value <= 0 || (which == QMIG_LIMIT_DOWNTIME_MS && value > 2000000)) {
		say(msg, len, "%s out of range", name);
		return -ERANGE;
	}
	r = steerable(m, msg, len);
	if (r < 0)
		return r;
	a = json_object_new_object();
	json_object_object_add(a, name, json_object_new_int64(value));
	r = qmig_cmd_migrate_set_parameters(src->qmp, a);
	json_object_put(a);
	qm_kick(m); /* a suspended step's reply may have been read by this call */
	if (r < 0) {
		say(msg, len, "source QEMU refused: %s", qmig_qmp_conn_error(src->qmp));
		return r;
	}
	qm_note_param(src, name);
	if (which == QMIG_LIMIT_DOWNTIME_MS)
		m->downtime_limit = value;
	else
		m->bandwidth_limit = (uint64_t)value;
	qm_action(m, which == QMIG_LIMIT_DOWNTIME_MS ? "set-downtime" : "set-bandwidth", value,
		  OPERATOR);
	return 0;
}

int qmig_migration_start_postcopy(struct qmig_migration *m, char *msg, size_t len)
{
	struct side *src = &m->side[SRC];
	int r;

	if (!m->o.postcopy) {
		say(msg, len, "%s", "postcopy was not enabled for this migration (it must be "
				    "chosen when the migration starts: --postcopy)");
		return -EINVAL;
	}
	r = steerable(m, msg, len);
	if (r < 0)
		return r;
	if (strcmp(m->last.status, "active")) {
		say(msg, len, "QEMU's migration is '%s', not active yet", m->last.status);
		return -EAGAIN;
	}
	r = qmig_cmd_migrate_start_postcopy(src->qmp);
	qm_kick(m);
	if (r < 0) {
		say(msg, len, "source QEMU refused: %s", qmig_qmp_conn_error(src->qmp));
		return r;
	}
	m->res.postcopy_started = 1;
	qm_action(m, "start-postcopy", 0, OPERATOR);
	return 0;
}

const char *qmig_migration_cancel_ignored(const struct qmig_migration *m)
{
	if (m->finished || m->phase == QMIG_PHASE_DONE || m->phase == QMIG_PHASE_FAILED)
		return "the migration has already ended";
	if (m->phase == QMIG_PHASE_ROLLBACK || m->error)
		return "the migration is already rolling back";
	if (m->res.postcopy_started)
		return "the migration is in postcopy: the destination runs the guest and "
		       "the source cannot take it back";
	if (m->phase >= QMIG_PHASE_CONFIRM)
		return "the destination has taken over the guest (confirm/finish)";
	return NULL;
}

static void rate_text(char *buf, size_t len, double bps)
{
	snprintf(buf, len, "%.1f MiB/s", bps / (1024.0 * 1024.0));
}

void qmig_migration_convergence(const struct qmig_migration *m, struct qmig_convergence *out)
{
	struct qmig_convergence c = {.verdict = m->verdict, .time_left_ms = -1,
				     .bound_left_ms = -1};
	char d[32], w[32];

	c.dirty_rate = m->last.dirty_rate;
	c.wire_rate = m->wire_rate;
	if (m->verdict == QMIG_VERDICT_CONVERGING)
		c.time_left_ms = m->last.eta_ms;
	if (m->completion_bound_ms > 0 && m->t_migrate_ns)
		c.bound_left_ms = m->completion_bound_ms - (qm_now_ns() - m->t_migrate_ns) / MS;
	if (m->last.pass > m->low_pass && m->low_pass)
		c.stalled_passes = m->last.pass - m->low_pass;
	rate_text(d, sizeof(d), (double)c.dirty_rate);
	rate_text(w, sizeof(w), (double)c.wire_rate);
	switch (c.verdict) {
	case QMIG_VERDICT_CONVERGING:
		snprintf(c.text, sizeof(c.text), "converging: dirty %s, wire %s", d, w);
		break;
	case QMIG_VERDICT_STALLED:
		snprintf(c.text, sizeof(c.text),
			 "stalled: %llu passes without progress, dirty %s, wire %s",
			 (unsigned long long)c.stalled_passes, d, w);
		break;
	case QMIG_VERDICT_CANNOT_CONVERGE:
		snprintf(c.text, sizeof(c.text), "cannot converge: dirty %s, wire %s", d, w);
		break;
	default:
		snprintf(c.text, sizeof(c.text), "measuring: wire %s", w);
	}
	*out = c;
}

#define OPTIONS                                                                            \
	"to make it finish: auto-converge (throttle the guest), a convergence policy "     \
	"(predictive), postcopy, a pause to finish (pause-after), or a higher "            \
	"downtime-limit or max-bandwidth"

static int64_t bound_ms(struct qmig_migration *m)
{
	int per = m->o.completion_timeout_per_gib_s;
	double b;

	if (per < 0)
		return -1;
	if (!per)
		per = DEFAULT_PER_GIB_S;
	b = per * 1000.0 * (double)m->last.total / GIB;
	return b < MIN_BOUND_MS ? MIN_BOUND_MS : (int64_t)b;
}

int qm_converge_check(struct qmig_migration *m)
{
	struct qmig_convergence c;
	int64_t elapsed;

	if (!m->completion_bound_ms && m->last.total)
		m->completion_bound_ms = bound_ms(m);
	qmig_migration_convergence(m, &c);
	if (!m->hint_given && (c.verdict == QMIG_VERDICT_STALLED ||
			       (c.verdict == QMIG_VERDICT_CANNOT_CONVERGE && m->last.pass >= 3))) {
		m->hint_given = 1;
		if (m->completion_bound_ms > 0)
			qm_log(m, QMIG_LOG_WARN, "%s; %s (else it is rolled back after %lld s)",
			       c.text, OPTIONS, (long long)(m->completion_bound_ms / 1000));
		else
			qm_log(m, QMIG_LOG_WARN, "%s; %s", c.text, OPTIONS);
	}
	if (m->completion_bound_ms <= 0 || m->res.paused_to_finish || m->offline ||
	    !m->t_migrate_ns)
		return 0;
	elapsed = (qm_now_ns() - m->t_migrate_ns) / MS;
	if (elapsed < m->completion_bound_ms)
		return 0;
	return qm_fail(m, -ETIMEDOUT,
		       "did not complete within its completion bound of %lld s (%d s per GiB of "
		       "RAM, at least %d s; no bound: --no-completion-timeout): %s; %s",
		       (long long)(m->completion_bound_ms / 1000),
		       m->o.completion_timeout_per_gib_s > 0 ? m->o.completion_timeout_per_gib_s
							    : DEFAULT_PER_GIB_S,
		       MIN_BOUND_MS / 1000, c.text, OPTIONS);
}
