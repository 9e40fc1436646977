/* qmigrate status / qmigrate cancel: talk to a running `qmigrate migrate`
 * through its control socket, or (status --qmp) ask a QEMU directly. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <json-c/json.h>

#include "agent_src.h"
#include "cli.h"
#include "job.h"
#include "qmigrate.h"
#include "qmig_journal.h"

static void usage(FILE *f, const char *cmd)
{
	if (!strcmp(cmd, "status"))
		fprintf(f, "usage: qmigrate status [--job PID | --qmp SOCK] [--json]\n\n"
			   "Show a running migration: its phase, pass, bytes sent and left, the\n"
			   "convergence verdict (converging, stalled, cannot converge) with the\n"
			   "dirty rate and the wire rate behind it, the time left until its\n"
			   "completion bound, and the expected downtime. --qmp asks a QEMU\n"
			   "directly (query-migrate) when no qmigrate job holds its socket.\n"
			   "Jobs whose qmigrate died (their journal is left in the jobs\n"
			   "directory) are listed as orphaned, with the phase they died in and\n"
			   "who owns the guest: 'qmigrate recover --job ID' repairs them.\n"
			   "Migrations to another host that wait for a place (this host's\n"
			   "--max-outbound limit, or the destination agent's queue) are listed\n"
			   "as queued.\n"
			   "Exit 0 when a running or queued job was shown, 1 otherwise.\n\n"
			   "On an agent's host (qmigrate agent): its inbound jobs, and the\n"
			   "migrations queued behind its --max-inbound limit:\n"
			   "  --agent-state [DIR]   read the agent's state directory (default\n"
			   "                        /run/qmigrate/agent as root)\n"
			   "  --agent URL           ask the agent at qmigrate+tls://HOST[:PORT]\n"
			   "  --agent-tls DIR       this host's client certificate for --agent\n");
	else if (!strcmp(cmd, "set"))
		fprintf(f, "usage: qmigrate set [--job PID] [--json] NAME=VALUE\n\n"
			   "Change a limit of a migration in precopy, from another shell (like\n"
			   "virsh migrate-setmaxdowntime / migrate-setspeed):\n"
			   "  downtime-limit=MS       the longest pause QEMU may plan at switchover\n"
			   "  max-bandwidth=RATE      e.g. 500M, 1gbit\n"
			   "The change is recorded as an action by the operator in the job's --json\n"
			   "records and trace, and restored with the others when the job ends.\n");
	else if (!strcmp(cmd, "postcopy"))
		fprintf(f, "usage: qmigrate postcopy [--job PID] [--json]\n\n"
			   "Switch a migration in precopy to postcopy now (like virsh\n"
			   "migrate-postcopy). Only for a job started with --postcopy (e.g.\n"
			   "--postcopy-after 3600 to decide by hand); refused otherwise.\n"
			   "From then on the destination runs the guest: no rollback.\n");
	else
		fprintf(f, "usage: qmigrate cancel [--job PID] [--json]\n\n"
			   "Cancel a running migration. The job rolls back: the source guest keeps\n"
			   "running, a destination it launched is stopped, its port is released.\n"
			   "After the hand-over (postcopy, confirm, finish) a cancel is ignored,\n"
			   "and the reply says so (exit 1).\n");
}

static void print_status(const char *line, int json)
{
	struct json_object *o = json_tokener_parse(line), *v;
	char a[32], b[32], c[32];

	if (json || !o) {
		puts(line);
		json_object_put(o);
		return;
	}
#define I(k) (json_object_object_get_ex(o, k, &v) ? json_object_get_int64(v) : 0)
#define S(k) (json_object_object_get_ex(o, k, &v) ? json_object_get_string(v) : "")
	format_size(a, sizeof(a), (double)I("transferred"));
	format_size(b, sizeof(b), (double)I("remaining"));
	format_size(c, sizeof(c), (double)I("wire_rate"));
	printf("job:                %s (pid %lld)\n"
	       "phase:              %s\n"
	       "status:             %s\n"
	       "elapsed:            %lld ms\n"
	       "pass:               %lld\n"
	       "transferred:        %s\n"
	       "remaining:          %s\n"
	       "wire rate:          %s/s\n"
	       "verdict:            %s\n"
	       "expected downtime:  %lld ms\n",
	       S("job"), (long long)I("pid"), S("phase"), S("status"), (long long)I("elapsed_ms"),
	       (long long)I("pass"), a, b, c, S("verdict_text"),
	       (long long)I("expected_downtime_ms"));
	if (I("eta_ms") >= 0)
		printf("time left:          %.1f s\n", (double)I("eta_ms") / 1000.0);
	if (I("completion_bound_left_ms") >= 0)
		printf("completion bound:   %.0f s left\n",
		       (double)I("completion_bound_left_ms") / 1000.0);
#undef I
#undef S
	json_object_put(o);
}

static int status_qmp(const char *sock, int json)
{
	struct qmig_qmp_conn *c;
	struct json_object *ret = NULL;
	int r;

	r = qmig_qmp_conn_open(&c, sock, NULL);
	if (r < 0)
		die(EXIT_SETUP, "%s: %s", sock, strerror(-r));
	r = qmig_cmd_query_migrate_raw(c, &ret);
	if (r < 0) {
		warnx("query-migrate: %s", qmig_qmp_conn_error(c));
		qmig_qmp_conn_close(c);
		return EXIT_FAIL;
	}
	puts(json_object_to_json_string_ext(ret, json ? JSON_C_TO_STRING_PLAIN
						      : JSON_C_TO_STRING_PRETTY));
	json_object_put(ret);
	qmig_qmp_conn_close(c);
	return EXIT_OK;
}

enum { K_STATUS, K_CANCEL, K_SET, K_POSTCOPY };

/* Journals whose process is gone (only job `only` when not NULL): one
 * line each, after or instead of a running job's status. Returns how
 * many were listed. */
static int list_orphans(const char *only, int json)
{
	struct qmig_job_info *jobs = NULL;
	size_t n = 0;
	char dir[200];
	int listed = 0;

	job_dir(dir, sizeof(dir));
	if (qmig_journal_list(dir, &jobs, &n) < 0)
		return 0;
	for (size_t i = 0; i < n; i++) {
		const struct qmig_job_info *j = &jobs[i];

		if (j->alive || (only && strcmp(only, j->job)))
			continue;
		listed++;
		if (json) {
			struct json_object *o = json_object_new_object();

			json_object_object_add(o, "job", json_object_new_string(j->job));
			json_object_object_add(o, "orphaned", json_object_new_boolean(1));
			json_object_object_add(o, "pid", json_object_new_int(j->pid));
			json_object_object_add(o, "phase", json_object_new_string(j->phase));
			json_object_object_add(o, "owner", json_object_new_string(j->owner));
			json_object_object_add(o, "mode", json_object_new_string(j->mode));
			json_object_object_add(o, "step", json_object_new_string(j->step));
			json_object_object_add(o, "src_qmp", json_object_new_string(j->src_qmp));
			json_object_object_add(o, "dst_qmp", json_object_new_string(j->dst_qmp));
			json_object_object_add(o, "updated_us", json_object_new_int64(j->updated_us));
			puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
							       JSON_C_TO_STRING_NOSLASHESCAPE));
			json_object_put(o);
			continue;
		}
		printf("orphaned job %s: qmigrate (pid %d) died in phase %s with the %s owning the "
		       "guest (%s -> %s); run 'qmigrate recover --job %s'\n",
		       j->job, j->pid, j->phase, j->owner, j->src_qmp, j->dst_qmp, j->job);
	}
	qmig_journal_list_free(jobs);
	return listed;
}

/* A reply's "error" or the cancel's "ignored" reason; NULL when it worked. */
static const char *refusal(struct json_object *o, int kind)
{
	struct json_object *v;

	if (json_object_object_get_ex(o, "error", &v))
		return json_object_get_string(v);
	if (kind == K_CANCEL && json_object_object_get_ex(o, "cancel", &v) &&
	    !strcmp(json_object_get_string(v), "ignored"))
		return json_object_object_get_ex(o, "reason", &v) ? json_object_get_string(v)
								  : "ignored";
	return NULL;
}

static int job_cmd(int argc, char **argv, int kind)
{
	static const struct option lo[] = {{"job", 1, 0, 'j'}, {"qmp", 1, 0, 'q'},
					   {"json", 0, 0, 'J'}, {"help", 0, 0, 'h'},
					   {"agent", 1, 0, 'A'}, {"agent-state", 2, 0, 'S'},
					   {"agent-tls", 1, 0, 'T'}, {0, 0, 0, 0}};
	const char *agent_url = NULL, *agent_state = NULL, *agent_tls = NULL;
	int agent_local = 0;
	static const char *const done[] = {"", "cancel requested; the job rolls back",
					   "set", "switched to postcopy"};
	const char *qmp = NULL, *why;
	int pid = 0, json = 0, c, rc = EXIT_OK;
	char msg[300], req[JOB_LINE_MAX];
	struct json_object *o;
	char *rep;

	optind = 1;
	while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		switch (c) {
		case 'j': pid = (int)parse_long("--job", optarg, 1, 1 << 22); break;
		case 'q': qmp = optarg; break;
		case 'J': json = 1; break;
		case 'A': agent_url = optarg; break;
		case 'S': agent_local = 1; agent_state = optarg; break;
		case 'T': agent_tls = optarg; break;
		case 'h': usage(stdout, argv[0]); return EXIT_OK;
		default: usage(stderr, argv[0]); return EXIT_USAGE;
		}
	}
	if (agent_url || agent_local || agent_tls) {
		if (kind != K_STATUS || (agent_url && agent_local) || (agent_tls && !agent_url))
			die(EXIT_USAGE, "status takes --agent URL [--agent-tls DIR] or "
					"--agent-state [DIR]");
		if (optind < argc && agent_local && !agent_state)
			agent_state = argv[optind++];
		if (optind < argc)
			die(EXIT_USAGE, "unexpected argument '%s'", argv[optind]);
		return agent_cli_status(agent_url, agent_tls, agent_state, json);
	}
	if (kind == K_SET) {
		const char *eq;
		uint64_t v;

		if (optind + 1 != argc)
			die(EXIT_USAGE, "set takes one NAME=VALUE (see 'qmigrate set --help')");
		eq = strchr(argv[optind], '=');
		if (!eq)
			die(EXIT_USAGE, "set: '%s' is not NAME=VALUE", argv[optind]);
		if (!strncmp(argv[optind], "downtime-limit=", 15))
			v = (uint64_t)parse_long("downtime-limit", eq + 1, 1, 2000000);
		else if (!strncmp(argv[optind], "max-bandwidth=", 14))
			v = parse_rate("max-bandwidth", eq + 1);
		else
			die(EXIT_USAGE, "set: '%.*s' is not downtime-limit or max-bandwidth",
			    (int)(eq - argv[optind]), argv[optind]);
		if (!v)
			die(EXIT_USAGE, "set: %s must be more than 0", argv[optind]);
		snprintf(req, sizeof(req), "set %.*s=%llu", (int)(eq - argv[optind]),
			 argv[optind], (unsigned long long)v);
		optind++;
	} else {
		snprintf(req, sizeof(req), "%s",
			 kind == K_STATUS ? "status" : kind == K_CANCEL ? "cancel" : "postcopy");
	}
	if (optind < argc)
		die(EXIT_USAGE, "unexpected argument '%s'", argv[optind]);
	if (qmp && kind == K_STATUS)
		return status_qmp(qmp, json);
	if (qmp)
		die(EXIT_USAGE, "%s works on jobs: use --job PID", argv[0]);
	rep = job_request(pid, req, msg, sizeof(msg));
	if (!rep && kind == K_STATUS) {
		char id[16];
		int queued = pid ? 0 : agent_src_list_queued(json);

		snprintf(id, sizeof(id), "%d", pid);
		if (!queued || !strstr(msg, "no migration is running"))
			warnx("%s", msg);
		list_orphans(pid ? id : NULL, json);
		return queued ? EXIT_OK : EXIT_FAIL;
	}
	if (!rep)
		die(EXIT_FAIL, "%s", msg);
	o = json_tokener_parse(rep);
	why = o ? refusal(o, kind) : "unreadable reply";
	if (why) {
		warnx("%s: %s", argv[0], why);
		rc = EXIT_FAIL;
	}
	if (json)
		puts(rep);
	else if (kind == K_STATUS)
		print_status(rep, 0);
	else if (!why && kind == K_SET)
		printf("%s set\n", req + 4);
	else if (!why)
		printf("%s\n", done[kind]);
	if (kind == K_STATUS && !pid) {
		agent_src_list_queued(json);
		list_orphans(NULL, json);
	}
	json_object_put(o);
	free(rep);
	return rc;
}

int cmd_status(int argc, char **argv)
{
	return job_cmd(argc, argv, K_STATUS);
}

int cmd_cancel(int argc, char **argv)
{
	return job_cmd(argc, argv, K_CANCEL);
}

int cmd_set(int argc, char **argv)
{
	return job_cmd(argc, argv, K_SET);
}

int cmd_postcopy(int argc, char **argv)
{
	return job_cmd(argc, argv, K_POSTCOPY);
}
