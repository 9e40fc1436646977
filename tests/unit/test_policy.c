/* Built-in policies on synthetic sample streams: each decision at the
 * step it should happen. And the model and the simulator. */
#include <errno.h>
#include <string.h>

#include "qmig_policy.h"
#include "unit.h"

#define MIB (1024ull * 1024)
#define GIB (1024ull * MIB)

struct run {
	const struct qmig_policy_ops *ops;
	void *st;
	struct qmig_action acts[8];
	int n;
};

static void start(struct run *r, const char *name, struct qmig_policy_config *cfg)
{
	memset(r, 0, sizeof(*r));
	r->ops = qmig_policy_builtin(name);
	CU_ASSERT_PTR_NOT_NULL_FATAL(r->ops);
	CU_ASSERT_EQUAL_FATAL(r->ops->init(&r->st, cfg), 0);
}

/* One sample: the guest dirties `dirty` against `bw`, `rem` left. */
static int step(struct run *r, int64_t t_ms, uint64_t pass, uint64_t rem, uint64_t dirty,
		uint64_t bw, int64_t limit)
{
	struct qmig_policy_sample s = {t_ms, pass, 0, rem, GIB, dirty, bw, 0, limit, 0, 0};
	struct qmig_prediction p;

	qmig_predict(&s, &p);
	r->n = r->ops->on_sample(r->st, &s, &p, r->acts, 8);
	return r->n;
}

static void test_model(void)
{
	struct qmig_policy_sample s = {1000, 2, 100 * MIB, 100 * MIB, GIB, 50 * MIB, 100 * MIB, 0,
				       300, 0, 0};
	struct qmig_prediction p;

	qmig_predict(&s, &p);
	CU_ASSERT_EQUAL(p.verdict, QMIG_VERDICT_CONVERGING);
	/* 100 MiB, halving each pass, fits 30 MiB (300 ms at 100 MiB/s) after 2 passes. */
	CU_ASSERT_EQUAL(p.passes_left, 2);
	CU_ASSERT(p.time_left_ms >= 1740 && p.time_left_ms <= 1760); /* 1 + 0.5 s, then 250 ms paused */
	CU_ASSERT(p.downtime_ms >= 240 && p.downtime_ms <= 260);
	s.dirty_rate = 120 * MIB;
	qmig_predict(&s, &p);
	CU_ASSERT_EQUAL(p.verdict, QMIG_VERDICT_CANNOT_CONVERGE);
	CU_ASSERT_EQUAL(p.time_left_ms, -1);
	CU_ASSERT_EQUAL(p.needed_downtime_ms, 1000);
	s.remaining = 10 * MIB;
	qmig_predict(&s, &p);
	CU_ASSERT_EQUAL(p.verdict, QMIG_VERDICT_CONVERGING);
	s.pass = 1, s.dirty_rate = 0, s.remaining = 500 * MIB;
	qmig_predict(&s, &p);
	CU_ASSERT_EQUAL(p.verdict, QMIG_VERDICT_UNKNOWN);
}

static void test_passive(void)
{
	struct qmig_policy_config cfg = QMIG_POLICY_CONFIG_INIT;
	struct run r;

	start(&r, "passive", &cfg);
	for (int t = 0; t < 100000; t += 100)
		CU_ASSERT_EQUAL(step(&r, t, 2 + t / 1000, GIB, 200 * MIB, 100 * MIB, 300), 0);
	r.ops->free(r.st);
}

/* Nova, 1 GiB: steps every 75 s, from 50 ms to 500 ms; abort at 800 s. */
static void test_nova(void)
{
	struct qmig_policy_config cfg = QMIG_POLICY_CONFIG_INIT;
	struct run r;
	int64_t last = -1;
	int changes = 0;

	cfg.mem_bytes = GIB;
	start(&r, "nova", &cfg);
	CU_ASSERT_EQUAL(step(&r, 0, 1, GIB, 0, 100 * MIB, 300), 1);
	CU_ASSERT_EQUAL(r.acts[0].kind, QMIG_ACT_SET_DOWNTIME);
	CU_ASSERT_EQUAL(r.acts[0].value, 50);
	CU_ASSERT_EQUAL(step(&r, 74900, 30, GIB, 200 * MIB, 100 * MIB, 50), 0);
	CU_ASSERT_EQUAL(step(&r, 75000, 31, GIB, 200 * MIB, 100 * MIB, 50), 1);
	CU_ASSERT_EQUAL(r.acts[0].value, 95);
	for (int64_t t = 75100; t <= 800000; t += 100) {
		if (step(&r, t, 40, GIB, 200 * MIB, 100 * MIB, 300) && r.acts[0].kind ==
								 QMIG_ACT_SET_DOWNTIME) {
			CU_ASSERT(r.acts[0].value > last);
			last = r.acts[0].value;
			changes++;
		}
	}
	CU_ASSERT_EQUAL(last, 500);
	CU_ASSERT_EQUAL(changes, 9);
	CU_ASSERT_EQUAL(step(&r, 800100, 90, GIB, 200 * MIB, 100 * MIB, 500), 1);
	CU_ASSERT_EQUAL(r.acts[0].kind, QMIG_ACT_ABORT);
	r.ops->free(r.st);
}

/* KubeVirt: abort after 150 s without a new low of remaining data; with
 * postcopy allowed, switch instead. */
static void test_kubevirt(void)
{
	struct qmig_policy_config cfg = QMIG_POLICY_CONFIG_INIT;
	struct run r;
	int64_t t;

	cfg.mem_bytes = 4 * GIB; /* completion timeout 600 s: not reached */
	start(&r, "kubevirt", &cfg);
	step(&r, 0, 1, 4 * GIB, 0, 100 * MIB, 300);
	step(&r, 10000, 2, GIB, 200 * MIB, 100 * MIB, 300); /* the low */
	for (t = 10100; t <= 160000; t += 100)
		CU_ASSERT_EQUAL(step(&r, t, 3, GIB + MIB, 200 * MIB, 100 * MIB, 300), 0);
	CU_ASSERT_EQUAL(step(&r, t, 3, GIB + MIB, 200 * MIB, 100 * MIB, 300), 1);
	CU_ASSERT_EQUAL(r.acts[0].kind, QMIG_ACT_ABORT);
	r.ops->free(r.st);
	cfg.postcopy_allowed = 1;
	start(&r, "kubevirt", &cfg);
	step(&r, 0, 1, GIB, 0, 100 * MIB, 300);
	for (t = 100; !step(&r, t, 3, GIB, 200 * MIB, 100 * MIB, 300); t += 100)
		;
	CU_ASSERT_EQUAL(r.acts[0].kind, QMIG_ACT_POSTCOPY);
	CU_ASSERT(t > 150000 && t <= 150200);
	r.ops->free(r.st);
}

/* Proxmox: 100 ms first, doubled once the remaining RAM grew on 6 polls. */
static void test_proxmox(void)
{
	struct qmig_policy_config cfg = QMIG_POLICY_CONFIG_INIT;
	struct run r;
	uint64_t rem = 100 * MIB;
	int doubled_at = -1;

	start(&r, "proxmox", &cfg);
	CU_ASSERT_EQUAL(step(&r, 0, 1, GIB, 0, 100 * MIB, 300), 1);
	CU_ASSERT_EQUAL(r.acts[0].value, 100);
	for (int i = 1; i <= 10 && doubled_at < 0; i++) {
		rem += MIB;
		if (step(&r, i * 500, 2, rem, 200 * MIB, 100 * MIB, 100))
			doubled_at = i;
	}
	CU_ASSERT_EQUAL(doubled_at, 7); /* the first poll only records */
	CU_ASSERT_EQUAL(r.acts[0].value, 200);
	r.ops->free(r.st);
}

/* Predictive: a higher downtime when that suffices; else the minimal
 * throttle; a throttle that does not work leads to postcopy or a pause. */
static void test_predictive(void)
{
	struct qmig_policy_config cfg = QMIG_POLICY_CONFIG_INIT;
	struct run r;

	cfg.max_downtime_ms = 1000;
	start(&r, "predictive", &cfg);
	CU_ASSERT_EQUAL(step(&r, 0, 1, GIB, 0, 100 * MIB, 300), 0);
	/* 50 MiB stay dirty at 100 MiB/s: 500 ms needed, 600 ms set. */
	CU_ASSERT_EQUAL(step(&r, 2000, 2, 50 * MIB, 110 * MIB, 100 * MIB, 300), 1);
	CU_ASSERT_EQUAL(r.acts[0].kind, QMIG_ACT_SET_DOWNTIME);
	CU_ASSERT_EQUAL(r.acts[0].value, 601);
	CU_ASSERT_EQUAL(step(&r, 2100, 2, 50 * MIB, 110 * MIB, 100 * MIB, 601), 0); /* once a pass */
	r.ops->free(r.st);

	cfg.throttle_allowed = 1;
	cfg.max_pause_ms = 5000;
	start(&r, "predictive", &cfg);
	/* 200 MiB dirty against 100 MiB/s, 500 MiB left: 5 s of downtime. */
	CU_ASSERT_EQUAL(step(&r, 2000, 2, 500 * MIB, 200 * MIB, 100 * MIB, 300), 1);
	CU_ASSERT_EQUAL(r.acts[0].kind, QMIG_ACT_THROTTLE);
	CU_ASSERT_EQUAL(r.acts[0].value, 65); /* 1 - 0.7 * 100/200 */
	/* Pass 3 reports pass 2's rate, from before the throttle ran: wait. */
	CU_ASSERT_EQUAL(step(&r, 3000, 3, 500 * MIB, 200 * MIB, 100 * MIB, 300), 0);
	/* The throttle did not lower the dirty rate: pause (5.0 s <= 5 s). */
	CU_ASSERT_EQUAL(step(&r, 4000, 4, 500 * MIB, 190 * MIB, 100 * MIB, 300), 1);
	CU_ASSERT_EQUAL(r.acts[0].kind, QMIG_ACT_PAUSE);
	r.ops->free(r.st);
}

/* The first pass, on sample streams like the live policy matrix's (a
 * 256 MiB guest over ~24 MiB/s, 100 ms samples, the dirty rate measured
 * beside it, 1024 pages sampled): decisions as soon as the link's rate is
 * known (1 s of intervals sending data) where the bounds allow one, none
 * where they do not. `zeros` first samples scan zero pages: what is left
 * falls 20 times faster than the bytes sent. */
static int first_pass_z(struct run *r, uint64_t dirty, int zeros, int64_t *t_out)
{
	static const uint64_t bw[] = {22, 25, 23, 24, 26, 23, 24, 25, 22, 24};
	uint64_t rem = 256 * MIB, tx = 0;

	for (int i = 0; i < 20; i++) {
		struct qmig_policy_sample s = {100 * (i + 1), 1, tx, rem, 256 * MIB, dirty,
					       bw[i % 10] * MIB, 0, 300, 0, 0};
		struct qmig_prediction p;
		uint64_t sent = i < zeros ? MIB / 10 : bw[i % 10] * MIB / 10;

		qmig_predict(&s, &p);
		r->n = r->ops->on_sample(r->st, &s, &p, r->acts, 8);
		if (r->n) {
			*t_out = s.t_ms;
			return r->n;
		}
		tx += sent;
		rem -= i < zeros ? 20 * sent : sent;
	}
	return 0;
}

static int first_pass(struct run *r, uint64_t dirty, int64_t *t_out)
{
	return first_pass_z(r, dirty, 0, t_out);
}

static void test_predictive_forecast(void)
{
	struct qmig_policy_config cfg = QMIG_POLICY_CONFIG_INIT;
	struct run r;
	int64_t t = 0;

	cfg.mem_bytes = 256 * MIB;
	/* 200 MiB/s against at most 28.6 (23.8 + 20%): no throttle, no
	 * postcopy, and a pause of at least 200 * (1 - 2 se) / 28.6 = 6.8 s
	 * (se 1.7% with 1024 pages sampled), over the 500 ms allowed: abort
	 * at 1.1 s (1 s of intervals). */
	start(&r, "predictive", &cfg);
	CU_ASSERT_EQUAL(first_pass(&r, 200 * MIB, &t), 1);
	CU_ASSERT_EQUAL(r.acts[0].kind, QMIG_ACT_ABORT);
	CU_ASSERT_EQUAL(t, 1100);
	CU_ASSERT_PTR_NOT_NULL(strstr(r.acts[0].reason, "forecast"));
	r.ops->free(r.st);
	/* The first 0.5 s scanning zero pages (1 MiB/s on the wire) say
	 * nothing about the link: the decision waits for data intervals. */
	start(&r, "predictive", &cfg);
	CU_ASSERT_EQUAL(first_pass_z(&r, 200 * MIB, 5, &t), 1);
	CU_ASSERT_EQUAL(r.acts[0].kind, QMIG_ACT_ABORT);
	CU_ASSERT_EQUAL(t, 1600);
	r.ops->free(r.st);
	/* Above the link (48 MiB/s): at least 41.8 MiB/s, a pause of at
	 * least 1.46 s: abort too. */
	start(&r, "predictive", &cfg);
	CU_ASSERT_EQUAL(first_pass(&r, 48 * MIB, &t), 1);
	CU_ASSERT_EQUAL(r.acts[0].kind, QMIG_ACT_ABORT);
	r.ops->free(r.st);

	/* The same with a longer pause allowed (60 s): nothing to decide yet. */
	cfg.max_pause_ms = 60000;
	start(&r, "predictive", &cfg);
	CU_ASSERT_EQUAL(first_pass(&r, 200 * MIB, &t), 0);
	r.ops->free(r.st);
	/* 150 MiB/s with 5.5 s allowed: the bound on the pause is about 5 s;
	 * whether the working set makes it longer shows only at pass 2. */
	cfg.max_pause_ms = 5500;
	start(&r, "predictive", &cfg);
	CU_ASSERT_EQUAL(first_pass(&r, 150 * MIB, &t), 0);

	r.ops->free(r.st);
	cfg.max_pause_ms = 0;

	/* near (24 MiB/s against 22-26): the bounds overlap, no verdict. */
	start(&r, "predictive", &cfg);
	CU_ASSERT_EQUAL(first_pass(&r, 24 * MIB, &t), 0);
	r.ops->free(r.st);
	/* Just above the link (30 MiB/s): at least 24.8, not surely above
	 * 28.6; no verdict either. */
	start(&r, "predictive", &cfg);
	CU_ASSERT_EQUAL(first_pass(&r, 30 * MIB, &t), 0);
	r.ops->free(r.st);
	/* below: nothing. */
	start(&r, "predictive", &cfg);
	CU_ASSERT_EQUAL(first_pass(&r, 8 * MIB, &t), 0);
	r.ops->free(r.st);
	/* A sender starved by a loaded host: 12 MiB/s over most of the
	 * second, 25 in one interval. 28 MiB/s dirty (at least 23) is over
	 * 12 + 20% but not over the fastest interval: no verdict. */
	start(&r, "predictive", &cfg);
	{
		uint64_t rem = 256 * MIB, tx = 0;

		for (int i = 0; i < 20 && !r.n; i++) {
			struct qmig_policy_sample s = {100 * (i + 1), 1, tx, rem, 256 * MIB,
						       28 * MIB, 12 * MIB, 0, 300, 0, 0};
			struct qmig_prediction p;
			uint64_t sent = (i == 4 ? 25 : 12) * MIB / 10;

			qmig_predict(&s, &p);
			r.n = r.ops->on_sample(r.st, &s, &p, r.acts, 8);
			tx += sent, rem -= sent;
		}
		CU_ASSERT_EQUAL(r.n, 0);
	}
	r.ops->free(r.st);

	/* With a throttle allowed (--auto-converge): the throttle at once
	 * (QEMU starts it at the end of this pass), judged from pass 3 on. */
	cfg.throttle_allowed = 1;
	start(&r, "predictive", &cfg);
	CU_ASSERT_EQUAL(first_pass(&r, 150 * MIB, &t), 1);
	CU_ASSERT_EQUAL(r.acts[0].kind, QMIG_ACT_THROTTLE);
	CU_ASSERT_EQUAL(t, 1100);
	CU_ASSERT_EQUAL(step(&r, 6000, 2, 128 * MIB, 150 * MIB, 24 * MIB, 300), 0);
	/* Pass 3: pass 2's rate, throttled, as high: the throttle does not
	 * work for this guest; 5.3 s of pause is over 500 ms: abort. */
	CU_ASSERT_EQUAL(step(&r, 11000, 3, 128 * MIB, 148 * MIB, 24 * MIB, 300), 1);
	CU_ASSERT_EQUAL(r.acts[0].kind, QMIG_ACT_ABORT);
	r.ops->free(r.st);
}

static void test_sim(void)
{
	struct qmig_sim_opts o = QMIG_SIM_OPTS_INIT;
	struct qmig_sim_result a, b;

	/* An idle guest: one pass of its written pages, then done. */
	o.mem_bytes = GIB, o.wss_bytes = 256 * MIB, o.bandwidth = 256 * MIB, o.dirty_rate = 0;
	CU_ASSERT_EQUAL(qmig_sim_run(&o, qmig_policy_builtin("passive"), &a), 0);
	CU_ASSERT(a.converged);
	CU_ASSERT_EQUAL(a.passes, 3); /* like QEMU: start, threshold, switchover */
	CU_ASSERT(a.transferred_bytes >= 256 * MIB && a.transferred_bytes < 260 * MIB);
	/* Dirtying faster than the link: passive never converges ... */
	o.dirty_rate = 400 * MIB, o.max_time_ms = 60000;
	CU_ASSERT_EQUAL(qmig_sim_run(&o, qmig_policy_builtin("passive"), &a), 0);
	CU_ASSERT(!a.converged);
	/* ... predictive does, and the same run twice gives the same result. */
	o.policy.throttle_allowed = 1;
	CU_ASSERT_EQUAL(qmig_sim_run(&o, qmig_policy_builtin("predictive"), &a), 0);
	CU_ASSERT_EQUAL(qmig_sim_run(&o, qmig_policy_builtin("predictive"), &b), 0);
	CU_ASSERT(a.converged);
	CU_ASSERT(a.n_actions >= 1);
	CU_ASSERT_EQUAL(memcmp(&a, &b, sizeof(a)), 0);
}

static void test_plugin_errors(void)
{
	const struct qmig_policy_ops *ops;
	void *h;
	char msg[256];

	CU_ASSERT(qmig_policy_load(&ops, &h, "/nonexistent.so", msg, sizeof(msg)) < 0);
	CU_ASSERT(strstr(msg, "nonexistent") != NULL);
	/* A shared object without the entry point. */
	CU_ASSERT_EQUAL(qmig_policy_load(&ops, &h, "libjson-c.so.5", msg, sizeof(msg)), -ENOEXEC);
	CU_ASSERT(strstr(msg, "qmig_policy_entry") != NULL);
}

/* Found by fuzz_trace and fuzz_policy: numbers a hostile QEMU can report
 * (a huge remaining count at 1 B/s) saturate at 2^60 instead of
 * overflowing a conversion, or the policies' arithmetic on the result. */
static void test_model_huge(void)
{
	struct qmig_policy_sample s = {0};
	struct qmig_prediction p;

	s.pass = 2;
	s.remaining = UINT64_MAX / 2;
	s.bandwidth = 1;
	s.dirty_rate = 1;
	qmig_predict(&s, &p);
	CU_ASSERT(p.needed_downtime_ms == (int64_t)1 << 60);
	s.dirty_rate = 0;
	s.remaining = 1000;
	s.transferred = UINT64_MAX - 10;
	s.downtime_limit_ms = 1;
	qmig_predict(&s, &p);
	CU_ASSERT(p.total_bytes == (uint64_t)1 << 60);
}

UNIT_SUITE(policy, NULL, NULL, {"model with huge numbers", test_model_huge}, {"model", test_model}, {"passive", test_passive},
	   {"nova", test_nova}, {"kubevirt", test_kubevirt}, {"proxmox", test_proxmox},
	   {"predictive", test_predictive},
	   {"predictive forecast", test_predictive_forecast}, {"simulator", test_sim},
	   {"plugin errors", test_plugin_errors})
