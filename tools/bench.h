/* qmigrate bench: shared between the runner and the SVG writer. */
#ifndef QMIG_BENCH_H
#define QMIG_BENCH_H

#include <stdint.h>

#include "qmigrate.h"

#define BENCH_MAX_REPEATS 20
#define BENCH_MAX_CELLS 32

struct bench_point {
	int64_t t_ms;
	uint64_t pass, remaining, dirty, bandwidth;
	int64_t throttle;
};

struct bench_run {
	struct bench_point *pts;
	int n, cap;
	struct qmig_result res;
};

struct bench_cell {
	char name[64];
	uint64_t mem, wss, dirty_rate, max_bandwidth;
	int multifd, postcopy, timeout_s;
	int64_t downtime_limit;
	char policy[32];
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
};

int bench_svg_progress(const char *path, const char *cell, const struct bench_run *r);
int bench_svg_compare(const char *path, const struct bench_cell *cells, int n);

#endif
