/* Reading a --trace file (JSON lines written by qmigrate migrate) for
 * qmigrate replay. The file is input like any other: every line is read
 * with the typed accessors, lines are bounded, numbers are range-checked;
 * a wrong shape is an error naming the line and the member. */
#ifndef QMIG_TRACE_H
#define QMIG_TRACE_H

#include <stddef.h>
#include <stdint.h>

#define TRACE_LINE_MAX 65536      /* longest line, newline included */
#define TRACE_T_MAX (1LL << 40)   /* t_ms beyond ~35 years is a lie */
/* Bytes (64 TiB) and bytes/s (1 TiB/s) beyond any real migration: the
 * simulator's arithmetic is only defined below them. */
#define TRACE_BYTES_MAX (1ULL << 46)
#define TRACE_RATE_MAX (1ULL << 40)

struct json_object;

/* The environment of a recorded run: its samples' rates over time, the
 * configuration it recorded first and its result. */
struct trace {
	int64_t *t;
	uint64_t *dirty, *bw;
	size_t n, cap;
	struct json_object *config, *result;
	uint64_t mem;
	size_t line; /* lines read */
};

/* One line (len bytes, no terminator needed, a trailing newline is fine).
 * 0, or a negative errno with err set. Lines that are not JSON objects
 * with a "type" are skipped. */
int trace_add_line(struct trace *tr, const char *line, size_t len, char *err, size_t errlen);
/* After the last line: times from the start, the first measured dirty rate
 * standing for the first pass. -ENODATA when there were no samples. */
int trace_finish(struct trace *tr, char *err, size_t errlen);
/* Both, from a file. */
int trace_read(struct trace *tr, const char *path, char *err, size_t errlen);
/* A non-negative integer of the config up to TRACE_BYTES_MAX, 0 when
 * absent, not one, or larger. */
int64_t trace_cfg_int(const struct trace *tr, const char *key);
void trace_free(struct trace *tr);

#endif
