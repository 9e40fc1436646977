/* The built-in convergence policies, and plug-in loading.
 *
 * passive     QEMU alone: no action.
 * nova        OpenStack Nova: downtime raised in steps, base = downtime/steps,
 *             step i at i * delay * GiB seconds (live_migration_downtime 500 ms,
 *             _steps 10, _delay 75 s/GiB); after the completion timeout
 *             (800 s/GiB) abort, or force completion (postcopy) when allowed.
 * kubevirt    KubeVirt: abort (or postcopy when allowed) when the remaining
 *             data has not reached a new low for progressTimeout (150 s), or
 *             after completionTimeoutPerGiB (150 s/GiB).
 * proxmox     Proxmox VE: migrate_downtime starts at 100 ms and doubles each
 *             time the remaining RAM grew on more than 5 polls.
 * predictive  ours: acts on the model, with the smallest intervention that
 *             makes the migration converge: a higher downtime if that is
 *             within the allowed maximum, else a dirty limit or the minimal
 *             CPU throttle computed from the rates, else postcopy, else a
 *             pause if short enough, else abort.
 */
#include <dlfcn.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "converge.h"
#include "qmig_policy.h"

#define GIB (1024.0 * 1024.0 * 1024.0)

const char *qmig_action_name(enum qmig_action_kind k)
{
	switch (k) {
	case QMIG_ACT_SET_DOWNTIME: return "set-downtime";
	case QMIG_ACT_SET_BANDWIDTH: return "set-bandwidth";
	case QMIG_ACT_THROTTLE: return "throttle";
	case QMIG_ACT_DIRTY_LIMIT: return "dirty-limit";
	case QMIG_ACT_POSTCOPY: return "postcopy";
	case QMIG_ACT_PAUSE: return "pause";
	case QMIG_ACT_ABORT: return "abort";
	}
	return "unknown";
}

__attribute__((format(printf, 6, 7))) static int
act(struct qmig_action *out, int max, int n, enum qmig_action_kind k, int64_t v,
    const char *fmt, ...)
{
	va_list ap;

	if (n >= max)
		return n;
	out[n].kind = k;
	out[n].value = v;
	va_start(ap, fmt);
	vsnprintf(out[n].reason, sizeof(out[n].reason), fmt, ap);
	va_end(ap);
	return n + 1;
}

struct state {
	struct qmig_policy_config cfg;
	double gib;
	int64_t step, lowest_t_ms, last_poll_ms, downtime, last_action_pass;
	uint64_t lowest, last_rem, dirty_before;
	int counter, done, throttle_tries;
	/* predictive: the first pass's samples, and its intervals that sent
	 * pages with data (the link's rate) */
	int64_t fp_t;
	uint64_t fp_tx, fp_rem;
	double link_bytes, link_peak;
	int64_t link_ms;
	int64_t throttle_pass;       /* the pass in which the last throttle was set */
	/* predictive: what was left at the start of this pass and the last */
	uint64_t pass_seen, rem_cur, rem_prev;
};

static int64_t dflt(int64_t v, int64_t d)
{
	return v > 0 ? v : d;
}

static int common_init(void **st, const struct qmig_policy_config *cfg)
{
	struct state *s = calloc(1, sizeof(*s));

	if (!s)
		return -ENOMEM;
	s->cfg = *cfg;
	s->gib = cfg->mem_bytes / GIB;
	s->lowest = UINT64_MAX;
	s->last_action_pass = -1;
	*st = s;
	return 0;
}

static void common_free(void *st)
{
	free(st);
}

static int passive_sample(void *st, const struct qmig_policy_sample *s,
			  const struct qmig_prediction *p, struct qmig_action *out, int max)
{
	(void)st, (void)s, (void)p, (void)out, (void)max;
	return 0;
}

/* Completion timeouts end the same way in Nova and KubeVirt. */
static int give_up(struct state *st, struct qmig_action *out, int max, const char *why,
		   double secs)
{
	st->done = 1;
	return act(out, max, 0, st->cfg.postcopy_allowed ? QMIG_ACT_POSTCOPY : QMIG_ACT_ABORT, 0,
		   "%s: %.0f s", why, secs);
}

static int nova_sample(void *vst, const struct qmig_policy_sample *s,
		       const struct qmig_prediction *p, struct qmig_action *out, int max)
{
	struct state *st = vst;
	int64_t downtime = dflt(st->cfg.nova_downtime_ms, 500), steps = dflt(st->cfg.nova_steps, 10);
	double delay_s = dflt(st->cfg.nova_delay_s_per_gib, 75) * st->gib;
	double timeout_s = dflt(st->cfg.nova_timeout_s_per_gib, 800) * st->gib;
	double base = (double)downtime / steps, offset = (downtime - base) / steps;
	int n = 0;

	(void)p;
	if (st->done)
		return 0;
	if (s->t_ms / 1000.0 > timeout_s)
		return give_up(st, out, max, "completion timeout", timeout_s);
	/* Only the latest due step matters when several fell due at once. */
	while (st->step <= steps && s->t_ms >= (int64_t)(delay_s * st->step * 1000))
		st->step++;
	if (st->step - 1 != st->downtime && st->step > 0) {
		st->downtime = st->step - 1;
		n = act(out, max, n, QMIG_ACT_SET_DOWNTIME,
			(int64_t)(base + offset * (double)(st->step - 1)),
			"downtime step %.0f of %.0f", (double)(st->step - 1), (double)steps);
	}
	return n;
}

static int nova_init(void **st, const struct qmig_policy_config *cfg)
{
	int r = common_init(st, cfg);

	if (!r)
		((struct state *)*st)->downtime = -1;
	return r;
}

static int kubevirt_sample(void *vst, const struct qmig_policy_sample *s,
			   const struct qmig_prediction *p, struct qmig_action *out, int max)
{
	struct state *st = vst;
	int64_t progress_ms = dflt(st->cfg.kubevirt_progress_timeout_s, 150) * 1000;
	double completion_s = dflt(st->cfg.kubevirt_completion_s_per_gib, 150) * st->gib;

	(void)p;
	if (st->done)
		return 0;
	if (s->remaining < st->lowest) {
		st->lowest = s->remaining;
		st->lowest_t_ms = s->t_ms;
	}
	if (s->t_ms - st->lowest_t_ms > progress_ms)
		return give_up(st, out, max, "no progress for", progress_ms / 1000.0);
	if (s->t_ms / 1000.0 > completion_s)
		return give_up(st, out, max, "completion timeout", completion_s);
	return 0;
}

static int proxmox_sample(void *vst, const struct qmig_policy_sample *s,
			  const struct qmig_prediction *p, struct qmig_action *out, int max)
{
	struct state *st = vst;
	int64_t cap = dflt(st->cfg.max_downtime_ms, INT64_MAX / 4);

	(void)p;
	if (!st->downtime) {
		st->downtime = dflt(st->cfg.proxmox_initial_downtime_ms, 100);
		st->last_poll_ms = s->t_ms;
		return act(out, max, 0, QMIG_ACT_SET_DOWNTIME, st->downtime,
			   "initial migrate_downtime %lld ms", (long long)st->downtime);
	}
	if (s->t_ms - st->last_poll_ms < 500) /* Proxmox polls twice a second */
		return 0;
	st->last_poll_ms = s->t_ms;
	if (st->last_rem && s->remaining > st->last_rem)
		st->counter++;
	st->last_rem = s->remaining;
	if (st->counter > 5 && st->downtime < cap) {
		st->counter = 0;
		st->downtime = st->downtime * 2 < cap ? st->downtime * 2 : cap;
		return act(out, max, 0, QMIG_ACT_SET_DOWNTIME, st->downtime,
			   "remaining RAM grew: downtime doubled to %lld ms", (long long)st->downtime);
	}
	return 0;
}

/* The smallest CPU throttle that brings the dirty rate under 70% of the
 * bandwidth, from the rate the guest would dirty unthrottled. */
static int64_t minimal_throttle(const struct qmig_policy_sample *s)
{
	double t = s->throttle_pct > 0 ? s->throttle_pct / 100.0 : 0;
	double raw = t < 0.99 ? s->dirty_rate / (1 - t) : s->dirty_rate;
	double pct = raw > 0 ? ceil((1 - 0.7 * s->bandwidth / raw) * 100) : 0;

	if (pct < 5)
		pct = 5;
	if (pct <= s->throttle_pct)
		pct = s->throttle_pct + 10; /* the last one was not enough */
	if (pct < s->throttle_pct)
		pct = s->throttle_pct;
	return pct > 99 ? 99 : (int64_t)pct;
}

/* calc-dirty-rate's sample-pages (per GiB) the engine asks for: at least
 * 1024 pages sampled in all, which bounds the measured share of dirty
 * pages to a few percent (QEMU's default, 512 per GiB, samples 128 pages
 * of a 256 MiB guest: an error of +-35%, too wide to tell 48 MiB/s from
 * 24). QEMU takes 128 to 4096. Hashing 1024 pages twice costs QEMU
 * nothing that shows. */
unsigned qm_dirty_sample_pages(uint64_t mem_bytes)
{
	double gib = mem_bytes / GIB, per = gib > 0 ? ceil(1024.0 / gib) : 512;

	if (per < 512)
		per = 512;
	return per > 4096 ? 4096 : (unsigned)per;
}

/* The first pass, forecast from the rate measured beside it
 * (calc-dirty-rate, page sampling over 1 s, done at about 1.1 s) and the
 * link's rate, each with a bound:
 *  - link: bytes over time in the intervals between samples that sent
 *    pages with data (what is left fell by no more than 1.25x the bytes
 *    sent; an interval of zero pages, a few bytes each, says nothing about
 *    the link), at least 1 s of them, widened by 20%, and at least the
 *    fastest of those intervals (50 ms or longer): a sender starved by a
 *    loaded host for a while must not pass for a slow link (the live
 *    matrix once saw 16 MiB/s over a second of a 24 MiB/s link). Not in
 *    the first 300 ms, when the socket buffers may fill faster than any
 *    link (a bound of 48 MiB/s was seen on that link);
 *  - dirty rate: the share of sampled pages found dirty is a binomial
 *    estimate; two standard errors below it.
 * If even the lowest dirty rate outruns the highest link rate, precopy
 * cannot converge by itself: every pass takes longer than the first
 * measured second, and the pages dirtied in that second are distinct, so
 * at the switchover at least dirty_lo * 1 s is left: a pause of at least
 * dirty_lo * 1 s / link_hi. Over the longest pause allowed (a pause is
 * downtime), with no throttle (only with --auto-converge: a CPU throttle
 * slows every vCPU, not only the writer) and no postcopy to turn to, the
 * migration is infeasible now, not passes later. (A throttle, when
 * allowed, is set at once instead of at pass 2: QEMU 7.2 applies
 * auto-converge's throttle only at a dirty sync, the end of a pass.)
 * Returns the number of actions, or -1 when the forecast says nothing. */
#define LINK_MIN_MS 1000
#define LINK_MARGIN 1.2
static int predictive_first_pass(struct state *st, const struct qmig_policy_sample *s,
				 int64_t max_pause, struct qmig_action *out, int max)
{
	double n = qm_dirty_sample_pages(st->cfg.mem_bytes) * (st->gib > 0 ? st->gib : 1);
	double share, d_lo, b_hi, pause_lo;

	if (st->fp_t && s->t_ms > st->fp_t && s->transferred > st->fp_tx) {
		double sent = (double)(s->transferred - st->fp_tx);
		double fell = st->fp_rem > s->remaining ? (double)(st->fp_rem - s->remaining) : 0;

		if (fell <= 1.25 * sent) {
			double rate = sent * 1000.0 / (double)(s->t_ms - st->fp_t);

			/* The first 300 ms may fill the socket buffers
			 * faster than the link: no peak of the link's. */
			if (st->link_ms >= 300 && s->t_ms - st->fp_t >= 50 && rate > st->link_peak)
				st->link_peak = rate;
			st->link_bytes += sent;
			st->link_ms += s->t_ms - st->fp_t;
		}
	}
	st->fp_t = s->t_ms;
	st->fp_tx = s->transferred;
	st->fp_rem = s->remaining;
	if (st->link_ms < LINK_MIN_MS || !s->dirty_rate || !st->cfg.mem_bytes)
		return -1;
	share = (double)s->dirty_rate / (double)st->cfg.mem_bytes; /* over 1 s */
	if (share > 1)
		share = 1;
	d_lo = share > 0 ? (double)s->dirty_rate * (1 - 2 * sqrt((1 - share) / (share * n))) : 0;
	b_hi = st->link_bytes * 1000.0 / (double)st->link_ms * LINK_MARGIN;
	if (b_hi < st->link_peak)
		b_hi = st->link_peak;
	if (d_lo < b_hi)
		return -1; /* it may converge: the passes will tell */
	if (st->cfg.throttle_allowed && !st->throttle_tries) {
		int64_t pct = minimal_throttle(s);

		st->throttle_tries++;
		st->dirty_before = s->dirty_rate;
		st->throttle_pass = (int64_t)s->pass;
		return act(out, max, 0, QMIG_ACT_THROTTLE, pct,
			   "forecast: dirty rate at least %.1f MiB/s against at most %.1f MiB/s of "
			   "bandwidth; the smallest throttle that converges is %lld%%",
			   d_lo / (1024 * 1024), b_hi / (1024 * 1024), (long long)pct);
	}
	if (st->cfg.throttle_allowed || st->cfg.postcopy_allowed || st->cfg.dirty_limit_allowed)
		return -1; /* something left to try */
	pause_lo = d_lo / b_hi * 1000;
	if (pause_lo <= (double)max_pause)
		return -1; /* a pause may do: the working set shows at pass 2 */
	st->done = 1;
	return act(out, max, 0, QMIG_ACT_ABORT, 0,
		   "forecast: cannot converge (dirty rate at least %.1f MiB/s, bandwidth at most "
		   "%.1f MiB/s) and the pause to finish would be at least %.0f ms, over %.0f ms",
		   d_lo / (1024 * 1024), b_hi / (1024 * 1024), pause_lo, (double)max_pause);
}

static int predictive_sample(void *vst, const struct qmig_policy_sample *s,
			     const struct qmig_prediction *p, struct qmig_action *out, int max)
{
	struct state *st = vst;
	int64_t limit = s->downtime_limit_ms > 0 ? s->downtime_limit_ms : 300;
	int64_t max_down = dflt(st->cfg.max_downtime_ms, limit > 500 ? limit : 500);
	/* A pause to finish is downtime: by default no longer than it. */
	int64_t max_pause = dflt(st->cfg.max_pause_ms, max_down);
	int64_t want;

	if (!st->done && s->pass <= 1) {
		int n = predictive_first_pass(st, s, max_pause, out, max);

		if (n >= 0)
			return n;
	}

	if (s->pass != st->pass_seen) {
		st->pass_seen = s->pass;
		st->rem_prev = st->rem_cur;
		st->rem_cur = s->remaining;
	}
	/* One decision per pass: give each its effect before judging again. */
	if (st->done || p->verdict != QMIG_VERDICT_CANNOT_CONVERGE ||
	    (int64_t)s->pass == st->last_action_pass)
		return 0;
	st->last_action_pass = (int64_t)s->pass;
	want = p->needed_downtime_ms + p->needed_downtime_ms / 5 + 1;
	if (want <= max_down && want > limit)
		return act(out, max, 0, QMIG_ACT_SET_DOWNTIME, want,
			   "model: %.0f ms of pages stay dirty; a limit of %.0f ms converges",
			   (double)p->needed_downtime_ms, (double)want);
	/* The first pass still carries the whole RAM: the rest waits for the
	 * working set to show itself and QEMU to measure the dirty rate. */
	if (s->pass < 2) {
		st->last_action_pass = -1;
		return 0;
	}
	if (st->cfg.dirty_limit_allowed)
		return act(out, max, 0, QMIG_ACT_DIRTY_LIMIT,
			   (int64_t)(0.7 * s->bandwidth / (1024 * 1024)),
			   "dirty ratio %.2f: limit the vCPUs to %.0f MiB/s", p->dirty_ratio,
			   0.7 * s->bandwidth / (1024 * 1024));
	/* A throttle set in pass k runs from the dirty sync that ends it; the
	 * rate QEMU reports at the start of pass k + 1 is still pass k's:
	 * judge it from pass k + 2 on. */
	if (st->throttle_tries && (int64_t)s->pass < st->throttle_pass + 2) {
		st->last_action_pass = -1;
		return 0;
	}
	/* Throttle, but only while throttling works: a guest that keeps its
	 * write rate in wall-clock time (ours does, some real ones too) just
	 * writes faster when it runs, and more throttle only slows it down. */
	if (st->cfg.throttle_allowed && s->throttle_pct < 99 && st->throttle_tries < 3 &&
	    (!st->throttle_tries || s->dirty_rate < 0.7 * st->dirty_before)) {
		int64_t pct = minimal_throttle(s);

		if (!st->throttle_tries++)
			st->dirty_before = s->dirty_rate; /* as QEMU measured it, unthrottled */
		st->throttle_pass = (int64_t)s->pass;
		return act(out, max, 0, QMIG_ACT_THROTTLE, pct,
			   "dirty ratio %.2f: the smallest throttle that converges is %lld%%",
			   p->dirty_ratio, (long long)pct);
	}
	/* The end: only on two pass starts without progress. Pass 1 also
	 * scans the zero pages, and on a loaded host it can last long enough
	 * for a slow writer to rewrite its whole working set: pass 2 starts
	 * with all of it left and a dirty ratio near 1 even when the next
	 * pass, with data pages only, would shrink it. */
	if (s->pass < 3 || !st->rem_prev || st->rem_cur < st->rem_prev - st->rem_prev / 10) {
		st->last_action_pass = -1;
		return 0;
	}
	st->done = 1;
	if (st->cfg.postcopy_allowed)
		return act(out, max, 0, QMIG_ACT_POSTCOPY, 0,
			   "dirty ratio %.2f: precopy cannot converge; switching to postcopy",
			   p->dirty_ratio);
	if (p->needed_downtime_ms <= max_pause)
		return act(out, max, 0, QMIG_ACT_PAUSE, p->needed_downtime_ms,
			   "cannot converge: finishing paused takes %.0f ms (at most %.0f)",
			   (double)p->needed_downtime_ms, (double)max_pause);
	return act(out, max, 0, QMIG_ACT_ABORT, 0,
		   "cannot converge, and a pause of %.0f ms is over %.0f ms",
		   (double)p->needed_downtime_ms, (double)max_pause);
}

static const struct qmig_policy_ops builtins[] = {
	{QMIG_POLICY_VERSION, "passive", common_init, passive_sample, common_free},
	{QMIG_POLICY_VERSION, "nova", nova_init, nova_sample, common_free},
	{QMIG_POLICY_VERSION, "kubevirt", common_init, kubevirt_sample, common_free},
	{QMIG_POLICY_VERSION, "proxmox", common_init, proxmox_sample, common_free},
	{QMIG_POLICY_VERSION, "predictive", common_init, predictive_sample, common_free},
};

const struct qmig_policy_ops *qmig_policy_builtin(const char *name)
{
	for (size_t i = 0; name && i < sizeof(builtins) / sizeof(builtins[0]); i++)
		if (!strcmp(builtins[i].name, name))
			return &builtins[i];
	return NULL;
}

const char *qmig_policy_names(void)
{
	return "passive, nova, kubevirt, proxmox, predictive";
}

int qmig_policy_load(const struct qmig_policy_ops **out, void **handle, const char *path,
		     char *msg, size_t msg_len)
{
	const struct qmig_policy_ops *(*entry)(void);
	const struct qmig_policy_ops *ops;
	void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);

	if (!h) {
		snprintf(msg, msg_len, "%s", dlerror());
		return -ENOENT;
	}
	*(void **)&entry = dlsym(h, "qmig_policy_entry");
	if (!entry) {
		snprintf(msg, msg_len, "%s: no qmig_policy_entry() (see examples/policy-plugin)", path);
		dlclose(h);
		return -ENOEXEC;
	}
	ops = entry();
	if (!ops || ops->version != QMIG_POLICY_VERSION) {
		snprintf(msg, msg_len, "%s: policy interface version %u, this qmigrate speaks %u",
			 path, ops ? ops->version : 0, QMIG_POLICY_VERSION);
		dlclose(h);
		return -EPROTO;
	}
	if (!ops->name || !ops->on_sample || !ops->free) {
		snprintf(msg, msg_len, "%s: the policy lacks a name, on_sample or free", path);
		dlclose(h);
		return -EINVAL;
	}
	*out = ops;
	*handle = h;
	return 0;
}

void qmig_policy_unload(void *handle)
{
	if (handle)
		dlclose(handle);
}
