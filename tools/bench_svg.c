/* SVG plots for qmigrate bench, written by hand: progress over time for
 * one run (remaining, dirty rate, throughput, throttle, pass markers) and
 * bar charts comparing cells. Plain SVG 1.1, viewable in any browser. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

#define W 760
#define H 380
#define L 70
#define R 70
#define T 40
#define B 50

static double nice_max(double v)
{
	double step = 1;

	if (v <= 0)
		return 1;
	while (step * 10 < v)
		step *= 10;
	for (int m = 1; m <= 10; m++)
		if (step * m >= v)
			return step * m;
	return step * 10;
}

static void axes(FILE *f, const char *title, const char *xl, const char *yl, double xmax,
		 double ymax, const char *y2l, double y2max)
{
	fprintf(f, "<text x='%d' y='22' font-size='15' font-weight='bold'>%s</text>\n", L, title);
	fprintf(f, "<line x1='%d' y1='%d' x2='%d' y2='%d' stroke='#333'/>\n", L, H - B, W - R, H - B);
	fprintf(f, "<line x1='%d' y1='%d' x2='%d' y2='%d' stroke='#333'/>\n", L, T, L, H - B);
	for (int i = 0; i <= 5; i++) {
		double x = L + (W - L - R) * i / 5.0, y = H - B - (H - T - B) * i / 5.0;

		fprintf(f, "<text x='%.0f' y='%d' font-size='11' text-anchor='middle'>%.3g</text>\n",
			x, H - B + 16, xmax * i / 5);
		fprintf(f, "<text x='%d' y='%.0f' font-size='11' text-anchor='end'>%.3g</text>\n",
			L - 6, y + 4, ymax * i / 5);
		fprintf(f, "<line x1='%d' y1='%.0f' x2='%d' y2='%.0f' stroke='#eee'/>\n", L, y,
			W - R, y);
		if (y2l)
			fprintf(f, "<text x='%d' y='%.0f' font-size='11'>%.3g</text>\n", W - R + 6,
				y + 4, y2max * i / 5);
	}
	fprintf(f, "<text x='%d' y='%d' font-size='12' text-anchor='middle'>%s</text>\n",
		(L + W - R) / 2, H - B + 32, xl);
	fprintf(f, "<text x='16' y='%d' font-size='12' transform='rotate(-90 16 %d)' "
		   "text-anchor='middle'>%s</text>\n", (T + H - B) / 2, (T + H - B) / 2, yl);
	if (y2l)
		fprintf(f, "<text x='%d' y='%d' font-size='12' transform='rotate(90 %d %d)' "
			   "text-anchor='middle'>%s</text>\n", W - 12, (T + H - B) / 2, W - 12,
			(T + H - B) / 2, y2l);
}

static void series(FILE *f, const struct bench_run *r, int which, double xmax, double ymax,
		   const char *color, int dashed)
{
	fprintf(f, "<polyline fill='none' stroke='%s' stroke-width='1.8'%s points='", color,
		dashed ? " stroke-dasharray='5,3'" : "");
	for (int i = 0; i < r->n; i++) {
		const struct bench_point *p = &r->pts[i];
		double v = which == 0 ? p->remaining / 1048576.0
			   : which == 1 ? p->dirty / 1048576.0
			   : which == 2 ? p->bandwidth / 1048576.0
					: (double)p->throttle;
		double x = L + (W - L - R) * (p->t_ms / 1000.0) / xmax;
		double y = H - B - (H - T - B) * v / ymax;

		fprintf(f, "%.1f,%.1f ", x, y);
	}
	fprintf(f, "'/>\n");
}

int bench_svg_progress(const char *path, const char *cell, const struct bench_run *r)
{
	FILE *f = fopen(path, "we");
	double xmax = 1, ymax = 1;
	static const char *const names[] = {"remaining (MiB)", "dirty rate (MiB/s)",
					    "throughput (MiB/s)", "CPU throttle (%, right)"};
	static const char *const colors[] = {"#1f77b4", "#d62728", "#2ca02c", "#9467bd"};
	char title[200];

	if (!f)
		return -1;
	for (int i = 0; i < r->n; i++) {
		const struct bench_point *p = &r->pts[i];

		if (p->t_ms / 1000.0 > xmax)
			xmax = p->t_ms / 1000.0;
		if (p->remaining / 1048576.0 > ymax)
			ymax = p->remaining / 1048576.0;
		if (p->dirty / 1048576.0 > ymax)
			ymax = p->dirty / 1048576.0;
		if (p->bandwidth / 1048576.0 > ymax)
			ymax = p->bandwidth / 1048576.0;
	}
	xmax = nice_max(xmax);
	ymax = nice_max(ymax);
	fprintf(f, "<?xml version='1.0' encoding='UTF-8'?>\n<svg xmlns='http://www.w3.org/2000/svg' "
		   "width='%d' height='%d' font-family='sans-serif'>\n<rect width='100%%' "
		   "height='100%%' fill='white'/>\n", W, H);
	snprintf(title, sizeof(title), "%s: precopy progress (one run)", cell);
	axes(f, title, "time since migrate (s)", "MiB, MiB/s", xmax, ymax, "throttle %", 100);
	for (int i = 1; i < r->n; i++)
		if (r->pts[i].pass != r->pts[i - 1].pass) {
			double x = L + (W - L - R) * (r->pts[i].t_ms / 1000.0) / xmax;

			fprintf(f, "<line x1='%.1f' y1='%d' x2='%.1f' y2='%d' stroke='#999' "
				   "stroke-dasharray='3,3'/>\n<text x='%.1f' y='%d' font-size='10' "
				   "fill='#666'>pass %llu</text>\n", x, T, x, H - B, x + 2, T + 10,
				(unsigned long long)r->pts[i].pass);
		}
	for (int s = 0; s < 3; s++)
		series(f, r, s, xmax, ymax, colors[s], 0);
	series(f, r, 3, xmax, 100, colors[3], 1);
	for (int s = 0; s < 4; s++)
		fprintf(f, "<rect x='%d' y='%d' width='12' height='3' fill='%s'/><text x='%d' y='%d' "
			   "font-size='11'>%s</text>\n", L + 10 + s * 165, H - 12, colors[s],
			L + 26 + s * 165, H - 8, names[s]);
	fprintf(f, "</svg>\n");
	return fclose(f);
}

int bench_svg_compare(const char *path, const struct bench_cell *cells, int n)
{
	static const char *const metrics[] = {"total time (ms)", "guest downtime (ms)",
					      "bytes sent (MiB)"};
	FILE *f = fopen(path, "we");
	int pw = 240;

	if (!f)
		return -1;
	fprintf(f, "<?xml version='1.0' encoding='UTF-8'?>\n<svg xmlns='http://www.w3.org/2000/svg' "
		   "width='%d' height='%d' font-family='sans-serif'>\n<rect width='100%%' "
		   "height='100%%' fill='white'/>\n<text x='20' y='22' font-size='15' "
		   "font-weight='bold'>Cells compared (medians)</text>\n", pw * 3 + 40, H + 40);
	for (int m = 0; m < 3; m++) {
		double max = 0, x0 = 30 + m * pw, bw = (pw - 40.0) / (n ? n : 1);

		for (int c = 0; c < n; c++)
			if (cells[c].median[m] > max)
				max = cells[c].median[m];
		max = nice_max(max);
		fprintf(f, "<text x='%.0f' y='50' font-size='12' font-weight='bold'>%s</text>\n",
			x0, metrics[m]);
		fprintf(f, "<line x1='%.0f' y1='%d' x2='%.0f' y2='%d' stroke='#333'/>\n", x0, H - 30,
			x0 + pw - 30, H - 30);
		for (int c = 0; c < n; c++) {
			double h = (H - 110) * cells[c].median[m] / max;
			double x = x0 + c * bw + 4;

			fprintf(f, "<rect x='%.1f' y='%.1f' width='%.1f' height='%.1f' fill='%s'/>\n",
				x, H - 30 - h, bw - 8, h, c == 0 ? "#7f7f7f" : "#1f77b4");
			fprintf(f, "<text x='%.1f' y='%.1f' font-size='10' text-anchor='middle'>%.4g"
				   "</text>\n", x + (bw - 8) / 2, H - 34 - h, cells[c].median[m]);
			fprintf(f, "<text x='%.1f' y='%d' font-size='10' text-anchor='end' "
				   "transform='rotate(-30 %.1f %d)'>%s</text>\n", x + (bw - 8) / 2,
				H - 16, x + (bw - 8) / 2, H - 16, cells[c].name);
		}
	}
	fprintf(f, "</svg>\n");
	return fclose(f);
}

static int cmp_dbl(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double quantile(const double *s, int n, double q)
{
	double pos = q * (n - 1);
	int i = (int)pos;

	return i + 1 < n ? s[i] + (pos - i) * (s[i + 1] - s[i]) : s[n - 1];
}

/* One box per cell: whiskers min-max, box quartiles, a bar at the median,
 * every run as a dot; a cell with no value is labelled n/a. */
int bench_svg_box(const char *path, const char *metric, const char *const *cells, int n,
		  double v[][BENCH_STAT_MAX], const int *nv)
{
	FILE *f = fopen(path, "we");
	double ymax = 0;
	int pw = n > 0 ? (W - L - R) / n : W - L - R;
	char title[160];

	if (!f)
		return -1;
	for (int c = 0; c < n; c++)
		for (int i = 0; i < nv[c]; i++)
			if (v[c][i] > ymax)
				ymax = v[c][i];
	ymax = nice_max(ymax);
	fprintf(f, "<?xml version='1.0' encoding='UTF-8'?>\n<svg xmlns='http://www.w3.org/2000/svg' "
		   "width='%d' height='%d' font-family='sans-serif'>\n<rect width='100%%' "
		   "height='100%%' fill='white'/>\n", W, H + 40);
	snprintf(title, sizeof(title), "%s per cell (every run a dot)", metric);
	fprintf(f, "<text x='%d' y='22' font-size='15' font-weight='bold'>%s</text>\n", L, title);
	fprintf(f, "<line x1='%d' y1='%d' x2='%d' y2='%d' stroke='#333'/>\n", L, H - B, W - R, H - B);
	fprintf(f, "<line x1='%d' y1='%d' x2='%d' y2='%d' stroke='#333'/>\n", L, T, L, H - B);
	for (int i = 0; i <= 5; i++) {
		double y = H - B - (H - T - B) * i / 5.0;

		fprintf(f, "<text x='%d' y='%.0f' font-size='11' text-anchor='end'>%.3g</text>\n",
			L - 6, y + 4, ymax * i / 5);
		fprintf(f, "<line x1='%d' y1='%.0f' x2='%d' y2='%.0f' stroke='#eee'/>\n", L, y,
			W - R, y);
	}
	for (int c = 0; c < n; c++) {
		double s[BENCH_STAT_MAX], cx = L + pw * (c + 0.5), bw = pw * 0.5;
		int k = nv[c];

#define YV(x) (H - B - (H - T - B) * (x) / ymax)
		fprintf(f, "<text x='%.1f' y='%d' font-size='11' text-anchor='end' "
			   "transform='rotate(-25 %.1f %d)'>%s</text>\n", cx, H - B + 16, cx,
			H - B + 16, cells[c]);
		if (!k) {
			fprintf(f, "<text x='%.1f' y='%d' font-size='11' text-anchor='middle' "
				   "fill='#999'>n/a</text>\n", cx, H - B - 10);
			continue;
		}
		memcpy(s, v[c], k * sizeof(double));
		qsort(s, k, sizeof(double), cmp_dbl);
		fprintf(f, "<line x1='%.1f' y1='%.1f' x2='%.1f' y2='%.1f' stroke='#333'/>\n", cx,
			YV(s[0]), cx, YV(s[k - 1]));
		fprintf(f, "<rect x='%.1f' y='%.1f' width='%.1f' height='%.1f' fill='#c6dbef' "
			   "stroke='#1f77b4'/>\n", cx - bw / 2, YV(quantile(s, k, 0.75)), bw,
			YV(quantile(s, k, 0.25)) - YV(quantile(s, k, 0.75)));
		fprintf(f, "<line x1='%.1f' y1='%.1f' x2='%.1f' y2='%.1f' stroke='#d62728' "
			   "stroke-width='2'/>\n", cx - bw / 2, YV(quantile(s, k, 0.5)), cx + bw / 2,
			YV(quantile(s, k, 0.5)));
		fprintf(f, "<text x='%.1f' y='%.1f' font-size='10'>%.4g</text>\n", cx + bw / 2 + 3,
			YV(quantile(s, k, 0.5)) + 4, quantile(s, k, 0.5));
		for (int i = 0; i < k; i++)
			fprintf(f, "<circle cx='%.1f' cy='%.1f' r='2.5' fill='#333' "
				   "fill-opacity='0.6'/>\n", cx - bw / 4 + bw / 2 * i / (k > 1 ? k - 1 : 1),
				YV(v[c][i]));
#undef YV
	}
	fprintf(f, "</svg>\n");
	return fclose(f);
}
