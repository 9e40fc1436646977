/* qmigrate bench SCENARIO: a matrix of launch-mode migrations of the tiny
 * guest, each cell repeated, on loopback or over a tc-shaped veth link
 * between two network namespaces the bench makes and removes. Results:
 * results.jsonl, results.csv, summary.md (medians, spread, ratios to a
 * baseline cell measured in the same run) and SVG plots. */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <json-c/json.h>

#include "bench.h"
#include "cli.h"
#include "netns.h"

static void usage(FILE *f)
{
	fprintf(f, "usage: qmigrate bench SCENARIO-FILE [--out DIR] [--repeats N] [--baseline CELL]\n"
		   "       qmigrate bench --summarize RUNS.CSV [--out DIR] [--baseline CELL]\n\n"
		   "Run a matrix of migrations of the tiny test guest (launch mode, TCG) and\n"
		   "write results.jsonl, results.csv, summary.md and SVG plots to DIR\n"
		   "(default bench/results/<date-time>). A scenario line is a cell:\n"
		   "  NAME [mem=SIZE] [wss=SIZE] [dirty-rate=RATE] [max-bandwidth=RATE]\n"
		   "       [multifd=N] [downtime-limit=MS] [policy=NAME] [postcopy=1]\n"
		   "       [cap=NAME]... [param=NAME=VALUE]... [link=RATE] [timeout=SECS]\n"
		   "       [guest=tiny|linux] [tls=DIR] [interval=MS] [policy-plugin=FILE]\n"
		   "       [qemu=7.2|10.0|PATH]\n"
		   "and 'repeats=N', 'baseline=NAME' set the run; '#' starts a comment.\n"
		   "Cells are interleaved: each round runs every cell once, in a fresh random\n"
		   "order. Repeats: --repeats, else $BENCH_REPEATS, else the file's, else 5.\n"
		   "summary.md gives medians with 95%% bootstrap intervals, ratios to the\n"
		   "baseline with their own intervals, 'n/a (0/N completed)' for a cell with\n"
		   "no completed run; cpu_ms_per_precopy_s is the engine's CPU time per second\n"
		   "of precopy. --summarize writes summary.md and box plots for any runs CSV\n"
		   "with 'cell' and 'status' columns (bench/peers.sh uses it).\n"
		   "link=1gbit shapes a veth link between two network namespaces with tc\n"
		   "tbf (needs root); guest=linux needs 'make linux-guest'; tls=DIR migrates\n"
		   "over TLS with certificates from qmigrate tls init. qemu=10.0 runs QEMU 10.0\n"
		   "(tools/qemu-cache.sh fetches it), qemu=7.2 the system's (the default); cells\n"
		   "that differ only in qemu= are compared in summary.md (10.0 over 7.2).\n"
		   "The baseline (default: the first cell) is the\n"
		   "reference for the ratios; 'qemu-defaults' cells should set\n"
		   "max-bandwidth=134217728, QEMU 7.2's own default.\n");
}

static char *keep(struct bench_cell *c, const char *s)
{
	if (c->nstrs == 32)
		die(EXIT_USAGE, "scenario: too many words in cell %s", c->name);
	return c->strs[c->nstrs++] = strdup(s);
}

static void parse_cell(struct bench_cell *c, char *line)
{
	char *save = NULL, *w = strtok_r(line, " \t", &save);

	snprintf(c->name, sizeof(c->name), "%s", w);
	c->mem = 256ull << 20;
	while ((w = strtok_r(NULL, " \t", &save))) {
		char *eq = strchr(w, '=');

		if (!eq)
			die(EXIT_USAGE, "scenario: '%s' in cell %s is not KEY=VALUE", w, c->name);
		if (strncmp(w, "qemu=", 5)) /* what pairs a cell with its twin on another QEMU */
			snprintf(c->others + strlen(c->others), sizeof(c->others) - strlen(c->others),
				 " %s", w);
		*eq++ = 0;
		if (!strcmp(w, "qemu")) bench_qemu_cell(c, eq);
		else if (!strcmp(w, "mem")) c->mem = parse_size("mem", eq);
		else if (!strcmp(w, "wss")) c->wss = parse_size("wss", eq);
		else if (!strcmp(w, "dirty-rate")) c->dirty_rate = parse_rate("dirty-rate", eq);
		else if (!strcmp(w, "max-bandwidth")) c->max_bandwidth = parse_rate("max-bandwidth", eq);
		else if (!strcmp(w, "multifd")) c->multifd = (int)parse_long("multifd", eq, 1, 64);
		else if (!strcmp(w, "downtime-limit")) c->downtime_limit = parse_long("downtime-limit", eq, 1, 100000);
		else if (!strcmp(w, "postcopy")) c->postcopy = (int)parse_long("postcopy", eq, 0, 1);
		else if (!strcmp(w, "interval")) c->sample_ms = (int)parse_long("interval", eq, 10, 60000);
		else if (!strcmp(w, "timeout")) c->timeout_s = (int)parse_long("timeout", eq, 1, 3600);
		else if (!strcmp(w, "policy")) snprintf(c->policy, sizeof(c->policy), "%s", eq);
		else if (!strcmp(w, "policy-plugin")) c->plugin = keep(c, eq);
		else if (!strcmp(w, "link")) snprintf(c->link, sizeof(c->link), "%s", strcmp(eq, "unshaped") ? eq : "");
		else if (!strcmp(w, "tls")) snprintf(c->tls, sizeof(c->tls), "%s", eq);
		else if (!strcmp(w, "guest")) {
			if (strcmp(eq, "tiny") && strcmp(eq, "linux"))
				die(EXIT_USAGE, "scenario: guest=%s is not tiny or linux", eq);
			c->linux_guest = !strcmp(eq, "linux");
		}
		else if (!strcmp(w, "cap") && c->ncaps < 15) c->caps[c->ncaps++] = keep(c, eq);
		else if (!strcmp(w, "param") && c->nparams < 15) c->params[c->nparams++] = keep(c, eq);
		else die(EXIT_USAGE, "scenario: unknown key '%s' in cell %s", w, c->name);
	}
}

static int parse_file(const char *path, struct bench_cell *cells, int *repeats, char *baseline,
		      size_t blen)
{
	FILE *f = fopen(path, "re");
	char line[1024];
	int n = 0;

	if (!f)
		die(EXIT_USAGE, "%s: %s", path, strerror(errno));
	while (fgets(line, sizeof(line), f)) {
		char *p = line;

		line[strcspn(line, "#\r\n")] = 0;
		while (*p == ' ' || *p == '\t')
			p++;
		if (!*p)
			continue;
		if (!strncmp(p, "repeats=", 8))
			*repeats = (int)parse_long("repeats", p + 8, 1, BENCH_MAX_REPEATS);
		else if (!strncmp(p, "baseline=", 9))
			snprintf(baseline, blen, "%s", p + 9);
		else if (n == BENCH_MAX_CELLS)
			die(EXIT_USAGE, "%s: more than %d cells", path, BENCH_MAX_CELLS);
		else
			parse_cell(&cells[n++], p);
	}
	fclose(f);
	if (!n)
		die(EXIT_USAGE, "%s: no cells", path);
	return n;
}

/* ---- one run ---- */

static int64_t clock_ns(clockid_t c)
{
	struct timespec ts;

	clock_gettime(c, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void collect(const struct qmig_migration_event *ev, void *ud)
{
	struct bench_run *r = ud;
	struct bench_point *p;

	if (!strcmp(ev->type, "result")) {
		r->t_end = clock_ns(CLOCK_MONOTONIC);
		return;
	}
	if (!strcmp(ev->type, "phase")) {
		if (ev->phase == QMIG_PHASE_PRECOPY && !r->pc_t0) {
			r->pc_t0 = clock_ns(CLOCK_MONOTONIC);
			r->pc_cpu0 = clock_ns(CLOCK_THREAD_CPUTIME_ID);
		} else if (ev->phase != QMIG_PHASE_PRECOPY && r->pc_t0 && !r->pc_t1) {
			r->pc_t1 = clock_ns(CLOCK_MONOTONIC);
			r->pc_cpu1 = clock_ns(CLOCK_THREAD_CPUTIME_ID);
		}
		return;
	}
	if (strcmp(ev->type, "sample") || !ev->sample || !strcmp(ev->sample->status, "setup"))
		return;
	if (r->n == r->cap) {
		int cap = r->cap ? r->cap * 2 : 256;
		struct bench_point *np = realloc(r->pts, cap * sizeof(*np));

		if (!np)
			return;
		r->pts = np;
		r->cap = cap;
	}
	p = &r->pts[r->n++];
	*p = (struct bench_point){ev->sample->t_ms, ev->sample->pass, ev->sample->remaining,
				  ev->sample->dirty_rate, ev->sample->bandwidth,
				  ev->sample->throttle_pct};
}

static void run_one(struct bench_cell *c, struct bench_run *r, struct netns_link *l)
{
	struct qmig_migrate_opts o = QMIG_MIGRATE_OPTS_INIT;
	struct qmig_migration *m;

	o.guest.guest = c->linux_guest ? QMIG_GUEST_LINUX : QMIG_GUEST_TINY;
	o.tls_dir = c->tls[0] ? c->tls : NULL;
	o.guest.accel = "tcg";
	o.guest.qemu_binary = c->qemu;
	o.guest.mem_bytes = c->mem;
	o.guest.wss_bytes = c->wss;
	o.guest.dirty_rate = c->dirty_rate;
	o.max_bandwidth = c->max_bandwidth;
	o.multifd_channels = c->multifd;
	o.downtime_limit_ms = c->downtime_limit;
	o.postcopy = c->postcopy;
	o.policy = c->policy[0] ? c->policy : NULL;
	o.policy_plugin = c->plugin;
	o.caps = c->caps;
	o.params = c->params;
	o.timeout_ms = (c->timeout_s ? c->timeout_s : 120) * 1000;
	o.sample_ms = c->sample_ms;
	if (l->up) {
		o.src_netns = l->a;
		o.dst_netns = l->b;
		o.dst_addr = l->addr_b;
	}
	o.on_event = (struct qmig_migration_event_cb){collect, r, NULL};
	if (qmig_migration_new(&m, &o) < 0) {
		snprintf(r->res.status, sizeof(r->res.status), "failed");
		return;
	}
	qmig_migration_run(m);
	qmig_migration_result(m, &r->res);
	qmig_migration_free(m);
}

/* ---- outputs ---- */

static void write_results(const char *dir, struct bench_cell *cells, int n)
{
	char path[600];
	FILE *j, *c;

	snprintf(path, sizeof(path), "%s/results.jsonl", dir);
	j = fopen(path, "we");
	snprintf(path, sizeof(path), "%s/results.csv", dir);
	c = fopen(path, "we");
	if (!j || !c)
		die(EXIT_FAIL, "%s: cannot write results", dir);
	fprintf(c, "cell,repeat,order,status,verified,total_ms,setup_ms,downtime_ms,engine_total_ms,"
		   "guest_downtime_ms,switchover_ms,transferred_bytes,mib_sent,bytes_vs_mem,passes,"
		   "throttle_pct_max,engine_cpu_ms,guest_slowdown,precopy_ms,precopy_cpu_ms,"
		   "cpu_ms_per_precopy_s,migrate_to_end_ms\n");
	for (int i = 0; i < n; i++)
		for (int k = 0; k < cells[i].nruns; k++) {
			const struct bench_run *run = &cells[i].runs[k];
			const struct qmig_result *r = &run->res;
			struct json_object *o = qmig_result_to_json(r);
			double bvm = (double)r->transferred_bytes / (double)cells[i].mem;
			char gd[32] = "", sw[32] = "", sl[32] = "", pc[96] = ",,", te[32] = "";

			json_object_object_add(o, "cell", json_object_new_string(cells[i].name));
			json_object_object_add(o, "repeat", json_object_new_int(k + 1));
			json_object_object_add(o, "order", json_object_new_int(run->order));
			json_object_object_add(o, "mem_bytes", json_object_new_int64((int64_t)cells[i].mem));
			json_object_object_add(o, "qemu", json_object_new_string(cells[i].qemu_label));
			json_object_object_add(o, "bytes_vs_mem", json_object_new_double(bvm));
			if (run->pc_t1 > run->pc_t0 && run->pc_t0) {
				double ms = (run->pc_t1 - run->pc_t0) / 1e6;
				double cpu = (run->pc_cpu1 - run->pc_cpu0) / 1e6;

				json_object_object_add(o, "precopy_ms", json_object_new_double(ms));
				json_object_object_add(o, "precopy_cpu_ms", json_object_new_double(cpu));
				/* Under 100 ms of precopy a per-second rate says nothing. */
				if (ms >= 100)
					snprintf(pc, sizeof(pc), "%.1f,%.3f,%.3f", ms, cpu, cpu / (ms / 1000));
				else
					snprintf(pc, sizeof(pc), "%.1f,%.3f,", ms, cpu);
			}
			fprintf(j, "%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
								  JSON_C_TO_STRING_NOSLASHESCAPE));
			json_object_put(o);
			/* From entering precopy to the end, completed or not: for a
			 * run that gave up, the time it took to give up. */
			if (run->pc_t0 && run->t_end > run->pc_t0)
				snprintf(te, sizeof(te), "%.0f", (run->t_end - run->pc_t0) / 1e6);
			/* Unknowns (-1) stay empty: never a figure. */
			if (r->guest_downtime_ms >= 0)
				snprintf(gd, sizeof(gd), "%lld", (long long)r->guest_downtime_ms);
			if (r->switchover_ms >= 0)
				snprintf(sw, sizeof(sw), "%lld", (long long)r->switchover_ms);
			if (r->guest_slowdown >= 0)
				snprintf(sl, sizeof(sl), "%.3f", r->guest_slowdown);
			fprintf(c, "%s,%d,%d,%s,%s,%llu,%llu,%llu,%llu,%s,%s,%llu,%.2f,%.3f,%llu,%lld,"
				   "%.1f,%s,%s,%s\n",
				cells[i].name, k + 1, run->order, r->status,
				r->verified == 1 ? "true" : r->verified == 0 ? "false" : "",
				(unsigned long long)r->total_ms, (unsigned long long)r->setup_ms,
				(unsigned long long)r->downtime_ms,
				(unsigned long long)r->engine_total_ms, gd, sw,
				(unsigned long long)r->transferred_bytes,
				r->transferred_bytes / 1048576.0, bvm, (unsigned long long)r->passes,
				(long long)r->throttle_pct_max, r->engine_cpu_ms, sl, pc, te);
		}
	fclose(j);
	fclose(c);
}

/* The medians the comparison plot shows (NAN: no completed run). */
static void cell_medians(struct bench_cell *c)
{
	double v[3][BENCH_MAX_REPEATS];
	int n = 0;

	for (int k = 0; k < c->nruns; k++) {
		const struct qmig_result *r = &c->runs[k].res;

		if (strcmp(r->status, "completed"))
			continue;
		v[0][n] = (double)r->engine_total_ms;
		v[1][n] = (double)r->guest_downtime_ms;
		v[2][n] = r->transferred_bytes / 1048576.0;
		n++;
	}
	for (int m = 0; m < 3; m++)
		c->median[m] = bench_median(v[m], n);
}

int cmd_bench(int argc, char **argv)
{
	static const struct option lo[] = {{"out", 1, 0, 'o'}, {"repeats", 1, 0, 'r'},
					   {"baseline", 1, 0, 'b'}, {"summarize", 1, 0, 's'},
					   {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
	static const char *const overview[] = {"engine_total_ms", "guest_downtime_ms", "mib_sent",
					       "downtime_ms", "passes"};
	static const char *const peer_overview[] = {"wall_ms", "overhead_ms", "before_ms",
						    "after_ms", "guest_downtime_ms", "guest_max_gap_ms", "cmd_cpu_ms",
						    "ping_max_gap_ms", "ping_lost",
						    "tcp_max_unacked_ms"};
	static struct bench_cell cells[BENCH_MAX_CELLS];
	char dir[512] = "", baseline[64] = "", path[700] = "", summarize[512] = "", cur[32] = "";
	int repeats = 5, force_rep = 0, n, base = 0, c, order[BENCH_MAX_CELLS];
	const char *env = getenv("BENCH_REPEATS");
	struct netns_link l = {0};
	char prefix[32], why[256] = "";
	time_t now = time(NULL);

	optind = 1;
	while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		switch (c) {
		case 'o': snprintf(dir, sizeof(dir), "%s", optarg); break;
		case 'r': force_rep = (int)parse_long("--repeats", optarg, 1, BENCH_MAX_REPEATS); break;
		case 'b': snprintf(baseline, sizeof(baseline), "%s", optarg); break;
		case 's': snprintf(summarize, sizeof(summarize), "%s", optarg); break;
		case 'h': usage(stdout); return EXIT_OK;
		default: usage(stderr); return EXIT_USAGE;
		}
	}
	if (summarize[0]) {
		if (optind != argc)
			die(EXIT_USAGE, "--summarize takes no scenario file");
		if (!dir[0]) {
			char *slash;

			snprintf(dir, sizeof(dir), "%s", summarize);
			slash = strrchr(dir, '/');
			if (slash)
				*slash = 0;
			else
				strcpy(dir, ".");
		}
		if (bench_summarize(summarize, dir, baseline[0] ? baseline : NULL,
				    "qmigrate bench: peers side by side", peer_overview,
				    sizeof(peer_overview) / sizeof(peer_overview[0])) < 0)
			die(EXIT_FAIL, "%s: not a runs CSV with 'cell' and 'status' columns",
			    summarize);
		printf("%s\n", dir);
		return EXIT_OK;
	}
	if (optind != argc - 1)
		die(EXIT_USAGE, "give one SCENARIO-FILE (see 'qmigrate bench --help')");
	n = parse_file(argv[optind], cells, &repeats, path, sizeof(path));
	if (!baseline[0]) /* --baseline wins over the file's baseline= */
		snprintf(baseline, sizeof(baseline), "%s", path);
	if (env && *env && !force_rep)
		force_rep = (int)parse_long("BENCH_REPEATS", env, 1, BENCH_MAX_REPEATS);
	if (force_rep)
		repeats = force_rep;
	for (int i = 0; baseline[0] && i < n; i++)
		if (!strcmp(cells[i].name, baseline))
			base = i;
	if (!dir[0])
		strftime(dir, sizeof(dir), "bench/results/%Y%m%d-%H%M%S", localtime(&now));
	mkdir("bench/results", 0755);
	if (mkdir(dir, 0755) < 0 && errno != EEXIST)
		die(EXIT_SETUP, "%s: %s", dir, strerror(errno));
	srand((unsigned)(now ^ getpid()));
	/* Interleaved: every round runs each cell once, in a fresh random
	 * order, so drift in the machine's load spreads over all cells. */
	for (int k = 0; k < repeats; k++) {
		for (int i = 0; i < n; i++)
			order[i] = i;
		for (int i = n - 1; i > 0; i--) {
			int j = rand() % (i + 1), t = order[i];

			order[i] = order[j];
			order[j] = t;
		}
		for (int o = 0; o < n; o++) {
			struct bench_cell *cell = &cells[order[o]];
			struct bench_run *run = &cell->runs[k];

			snprintf(prefix, sizeof(prefix), "qmb%d", (int)getpid());
			if (cell->link[0] && !l.up && netns_up(&l, prefix, why, sizeof(why)) < 0)
				die(EXIT_SETUP, "cell %s: cannot make a %s link: %s", cell->name,
				    cell->link, *why ? why : "namespace exists");
			if (cell->link[0] && strcmp(cur, cell->link)) {
				if (netns_shape(&l, cell->link, NULL) < 0) {
					netns_down(&l);
					die(EXIT_SETUP, "cell %s: cannot shape the link to %s",
					    cell->name, cell->link);
				}
				snprintf(cur, sizeof(cur), "%s", cell->link);
			}
			run->order = o + 1;
			run_one(cell, run, cell->link[0] ? &l : &(struct netns_link){0});
			cell->nruns++;
			fprintf(stderr, "bench: round %d/%d: %s: %s, %llu ms, guest downtime %lld ms\n",
				k + 1, repeats, cell->name, run->res.status,
				(unsigned long long)run->res.engine_total_ms,
				(long long)run->res.guest_downtime_ms);
		}
	}
	netns_down(&l);
	for (int i = 0; i < n; i++) {
		snprintf(path, sizeof(path), "%.500s/progress-%.63s.svg", dir, cells[i].name);
		bench_svg_progress(path, cells[i].name, &cells[i].runs[0]);
		cell_medians(&cells[i]);
	}
	write_results(dir, cells, n);
	snprintf(path, sizeof(path), "%s/results.csv", dir);
	if (bench_summarize(path, dir, cells[base].name, "qmigrate bench summary", overview,
			    sizeof(overview) / sizeof(overview[0])) < 0)
		die(EXIT_FAIL, "%s: cannot write the summary", dir);
	bench_qemu_compare(dir, cells, n);
	snprintf(path, sizeof(path), "%s/compare.svg", dir);
	bench_svg_compare(path, cells, n);
	printf("%s\n", dir);
	for (int i = 0; i < n; i++)
		for (int k = 0; k < cells[i].nruns; k++)
			free(cells[i].runs[k].pts);
	return EXIT_OK;
}
