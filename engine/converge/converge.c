/* The convergence policy in a live migration: opened before the plan (a
 * bad plug-in is refused before anything changes), consulted with each
 * precopy sample and the model's prediction, and its actions turned into
 * QMP and recorded. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "converge.h"
#include "journal/journal.h"

static int user_cap(const struct qmig_migration *m, const char *name)
{
	for (const char *const *c = m->o.caps; c && *c; c++)
		if (!strcmp(*c, name))
			return 1;
	return 0;
}

/* May the policy throttle the guest's CPUs? The source must have the
 * parameter. predictive only when asked (--auto-converge): a CPU throttle
 * slows every vCPU, the guest's work that writes nothing too, and the
 * policy never trades that away by itself. The others and plug-ins:
 * whenever QEMU can; they arm auto-converge themselves only when the user
 * did not (then QEMU throttles as it does alone). */
static int is_predictive(const struct qmig_migration *m)
{
	return m->policy && !m->policy_dl && !strcmp(m->policy->name, "predictive");
}

static int throttle_allowed(const struct qmig_migration *m)
{
	if (!json_object_object_get_ex(m->side[SRC].orig_params, "max-cpu-throttle", NULL))
		return 0;
	return is_predictive(m) ? user_cap(m, "auto-converge") : 1;
}

int qm_policy_open(struct qmig_migration *m)
{
	struct qmig_policy_config cfg = QMIG_POLICY_CONFIG_INIT;
	struct json_object *v;
	char msg[256] = "";
	int r;

	if (m->o.policy_plugin) {
		r = qmig_policy_load(&m->policy, &m->policy_dl, m->o.policy_plugin, msg, sizeof(msg));
		if (r < 0)
			return qm_fail(m, r, "policy plug-in: %s", msg);
	} else if (m->o.policy && strcmp(m->o.policy, "passive")) {
		m->policy = qmig_policy_builtin(m->o.policy);
		if (!m->policy)
			return qm_fail(m, -EINVAL, "unknown policy '%s' (known: %s)", m->o.policy,
				       qmig_policy_names());
	} else {
		return 0; /* passive: QEMU alone */
	}
	qmig_cmd_query_memory_size(m->side[SRC].qmp, &cfg.mem_bytes);
	cfg.downtime_limit_ms = m->o.downtime_limit_ms;
	if (!cfg.downtime_limit_ms &&
	    json_object_object_get_ex(m->side[SRC].orig_params, "downtime-limit", &v))
		cfg.downtime_limit_ms = json_object_get_int64(v);
	cfg.max_downtime_ms = m->o.max_downtime_ms;
	cfg.max_pause_ms = m->o.max_pause_ms;
	cfg.postcopy_allowed = m->o.postcopy;
	cfg.throttle_allowed = throttle_allowed(m);
	r = m->policy->init ? m->policy->init(&m->policy_state, &cfg) : 0;
	if (r < 0) {
		m->policy = NULL;
		return qm_fail(m, r, "policy %s: init failed: %s", m->o.policy ? m->o.policy : "",
			       strerror(-r));
	}
	return 0;
}

void qm_policy_close(struct qmig_migration *m)
{
	if (m->policy && m->policy_state)
		m->policy->free(m->policy_state);
	m->policy = NULL;
	m->policy_state = NULL;
	qmig_policy_unload(m->policy_dl);
	m->policy_dl = NULL;
}

/* A throttling policy needs auto-converge armed from the start (QEMU
 * refuses capability changes mid-migration), but capped at 1% so that
 * only the policy decides how hard to throttle (with predictive, also
 * when the user asked for auto-converge: the policy sets the throttle). */
int qm_policy_plan(struct qmig_migration *m, struct json_object *want)
{
	if (!m->policy || !strcmp(m->policy->name, "passive") || !throttle_allowed(m) ||
	    (!is_predictive(m) && user_cap(m, "auto-converge")))
		return 0;
	json_object_object_add(want, "auto-converge", json_object_new_boolean(1));
	return 1;
}

static int set_param(struct qmig_migration *m, const char *name, int64_t v)
{
	struct json_object *a = json_object_new_object();
	int r;

	json_object_object_add(a, name, json_object_new_int64(v));
	r = qmig_cmd_migrate_set_parameters(m->side[SRC].qmp, a);
	json_object_put(a);
	if (!r)
		qm_note_param(&m->side[SRC], name);
	return r;
}

static int apply(struct qmig_migration *m, const struct qmig_action *a)
{
	struct side *src = &m->side[SRC];
	struct json_object *args;
	int r = 0;

	qm_action(m, qmig_action_name(a->kind), a->value, a->reason);
	switch (a->kind) {
	case QMIG_ACT_SET_DOWNTIME:
		r = set_param(m, "downtime-limit", a->value);
		if (!r)
			m->downtime_limit = a->value;
		break;
	case QMIG_ACT_SET_BANDWIDTH:
		r = set_param(m, "max-bandwidth", a->value);
		if (!r)
			m->bandwidth_limit = (uint64_t)a->value;
		break;
	case QMIG_ACT_THROTTLE:
		/* auto-converge goes straight to this percentage and stays. */
		args = json_object_new_object();
		json_object_object_add(args, "cpu-throttle-initial", json_object_new_int64(a->value));
		json_object_object_add(args, "cpu-throttle-increment", json_object_new_int64(a->value));
		json_object_object_add(args, "max-cpu-throttle", json_object_new_int64(a->value));
		r = qmig_cmd_migrate_set_parameters(src->qmp, args);
		json_object_put(args);
		break;
	case QMIG_ACT_DIRTY_LIMIT:
		r = qmig_cmd_set_vcpu_dirty_limit(src->qmp, a->value);
		break;
	case QMIG_ACT_POSTCOPY:
		if (!m->o.postcopy)
			return qm_fail(m, -EINVAL, "policy asked for postcopy, which is not enabled");
		r = qmig_cmd_migrate_start_postcopy(src->qmp);
		if (!r)
			m->res.postcopy_started = 1;
		break;
	case QMIG_ACT_PAUSE:
		r = qmig_cmd_stop(src->qmp);
		if (!r)
			m->res.paused_to_finish = 1;
		break;
	case QMIG_ACT_ABORT:
		return qm_fail(m, -ECONNABORTED, "policy %s aborted the migration: %s",
			       m->policy->name, a->reason);
	}
	if (r < 0)
		qm_log(m, QMIG_LOG_WARN, "policy action %s: %s", qmig_action_name(a->kind),
		       qmig_qmp_conn_error(src->qmp));
	return 0;
}

/* Called after each precopy sample (m->last, m->pred are fresh). */
int qm_policy_step(struct qmig_migration *m)
{
	struct qmig_policy_sample ps;
	struct qmig_action acts[8];
	int n;

	if (strcmp(m->last.status, "active"))
		return 0;
	if (qm_converge_check(m) < 0)
		return m->error;
	if (!m->policy)
		return 0;
	qm_policy_sample_of(m, &ps);
	n = m->policy->on_sample(m->policy_state, &ps, &m->pred, acts, 8);
	for (int i = 0; i < n && i < 8; i++)
		if (apply(m, &acts[i]) < 0)
			return m->error;
	return 0;
}
