/* qmigrate bench: shared between the runner and the SVG writer. */
#ifndef QMIG_BENCH_H
#define QMIG_BENCH_H

#include <stdint.h>

#include "qmigrate.h"

#define BENCH_MAX_REPEATS 20
#define BENCH_MAX_CELLS 32
#define BENCH_STAT_MAX 64       /* runs of one cell in a summary */
#define BENCH_MAX_COLS 48
#define BENCH_MAX_ROWS 2048

struct bench_point {
	int64_t t_ms;
	uint64_t pass, remaining, dirty, bandwidth;
	int64_t throttle;
};

struct bench_run {
	struct bench_point *pts;
	int n, cap;
	struct qmig_result res;
	int order;                  /* its place in its round (1 = first) */
	/* The engine's own CPU time (this thread; QEMU runs in its own
	 * processes) and the wall time, from entering precopy to leaving it. */
	int64_t pc_t0, pc_t1, pc_cpu0, pc_cpu1;
	int64_t t_end;              /* the result record: the run is over */
};

struct bench_cell {
	char name[64];
	uint64_t mem, wss, dirty_rate, max_bandwidth;
	int multifd, postcopy, timeout_s;
	int sample_ms;              /* interval=MS: the monitor's sampling */
	int64_t downtime_limit;
	char policy[32];
	const char *plugin;         /* policy-plugin=FILE */
	char link[32];              /* "" unshaped, else a tc rate such as 1gbit */
	int linux_guest;            /* guest=linux */
	char tls[256];              /* tls=DIR: a certificate directory */
	const char *caps[16], *params[16];
	int ncaps, nparams;
	char *strs[32];
	int nstrs;
	struct bench_run runs[BENCH_MAX_REPEATS];
	int nruns;
	double median[3];           /* total ms, guest downtime ms, MiB sent */
	/* qemu=7.2|10.0|PATH (bench_qemu.c): the QEMU both sides run (NULL:
	 * the system's), its label, and the cell's other keys, by which cells
	 * that differ only in their QEMU are paired in the summary. */
	const char *qemu;
	char qemu_label[64];
	char others[512];
};

/* bench_qemu.c: qemu=VALUE of a cell; the comparison section of
 * summary.md (cells identical but for qemu=, each against the 7.2 one). */
void bench_qemu_cell(struct bench_cell *c, const char *value);
void bench_qemu_compare(const char *dir, const struct bench_cell *cells, int n);

/* A median with its 95% bootstrap interval; NAN when n is 0. */
struct bench_stat {
	double med, lo, hi;
	int n;
};

double bench_median(const double *v, int n);
void bench_stat(const double *v, int n, struct bench_stat *out);
/* median(v) / median(bv), with a bootstrap interval over both. */
void bench_ratio(const double *v, int n, const double *bv, int bn, struct bench_stat *out);
/* summary.md and box-COLUMN.svg for each overview column, from a CSV with
 * a header and at least the columns cell and status ("completed"). */
int bench_summarize(const char *csv, const char *dir, const char *baseline, const char *title,
		    const char *const *overview, int nover);

int bench_svg_box(const char *path, const char *metric, const char *const *cells, int n,
		  double v[][BENCH_STAT_MAX], const int *nv);
int bench_svg_progress(const char *path, const char *cell, const struct bench_run *r);
int bench_svg_compare(const char *path, const struct bench_cell *cells, int n);

#endif
