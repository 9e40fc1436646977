/* Reading a --trace file for qmigrate replay: see trace.h. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <json-c/json.h>

#include "qmp_reply.h"
#include "trace.h"

static int err_set(char *err, size_t errlen, int r, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int err_set(char *err, size_t errlen, int r, const char *fmt, ...)
{
	va_list ap;

	if (err && errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return r;
}

static int grow(struct trace *tr)
{
	size_t cap = tr->cap ? tr->cap * 2 : 256;
	int64_t *t = realloc(tr->t, cap * sizeof(*t));
	uint64_t *d, *b;

	if (!t)
		return -ENOMEM;
	tr->t = t;
	d = realloc(tr->dirty, cap * sizeof(*d));
	if (!d)
		return -ENOMEM;
	tr->dirty = d;
	b = realloc(tr->bw, cap * sizeof(*b));
	if (!b)
		return -ENOMEM;
	tr->bw = b;
	tr->cap = cap;
	return 0;
}

static int add_sample(struct trace *tr, struct qm_rd *rd, struct json_object *o)
{
	int64_t t;
	uint64_t dirty, bw, total;
	int r;

	if (strcmp(qm_rd_opt_str(rd, o, "status", ""), "active"))
		return rd->err;
	t = qm_rd_i64(rd, o, "t_ms");
	dirty = qm_rd_opt_u64(rd, o, "dirty_rate", 0);
	bw = qm_rd_opt_u64(rd, o, "bandwidth", 0);
	total = qm_rd_opt_u64(rd, o, "total", 0);
	if (!rd->err && (t < 0 || t > TRACE_T_MAX))
		qm_rd_fail(rd, "member 't_ms' is out of range (%lld)", (long long)t);
	if (!rd->err && (dirty > TRACE_RATE_MAX || bw > TRACE_RATE_MAX))
		qm_rd_fail(rd, "a rate is out of range (dirty_rate %llu, bandwidth %llu, at most %llu)",
			   (unsigned long long)dirty, (unsigned long long)bw,
			   (unsigned long long)TRACE_RATE_MAX);
	if (!rd->err && total > TRACE_BYTES_MAX)
		qm_rd_fail(rd, "member 'total' is out of range (%llu)", (unsigned long long)total);
	if (rd->err)
		return rd->err;
	if (tr->n == tr->cap && (r = grow(tr)) < 0)
		return r;
	tr->t[tr->n] = t;
	tr->dirty[tr->n] = dirty;
	tr->bw[tr->n] = bw;
	if (total && !tr->mem)
		tr->mem = total;
	tr->n++;
	return 0;
}

int trace_add_line(struct trace *tr, const char *line, size_t len, char *err, size_t errlen)
{
	struct json_tokener *tok;
	struct json_object *o;
	struct qm_rd rd;
	const char *type;
	char what[48];
	int r = 0;

	tr->line++;
	if (len >= TRACE_LINE_MAX)
		return err_set(err, errlen, -EMSGSIZE, "line %zu is longer than %d bytes", tr->line,
			       TRACE_LINE_MAX - 1);
	tok = json_tokener_new_ex(32);
	if (!tok)
		return err_set(err, errlen, -ENOMEM, "out of memory");
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
	o = json_tokener_parse_ex(tok, line, (int)len);
	json_tokener_free(tok);
	snprintf(what, sizeof(what), "line %zu", tr->line);
	qm_rd_init(&rd, what);
	/* Not a record (a cut last line, a blank line): skipped. */
	if (!o || !json_object_is_type(o, json_type_object) || !qm_rd_has(&rd, o, "type")) {
		json_object_put(o);
		return 0;
	}
	type = qm_rd_str(&rd, o, "type");
	if (type && !strcmp(type, "config")) {
		json_object_put(tr->config);
		tr->config = o;
		return 0;
	}
	if (type && !strcmp(type, "result")) {
		json_object_put(tr->result);
		tr->result = o;
		return 0;
	}
	if (type && !strcmp(type, "sample"))
		r = add_sample(tr, &rd, o);
	json_object_put(o);
	if (r == -ENOMEM)
		return err_set(err, errlen, r, "out of memory");
	if (rd.err)
		return err_set(err, errlen, rd.err, "%s", rd.msg);
	return 0;
}

int trace_finish(struct trace *tr, char *err, size_t errlen)
{
	if (!tr->n)
		return err_set(err, errlen, -ENODATA,
			       "no precopy samples in this trace (written with --trace?)");
	/* Times from the start of the migration (both in [0, TRACE_T_MAX]:
	 * no overflow); QEMU measures no dirty rate during the first pass, so
	 * the first one measured stands for it. */
	for (size_t i = 1; i < tr->n; i++)
		tr->t[i] -= tr->t[0];
	tr->t[0] = 0;
	for (size_t i = 0; i < tr->n && !tr->dirty[i]; i++)
		for (size_t j = i; j < tr->n; j++)
			if (tr->dirty[j]) {
				tr->dirty[i] = tr->dirty[j];
				break;
			}
	return 0;
}

int trace_read(struct trace *tr, const char *path, char *err, size_t errlen)
{
	FILE *f = fopen(path, "re");
	char *line = malloc(TRACE_LINE_MAX + 1);
	int r = 0;

	if (!f || !line) {
		r = err_set(err, errlen, f ? -ENOMEM : -errno, "cannot open the trace: %s",
			    strerror(f ? ENOMEM : errno));
		goto out;
	}
	while (!r && fgets(line, TRACE_LINE_MAX + 1, f)) {
		size_t n = strlen(line);

		/* A line that does not fit is refused, never cut in two. */
		if (n == TRACE_LINE_MAX && line[n - 1] != '\n')
			n = TRACE_LINE_MAX + 1;
		r = trace_add_line(tr, line, n, err, errlen);
	}
	if (!r)
		r = trace_finish(tr, err, errlen);
out:
	free(line);
	if (f)
		fclose(f);
	return r;
}

int64_t trace_cfg_int(const struct trace *tr, const char *key)
{
	struct qm_rd rd;
	int64_t v;

	if (!tr->config)
		return 0;
	qm_rd_init(&rd, "config");
	v = qm_rd_opt_i64(&rd, tr->config, key, 0);
	return rd.err || v < 0 || (uint64_t)v > TRACE_BYTES_MAX ? 0 : v;
}

void trace_free(struct trace *tr)
{
	json_object_put(tr->config);
	json_object_put(tr->result);
	free(tr->t);
	free(tr->dirty);
	free(tr->bw);
	memset(tr, 0, sizeof(*tr));
}
