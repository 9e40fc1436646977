/* qmigrate preflight: before migrating, measure the guest's dirty rate
 * (calc-dirty-rate, page sampling: the mode safe under TCG) and run the
 * simulator over the strategies qmigrate has, to say whether plain precopy
 * converges under the downtime limit and what to use if not. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <json-c/json.h>

#include "cli.h"
#include "qmigrate.h"

static void usage(FILE *f)
{
	fprintf(f, "usage: qmigrate preflight --src-qmp SOCK --bandwidth RATE [--wss SIZE]\n"
		   "                         [--downtime-limit MS] [--measure SECS] [--json]\n\n"
		   "Measure the source guest's dirty rate (page sampling, --measure seconds,\n"
		   "default 2), then simulate precopy at --bandwidth (the link's rate, e.g.\n"
		   "1gbit) for each strategy: plain precopy, multifd (same dynamics, faster\n"
		   "link), the minimal throttle, postcopy, pause-to-finish. Prints the model's\n"
		   "verdict for plain precopy and the recommended strategy. --wss is the\n"
		   "guest's working set if known (default: all of its RAM, the worst case).\n"
		   "Exit 0 when plain precopy converges, 1 otherwise.\n");
}

struct strategy {
	const char *name, *flags;
	int throttle, postcopy;
	int64_t max_pause;
};

int cmd_preflight(int argc, char **argv)
{
	static const struct option lo[] = {
		{"src-qmp", 1, 0, 's'}, {"bandwidth", 1, 0, 'b'}, {"wss", 1, 0, 'w'},
		{"downtime-limit", 1, 0, 'l'}, {"measure", 1, 0, 'm'}, {"json", 0, 0, 'j'},
		{"help", 0, 0, 'h'}, {0, 0, 0, 0}};
	static const struct strategy strat[] = {
		{"plain", "", 0, 0, 0},
		{"throttle", "--policy predictive --auto-converge", 1, 0, 1},
		{"postcopy", "--postcopy", 0, 1, 0},
		{"pause-to-finish", "--policy predictive --max-pause 30000", 0, 0, 30000},
	};
	const char *src = NULL, *best = NULL, *best_flags = "";
	struct qmig_sim_opts o = QMIG_SIM_OPTS_INIT;
	struct qmig_qmp_conn *c;
	struct qmig_dirty_rate dr = {0};
	struct json_object *out = json_object_new_object(), *arr = json_object_new_array();
	int secs = 2, json = 0, ch, r, plain_ok = 0;
	int64_t best_down = -1;

	optind = 1;
	while ((ch = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		switch (ch) {
		case 's': src = optarg; break;
		case 'b': o.bandwidth = parse_rate("--bandwidth", optarg); break;
		case 'w': o.wss_bytes = parse_size("--wss", optarg); break;
		case 'l': o.downtime_limit_ms = parse_long("--downtime-limit", optarg, 1, 2000000); break;
		case 'm': secs = (int)parse_long("--measure", optarg, 1, 60); break;
		case 'j': json = 1; break;
		case 'h': usage(stdout); return EXIT_OK;
		default: usage(stderr); return EXIT_USAGE;
		}
	}
	if (!src || !o.bandwidth)
		die(EXIT_USAGE, "give --src-qmp and --bandwidth (see 'qmigrate preflight --help')");
	r = qmig_qmp_conn_open(&c, src, NULL);
	if (r < 0)
		die(EXIT_SETUP, "%s: %s", src, strerror(-r));
	if (qmig_cmd_query_memory_size(c, &o.mem_bytes) < 0 ||
	    qmig_cmd_calc_dirty_rate(c, secs, "page-sampling") < 0)
		die(EXIT_SETUP, "%s: %s", src, qmig_qmp_conn_error(c));
	for (int i = 0; i < (secs + 5) * 10; i++) {
		usleep(100000);
		if (qmig_cmd_query_dirty_rate(c, &dr) == 0 && !strcmp(dr.status, "measured"))
			break;
	}
	qmig_qmp_conn_close(c);
	if (strcmp(dr.status, "measured") || dr.dirty_rate_mib < 0)
		die(EXIT_FAIL, "the dirty rate could not be measured");
	o.dirty_rate = (uint64_t)dr.dirty_rate_mib << 20;
	o.max_time_ms = 600000;
	for (size_t i = 0; i < sizeof(strat) / sizeof(strat[0]); i++) {
		struct qmig_sim_result sr;
		struct json_object *j = json_object_new_object();

		o.policy = (struct qmig_policy_config)QMIG_POLICY_CONFIG_INIT;
		o.policy.throttle_allowed = strat[i].throttle;
		o.policy.postcopy_allowed = strat[i].postcopy;
		o.policy.max_pause_ms = strat[i].max_pause;
		qmig_sim_run(&o, qmig_policy_builtin(i ? "predictive" : "passive"), &sr);
		if (!i)
			plain_ok = sr.converged;
		json_object_object_add(j, "strategy", json_object_new_string(strat[i].name));
		json_object_object_add(j, "converged", json_object_new_boolean(sr.converged));
		json_object_object_add(j, "total_ms", json_object_new_int64(sr.total_ms));
		json_object_object_add(j, "downtime_ms", json_object_new_int64(sr.downtime_ms));
		json_object_object_add(j, "transferred_bytes",
				       json_object_new_int64((int64_t)sr.transferred_bytes));
		json_object_array_add(arr, j);
		if (!json)
			printf("%-16s %s in %.1f s, downtime %lld ms, %llu MiB sent\n", strat[i].name,
			       sr.converged ? "converges" : "does not converge", sr.total_ms / 1000.0,
			       (long long)sr.downtime_ms,
			       (unsigned long long)(sr.transferred_bytes >> 20));
		/* The first strategy, in this order of intrusiveness, that converges
		 * with the shortest pause wins. */
		if (sr.converged && (best_down < 0 || sr.downtime_ms * 2 < best_down) &&
		    (!best || strcmp(best, "plain"))) {
			best = strat[i].name;
			best_flags = strat[i].flags;
			best_down = sr.downtime_ms;
		}
	}
	if (json) {
		json_object_object_add(out, "dirty_rate", json_object_new_int64((int64_t)o.dirty_rate));
		json_object_object_add(out, "mem_bytes", json_object_new_int64((int64_t)o.mem_bytes));
		json_object_object_add(out, "verdict", json_object_new_string(
			plain_ok ? "converging" : "cannot-converge"));
		json_object_object_add(out, "strategies", arr);
		json_object_object_add(out, "recommended",
				       best ? json_object_new_string(best) : NULL);
		puts(json_object_to_json_string_ext(out, JSON_C_TO_STRING_PLAIN));
	} else {
		json_object_put(arr);
		printf("dirty rate %lld MiB/s (page sampling, %d s), RAM %llu MiB, link %llu MiB/s\n"
		       "verdict: plain precopy %s under the downtime limit\n"
		       "recommended: %s%s%s\n",
		       (long long)dr.dirty_rate_mib, secs, (unsigned long long)(o.mem_bytes >> 20),
		       (unsigned long long)(o.bandwidth >> 20),
		       plain_ok ? "converges" : "cannot converge", best ? best : "none (abort)",
		       *best_flags ? ": qmigrate migrate " : "", best_flags);
	}
	json_object_put(out);
	return plain_ok ? EXIT_OK : EXIT_FAIL;
}
