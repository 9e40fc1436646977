/* The precopy monitor: turns query-migrate samples into the engine's own
 * measurements (smoothed bandwidth, dirty rate, pass progress, an
 * estimate of the time left) and emits them as "sample" and "pass"
 * records. */
#include <stdio.h>
#include <string.h>

#include "converge.h"
#include "link/link.h"
#include "storage/storage.h"

#define BW_ALPHA 0.3

static struct json_object *sample_json(const struct qmig_sample *s)
{
	struct json_object *o = json_object_new_object();

#define ADD_I(k, v) json_object_object_add(o, k, json_object_new_int64((int64_t)(v)))
	json_object_object_add(o, "status", json_object_new_string(s->status));
	ADD_I("pass", s->pass);
	ADD_I("transferred", s->transferred);
	ADD_I("remaining", s->remaining);
	ADD_I("total", s->total);
	ADD_I("dirty_rate", s->dirty_rate);
	ADD_I("bandwidth", s->bandwidth);
	json_object_object_add(o, "percent", json_object_new_double(s->percent));
	ADD_I("expected_downtime_ms", s->expected_downtime_ms);
	ADD_I("eta_ms", s->eta_ms);
	ADD_I("throttle_pct", s->throttle_pct);
	if (s->relay_bytes) {
		ADD_I("relay_bandwidth", s->relay_bandwidth);
		ADD_I("relay_bytes", s->relay_bytes);
	}
#undef ADD_I
	return o;
}

/* What policies see: the latest sample and the limits in force. */
void qm_policy_sample_of(const struct qmig_migration *m, struct qmig_policy_sample *ps)
{
	*ps = (struct qmig_policy_sample){m->last.t_ms,      m->last.pass,
					  m->last.transferred, m->last.remaining,
					  m->last.total,     m->last.dirty_rate,
					  m->last.bandwidth, m->last.throttle_pct,
					  m->downtime_limit, m->bandwidth_limit,
					  (uint64_t)m->drain_ewma};
	/* QEMU measures no dirty rate during the first pass: the rate
	 * measured before the migration stands in for it. */
	if (!ps->dirty_rate && ps->pass <= 1)
		ps->dirty_rate = m->res.premeasured_dirty_rate;
}

static struct json_object *prediction_json(const struct qmig_prediction *p)
{
	struct json_object *o = json_object_new_object();

	json_object_object_add(o, "verdict", json_object_new_string(qmig_verdict_name(p->verdict)));
	json_object_object_add(o, "dirty_ratio", json_object_new_double(p->dirty_ratio));
	json_object_object_add(o, "passes_left", json_object_new_double(p->passes_left));
	json_object_object_add(o, "time_left_ms", json_object_new_int64(p->time_left_ms));
	json_object_object_add(o, "downtime_ms", json_object_new_int64(p->downtime_ms));
	json_object_object_add(o, "total_bytes", json_object_new_int64((int64_t)p->total_bytes));
	json_object_object_add(o, "needed_downtime_ms", json_object_new_int64(p->needed_downtime_ms));
	return o;
}

/* The verdict people see. The model's, per sample, except that a pass
 * count growing while what is left at each pass start does not fall is
 * "stalled" whatever the model says: a guest whose working set is dirtied
 * again within every pass keeps the dirty rate just under the bandwidth
 * (it cannot dirty more than its working set per pass), so the ratio
 * hovers near 1 and the model flips between the two. The wire rate is
 * QEMU's own (mbps: every byte written to the stream, headers and zero
 * pages included, over its last bandwidth window). */
#define STALL_PASSES 3
static void judge(struct qmig_migration *m, double mbps)
{
	const struct qmig_sample *s = &m->last;
	struct qmig_policy_sample ps;
	struct qmig_prediction v;
	double drain, done = 0;

	m->wire_rate = mbps > 0 ? (uint64_t)(mbps * 1e6 / 8) : s->bandwidth;
	/* The pages found dirty at the end of this pass are those dirtied
	 * during all of it: predict from the pass's start, then take off the
	 * part of it already done (from mid-pass, the model would see only
	 * what is left and promise a switchover that the next dirty sync
	 * takes back). */
	qm_policy_sample_of(m, &ps);
	if (s->pass > 1 && m->pass_start_remaining > ps.remaining) {
		done = (double)(m->pass_start_remaining - ps.remaining);
		ps.remaining = m->pass_start_remaining;
		ps.transferred = ps.transferred > (uint64_t)done ? ps.transferred - (uint64_t)done : 0;
	}
	qmig_predict(&ps, &v);
	drain = m->drain_ewma > (double)s->bandwidth ? m->drain_ewma : (double)s->bandwidth;
	if (v.verdict == QMIG_VERDICT_CONVERGING && drain > 0) {
		v.time_left_ms -= (int64_t)(done / drain * 1000.0);
		if (v.time_left_ms < v.downtime_ms)
			v.time_left_ms = v.downtime_ms;
	}
	if (m->low_pass && s->pass >= m->low_pass + STALL_PASSES)
		m->verdict = QMIG_VERDICT_STALLED;
	else if (v.verdict == QMIG_VERDICT_CANNOT_CONVERGE && s->pass < 2)
		m->verdict = QMIG_VERDICT_UNKNOWN;
	else
		m->verdict = v.verdict;
	m->last.eta_ms = m->verdict == QMIG_VERDICT_CONVERGING ? v.time_left_ms : -1;
}

int qm_monitor_sample(struct qmig_migration *m, struct qmig_migrate_info *mi)
{
	struct qmig_sample s = QMIG_SAMPLE_INIT;
	struct qmig_policy_sample ps;
	struct json_object *rec;
	int64_t now = qm_now_ns();
	uint64_t page = mi->ram_page_size ? mi->ram_page_size : 4096;

	s.t_ms = m->t_migrate_ns ? (now - m->t_migrate_ns) / 1000000 : 0;
	s.pass = mi->ram_dirty_sync_count;
	s.transferred = mi->ram_transferred;
	s.remaining = mi->ram_remaining;
	s.total = mi->ram_total;
	s.dirty_rate = mi->ram_dirty_pages_rate * page;
	s.expected_downtime_ms = (int64_t)mi->expected_downtime_ms;
	s.throttle_pct = mi->cpu_throttle_percentage;
	snprintf(s.status, sizeof(s.status), "%s", mi->status);

	if (m->last_sample_ns && s.transferred >= m->last_transferred) {
		double dt = (now - m->last_sample_ns) / 1e9;
		double bw = dt > 0 ? (s.transferred - m->last_transferred) / dt : 0;

		m->bw_ewma = m->bw_ewma ? BW_ALPHA * bw + (1 - BW_ALPHA) * m->bw_ewma : bw;
	}
	/* Within a pass the remaining count only falls, as fast as pages are
	 * processed (zero pages cost almost no bandwidth). */
	if (m->last_sample_ns && s.pass == m->last.pass && s.remaining < m->last.remaining) {
		double dt = (now - m->last_sample_ns) / 1e9;
		double drain = dt > 0 ? (m->last.remaining - s.remaining) / dt : 0;

		m->drain_ewma = m->drain_ewma ? BW_ALPHA * drain + (1 - BW_ALPHA) * m->drain_ewma
					      : drain;
	}
	m->last_sample_ns = now;
	m->last_transferred = s.transferred;
	s.bandwidth = (uint64_t)m->bw_ewma;

	/* Progress within the current pass: the first pass against the whole
	 * RAM, later ones against what was left when the pass began. */
	if (s.pass != m->last.pass && s.pass > 1) {
		struct json_object *prec = json_object_new_object();

		json_object_object_add(prec, "pass", json_object_new_int64((int64_t)s.pass));
		json_object_object_add(prec, "remaining",
				       json_object_new_int64((int64_t)s.remaining));
		json_object_object_add(prec, "dirty_rate",
				       json_object_new_int64((int64_t)s.dirty_rate));
		qm_emit(m, "pass", prec, NULL);
		m->pass_start_remaining = s.remaining;
		/* Pass 1 drains zero pages at memory speed; later passes
		 * carry dirtied pages only: start the drain estimate again. */
		m->drain_ewma = 0;
		/* Progress means a new low at a pass start, by a tenth at least. */
		if (!m->low_remaining || s.remaining < m->low_remaining - m->low_remaining / 10) {
			m->low_remaining = s.remaining;
			m->low_pass = s.pass;
		}
	}
	if (s.pass <= 1 && s.total)
		s.percent = 100.0 * (double)(s.total - s.remaining) / (double)s.total;
	else if (m->pass_start_remaining)
		s.percent = s.remaining >= m->pass_start_remaining
				    ? 0
				    : 100.0 * (1.0 - (double)s.remaining /
							     (double)m->pass_start_remaining);
	if (!strcmp(s.status, "completed"))
		s.percent = 100;
	if (s.throttle_pct > m->throttle_max)
		m->throttle_max = s.throttle_pct;
	m->res.throttle_pct_max = m->throttle_max; /* failed results keep it too */
	qm_relay_sample(m, &s);
	m->last = s;
	qm_policy_sample_of(m, &ps);
	qmig_predict(&ps, &m->pred);
	judge(m, mi->ram_mbps);
	/* A failed or cancelled migration still reports what it moved. */
	if (s.pass > m->res.passes)
		m->res.passes = s.pass;
	if (s.transferred > m->res.transferred_bytes)
		m->res.transferred_bytes = s.transferred;
	rec = sample_json(&m->last);
	json_object_object_add(rec, "wire_rate", json_object_new_int64((int64_t)m->wire_rate));
	json_object_object_add(rec, "verdict", json_object_new_string(qmig_verdict_name(m->verdict)));
	json_object_object_add(rec, "prediction", prediction_json(&m->pred));
	qm_storage_sample(m, rec); /* storage.c: the disk mirrors' bytes left */
	qm_emit(m, "sample", rec, &m->last);
	return 0;
}
