/* An example convergence policy as a plug-in: a downtime ladder. Each
 * pass the model says cannot converge, raise downtime-limit by 100 ms, up
 * to the configured maximum (default 2 s); then pause the guest to finish.
 *
 * Build: cc -shared -fPIC -I/usr/local/include/qmigrate -o ladder.so ladder.c
 * Use:   qmigrate migrate ... --policy-plugin ./ladder.so
 *        qmigrate simulate ... --policy-plugin ./ladder.so
 */
#include <stdio.h>
#include <stdlib.h>

#include "qmig_policy.h"

struct ladder {
	int64_t max_ms;
	uint64_t last_pass;
	int paused;
};

static int ladder_init(void **state, const struct qmig_policy_config *cfg)
{
	struct ladder *l = calloc(1, sizeof(*l));

	if (!l)
		return -12; /* -ENOMEM */
	l->max_ms = cfg->max_downtime_ms > 0 ? cfg->max_downtime_ms : 2000;
	*state = l;
	return 0;
}

static int ladder_sample(void *state, const struct qmig_policy_sample *s,
			 const struct qmig_prediction *p, struct qmig_action *out, int max)
{
	struct ladder *l = state;

	if (max < 1 || l->paused || p->verdict != QMIG_VERDICT_CANNOT_CONVERGE ||
	    s->pass == l->last_pass)
		return 0;
	l->last_pass = s->pass;
	if (s->downtime_limit_ms + 100 <= l->max_ms) {
		out[0].kind = QMIG_ACT_SET_DOWNTIME;
		out[0].value = s->downtime_limit_ms + 100;
		snprintf(out[0].reason, sizeof(out[0].reason), "ladder: pass %llu, one rung up",
			 (unsigned long long)s->pass);
		return 1;
	}
	l->paused = 1;
	out[0].kind = QMIG_ACT_PAUSE;
	out[0].value = p->needed_downtime_ms;
	snprintf(out[0].reason, sizeof(out[0].reason), "ladder: top rung reached, pausing");
	return 1;
}

static void ladder_free(void *state)
{
	free(state);
}

static const struct qmig_policy_ops ladder = {
	QMIG_POLICY_VERSION, "ladder", ladder_init, ladder_sample, ladder_free,
};

const struct qmig_policy_ops *qmig_policy_entry(void);

const struct qmig_policy_ops *qmig_policy_entry(void)
{
	return &ladder;
}
