/* qmigrate bench: statistics and the summary, shared by `qmigrate bench
 * SCENARIO` and `qmigrate bench --summarize RUNS.CSV` (bench/peers.sh).
 *
 * Every figure is the median of the completed runs of a cell with a 95%
 * bootstrap interval (percentile method, 4000 resamples, a fixed seed so a
 * summary is reproducible from its CSV); every ratio is the ratio of two
 * medians measured in the same run, with its own bootstrap interval (both
 * cells resampled). A cell with no completed run, or a figure it does not
 * measure, is written "n/a (...)", never 0. A ratio is flagged "noisy"
 * when the cell's interval is wider than the difference it claims from the
 * baseline. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "cli.h"

#define RESAMPLES 4000

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

double bench_median(const double *v, int n)
{
	double s[BENCH_STAT_MAX];

	if (n <= 0)
		return NAN;
	memcpy(s, v, n * sizeof(*v));
	qsort(s, n, sizeof(s[0]), cmp_d);
	return n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
}

/* xorshift64*: a fixed, portable stream. */
static uint64_t rnd(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 2685821657736338717ull;
}

static double resampled_median(const double *v, int n, uint64_t *seed)
{
	double r[BENCH_STAT_MAX];

	for (int i = 0; i < n; i++)
		r[i] = v[rnd(seed) % (uint64_t)n];
	return bench_median(r, n);
}

static void percentiles(double *b, int n, double *lo, double *hi)
{
	qsort(b, n, sizeof(b[0]), cmp_d);
	*lo = b[(int)(0.025 * (n - 1))];
	*hi = b[(int)ceil(0.975 * (n - 1))];
}

void bench_stat(const double *v, int n, struct bench_stat *out)
{
	static double b[RESAMPLES];
	uint64_t seed = 0x9e3779b97f4a7c15ull;

	memset(out, 0, sizeof(*out));
	out->n = n;
	out->med = out->lo = out->hi = NAN;
	if (n <= 0)
		return;
	out->med = bench_median(v, n);
	for (int i = 0; i < RESAMPLES; i++)
		b[i] = resampled_median(v, n, &seed);
	percentiles(b, RESAMPLES, &out->lo, &out->hi);
}

void bench_ratio(const double *v, int n, const double *bv, int bn, struct bench_stat *out)
{
	static double b[RESAMPLES];
	uint64_t seed = 0x2545f4914f6cdd1dull;
	int k = 0;

	memset(out, 0, sizeof(*out));
	out->med = out->lo = out->hi = NAN;
	if (n <= 0 || bn <= 0 || bench_median(bv, bn) == 0)
		return;
	out->n = n;
	out->med = bench_median(v, n) / bench_median(bv, bn);
	for (int i = 0; i < RESAMPLES; i++) {
		double d = resampled_median(bv, bn, &seed), x = resampled_median(v, n, &seed);

		if (d != 0)
			b[k++] = x / d;
	}
	if (k)
		percentiles(b, k, &out->lo, &out->hi);
}

/* ---- the summary of a runs CSV ------------------------------------------ */

struct col {
	char name[48];
	int numeric;
};

struct table {
	struct col cols[BENCH_MAX_COLS];
	int ncols, nrows;
	char *cells[BENCH_MAX_ROWS][BENCH_MAX_COLS];
};

static int split(char *line, char **f, int max)
{
	int n = 0;

	line[strcspn(line, "\r\n")] = 0;
	for (char *p = line; n < max;) {
		f[n++] = p;
		p = strchr(p, ',');
		if (!p)
			break;
		*p++ = 0;
	}
	return n;
}

static int read_table(const char *path, struct table *t)
{
	FILE *f = fopen(path, "re");
	char line[4096], *fld[BENCH_MAX_COLS];
	int n;

	if (!f)
		return -errno;
	if (!fgets(line, sizeof(line), f)) {
		fclose(f);
		return -EINVAL;
	}
	n = split(line, fld, BENCH_MAX_COLS);
	for (int i = 0; i < n; i++)
		snprintf(t->cols[i].name, sizeof(t->cols[i].name), "%s", fld[i]);
	t->ncols = n;
	while (t->nrows < BENCH_MAX_ROWS && fgets(line, sizeof(line), f)) {
		int k = split(line, fld, BENCH_MAX_COLS);

		for (int i = 0; i < t->ncols; i++)
			t->cells[t->nrows][i] = strdup(i < k ? fld[i] : "");
		t->nrows++;
	}
	fclose(f);
	/* Numeric: every non-empty value parses as a number. */
	for (int c = 0; c < t->ncols; c++) {
		int any = 0, ok = 1;

		for (int r = 0; r < t->nrows; r++) {
			char *e;
			const char *s = t->cells[r][c];

			if (!*s)
				continue;
			any = 1;
			strtod(s, &e);
			if (*e)
				ok = 0;
		}
		t->cols[c].numeric = any && ok && strcmp(t->cols[c].name, "repeat") &&
				     strcmp(t->cols[c].name, "order");
	}
	return 0;
}

static int col_of(const struct table *t, const char *name)
{
	for (int i = 0; i < t->ncols; i++)
		if (!strcmp(t->cols[i].name, name))
			return i;
	return -1;
}

/* The values of column c for the completed runs of cell; *runs and *done
 * count the runs and the completed ones. */
static int values(const struct table *t, const char *cell, int c, double *v, int *runs,
		  int *done)
{
	int ccell = col_of(t, "cell"), cst = col_of(t, "status"), n = 0;

	*runs = *done = 0;
	for (int r = 0; r < t->nrows; r++) {
		if (strcmp(t->cells[r][ccell], cell))
			continue;
		(*runs)++;
		if (cst >= 0 && strcmp(t->cells[r][cst], "completed"))
			continue;
		(*done)++;
		if (c >= 0 && *t->cells[r][c] && n < BENCH_STAT_MAX)
			v[n++] = strtod(t->cells[r][c], NULL);
	}
	return n;
}

static void fmt_num(char *b, size_t len, double v)
{
	double a = fabs(v);

	if (a >= 1e15) {
		snprintf(b, len, "%.3g", v);
		return;
	}
	snprintf(b, len, a >= 100 ? "%.0f" : a >= 10 ? "%.1f" : a >= 1 ? "%.2f" : "%.3g", v);
}

static void fmt_stat(char *b, size_t len, const struct bench_stat *s)
{
	char m[24], l[24], h[24];

	fmt_num(m, sizeof(m), s->med);
	fmt_num(l, sizeof(l), s->lo);
	fmt_num(h, sizeof(h), s->hi);
	snprintf(b, len, "%s [%s-%s]", m, l, h);
}

/* One cell's figure and ratio, as table text. */
static void figure(const struct table *t, const char *cell, const char *base, int c, char *fig,
		   size_t flen, char *rat, size_t rlen)
{
	double v[BENCH_STAT_MAX], bv[BENCH_STAT_MAX];
	int runs, done, bruns, bdone;
	int n = values(t, cell, c, v, &runs, &done), bn = values(t, base, c, bv, &bruns, &bdone);
	struct bench_stat s, r;

	if (!done) {
		snprintf(fig, flen, "n/a (0/%d completed)", runs);
		snprintf(rat, rlen, "n/a");
		return;
	}
	if (!n) {
		snprintf(fig, flen, "n/a (not measured)");
		snprintf(rat, rlen, "n/a");
		return;
	}
	bench_stat(v, n, &s);
	fmt_stat(fig, flen, &s);
	if (!bn || !strcmp(cell, base)) {
		snprintf(rat, rlen, !strcmp(cell, base) ? "1.00" : "n/a (baseline: none)");
		return;
	}
	bench_ratio(v, n, bv, bn, &r);
	if (isnan(r.med)) {
		snprintf(rat, rlen, "n/a (baseline 0)");
		return;
	}
	{
		double bmed = bench_median(bv, bn);
		int noisy = s.hi - s.lo > fabs(s.med - bmed);

		snprintf(rat, rlen, "%.2f [%.2f-%.2f]%s", r.med, r.lo, r.hi, noisy ? " noisy" : "");
	}
}

static int cell_names(const struct table *t, char names[][64], int max)
{
	int cc = col_of(t, "cell"), n = 0;

	for (int r = 0; r < t->nrows; r++) {
		int seen = 0;

		for (int i = 0; i < n; i++)
			seen |= !strcmp(names[i], t->cells[r][cc]);
		if (!seen && n < max)
			snprintf(names[n++], 64, "%s", t->cells[r][cc]);
	}
	return n;
}

/* The values of a column per cell, for the box plots. */
static int box_data(const struct table *t, char names[][64], int nc, int c, double v[][BENCH_STAT_MAX],
		    int *nv)
{
	int runs, done;

	for (int i = 0; i < nc; i++)
		nv[i] = c < 0 ? 0 : values(t, names[i], c, v[i], &runs, &done);
	return 0;
}

int bench_summarize(const char *csv, const char *dir, const char *baseline, const char *title,
		    const char *const *overview, int nover)
{
	static struct table t;
	static char names[BENCH_MAX_CELLS][64];
	static double bv[BENCH_MAX_CELLS][BENCH_STAT_MAX];
	char path[700], fig[160], rat[96];
	int nc, base = 0, cver, nv[BENCH_MAX_CELLS];
	FILE *f;

	for (int r = 0; r < t.nrows; r++)
		for (int c = 0; c < t.ncols; c++)
			free(t.cells[r][c]);
	memset(&t, 0, sizeof(t));
	if (read_table(csv, &t) < 0 || col_of(&t, "cell") < 0)
		return -EINVAL;
	nc = cell_names(&t, names, BENCH_MAX_CELLS);
	/* Headline columns this CSV does not have, or has empty, are left out. */
	{
		static const char *have[BENCH_MAX_COLS];
		int k = 0;

		for (int i = 0; i < nover && k < BENCH_MAX_COLS; i++) {
			int c = col_of(&t, overview[i]);

			if (c >= 0 && t.cols[c].numeric)
				have[k++] = overview[i];
		}
		overview = have;
		nover = k;
	}
	for (int i = 0; baseline && i < nc; i++)
		if (!strcmp(names[i], baseline))
			base = i;
	cver = col_of(&t, "verified");
	snprintf(path, sizeof(path), "%s/summary.md", dir);
	f = fopen(path, "we");
	if (!f)
		return -errno;
	fprintf(f, "# %s\n\nMedians over the completed runs with [95%% bootstrap interval]; "
		   "ratios are to the baseline cell **%s**, measured in the same run, with their "
		   "own interval. \"noisy\": the cell's interval is wider than its difference from "
		   "the baseline. \"n/a (0/N completed)\": no run of that cell completed.\n\n",
		title, names[base]);
	/* The overview: the headline figures side by side. */
	fprintf(f, "| cell | completed |%s", cver >= 0 ? " verified |" : "");
	for (int k = 0; k < nover; k++)
		fprintf(f, " %s | ratio |", overview[k]);
	fprintf(f, "\n|---|---|%s", cver >= 0 ? "---|" : "");
	for (int k = 0; k < nover; k++)
		fprintf(f, "---|---|");
	fprintf(f, "\n");
	for (int i = 0; i < nc; i++) {
		double v[BENCH_STAT_MAX];
		int runs, done, ver = 0;

		values(&t, names[i], -1, v, &runs, &done);
		fprintf(f, "| %s | %d/%d |", names[i], done, runs);
		if (cver >= 0) {
			for (int r = 0; r < t.nrows; r++)
				ver += !strcmp(t.cells[r][col_of(&t, "cell")], names[i]) &&
				       !strcmp(t.cells[r][cver], "true");
			fprintf(f, " %d/%d |", ver, runs);
		}
		for (int k = 0; k < nover; k++) {
			figure(&t, names[i], names[base], col_of(&t, overview[k]), fig, sizeof(fig),
			       rat, sizeof(rat));
			fprintf(f, " %s | %s |", fig, rat);
		}
		fprintf(f, "\n");
	}
	/* Every numeric column, one table each. */
	fprintf(f, "\n## Every figure\n");
	for (int c = 0; c < t.ncols; c++) {
		if (!t.cols[c].numeric)
			continue;
		fprintf(f, "\n### %s\n\n| cell | median [95%% CI] | ratio to %s [95%% CI] |\n"
			   "|---|---|---|\n", t.cols[c].name, names[base]);
		for (int i = 0; i < nc; i++) {
			figure(&t, names[i], names[base], c, fig, sizeof(fig), rat, sizeof(rat));
			fprintf(f, "| %s | %s | %s |\n", names[i], fig, rat);
		}
	}
	fclose(f);
	/* Box plots of the headline figures. */
	for (int k = 0; k < nover; k++) {
		const char *cn[BENCH_MAX_CELLS];

		for (int i = 0; i < nc; i++)
			cn[i] = names[i];
		box_data(&t, names, nc, col_of(&t, overview[k]), bv, nv);
		snprintf(path, sizeof(path), "%s/box-%s.svg", dir, overview[k]);
		bench_svg_box(path, overview[k], cn, nc, bv, nv);
	}
	return 0;
}
