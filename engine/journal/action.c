/* Changes to the source beyond the plan (an action of the engine, a
 * policy or the operator): journaled before they happen, recorded in the
 * trace, and noted so that the restore puts the parameters back. */
#include <string.h>

#include "journal.h"

/* A parameter changed on a side after the plan: restored with the plan's. */
void qm_note_param(struct side *s, const char *name)
{
	if (!s->set_params)
		s->set_params = json_object_new_object();
	if (!json_object_object_get_ex(s->set_params, name, NULL))
		json_object_object_add(s->set_params, name, NULL);
	s->touched = 1;
}

/* Parameters an action changes, so the restore (and a recovery) puts
 * them back even when the plan did not touch them. */
static void note_param_change(struct qmig_migration *m, const char *action)
{
	static const struct {
		const char *word, *params[3];
	} map[] = {
		{"downtime", {"downtime-limit"}},
		{"bandwidth", {"max-bandwidth"}},
		{"throttle", {"cpu-throttle-initial", "cpu-throttle-increment", "max-cpu-throttle"}},
	};
	struct side *src = &m->side[SRC];

	for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
		if (!strstr(action, map[i].word))
			continue;
		if (!src->set_params)
			src->set_params = json_object_new_object();
		for (int k = 0; k < 3 && map[i].params[k]; k++)
			if (!json_object_object_get_ex(src->set_params, map[i].params[k], NULL))
				json_object_object_add(src->set_params, map[i].params[k],
						       json_object_new_null());
		src->touched = 1;
	}
}

/* Every action by the engine, a policy or an operator passes here before
 * it changes the source: it is journaled and recorded. */
void qm_action(struct qmig_migration *m, const char *action, int64_t value, const char *why)
{
	struct json_object *rec = json_object_new_object(), *a = json_object_new_object();

	note_param_change(m, action);
	json_object_object_add(a, "value", json_object_new_int64(value));
	json_object_object_add(a, "reason", json_object_new_string(why));
	qm_journal(m, "source", action, a);
	json_object_put(a);

	json_object_object_add(rec, "action", json_object_new_string(action));
	json_object_object_add(rec, "value", json_object_new_int64(value));
	json_object_object_add(rec, "reason", json_object_new_string(why));
	qm_emit(m, "action", rec, NULL);
	qm_log(m, QMIG_LOG_INFO, "action: %s (%s)", action, why);
}

