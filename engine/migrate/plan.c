/* The plan: from both QEMUs' schemas and what the user asked, the exact
 * ordered QMP commands for both sides. Impossible requests are refused
 * here, before anything is changed; --dry-run prints the plan and stops. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "migrate.h"
#include "converge/converge.h"
#include "journal/journal.h"
#include "link/link.h"
#include "storage/storage.h"

/* QEMU 7.2's default max-bandwidth (128 MiB/s) throttles every migration;
 * unless told otherwise we let the link decide. */
#define UNLIMITED_BANDWIDTH (64ull << 30)
#define PORT_ATTEMPTS 3

static int cap_state(struct json_object *caps, const char *name)
{
	struct json_object *v;

	return caps && json_object_object_get_ex(caps, name, &v) && json_object_get_boolean(v);
}

/* The capabilities we want on: events always, multifd when asked, and the
 * user's list. Every one must exist on both sides. */
static int wanted_caps(struct qmig_migration *m, struct json_object *want)
{
	json_object_object_add(want, "events", json_object_new_boolean(1));
	if (m->o.multifd_channels > 0)
		json_object_object_add(want, "multifd", json_object_new_boolean(1));
	if (m->o.postcopy)
		json_object_object_add(want, "postcopy-ram", json_object_new_boolean(1));
	for (const char *const *c = m->o.caps; c && *c; c++)
		json_object_object_add(want, *c, json_object_new_boolean(1));
	json_object_object_foreach(want, name, val)
	{
		(void)val;
		for (int i = 0; i < 2; i++)
			if (!json_object_object_get_ex(m->side[i].orig_caps, name, NULL))
				return qm_fail(m, -EOPNOTSUPP,
					       "capability '%s' is not supported by the %s QEMU; "
					       "nothing was changed",
					       name, m->side[i].name);
	}
	return 0;
}

/* {"name": bool, ...} as migrate-set-capabilities wants it. */
static struct json_object *caps_args(struct json_object *caps)
{
	struct json_object *a = json_object_new_object(), *arr = json_object_new_array();

	json_object_object_foreach(caps, name, val)
	{
		struct json_object *c = json_object_new_object();

		json_object_object_add(c, "capability", json_object_new_string(name));
		json_object_object_add(c, "state", json_object_get(val));
		json_object_array_add(arr, c);
	}
	json_object_object_add(a, "capabilities", arr);
	return a;
}

/* The engine owns the capability set while it migrates: what is wanted
 * goes on, anything else left on by someone goes off (both sides must
 * agree), and every change is undone afterwards. */
static int plan_caps(struct qmig_migration *m, struct side *s, struct json_object *want)
{
	struct json_object *diff = json_object_new_object();

	json_object_object_foreach(want, name, val)
	{
		(void)val;
		if (!cap_state(s->orig_caps, name))
			json_object_object_add(diff, name, json_object_new_boolean(1));
	}
	json_object_object_foreach(s->orig_caps, oname, oval)
	{
		if (json_object_get_boolean(oval) && !json_object_object_get_ex(want, oname, NULL))
			json_object_object_add(diff, oname, json_object_new_boolean(0));
	}
	if (!json_object_object_length(diff)) {
		json_object_put(diff);
		return 0;
	}
	s->set_caps = diff;
	return qm_plan_add(m, s == &m->side[SRC] ? SRC : DST, "migrate-set-capabilities",
			caps_args(diff), "capabilities for this migration (restored afterwards)");
}

static int need_param(struct qmig_migration *m, const char *name)
{
	for (int i = 0; i < 2; i++)
		if (!json_object_object_get_ex(m->side[i].orig_params, name, NULL) &&
		    !qmig_schema_has_parameter(qm_side_schema(m, &m->side[i]), name))
			return qm_fail(m, -EOPNOTSUPP,
				       "parameter '%s' is not supported by the %s QEMU; nothing "
				       "was changed",
				       name, m->side[i].name);
	return 0;
}

static void param_if_changed(struct side *s, struct json_object *set, const char *name,
			     int64_t v)
{
	struct json_object *cur;

	if (json_object_object_get_ex(s->orig_params, name, &cur) &&
	    json_object_get_int64(cur) == v)
		return;
	json_object_object_add(set, name, json_object_new_int64(v));
}

/* Parameters that only matter to the sending side. */
static int source_only_param(const char *name)
{
	static const char *const names[] = {
		"max-bandwidth", "downtime-limit", "cpu-throttle-initial",
		"cpu-throttle-increment", "cpu-throttle-tailslow", "max-cpu-throttle",
		"throttle-trigger-threshold", "xbzrle-cache-size", "max-postcopy-bandwidth",
		"announce-initial", "announce-max", "announce-rounds", "announce-step",
		"compress-level", "compress-threads", "multifd-zlib-level", "multifd-zstd-level",
		"tls-hostname", NULL};

	for (int i = 0; names[i]; i++)
		if (!strcmp(names[i], name))
			return 1;
	return 0;
}

/* --param NAME=VALUE, typed like the parameter QEMU reports. */
static int user_params(struct qmig_migration *m, struct side *s, struct json_object *set)
{
	int src = s == &m->side[SRC];

	for (const char *const *p = m->o.params; p && *p; p++) {
		const char *eq = strchr(*p, '=');
		char name[64];
		struct json_object *cur, *v;
		char *end;

		if (!eq || eq == *p || (size_t)(eq - *p) >= sizeof(name))
			return qm_fail(m, -EINVAL, "--param '%s' is not NAME=VALUE", *p);
		memcpy(name, *p, eq - *p);
		name[eq - *p] = 0;
		if (!json_object_object_get_ex(m->side[SRC].orig_params, name, &cur) ||
		    (!source_only_param(name) &&
		     !json_object_object_get_ex(m->side[DST].orig_params, name, NULL)))
			return qm_fail(m, -EOPNOTSUPP,
				       "parameter '%s' is not supported by the %s QEMU; nothing was "
				       "changed", name,
				       json_object_object_get_ex(m->side[SRC].orig_params, name, NULL)
					       ? "destination" : "source");
		if (!src && source_only_param(name))
			continue;
		switch (json_object_get_type(cur)) {
		case json_type_int:
			errno = 0;
			v = json_object_new_int64(strtoll(eq + 1, &end, 0));
			if (errno || *end || !eq[1]) {
				json_object_put(v);
				return qm_fail(m, -EINVAL, "--param %s: '%s' is not a number", name,
					       eq + 1);
			}
			break;
		case json_type_boolean:
			if (strcmp(eq + 1, "on") && strcmp(eq + 1, "off") &&
			    strcmp(eq + 1, "true") && strcmp(eq + 1, "false"))
				return qm_fail(m, -EINVAL, "--param %s: '%s' is not on or off", name,
					       eq + 1);
			v = json_object_new_boolean(!strcmp(eq + 1, "on") || !strcmp(eq + 1, "true"));
			break;
		default:
			v = json_object_new_string(eq + 1);
		}
		json_object_object_add(set, name, v);
	}
	return 0;
}

static int plan_params(struct qmig_migration *m, struct side *s)
{
	struct json_object *set = json_object_new_object();
	int src = s == &m->side[SRC];

	if (src) {
		struct json_object *v;

		m->bandwidth_limit = m->o.max_bandwidth ? m->o.max_bandwidth : UNLIMITED_BANDWIDTH;
		param_if_changed(s, set, "max-bandwidth", (int64_t)m->bandwidth_limit);
		if (m->o.downtime_limit_ms > 0)
			param_if_changed(s, set, "downtime-limit", m->o.downtime_limit_ms);
		m->downtime_limit = m->o.downtime_limit_ms > 0 ? m->o.downtime_limit_ms
				    : json_object_object_get_ex(s->orig_params, "downtime-limit", &v)
					    ? json_object_get_int64(v)
					    : 300;
		/* The policy alone decides how hard auto-converge throttles. */
		if (m->policy_armed) {
			param_if_changed(s, set, "cpu-throttle-initial", 1);
			param_if_changed(s, set, "cpu-throttle-increment", 1);
			param_if_changed(s, set, "max-cpu-throttle", 1);
		}
	}
	if (m->o.multifd_channels > 0)
		param_if_changed(s, set, "multifd-channels", m->o.multifd_channels);
	qm_features_params(m, src ? SRC : DST, set); /* features.c */
	/* With the relay, TLS is the relay's: QEMU sends plain bytes to it. */
	if (!qm_relay_on(m))
		qm_tls_plan(m, s, set);
	if (user_params(m, s, set) < 0) {
		json_object_put(set);
		return m->error;
	}
	if (!json_object_object_length(set)) {
		json_object_put(set);
		return 0;
	}
	s->set_params = json_object_get(set);
	return qm_plan_add(m, src ? SRC : DST, "migrate-set-parameters", set,
			src ? "bandwidth and limits (restored afterwards)"
			    : "parameters the stream needs on both sides");
}

/* {"uri": "tcp:..."}, or the channels form (features.c). */
static struct json_object *uri_args(struct qmig_migration *m, const char *host, unsigned port)
{
	char uri[QMIG_HOST_MAX + 32];

	qm_tcp_uri(uri, sizeof(uri), host, port);
	return qm_features_addr_args(m, host, port, uri);
}

/* The relay: QEMU's URIs are the unix sockets of the relay halves. */
static struct json_object *channel_args(struct qmig_migration *m, enum side_id side)
{
	char uri[320];

	if (!qm_relay_on(m))
		return side == DST ? uri_args(m, m->o.listen_addr, m->res.port)
				   : uri_args(m, m->o.dst_addr, m->res.port);
	return qm_features_addr_args(m, NULL, 0,
				     side == DST ? qm_relay_in_uri(m, uri, sizeof(uri))
						 : qm_relay_out_uri(m, uri, sizeof(uri)));
}

int qm_plan_build(struct qmig_migration *m)
{
	struct json_object *want = json_object_new_object();
	int r;

	r = qm_policy_open(m);
	if (!r)
		r = qm_storage_plan(m, want); /* storage.c: disks, pause-before-switchover */
	if (!r)
		r = wanted_caps(m, want);
	if (!r)
		r = qm_features_plan(m, want); /* features.c: newer QEMU features */
	if (!r)
		m->policy_armed = qm_policy_plan(m, want);
	if (!r && m->o.verify_memory &&
	    json_object_object_get_ex(want, "postcopy-ram", NULL))
		r = qm_fail(m, -EINVAL, "--verify=memory cannot work with postcopy: once the "
					"destination runs, the source no longer has the pages");
	if (!r && m->o.multifd_channels > 0)
		r = need_param(m, "multifd-channels");
	if (!r && m->o.downtime_limit_ms > 0)
		r = need_param(m, "downtime-limit");
	if (!r && qm_relay_on(m))
		r = qm_relay_plan(m);
	if (!r)
		r = qm_alloc_port(m);
	if (!r && (m->o.verify_memory || qm_storage_holds_dst(m)))
		r = qm_plan_add(m, DST, "stop", NULL,
			     m->o.verify_memory
				     ? "keep the destination paused until its memory is compared"
				     : "keep the destination paused until its disks are compared");
	else if (!r && m->offline)
		r = qm_plan_add(m, DST, "stop", NULL,
			     "offline migration: the guest stays paused on the destination");
	if (!r)
		r = qm_relay_on(m) ? qm_relay_tls_check(m) : qm_tls_check(m);
	if (!r)
		r = plan_caps(m, &m->side[DST], want);
	if (!r && !qm_relay_on(m))
		r = qm_tls_plan(m, &m->side[DST], NULL);
	if (!r)
		r = plan_params(m, &m->side[DST]);
	if (!r)
		r = qm_plan_add(m, DST, "migrate-incoming", channel_args(m, DST),
			     qm_relay_on(m) ? "listen for the stream (the relay's destination half "
					      "connects each channel)"
					    : "listen for the stream");
	if (!r)
		r = plan_caps(m, &m->side[SRC], want);
	if (!r && !qm_relay_on(m))
		r = qm_tls_plan(m, &m->side[SRC], NULL);
	if (!r)
		r = plan_params(m, &m->side[SRC]);
	if (!r)
		r = qm_storage_plan_steps(m); /* storage.c: NBD server, exports, mirrors */
	if (!r)
		r = qm_plan_add(m, SRC, "migrate", channel_args(m, SRC),
			     qm_relay_on(m) ? "start the migration (into the relay's source half)"
					    : "start the migration");
	json_object_put(want);
	if (r < 0 && !m->error)
		qm_fail(m, r, "plan: %s", strerror(-r));
	return r;
}

/* The relay is part of the plan: how each channel will travel. */
static void relay_emit(struct qmig_migration *m)
{
	struct json_object *rec = json_object_new_object(), *a = json_object_new_object();
	char uri[320], tcp[QMIG_HOST_MAX + 32];

	json_object_object_add(a, "from", json_object_new_string(qm_relay_out_uri(m, uri,
										   sizeof(uri))));
	qm_tcp_uri(tcp, sizeof(tcp), m->o.dst_addr, m->res.port);
	json_object_object_add(a, "over", json_object_new_string(tcp));
	json_object_object_add(a, "tls", json_object_new_boolean(m->o.tls_dir != NULL));
	json_object_object_add(a, "to", json_object_new_string(qm_relay_in_uri(m, uri,
										sizeof(uri))));
	if (m->o.relay_src_netns)
		json_object_object_add(a, "source_netns",
				       json_object_new_string(m->o.relay_src_netns));
	if (m->o.relay_dst_netns)
		json_object_object_add(a, "destination_netns",
				       json_object_new_string(m->o.relay_dst_netns));
	json_object_object_add(rec, "step", json_object_new_int(0));
	json_object_object_add(rec, "side", json_object_new_string("qmigrate"));
	json_object_object_add(rec, "command", json_object_new_string("relay"));
	json_object_object_add(rec, "arguments", a);
	json_object_object_add(rec, "why", json_object_new_string(
		m->o.tls_dir ? "carry every channel between the QEMUs' unix sockets, TLS by "
			       "the relay (QEMU runs without TLS)"
			     : "carry every channel between the QEMUs' unix sockets"));
	qm_emit(m, "plan", rec, NULL);
}

void qm_plan_emit(struct qmig_migration *m)
{
	if (qm_relay_on(m))
		relay_emit(m);
	qm_features_emit(m);
	for (int i = 0; i < m->plan.n; i++) {
		struct plan_step *st = &m->plan.steps[i];
		struct json_object *rec = json_object_new_object();

		json_object_object_add(rec, "step", json_object_new_int(i + 1));
		json_object_object_add(rec, "side", json_object_new_string(m->side[st->side].name));
		json_object_object_add(rec, "command", json_object_new_string(st->command));
		if (st->args)
			json_object_object_add(rec, "arguments", json_object_get(st->args));
		json_object_object_add(rec, "why", json_object_new_string(st->why));
		qm_emit(m, "plan", rec, NULL);
	}
}

/* Each command a plan step may hold, and its function in qmp/commands.c
 * (the step's arguments are sent as built). */
static const struct {
	const char *command;
	int (*send)(struct qmig_qmp_conn *c, struct json_object *args);
} step_cmds[] = {
	{"migrate-set-capabilities", qmig_cmd_migrate_set_capabilities_args},
	{"migrate-set-parameters", qmig_cmd_migrate_set_parameters},
	{"object-add", qmig_cmd_object_add},
	{"migrate-incoming", qmig_cmd_migrate_incoming_args},
	{"migrate", qmig_cmd_migrate_args},
	{"nbd-server-start", qmig_cmd_nbd_server_start},
	{"block-export-add", qmig_cmd_block_export_add},
	{"blockdev-add", qmig_cmd_blockdev_add},
	{"blockdev-mirror", qmig_cmd_blockdev_mirror},
};

static int send_step(struct qmig_migration *m, struct side *s, struct plan_step *st)
{
	if (!strcmp(st->command, "stop") && !st->args)
		return qmig_cmd_stop(s->qmp);
	for (size_t i = 0; i < sizeof(step_cmds) / sizeof(step_cmds[0]); i++)
		if (!strcmp(st->command, step_cmds[i].command))
			return step_cmds[i].send(s->qmp, st->args);
	return qm_fail(m, -ENOTSUP, "%s: the plan holds '%s', which has no function in "
		       "qmp/commands.c", s->name, st->command);
}

static int run_step(struct qmig_migration *m, struct plan_step *st)
{
	struct side *s = &m->side[st->side];
	struct json_object *v;
	int r;

	/* Journaled first: a job that dies in the middle of this step is
	 * recovered as if it had been taken. */
	/* The relay's halves listen before QEMU is told of them. */
	if (!strcmp(st->command, "migrate-incoming") && qm_relay_on(m) &&
	    (r = qm_relay_start(m, 0)) < 0)
		return r;
	if (!strcmp(st->command, "migrate-incoming"))
		s->incoming_started = 1;
	r = qm_journal(m, s->name, st->command, st->args);
	if (r < 0)
		return r;
	if (!strcmp(st->command, "migrate-set-capabilities") ||
	    !strcmp(st->command, "migrate-set-parameters")) {
		s->touched = 1;
		r = send_step(m, s, st);
	} else if (!strcmp(st->command, "migrate-incoming") &&
		   json_object_object_get_ex(st->args, "uri", &v)) {
		r = qmig_cmd_migrate_incoming(s->qmp, json_object_get_string(v));
		if (r < 0)
			s->incoming_started = 0;
	} else if (!strcmp(st->command, "migrate-incoming")) { /* the channels form */
		r = send_step(m, s, st);
		if (r < 0)
			s->incoming_started = 0;
	} else if (!strcmp(st->command, "object-add")) {
		r = send_step(m, s, st);
		if (!r)
			s->tls_object = 1;
	} else if (!strcmp(st->command, "migrate") &&
		   json_object_object_get_ex(st->args, "uri", &v)) {
		r = qmig_cmd_migrate(s->qmp, json_object_get_string(v), 0);
	} else {
		r = send_step(m, s, st);
	}
	return r;
}

/* A port can be taken between our check and QEMU's bind by a process
 * that does not use our locks: then try another one. */
static int retry_incoming(struct qmig_migration *m, int i)
{
	struct plan_step *st = &m->plan.steps[i];

	for (int k = 0; k < m->plan.n; k++)
		if (!strcmp(m->plan.steps[k].command, "migrate")) {
			json_object_put(m->plan.steps[k].args);
			m->plan.steps[k].args = NULL;
		}
	if (qm_alloc_port(m) < 0)
		return m->error;
	json_object_put(st->args);
	st->args = uri_args(m, m->o.listen_addr, m->res.port);
	for (int k = 0; k < m->plan.n; k++)
		if (!strcmp(m->plan.steps[k].command, "migrate"))
			m->plan.steps[k].args = uri_args(m, m->o.dst_addr, m->res.port);
	qm_log(m, QMIG_LOG_WARN, "destination: could not listen, retrying on port %u",
	       m->res.port);
	return 0;
}

int qm_plan_exec(struct qmig_migration *m, int upto_migrate)
{
	for (; m->plan.exec < m->plan.n; m->plan.exec++) {
		struct plan_step *st = &m->plan.steps[m->plan.exec];
		int r;

		/* storage.c: RAM moves only once every disk mirror is in sync. */
		if (!strcmp(st->command, "migrate") && qm_storage_ready(m) < 0)
			return m->error;
		r = run_step(m, st);

		for (int a = 1; r == -EREMOTEIO && a < PORT_ATTEMPTS && !qm_relay_on(m) &&
				!strcmp(st->command, "migrate-incoming");
		     a++) {
			if (retry_incoming(m, m->plan.exec) < 0)
				return m->error;
			r = run_step(m, st);
		}
		if (r < 0 && m->journal_failed)
			return qm_fail(m, r, "journal %s: %s: nothing more is changed without it",
				       m->jpath, strerror(-r));
		if (r < 0)
			return qm_qmp_fail(m, &m->side[st->side], r, st->command);
		if (!upto_migrate && !strcmp(st->command, "migrate"))
			break;
	}
	return 0;
}

/* Put back what the plan changed on one side. */
int qm_restore_side(struct qmig_migration *m, struct side *s)
{
	struct json_object *caps, *params, *v;
	int r = 0;

	if (!s->qmp || (!s->touched && !s->tls_object))
		return 0;
	if (s->set_caps) {
		caps = json_object_new_object();
		json_object_object_foreach(s->set_caps, name, val)
		{
			(void)val;
			json_object_object_add(caps, name,
					       json_object_new_boolean(cap_state(s->orig_caps, name)));
		}
		r = qmig_cmd_migrate_set_capabilities(s->qmp, caps);
		json_object_put(caps);
		if (r < 0)
			qm_log(m, QMIG_LOG_WARN, "%s: could not restore capabilities: %s", s->name,
			       qmig_qmp_conn_error(s->qmp));
	}
	if (s->set_params) {
		params = json_object_new_object();
		json_object_object_foreach(s->set_params, pname, pval)
		{
			(void)pval;
			if (json_object_object_get_ex(s->orig_params, pname, &v))
				json_object_object_add(params, pname, json_object_get(v));
		}
		r = qmig_cmd_migrate_set_parameters(s->qmp, params);
		json_object_put(params);
		if (r < 0)
			qm_log(m, QMIG_LOG_WARN, "%s: could not restore parameters: %s", s->name,
			       qmig_qmp_conn_error(s->qmp));
	}
	s->touched = 0;
	qm_tls_cleanup(m, s);
	return r;
}
