/* The precopy model. A pass sends what is left at its start at the link's
 * bandwidth; while it does, the guest dirties pages at its dirty rate.
 * With r = dirty/bandwidth < 1 what is left shrinks by r each pass, and
 * QEMU switches over once it fits in bandwidth * downtime-limit. With
 * r >= 1 it never shrinks: the migration cannot converge under the limit,
 * and the pause needed is what is left now over the bandwidth. */
#include <math.h>

#include "qmig_policy.h"

const char *qmig_verdict_name(enum qmig_verdict v)
{
	switch (v) {
	case QMIG_VERDICT_CONVERGING: return "converging";
	case QMIG_VERDICT_STALLED: return "stalled";
	case QMIG_VERDICT_CANNOT_CONVERGE: return "cannot-converge";
	default: return "unknown";
	}
}

/* The samples come from a QEMU (or a trace): a number too large for the
 * result saturates, at 2^60 ms or bytes, which leaves the policies room
 * for their own arithmetic (converting it would be undefined). */
#define QM_SAT_MAX 1152921504606846976.0 /* 2^60 */

static int64_t sat_i64(double x)
{
	if (x != x)
		return 0;
	if (x <= -QM_SAT_MAX)
		return -(int64_t)QM_SAT_MAX;
	return x < QM_SAT_MAX ? (int64_t)x : (int64_t)QM_SAT_MAX;
}

static uint64_t sat_u64(double x)
{
	if (!(x > 0))
		return 0;
	return x < QM_SAT_MAX ? (uint64_t)x : (uint64_t)QM_SAT_MAX;
}

void qmig_predict(const struct qmig_policy_sample *s, struct qmig_prediction *p)
{
	double bw = (double)s->bandwidth, rem = (double)s->remaining;
	double drain = (double)s->drain_rate > bw ? (double)s->drain_rate : bw;
	double limit_ms = s->downtime_limit_ms > 0 ? (double)s->downtime_limit_ms : 300;
	double fits = bw * limit_ms / 1000.0, dirty = (double)s->dirty_rate;
	double t, next, time_s, bytes;
	int k;

	*p = (struct qmig_prediction){QMIG_VERDICT_UNKNOWN, 0, 0, -1, 0, 0, 0};
	if (bw <= 0)
		return;
	p->dirty_ratio = dirty / bw;
	p->needed_downtime_ms = sat_i64(ceil(rem / bw * 1000.0));
	if (rem <= fits) {
		p->verdict = QMIG_VERDICT_CONVERGING;
		p->time_left_ms = sat_i64(rem / bw * 1000.0);
		p->downtime_ms = p->time_left_ms;
		p->total_bytes = s->transferred + s->remaining;
		return;
	}
	/* The first pass has no dirty-rate measurement yet: QEMU reports 0. */
	if (s->pass <= 1 && !s->dirty_rate)
		return;
	if (p->dirty_ratio >= 1.0) {
		p->verdict = QMIG_VERDICT_CANNOT_CONVERGE;
		p->downtime_ms = p->needed_downtime_ms;
		return;
	}
	/* This pass drains at the observed rate; what it leaves dirty is real
	 * data, sent at the bandwidth, each pass a factor dirty/bw smaller. */
	t = rem / drain;
	time_s = t;
	bytes = t * bw;
	next = dirty * t;
	for (k = 1; next > fits && k < 10000; k++) {
		t = next / bw;
		time_s += t;
		bytes += next;
		next = dirty * t;
	}
	p->verdict = QMIG_VERDICT_CONVERGING;
	p->passes_left = k;
	p->downtime_ms = sat_i64(next / bw * 1000.0);
	p->time_left_ms = sat_i64(time_s * 1000.0 + (double)p->downtime_ms);
	p->total_bytes = sat_u64((double)s->transferred + bytes + next);
}
