/* qmigrate bench: the qemu= cell key (which QEMU both sides run) and the
 * summary's comparison of cells that differ only in it: each figure's
 * median on the other QEMU over its median on 7.2 (the system's QEMU when
 * a cell names none), with a bootstrap interval, from runs of the same
 * interleaved rounds. */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"
#include "cli.h"

extern char **environ;

#define SYSTEM_QEMU "qemu-system-x86_64"

/* A line ARGV prints on stdout (stderr discarded): the first, or the last
 * when last is set; "" when it cannot be run or fails. Never a shell. */
static void run_line(char *const argv[], char *out, size_t len, int last)
{
	posix_spawn_file_actions_t fa;
	int p[2], st = 0, got = 0;
	pid_t pid;
	FILE *f;

	*out = 0;
	if (pipe(p) < 0)
		return;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, p[1], 1);
	posix_spawn_file_actions_addclose(&fa, p[0]);
	posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
	if (posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ) != 0) {
		posix_spawn_file_actions_destroy(&fa);
		close(p[0]);
		close(p[1]);
		return;
	}
	posix_spawn_file_actions_destroy(&fa);
	close(p[1]);
	f = fdopen(p[0], "r");
	if (f) {
		char line[1024];

		while (fgets(line, sizeof(line), f))
			if (last || !got++) {
				size_t l = strnlen(line, len - 1);

				memcpy(out, line, l);
				out[l] = 0;
			}
		fclose(f);
	} else {
		close(p[0]);
	}
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	if (!WIFEXITED(st) || WEXITSTATUS(st))
		*out = 0;
	out[strcspn(out, "\n")] = 0;
}

/* "7.2" from a QEMU binary's -version, "" if it cannot be run. */
static void version_of(const char *bin, char *out, size_t len)
{
	char *const argv[] = {(char *)bin, "-version", NULL};
	char line[256];
	const char *v;
	unsigned a, b;

	*out = 0;
	run_line(argv, line, sizeof(line), 0);
	v = strstr(line, "version ");
	if (v && sscanf(v + 8, "%u.%u", &a, &b) == 2)
		snprintf(out, len, "%u.%u", a, b);
}

void bench_qemu_cell(struct bench_cell *c, const char *value)
{
	static char q10[512];
	char v[32];

	if (!strcmp(value, "10.0")) {
		if (!q10[0]) {
			char *const argv[] = {"sh", "tools/qemu-cache.sh", "10.0", NULL};

			run_line(argv, q10, sizeof(q10), 1); /* the wrapper, printed last */
			if (!q10[0] || access(q10, X_OK) < 0)
				die(EXIT_SETUP, "cell %s: qemu=10.0: tools/qemu-cache.sh 10.0 could not "
						"fetch QEMU 10.0 (run it from the source tree)", c->name);
		}
		c->qemu = q10;
		snprintf(c->qemu_label, sizeof(c->qemu_label), "10.0");
		return;
	}
	c->qemu = !strcmp(value, "7.2") ? SYSTEM_QEMU : value;
	version_of(c->qemu, v, sizeof(v));
	if (!v[0])
		die(EXIT_SETUP, "cell %s: qemu=%s: cannot run '%s -version'", c->name, value, c->qemu);
	if (!strcmp(value, "7.2") && strcmp(v, "7.2"))
		die(EXIT_SETUP, "cell %s: qemu=7.2: the system's %s is QEMU %s", c->name, SYSTEM_QEMU,
		    v);
	snprintf(c->qemu_label, sizeof(c->qemu_label), "%s", v);
}

/* One figure of one cell's completed runs. */
static int figure(const struct bench_cell *c, int which, double *v)
{
	int n = 0;

	for (int k = 0; k < c->nruns; k++) {
		const struct qmig_result *r = &c->runs[k].res;

		if (strcmp(r->status, "completed"))
			continue;
		if (which == 0)
			v[n++] = (double)r->engine_total_ms;
		else if (which == 1 && r->guest_downtime_ms >= 0)
			v[n++] = (double)r->guest_downtime_ms;
		else if (which == 2)
			v[n++] = r->transferred_bytes / 1048576.0;
		else if (which == 3)
			v[n++] = (double)r->downtime_ms;
	}
	return n;
}

static void cell_fmt(char *buf, size_t len, const struct bench_stat *s, int runs)
{
	if (!s->n || isnan(s->med))
		snprintf(buf, len, "n/a (0/%d completed)", runs);
	else
		snprintf(buf, len, "%.4g [%.4g-%.4g] (%d/%d)", s->med, s->lo, s->hi, s->n, runs);
}

void bench_qemu_compare(const char *dir, const struct bench_cell *cells, int n)
{
	static const char *const fig[] = {"engine total ms", "guest downtime ms", "MiB sent",
					  "QEMU downtime ms"};
	char path[700], sys[32] = "", a[96], b[96], rt[96];
	const char *label[BENCH_MAX_CELLS];
	int pairs = 0;
	FILE *f;

	snprintf(path, sizeof(path), "%.600s/summary.md", dir);
	for (int i = 0; i < n; i++) {
		label[i] = cells[i].qemu_label;
		if (!label[i][0]) { /* no qemu=: the system's */
			if (!sys[0])
				version_of(SYSTEM_QEMU, sys, sizeof(sys));
			label[i] = sys[0] ? sys : "system";
		}
	}
	/* Each cell on 7.2 (the reference) against its twins on other QEMUs. */
	for (int i = 0; i < n; i++)
		for (int j = 0; j < n; j++) {
			double v[BENCH_MAX_REPEATS], bv[BENCH_MAX_REPEATS];
			struct bench_stat sa, sb, r;

			if (i == j || strcmp(cells[i].others, cells[j].others) ||
			    !strcmp(label[i], label[j]) || strcmp(label[i], "7.2"))
				continue;
			f = fopen(path, "ae");
			if (!f)
				return;
			if (!pairs++)
				fprintf(f, "\n## QEMU versions compared\n\n"
					   "Cells identical but for qemu=, run in the same interleaved "
					   "rounds: medians [95%% interval] (completed/runs) and the ratio "
					   "of the other QEMU's median over 7.2's, with its interval.\n\n"
					   "| cells | figure | 7.2 | other | other / 7.2 |\n"
					   "|---|---|---|---|---|\n");
			for (int k = 0; k < 4; k++) {
				int bn = figure(&cells[i], k, bv), an = figure(&cells[j], k, v);

				bench_stat(bv, bn, &sb);
				bench_stat(v, an, &sa);
				cell_fmt(a, sizeof(a), &sb, cells[i].nruns);
				cell_fmt(b, sizeof(b), &sa, cells[j].nruns);
				if (an && bn) {
					bench_ratio(v, an, bv, bn, &r);
					snprintf(rt, sizeof(rt), "%.3g [%.3g-%.3g]", r.med, r.lo, r.hi);
				} else {
					snprintf(rt, sizeof(rt), "n/a");
				}
				fprintf(f, "| %s (7.2) vs %s (%s) | %s | %s | %s | %s |\n", cells[i].name,
					cells[j].name, label[j], fig[k], a, b, rt);
			}
			fclose(f);
		}
}
