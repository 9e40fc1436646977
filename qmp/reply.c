/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Typed access to a peer's JSON: see qmp_reply.h. The one file of the
 * library that calls json-c getters on objects a peer sent.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "qmp_int.h"
#include "qmp_reply.h"

void qm_rd_init(struct qm_rd *rd, const char *cmd)
{
	rd->cmd = cmd ? cmd : "reply";
	rd->err = 0;
	rd->msg[0] = 0;
}

int qm_rd_fail(struct qm_rd *rd, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (rd->err)
		return rd->err;
	rd->err = -EPROTO;
	n = snprintf(rd->msg, sizeof(rd->msg), "%s: ", rd->cmd);
	if (n < 0 || (size_t)n >= sizeof(rd->msg))
		return rd->err;
	va_start(ap, fmt);
	vsnprintf(rd->msg + n, sizeof(rd->msg) - (size_t)n, fmt, ap);
	va_end(ap);
	return rd->err;
}

const char *qm_rd_type_name(struct json_object *v)
{
	switch (json_object_get_type(v)) {
	case json_type_null:
		return "null";
	case json_type_boolean:
		return "a boolean";
	case json_type_double:
		return "a number with a fraction";
	case json_type_int:
		return "an integer";
	case json_type_object:
		return "an object";
	case json_type_array:
		return "an array";
	case json_type_string:
		return "a string";
	}
	return "of an unknown type";
}

static const char *want_name(enum json_type t)
{
	switch (t) {
	case json_type_boolean:
		return "a boolean";
	case json_type_double:
		return "a number";
	case json_type_int:
		return "an integer";
	case json_type_object:
		return "an object";
	case json_type_array:
		return "an array";
	case json_type_string:
		return "a string";
	default:
		return "null";
	}
}

/* Member key of o with type t. Absent: *absent = 1 (if asked), else a
 * failure. Returns NULL on every failure. */
static struct json_object *get(struct qm_rd *rd, struct json_object *o, const char *key,
			       enum json_type t, int *absent)
{
	struct json_object *v = NULL;

	if (absent)
		*absent = 0;
	if (rd->err)
		return NULL;
	if (!json_object_is_type(o, json_type_object)) {
		qm_rd_fail(rd, "expected an object holding '%s', got %s", key,
			   qm_rd_type_name(o));
		return NULL;
	}
	if (!json_object_object_get_ex(o, key, &v)) {
		if (absent)
			*absent = 1;
		else
			qm_rd_fail(rd, "member '%s' is missing", key);
		return NULL;
	}
	if (!v) {
		qm_rd_fail(rd, "member '%s' is null", key);
		return NULL;
	}
	if (t == json_type_double ? !(json_object_is_type(v, json_type_double) ||
				      json_object_is_type(v, json_type_int))
				  : !json_object_is_type(v, t)) {
		qm_rd_fail(rd, "member '%s' is %s, not %s", key, qm_rd_type_name(v),
			   want_name(t));
		return NULL;
	}
	return v;
}

struct json_object *qm_rd_as(struct qm_rd *rd, struct json_object *v, enum json_type t)
{
	if (rd->err)
		return NULL;
	if (!json_object_is_type(v, t)) {
		qm_rd_fail(rd, "returned %s, not %s", qm_rd_type_name(v), want_name(t));
		return NULL;
	}
	return v;
}

struct json_object *qm_rd_as_obj(struct qm_rd *rd, struct json_object *v)
{
	return qm_rd_as(rd, v, json_type_object);
}

struct json_object *qm_rd_as_arr(struct qm_rd *rd, struct json_object *v)
{
	return qm_rd_as(rd, v, json_type_array);
}

/* ---- scalars: one converter each, shared by required and optional ---- */

static int64_t to_i64(struct qm_rd *rd, struct json_object *v, const char *key)
{
	/* json-c saturates to INT64_MAX above it; a uint64 there is out of range. */
	int64_t x = json_object_get_int64(v);

	if (x == INT64_MAX && json_object_get_uint64(v) != (uint64_t)INT64_MAX) {
		qm_rd_fail(rd, "member '%s' is out of range", key);
		return 0;
	}
	return x;
}

static uint64_t to_u64(struct qm_rd *rd, struct json_object *v, const char *key)
{
	if (json_object_get_int64(v) < 0) {
		qm_rd_fail(rd, "member '%s' is negative", key);
		return 0;
	}
	return json_object_get_uint64(v);
}

static double to_num(struct qm_rd *rd, struct json_object *v, const char *key)
{
	double d = json_object_get_double(v);

	if (!isfinite(d)) {
		qm_rd_fail(rd, "member '%s' is not a finite number", key);
		return 0;
	}
	return d;
}

static void copy(struct qm_rd *rd, const char *s, const char *key, char *dst, size_t n)
{
	size_t len = strlen(s);

	if (len >= n) {
		qm_rd_fail(rd, "member '%s' is too long (%zu bytes, at most %zu)", key, len,
			   n - 1);
		dst[0] = 0;
		return;
	}
	memcpy(dst, s, len + 1);
}

/* ---- required ----------------------------------------------------------- */

struct json_object *qm_rd_obj(struct qm_rd *rd, struct json_object *o, const char *key)
{
	return get(rd, o, key, json_type_object, NULL);
}

struct json_object *qm_rd_arr(struct qm_rd *rd, struct json_object *o, const char *key)
{
	return get(rd, o, key, json_type_array, NULL);
}

const char *qm_rd_str(struct qm_rd *rd, struct json_object *o, const char *key)
{
	struct json_object *v = get(rd, o, key, json_type_string, NULL);

	return v ? json_object_get_string(v) : NULL;
}

int qm_rd_bool(struct qm_rd *rd, struct json_object *o, const char *key)
{
	struct json_object *v = get(rd, o, key, json_type_boolean, NULL);

	return v ? json_object_get_boolean(v) : 0;
}

int64_t qm_rd_i64(struct qm_rd *rd, struct json_object *o, const char *key)
{
	struct json_object *v = get(rd, o, key, json_type_int, NULL);

	return v ? to_i64(rd, v, key) : 0;
}

uint64_t qm_rd_u64(struct qm_rd *rd, struct json_object *o, const char *key)
{
	struct json_object *v = get(rd, o, key, json_type_int, NULL);

	return v ? to_u64(rd, v, key) : 0;
}

double qm_rd_num(struct qm_rd *rd, struct json_object *o, const char *key)
{
	struct json_object *v = get(rd, o, key, json_type_double, NULL);

	return v ? to_num(rd, v, key) : 0;
}

void qm_rd_strcpy(struct qm_rd *rd, struct json_object *o, const char *key, char *dst, size_t n)
{
	const char *s = qm_rd_str(rd, o, key);

	if (s)
		copy(rd, s, key, dst, n);
	else if (n)
		dst[0] = 0;
}

/* ---- optional ----------------------------------------------------------- */

struct json_object *qm_rd_any(struct qm_rd *rd, struct json_object *o, const char *key)
{
	struct json_object *v = NULL;

	if (!qm_rd_has(rd, o, key))
		return NULL;
	json_object_object_get_ex(o, key, &v);
	return v;
}

int qm_rd_has(struct qm_rd *rd, struct json_object *o, const char *key)
{
	struct json_object *v;

	if (rd->err)
		return 0;
	if (!json_object_is_type(o, json_type_object)) {
		qm_rd_fail(rd, "expected an object holding '%s', got %s", key,
			   qm_rd_type_name(o));
		return 0;
	}
	return json_object_object_get_ex(o, key, &v);
}

struct json_object *qm_rd_opt_obj(struct qm_rd *rd, struct json_object *o, const char *key)
{
	int absent;

	return get(rd, o, key, json_type_object, &absent);
}

struct json_object *qm_rd_opt_arr(struct qm_rd *rd, struct json_object *o, const char *key)
{
	int absent;

	return get(rd, o, key, json_type_array, &absent);
}

const char *qm_rd_opt_str(struct qm_rd *rd, struct json_object *o, const char *key,
			  const char *def)
{
	int absent;
	struct json_object *v = get(rd, o, key, json_type_string, &absent);

	return v ? json_object_get_string(v) : def;
}

int qm_rd_opt_bool(struct qm_rd *rd, struct json_object *o, const char *key, int def)
{
	int absent;
	struct json_object *v = get(rd, o, key, json_type_boolean, &absent);

	return v ? json_object_get_boolean(v) : def;
}

int64_t qm_rd_opt_i64(struct qm_rd *rd, struct json_object *o, const char *key, int64_t def)
{
	int absent;
	struct json_object *v = get(rd, o, key, json_type_int, &absent);

	return v ? to_i64(rd, v, key) : def;
}

uint64_t qm_rd_opt_u64(struct qm_rd *rd, struct json_object *o, const char *key, uint64_t def)
{
	int absent;
	struct json_object *v = get(rd, o, key, json_type_int, &absent);

	return v ? to_u64(rd, v, key) : def;
}

double qm_rd_opt_num(struct qm_rd *rd, struct json_object *o, const char *key, double def)
{
	int absent;
	struct json_object *v = get(rd, o, key, json_type_double, &absent);

	return v ? to_num(rd, v, key) : def;
}

void qm_rd_opt_strcpy(struct qm_rd *rd, struct json_object *o, const char *key, char *dst,
		      size_t n, const char *def)
{
	const char *s = qm_rd_opt_str(rd, o, key, def);

	if (s)
		copy(rd, s, key, dst, n);
	else if (n)
		dst[0] = 0;
}

/* ---- arrays and iteration ----------------------------------------------- */

size_t qm_rd_len(struct qm_rd *rd, struct json_object *arr)
{
	if (rd->err)
		return 0;
	if (!json_object_is_type(arr, json_type_array)) {
		qm_rd_fail(rd, "expected an array, got %s", qm_rd_type_name(arr));
		return 0;
	}
	return json_object_array_length(arr);
}

static struct json_object *idx(struct qm_rd *rd, struct json_object *arr, size_t i,
			       enum json_type t)
{
	struct json_object *v;

	if (i >= qm_rd_len(rd, arr))
		return NULL;
	v = json_object_array_get_idx(arr, i);
	if (!json_object_is_type(v, t)) {
		qm_rd_fail(rd, "element %zu is %s, not %s", i, qm_rd_type_name(v), want_name(t));
		return NULL;
	}
	return v;
}

struct json_object *qm_rd_idx_obj(struct qm_rd *rd, struct json_object *arr, size_t i)
{
	return idx(rd, arr, i, json_type_object);
}

const char *qm_rd_idx_str(struct qm_rd *rd, struct json_object *arr, size_t i)
{
	struct json_object *v = idx(rd, arr, i, json_type_string);

	return v ? json_object_get_string(v) : NULL;
}

void qm_rd_iter_init(struct qm_rd *rd, struct json_object *o, struct qm_rd_iter *it)
{
	it->e = NULL;
	if (rd->err)
		return;
	if (!json_object_is_type(o, json_type_object)) {
		qm_rd_fail(rd, "expected an object, got %s", qm_rd_type_name(o));
		return;
	}
	it->e = json_object_get_object(o)->head;
}

int qm_rd_iter_next(struct qm_rd_iter *it, const char **key, struct json_object **val)
{
	if (!it->e)
		return 0;
	*key = (const char *)it->e->k;
	*val = (struct json_object *)it->e->v;
	it->e = it->e->next;
	return 1;
}
