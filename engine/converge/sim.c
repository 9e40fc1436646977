/* The offline precopy simulator: the same dynamics QEMU's RAM migration
 * has (passes that send what the previous pass left dirty, a dirty set
 * bounded by the working set, switchover once the rest fits the downtime
 * limit), stepped every 10 ms, deterministic, driving any policy exactly
 * as the live engine does. With env_* set it replays recorded rates. */
#include <errno.h>
#include <string.h>

#include "qmig_policy.h"

#define STEP_MS 10
/* A zero page costs QEMU a header and a byte on the wire, not a page. */
#define ZERO_PAGE_BYTES 9

struct sim {
	const struct qmig_sim_opts *o;
	uint64_t page, wss, bw_cap, dirty_cap;
	double remaining, dirty_set, transferred;
	int64_t t, limit, throttle, pause_t;
	uint64_t pass;
	int paused, postcopy, aborted;
};

/* Piecewise-constant rates of a replayed trace at time t. */
static uint64_t env_at(const struct qmig_sim_opts *o, const uint64_t *v, int64_t t, uint64_t dflt)
{
	uint64_t cur = dflt;

	for (size_t i = 0; i < o->env_n && o->env_t_ms[i] <= t; i++)
		if (v[i])
			cur = v[i];
	return cur;
}

static uint64_t bandwidth(const struct sim *s)
{
	uint64_t bw = s->o->env_n ? env_at(s->o, s->o->env_bandwidth, s->t, s->o->bandwidth)
				  : s->o->bandwidth;

	return s->bw_cap && s->bw_cap < bw ? s->bw_cap : bw;
}

static double dirty_rate(const struct sim *s)
{
	double d = s->o->env_n ? (double)env_at(s->o, s->o->env_dirty, s->t, s->o->dirty_rate)
			       : (double)s->o->dirty_rate;

	if (s->paused)
		return 0;
	d *= 1.0 - s->throttle / 100.0;
	if (s->dirty_cap && d > s->dirty_cap)
		d = (double)s->dirty_cap;
	return d;
}

static void record(struct qmig_sim_result *r, int64_t t, const struct qmig_action *a)
{
	if (r->n_actions >= QMIG_SIM_MAX_ACTIONS)
		return;
	r->actions[r->n_actions] = *a;
	r->action_t_ms[r->n_actions++] = t;
}

static void apply(struct sim *s, struct qmig_sim_result *r, const struct qmig_action *a)
{
	record(r, s->t, a);
	switch (a->kind) {
	case QMIG_ACT_SET_DOWNTIME: s->limit = a->value; break;
	case QMIG_ACT_SET_BANDWIDTH: s->bw_cap = (uint64_t)a->value; break;
	case QMIG_ACT_THROTTLE:
		s->throttle = a->value;
		if (s->throttle > r->throttle_pct_max)
			r->throttle_pct_max = s->throttle;
		break;
	case QMIG_ACT_DIRTY_LIMIT: s->dirty_cap = (uint64_t)a->value << 20; break;
	case QMIG_ACT_POSTCOPY: s->postcopy = 1; break;
	case QMIG_ACT_PAUSE:
		if (!s->paused)
			s->pause_t = s->t;
		s->paused = 1;
		break;
	case QMIG_ACT_ABORT: s->aborted = 1; break;
	}
}

static void ask_policy(struct sim *s, const struct qmig_policy_ops *pol, void *st,
		       struct qmig_sim_result *r)
{
	struct qmig_policy_sample ps = {0};
	struct qmig_prediction pr;
	struct qmig_action acts[8];
	int n;

	ps.t_ms = s->t;
	ps.pass = s->pass;
	ps.transferred = (uint64_t)s->transferred;
	ps.remaining = (uint64_t)(s->remaining + s->dirty_set);
	ps.total = s->o->mem_bytes;
	/* Like QEMU, the dirty rate is known only once a pass has ended. */
	ps.dirty_rate = s->pass > 1 ? (uint64_t)dirty_rate(s) : 0;
	ps.bandwidth = bandwidth(s);
	ps.throttle_pct = s->throttle;
	ps.downtime_limit_ms = s->limit;
	ps.max_bandwidth = s->bw_cap;
	qmig_predict(&ps, &pr);
	n = pol->on_sample(st, &ps, &pr, acts, 8);
	for (int i = 0; i < n; i++)
		apply(s, r, &acts[i]);
}

/* QEMU's iteration: once what is left in the dirty bitmap falls under
 * what the link sends within the downtime limit, it syncs the bitmap (the
 * "pass" count QEMU reports) adding what the guest dirtied meanwhile, and
 * switches over if the total is still under that threshold. Its checks
 * come between bursts of up to 100 ms of sending. Returns 1 when done. */
static int maybe_sync(struct sim *s, struct qmig_sim_result *r)
{
	double bw = (double)bandwidth(s), thr = bw * s->limit / 1000.0;

	if (s->remaining >= thr && !(s->paused && s->remaining <= 0))
		return 0;
	s->pass++;
	s->remaining += s->dirty_set;
	s->dirty_set = 0;
	if (s->remaining >= thr && !s->paused)
		return 0;
	r->downtime_ms = (int64_t)(s->remaining / bw * 1000.0);
	if (s->paused)
		r->downtime_ms += s->t - s->pause_t;
	s->transferred += s->remaining;
	r->total_ms = s->t + (int64_t)(s->remaining / bw * 1000.0);
	r->converged = 1;
	return 1;
}

int qmig_sim_run(const struct qmig_sim_opts *o, const struct qmig_policy_ops *pol,
		 struct qmig_sim_result *r)
{
	struct sim s = {.o = o};
	struct qmig_policy_config cfg;
	int64_t sample = o->sample_ms > 0 ? o->sample_ms : 100;
	int64_t max_t = o->max_time_ms > 0 ? o->max_time_ms : 600000;
	void *st = NULL;
	int err;

	if (!o || o->version < 1 || !pol || !o->mem_bytes || (!o->bandwidth && !o->env_n))
		return -EINVAL;
	memset(r, 0, sizeof(*r));
	s.page = o->page_size ? o->page_size : 4096;
	s.wss = o->wss_bytes && o->wss_bytes < o->mem_bytes ? o->wss_bytes : o->mem_bytes;
	s.limit = o->downtime_limit_ms > 0 ? o->downtime_limit_ms : 300;
	s.pass = 1;
	s.remaining = (double)s.wss + (double)(o->mem_bytes - s.wss) / s.page * ZERO_PAGE_BYTES;
	cfg = o->policy;
	cfg.mem_bytes = o->mem_bytes;
	if (!cfg.downtime_limit_ms)
		cfg.downtime_limit_ms = s.limit;
	err = pol->init ? pol->init(&st, &cfg) : 0;
	if (err < 0)
		return err;
	for (s.t = 0; s.t < max_t; s.t += STEP_MS) {
		double bw = (double)bandwidth(&s), send = bw * STEP_MS / 1000.0;

		if (s.t % sample == 0)
			ask_policy(&s, pol, st, r);
		if (s.aborted) {
			r->aborted = 1;
			r->total_ms = s.t;
			break;
		}
		if (s.postcopy) {
			/* The destination runs now and pulls the rest. */
			double rest = s.remaining + s.dirty_set;

			r->postcopy = 1;
			r->converged = 1;
			r->downtime_ms = 5;
			s.transferred += rest;
			r->total_ms = s.t + (int64_t)(rest / bw * 1000.0);
			break;
		}
		if (send > s.remaining)
			send = s.remaining;
		s.remaining -= send;
		s.transferred += send;
		s.dirty_set += dirty_rate(&s) * STEP_MS / 1000.0;
		if (s.dirty_set > (double)s.wss)
			s.dirty_set = (double)s.wss;
		if ((s.t % 100 == 0 || s.remaining <= 0) && maybe_sync(&s, r))
			break;
	}
	if (!r->converged && !r->aborted)
		r->total_ms = s.t;
	/* QEMU counts one more sync: the one at the start. In this model the
	 * switchover's own sync is already counted by maybe_sync(). */
	r->passes = s.pass + (r->converged && !r->postcopy ? 1 : 0);
	r->transferred_bytes = (uint64_t)s.transferred;
	if (st)
		pol->free(st);
	return 0;
}
