/* qmigrate simulate / qmigrate replay: precopy offline through any policy,
 * from constants or from the rates of a recorded trace (--trace). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <json-c/json.h>

#include "cli.h"
#include "qmigrate.h"
#include "qmp_reply.h"
#include "trace.h"

static void usage(FILE *f, int replay)
{
	if (replay)
		fprintf(f, "usage: qmigrate replay TRACE [--policy NAME | --policy-plugin FILE]\n"
			   "                      [--max-downtime MS] [--max-pause MS] [--json]\n\n"
			   "Feed the dirty rates and bandwidths a real migration measured (a\n"
			   "--trace file of qmigrate migrate) to a policy in the simulator, and\n"
			   "compare with what happened.\n");
	else
		fprintf(f, "usage: qmigrate simulate --mem SIZE [--wss SIZE] --dirty-rate RATE\n"
			   "                        --bandwidth RATE [--downtime-limit MS]\n"
			   "                        [--page-size N] [--max-time SECS]\n"
			   "                        [--policy NAME | --policy-plugin FILE]\n"
			   "                        [--postcopy] [--throttle] [--max-downtime MS]\n"
			   "                        [--max-pause MS] [--json]\n\n"
			   "Run precopy offline, deterministically, through a policy (%s).\n"
			   "--postcopy and --throttle say what the policy may use.\n",
			qmig_policy_names());
}

static struct json_object *result_json(const struct qmig_sim_result *r, const char *policy)
{
	struct json_object *o = json_object_new_object(), *acts = json_object_new_array();

	json_object_object_add(o, "type", json_object_new_string("result"));
	json_object_object_add(o, "policy", json_object_new_string(policy));
	json_object_object_add(o, "converged", json_object_new_boolean(r->converged));
	json_object_object_add(o, "aborted", json_object_new_boolean(r->aborted));
	json_object_object_add(o, "postcopy", json_object_new_boolean(r->postcopy));
	json_object_object_add(o, "total_ms", json_object_new_int64(r->total_ms));
	json_object_object_add(o, "passes", json_object_new_int64((int64_t)r->passes));
	json_object_object_add(o, "transferred_bytes",
			       json_object_new_int64((int64_t)r->transferred_bytes));
	json_object_object_add(o, "downtime_ms", json_object_new_int64(r->downtime_ms));
	json_object_object_add(o, "throttle_pct_max", json_object_new_int64(r->throttle_pct_max));
	for (int i = 0; i < r->n_actions; i++) {
		struct json_object *a = json_object_new_object();

		json_object_object_add(a, "t_ms", json_object_new_int64(r->action_t_ms[i]));
		json_object_object_add(a, "action",
				       json_object_new_string(qmig_action_name(r->actions[i].kind)));
		json_object_object_add(a, "value", json_object_new_int64(r->actions[i].value));
		json_object_object_add(a, "reason", json_object_new_string(r->actions[i].reason));
		json_object_array_add(acts, a);
	}
	json_object_object_add(o, "actions", acts);
	return o;
}

static void print_result(const struct qmig_sim_result *r, const char *policy, int json,
			 struct json_object *extra)
{
	struct json_object *o = result_json(r, policy);
	char b[32];

	if (extra) {
		struct qm_rd rd;
		struct qm_rd_iter it;
		struct json_object *v;
		const char *k;

		qm_rd_init(&rd, "result");
		qm_rd_iter_init(&rd, extra, &it);
		while (qm_rd_iter_next(&it, &k, &v))
			json_object_object_add(o, k, json_object_get(v));
	}
	if (json) {
		puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
							       JSON_C_TO_STRING_NOSLASHESCAPE));
		json_object_put(o);
		return;
	}
	format_size(b, sizeof(b), (double)r->transferred_bytes);
	for (int i = 0; i < r->n_actions; i++)
		printf("%8.1f s  %-13s %-8lld %s\n", r->action_t_ms[i] / 1000.0,
		       qmig_action_name(r->actions[i].kind), (long long)r->actions[i].value,
		       r->actions[i].reason);
	printf("policy %s: %s in %.1f s, %llu passes, %s sent, downtime %lld ms%s\n", policy,
	       r->converged ? "converged" : r->aborted ? "aborted" : "did not converge",
	       r->total_ms / 1000.0, (unsigned long long)r->passes, b, (long long)r->downtime_ms,
	       r->postcopy ? " (postcopy)" : "");
	if (extra)
		printf("recorded run: %s\n", json_object_to_json_string(extra));
	json_object_put(o);
}

static const struct qmig_policy_ops *pick(const char *name, const char *plugin, void **dl)
{
	const struct qmig_policy_ops *ops;
	char msg[256];

	if (plugin) {
		if (qmig_policy_load(&ops, dl, plugin, msg, sizeof(msg)) < 0)
			die(EXIT_SETUP, "--policy-plugin: %s", msg);
		return ops;
	}
	ops = qmig_policy_builtin(name ? name : "passive");
	if (!ops)
		die(EXIT_USAGE, "--policy: '%s' is not one of %s", name, qmig_policy_names());
	return ops;
}

static int sim_cmd(int argc, char **argv, int replay)
{
	static const struct option lo[] = {
		{"mem", 1, 0, 'm'},          {"wss", 1, 0, 'w'},        {"dirty-rate", 1, 0, 'd'},
		{"bandwidth", 1, 0, 'b'},    {"downtime-limit", 1, 0, 'l'}, {"page-size", 1, 0, 'P'},
		{"max-time", 1, 0, 'T'},     {"policy", 1, 0, 'p'},     {"policy-plugin", 1, 0, 'L'},
		{"postcopy", 0, 0, 'c'},     {"throttle", 0, 0, 't'},   {"max-downtime", 1, 0, 'D'},
		{"max-pause", 1, 0, 'M'},    {"json", 0, 0, 'j'},       {"help", 0, 0, 'h'},
		{0, 0, 0, 0}};
	struct qmig_sim_opts o = QMIG_SIM_OPTS_INIT;
	struct qmig_sim_result r;
	struct trace tr = {0};
	struct json_object *extra = NULL, *v;
	const struct qmig_policy_ops *ops;
	const char *policy = NULL, *plugin = NULL;
	void *dl = NULL;
	int json = 0, c;

	o.policy = (struct qmig_policy_config)QMIG_POLICY_CONFIG_INIT;
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		switch (c) {
		case 'm': o.mem_bytes = parse_size("--mem", optarg); break;
		case 'w': o.wss_bytes = parse_size("--wss", optarg); break;
		case 'd': o.dirty_rate = parse_rate("--dirty-rate", optarg); break;
		case 'b': o.bandwidth = parse_rate("--bandwidth", optarg); break;
		case 'l': o.downtime_limit_ms = parse_long("--downtime-limit", optarg, 1, 2000000); break;
		case 'P': o.page_size = (uint64_t)parse_long("--page-size", optarg, 512, 1 << 30); break;
		case 'T': o.max_time_ms = parse_long("--max-time", optarg, 1, 86400) * 1000; break;
		case 'p': policy = optarg; break;
		case 'L': plugin = optarg; break;
		case 'c': o.policy.postcopy_allowed = 1; break;
		case 't': o.policy.throttle_allowed = 1; break;
		case 'D': o.policy.max_downtime_ms = parse_long("--max-downtime", optarg, 1, 2000000); break;
		case 'M': o.policy.max_pause_ms = parse_long("--max-pause", optarg, 1, 86400000); break;
		case 'j': json = 1; break;
		case 'h': usage(stdout, replay); return EXIT_OK;
		default: usage(stderr, replay); return EXIT_USAGE;
		}
	}
	if (replay) {
		if (optind != argc - 1)
			die(EXIT_USAGE, "give one TRACE file (see 'qmigrate replay --help')");
		char err[256];

		if (trace_read(&tr, argv[optind], err, sizeof(err)) < 0)
			die(EXIT_USAGE, "%s: %s", argv[optind], err);
		o.env_t_ms = tr.t;
		o.env_dirty = tr.dirty;
		o.env_bandwidth = tr.bw;
		o.env_n = tr.n;
		o.mem_bytes = trace_cfg_int(&tr, "mem_bytes") ? (uint64_t)trace_cfg_int(&tr, "mem_bytes")
							      : tr.mem;
		o.wss_bytes = (uint64_t)trace_cfg_int(&tr, "wss_bytes");
		if (!o.downtime_limit_ms)
			o.downtime_limit_ms = trace_cfg_int(&tr, "downtime_limit_ms");
		o.policy.postcopy_allowed |= trace_cfg_int(&tr, "postcopy") != 0;
		extra = json_object_new_object();
		if (tr.result) {
			struct qm_rd rd;
			struct qm_rd_iter it;
			struct json_object *val;
			const char *k;

			qm_rd_init(&rd, "result");
			qm_rd_iter_init(&rd, tr.result, &it);
			while (qm_rd_iter_next(&it, &k, &val))
				if (!strcmp(k, "passes") || !strcmp(k, "transferred_bytes") ||
				    !strcmp(k, "total_ms") || !strcmp(k, "engine_total_ms") ||
				    !strcmp(k, "status"))
					json_object_object_add(extra, k, json_object_get(val));
		}
		v = extra;
		extra = json_object_new_object();
		json_object_object_add(extra, "recorded", v);
	} else {
		if (optind < argc)
			die(EXIT_USAGE, "unexpected argument '%s'", argv[optind]);
		if (!o.mem_bytes || !o.bandwidth)
			die(EXIT_USAGE, "give --mem and --bandwidth (see 'qmigrate simulate --help')");
	}
	ops = pick(policy, plugin, &dl);
	if (qmig_sim_run(&o, ops, &r) < 0)
		die(EXIT_USAGE, "the simulation could not start: check --mem, --bandwidth");
	print_result(&r, ops->name, json, extra);
	json_object_put(extra);
	trace_free(&tr);
	qmig_policy_unload(dl);
	return r.converged ? EXIT_OK : EXIT_FAIL;
}

int cmd_simulate(int argc, char **argv)
{
	return sim_cmd(argc, argv, 0);
}

int cmd_replay(int argc, char **argv)
{
	return sim_cmd(argc, argv, 1);
}
