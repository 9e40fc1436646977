/* qmigrate migrate --to qmigrate+tls://HOST: the source side, a thin layer
 * over engine/qmig_agent.h. The engine gets the tunnel's local socket as
 * its destination QMP; the destination's memory is verified by the agent,
 * where it is (the engine's own stamp check would dump it there). */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <json-c/json.h>

#include "agent_src.h"
#include "cli.h"

static struct qmig_agent_session *sess;
static struct json_object *held;

void agent_src_start(struct qmig_migrate_opts *o, const char *to, const char *profile,
		     const char *const *sets)
{
	struct qmig_agent_opts ao = QMIG_AGENT_OPTS_INIT;
	char msg[768] = "";
	int r;

	if (!o->src_qmp)
		die(EXIT_USAGE, "--to needs --src-qmp: the source QEMU on this host");
	if (o->dst_qmp)
		die(EXIT_USAGE, "--to: the agent launches the destination; drop --dst-qmp");
	if (!profile)
		die(EXIT_USAGE, "--to needs --profile NAME: one of the agent host's profiles");
	if (o->verify_memory)
		die(EXIT_USAGE, "--verify=memory compares both RAMs on one host; through an agent "
				"the agent verifies the destination itself");
	if (o->dst_addr || o->listen_addr || o->dst_netns)
		die(EXIT_USAGE, "--to: the agent says where the destination listens; drop "
				"--dst-addr, --listen-addr and --dst-netns");
	ao.url = to;
	ao.tls_dir = o->tls_dir;
	ao.profile = profile;
	ao.set = sets;
	ao.src_qmp = o->src_qmp;
	ao.job_id = o->job_id;
	ao.log = (struct qmig_log_cb){cli_log, NULL, NULL};
	r = qmig_agent_session_new(&sess, &ao, msg, sizeof(msg));
	if (r < 0)
		die(EXIT_SETUP, "%s", msg);
	qmig_agent_session_apply(sess, o);
	/* The agent checks the destination's memory where it is. */
	o->no_verify = 1;
}

int agent_src_active(void)
{
	return sess != NULL;
}

int agent_src_fd(void)
{
	return qmig_agent_session_get_fd(sess);
}

void agent_src_process(void)
{
	if (sess)
		qmig_agent_session_process(sess);
}

int agent_src_hold(const struct qmig_migration_event *ev)
{
	if (!sess || strcmp(ev->type, "result"))
		return 0;
	json_object_put(held);
	held = json_object_get(ev->record);
	return 1;
}

static void merge(struct json_object *rec, struct qmig_result *res, struct json_object *rep,
		  int r, const char *msg)
{
	struct json_object *v, *ag = json_object_new_object();

	json_object_object_add(ag, "job", json_object_new_string(qmig_agent_session_job(sess)));
	if (rep)
		json_object_object_add(ag, "reply", json_object_get(rep));
	if (r < 0)
		json_object_object_add(ag, "error", json_object_new_string(msg));
	if (rec) {
		json_object_object_add(rec, "via", json_object_new_string("agent"));
		json_object_object_add(rec, "agent", ag);
	} else {
		json_object_put(ag);
	}
	if (strcmp(res->status, "completed"))
		return;
	if (r < 0) {
		/* Completed, but the agent could not confirm its guest runs: the
		 * destination owns the guest all the same (the source is gone). */
		res->verified = 0;
		snprintf(res->status, sizeof(res->status), "completed-with-errors");
		snprintf(res->message, sizeof(res->message), "the agent could not confirm: %.400s",
			 msg);
	} else if (rep && json_object_object_get_ex(rep, "verified", &v) && v) {
		char *tail;

		res->verified = json_object_get_boolean(v);
		if ((v = json_object_object_get(rep, "verify_method")))
			snprintf(res->verify_method, sizeof(res->verify_method), "%s",
				 json_object_get_string(v));
		tail = strstr(res->message, ", verification skipped");
		if (tail)
			*tail = 0;
		snprintf(res->message + strlen(res->message),
			 sizeof(res->message) - strlen(res->message), "; the agent %s (%s)",
			 res->verified ? "verified the destination" : "found the destination wrong",
			 res->verify_method);
	}
	if (rec) {
		json_object_object_add(rec, "status", json_object_new_string(res->status));
		json_object_object_add(rec, "verified",
				       res->verified < 0 ? NULL : json_object_new_boolean(res->verified));
		json_object_object_add(rec, "verify_method",
				       json_object_new_string(res->verify_method));
		json_object_object_add(rec, "message", json_object_new_string(res->message));
	}
}

void agent_src_end(struct qmig_result *res, int json)
{
	struct json_object *rep = NULL;
	char msg[768] = "";
	int r;

	if (!sess)
		return;
	r = qmig_agent_session_end(sess, res, &rep, msg, sizeof(msg));
	if (r < 0)
		warnx("%s", msg);
	merge(held, res, rep, r, msg);
	if (json && held)
		printf("%s\n", json_object_to_json_string_ext(held, JSON_C_TO_STRING_PLAIN |
								  JSON_C_TO_STRING_NOSLASHESCAPE));
	else if (!json && !strcmp(res->status, "completed"))
		fprintf(stderr, "qmigrate: the agent confirms job %s: destination running, %s\n",
			qmig_agent_session_job(sess),
			res->verified == 1 ? "memory stamps verified" : "running");
	fflush(stdout);
	json_object_put(rep);
	json_object_put(held);
	held = NULL;
	qmig_agent_session_free(sess);
	sess = NULL;
}
