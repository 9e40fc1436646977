/* qmigrate recover: finish or roll back the migrations whose qmigrate died,
 * from the journals they left in the jobs directory. */
#include <errno.h>
#include <limits.h>
#include <unistd.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <json-c/json.h>

#include "agent_src.h"
#include "cli.h"
#include "job.h"
#include "qmig_journal.h"

static void usage(FILE *f)
{
	fprintf(f, "usage: qmigrate recover [--job ID] [--list] [--json]\n\n"
		   "A migration keeps a journal in the jobs directory (%s for root)\n"
		   "while it runs. When qmigrate dies (kill -9, a crash), the journal stays;\n"
		   "recover reconnects to both QEMUs and ends the job by the ownership rule:\n"
		   "a guest the destination has not run goes back to the source (migration\n"
		   "cancelled, source resumed if it was running); one the destination has run\n"
		   "stays there (the source is never resumed). Capabilities, parameters and\n"
		   "objects are restored, stale port locks and RAM dumps removed, the journal\n"
		   "deleted. A postcopy that cannot go on stays paused on both sides and the\n"
		   "journal is kept.\n\n"
		   "  --job ID   only this job (default: every job whose process is gone)\n"
		   "  --list     list the journals and whether their process still runs\n"
		   "  --json     one JSON object per job\n"
		   "  --agent-state [DIR]  on an agent's host: only the jobs a dead `qmigrate\n"
		   "             agent` left in its state directory (default /run/qmigrate/agent\n"
		   "             as root; also looked at, when it exists, without --job):\n"
		   "             a destination that never ran is removed, one that ran kept\n\n"
		   "Exit 0 when every job was recovered (or none needed it), 1 otherwise.\n",
		"/run/qmigrate/jobs");
}

static void print_job(const struct qmig_job_info *j, int json)
{
	if (!json) {
		printf("%-12s %-8s pid %-7d phase %-10s owner %-11s %s -> %s\n", j->job,
		       j->alive ? "running" : "orphaned", j->pid, j->phase, j->owner, j->src_qmp,
		       j->dst_qmp);
		return;
	}
	struct json_object *o = json_object_new_object();

	json_object_object_add(o, "job", json_object_new_string(j->job));
	json_object_object_add(o, "pid", json_object_new_int(j->pid));
	json_object_object_add(o, "alive", json_object_new_boolean(j->alive));
	json_object_object_add(o, "phase", json_object_new_string(j->phase));
	json_object_object_add(o, "owner", json_object_new_string(j->owner));
	json_object_object_add(o, "src_qmp", json_object_new_string(j->src_qmp));
	json_object_object_add(o, "dst_qmp", json_object_new_string(j->dst_qmp));
	puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
	json_object_put(o);
}

static int recover_one(const char *dir, const char *job, int json)
{
	struct qmig_recover_opts opts = QMIG_RECOVER_OPTS_INIT;
	struct qmig_recover_result res;
	int r;

	memset(&res, 0, sizeof(res));
	opts.log = (struct qmig_log_cb){cli_log, NULL, NULL};
	r = qmig_recover_job(dir, job, &opts, &res);
	if (json) {
		struct json_object *o = json_object_new_object();

		json_object_object_add(o, "job", json_object_new_string(job));
		json_object_object_add(o, "ok", json_object_new_boolean(r == 0));
		json_object_object_add(o, "outcome", json_object_new_string(res.outcome));
		json_object_object_add(o, "owner", json_object_new_string(res.owner));
		json_object_object_add(o, "message", json_object_new_string(
			res.message[0] ? res.message : r < 0 ? strerror(-r) : ""));
		puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
		json_object_put(o);
	} else if (r == 0 && !res.owner[0]) {
		printf("job %s: %s. %s\n", job, res.outcome, res.message);
	} else if (r == 0) {
		printf("job %s: %s; the guest runs on the %s. %s\n", job, res.outcome,
		       res.owner, res.message);
	} else {
		warnx("job %s: not recovered: %s", job,
		      res.message[0] ? res.message : strerror(-r));
	}
	return r;
}

int cmd_recover(int argc, char **argv)
{
	static const struct option lo[] = {
		{"job", 1, 0, 'j'}, {"list", 0, 0, 'l'}, {"json", 0, 0, 'J'},
		{"help", 0, 0, 'h'}, {"agent-state", 2, 0, 'S'}, {0, 0, 0, 0}};
	const char *only = NULL, *agent_state = NULL;
	int list = 0, json = 0, c, failed = 0, agent_only = 0;
	struct qmig_job_info *jobs = NULL;
	size_t n = 0;
	char dir[200];

	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case 'j': only = optarg; break;
		case 'l': list = 1; break;
		case 'J': json = 1; break;
		case 'S': agent_only = 1; agent_state = optarg; break;
		case 'h': usage(stdout); return EXIT_OK;
		default: usage(stderr); return EXIT_USAGE;
		}
	}
	if (agent_only && !agent_state && optind + 1 == argc)
		agent_state = argv[optind++];
	if (optind != argc) {
		usage(stderr);
		return EXIT_USAGE;
	}
	if (agent_only) {
		if (only || list)
			die(EXIT_USAGE, "--agent-state goes without --job and --list ('qmigrate status "
					"--agent-state' lists an agent's jobs)");
		c = agent_cli_recover(agent_state, json);
		if (c == -ENOENT)
			die(EXIT_FAIL, "no agent state directory %s", agent_state ? agent_state
										: "(the default)");
		return c < 0 ? EXIT_FAIL : EXIT_OK;
	}
	/* On an agent's host: what a dead agent left, too. */
	if (!only && !list) {
		char ad[PATH_MAX];

		agent_state_default(ad, sizeof(ad));
		if (access(ad, F_OK) == 0 && agent_cli_recover(ad, json) < 0)
			failed = 1;
	}
	job_dir(dir, sizeof(dir));
	c = qmig_journal_list(dir, &jobs, &n);
	if (c < 0)
		die(EXIT_FAIL, "cannot read the journals in %s: %s", dir, strerror(-c));
	if (list) {
		for (size_t i = 0; i < n; i++)
			print_job(&jobs[i], json);
		if (!n && !json)
			printf("no job journals in %s\n", dir);
		qmig_journal_list_free(jobs);
		return EXIT_OK;
	}
	if (only) {
		failed = recover_one(dir, only, json) < 0;
	} else {
		size_t done = 0;

		for (size_t i = 0; i < n; i++) {
			if (jobs[i].alive)
				continue;
			done++;
			failed |= recover_one(dir, jobs[i].job, json) < 0;
		}
		if (!done && !json)
			printf("nothing to recover: no orphaned job in %s\n", dir);
	}
	qmig_journal_list_free(jobs);
	return failed ? EXIT_FAIL : EXIT_OK;
}
