/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * What this QEMU has, from query-qmp-schema.
 *
 * QEMU masks type names in its introspection (types are called "123"),
 * only commands and events keep their names. So every question goes
 * through a command: capabilities are the enum behind
 * migrate-set-capabilities' argument "capabilities" (array of objects
 * whose member "capability" is the enum); parameters are the members of
 * migrate-set-parameters' argument type. Entities are kept in sorted
 * arrays and found with bsearch.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "qmig_qmp.h"
#include "qmp_reply.h"

struct qm_ent {
	const char *name;
	struct json_object *obj;
};

struct qm_table {
	struct qm_ent *v;
	size_t n;
};

struct qmig_schema {
	struct json_object *root; /* owns every string below */
	struct qm_table cmds, events, types;
	const char **caps;   /* sorted, NULL-terminated */
	const char **params; /* sorted, NULL-terminated */
	size_t ncaps, nparams;
};

static int ent_cmp(const void *a, const void *b)
{
	return strcmp(((const struct qm_ent *)a)->name, ((const struct qm_ent *)b)->name);
}

static int str_cmp(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Lookups run on a schema that passed validate(), so their readers never
 * fail; they still go through the typed accessors. */
static const char *get_str(struct json_object *o, const char *key)
{
	struct qm_rd rd;

	qm_rd_init(&rd, "query-qmp-schema");
	return o ? qm_rd_opt_str(&rd, o, key, NULL) : NULL;
}

static struct json_object *get_arr(struct json_object *o, const char *key)
{
	struct qm_rd rd;

	qm_rd_init(&rd, "query-qmp-schema");
	return o ? qm_rd_opt_arr(&rd, o, key) : NULL;
}

static size_t arr_len(struct json_object *a)
{
	struct qm_rd rd;

	qm_rd_init(&rd, "query-qmp-schema");
	return a ? qm_rd_len(&rd, a) : 0;
}

static struct json_object *arr_obj(struct json_object *a, size_t i)
{
	struct qm_rd rd;

	qm_rd_init(&rd, "query-qmp-schema");
	return qm_rd_idx_obj(&rd, a, i);
}

static struct json_object *find(const struct qm_table *t, const char *name)
{
	struct qm_ent key = {name, NULL}, *e;

	if (!name || !t->n)
		return NULL;
	e = bsearch(&key, t->v, t->n, sizeof(key), ent_cmp);
	return e ? e->obj : NULL;
}

/* The type of member name of an object type, or NULL. */
static struct json_object *member_type(const struct qmig_schema *s, struct json_object *obj,
				       const char *name)
{
	struct json_object *members = get_arr(obj, "members");

	for (size_t i = 0; i < arr_len(members); i++) {
		struct json_object *m = arr_obj(members, i);
		const char *n = get_str(m, "name");

		if (n && !strcmp(n, name))
			return find(&s->types, get_str(m, "type"));
	}
	return NULL;
}

static struct json_object *arg_type(const struct qmig_schema *s, const char *command)
{
	return find(&s->types, get_str(find(&s->cmds, command), "arg-type"));
}

static int is_meta(struct json_object *t, const char *meta)
{
	const char *m = get_str(t, "meta-type");

	return m && !strcmp(m, meta);
}

/* Peel arrays: the element type, as often as needed. */
static struct json_object *unarray(const struct qmig_schema *s, struct json_object *t)
{
	for (int i = 0; i < 4 && is_meta(t, "array"); i++)
		t = find(&s->types, get_str(t, "element-type"));
	return t;
}

/* Value i of an enum: "members" (objects with "name", QEMU 6.2 and later,
 * where "values" is deprecated) or the older "values" (strings). */
static const char *enum_value(struct json_object *t, size_t i)
{
	struct json_object *m = get_arr(t, "members");
	struct qm_rd rd;

	if (m)
		return get_str(arr_obj(m, i), "name");
	qm_rd_init(&rd, "query-qmp-schema");
	return qm_rd_idx_str(&rd, get_arr(t, "values"), i);
}

static size_t enum_count(struct json_object *t)
{
	struct json_object *m = get_arr(t, "members");

	return arr_len(m ? m : get_arr(t, "values"));
}

/* Does enum type t (or an enum branch of an alternate) have value? */
static int enum_has(const struct qmig_schema *s, struct json_object *t, const char *value,
		    int depth)
{
	t = unarray(s, t);
	if (depth < 4 && is_meta(t, "alternate")) {
		struct json_object *members = get_arr(t, "members");

		for (size_t i = 0; i < arr_len(members); i++) {
			struct json_object *bt =
			    find(&s->types, get_str(arr_obj(members, i), "type"));

			if (is_meta(bt, "enum") && enum_has(s, bt, value, depth + 1))
				return 1;
		}
		return 0;
	}
	if (!is_meta(t, "enum"))
		return 0;
	for (size_t i = 0, n = enum_count(t); i < n; i++) {
		const char *name = enum_value(t, i);

		if (name && !strcmp(name, value))
			return 1;
	}
	return 0;
}

/* Collect an enum's values or an object's member names into a sorted,
 * NULL-terminated array pointing into the schema's JSON. */
static int collect(struct json_object *t, int is_enum, const char ***out, size_t *n)
{
	struct json_object *members = get_arr(t, "members");
	size_t len = is_enum ? enum_count(t) : arr_len(members);
	const char **v = calloc(len + 1, sizeof(*v));

	if (!v)
		return -ENOMEM;
	*n = 0;
	for (size_t i = 0; i < len; i++) {
		const char *name = is_enum ? enum_value(t, i) : get_str(arr_obj(members, i), "name");

		if (name)
			v[(*n)++] = name;
	}
	qsort(v, *n, sizeof(*v), str_cmp);
	*out = v;
	return 0;
}

static int index_caps(struct qmig_schema *s)
{
	struct json_object *t;

	t = unarray(s, member_type(s, arg_type(s, "migrate-set-capabilities"), "capabilities"));
	t = member_type(s, t, "capability");
	return collect(is_meta(t, "enum") ? t : NULL, 1, &s->caps, &s->ncaps);
}

static int index_params(struct qmig_schema *s)
{
	return collect(arg_type(s, "migrate-set-parameters"), 0, &s->params, &s->nparams);
}

static void table_add(struct qm_table *t, const char *name, struct json_object *obj)
{
	t->v[t->n].name = name;
	t->v[t->n].obj = obj;
	t->n++;
}

/* The shape of one entity (SchemaInfo in QEMU's qapi/introspect.json), as
 * far as the lookups above read it: every member they touch must have its
 * type, so a hostile schema is refused once, here, naming the entity. */
static void validate(struct qm_rd *rd, struct json_object *e, const char *meta)
{
	struct json_object *list;
	size_t n;

	if (!strcmp(meta, "command")) {
		qm_rd_str(rd, e, "arg-type");
	} else if (!strcmp(meta, "array")) {
		qm_rd_str(rd, e, "element-type");
	} else if (!strcmp(meta, "object") || !strcmp(meta, "alternate")) {
		list = qm_rd_arr(rd, e, "members");
		n = qm_rd_len(rd, list);
		for (size_t i = 0; i < n && !rd->err; i++) {
			struct json_object *m = qm_rd_idx_obj(rd, list, i);

			if (!strcmp(meta, "object"))
				qm_rd_str(rd, m, "name");
			qm_rd_str(rd, m, "type");
		}
	} else if (!strcmp(meta, "enum")) {
		int has_members = qm_rd_has(rd, e, "members");

		list = has_members ? qm_rd_arr(rd, e, "members") : qm_rd_arr(rd, e, "values");
		n = qm_rd_len(rd, list);
		for (size_t i = 0; i < n && !rd->err; i++) {
			if (has_members)
				qm_rd_str(rd, qm_rd_idx_obj(rd, list, i), "name");
			else
				qm_rd_idx_str(rd, list, i);
		}
	}
}

static int index_all(struct qmig_schema *s, struct qm_rd *rd)
{
	size_t len = qm_rd_len(rd, s->root);

	s->cmds.v = calloc(len + 1, sizeof(struct qm_ent));
	s->events.v = calloc(len + 1, sizeof(struct qm_ent));
	s->types.v = calloc(len + 1, sizeof(struct qm_ent));
	if (!s->cmds.v || !s->events.v || !s->types.v)
		return -ENOMEM;
	for (size_t i = 0; i < len && !rd->err; i++) {
		struct json_object *e = qm_rd_idx_obj(rd, s->root, i);
		const char *name = qm_rd_str(rd, e, "name"), *meta = qm_rd_str(rd, e, "meta-type");

		if (rd->err)
			break;
		validate(rd, e, meta);
		if (rd->err) {
			char why[sizeof(rd->msg)];

			/* say which entity, keeping the member's own message */
			snprintf(why, sizeof(why), "%s", rd->msg + strlen(rd->cmd) + 2);
			rd->err = 0;
			qm_rd_fail(rd, "entity '%.64s' (%s): %s", name, meta, why);
			break;
		}
		if (!strcmp(meta, "command"))
			table_add(&s->cmds, name, e);
		else if (!strcmp(meta, "event"))
			table_add(&s->events, name, e);
		else
			table_add(&s->types, name, e);
	}
	if (rd->err)
		return rd->err;
	qsort(s->cmds.v, s->cmds.n, sizeof(struct qm_ent), ent_cmp);
	qsort(s->events.v, s->events.n, sizeof(struct qm_ent), ent_cmp);
	qsort(s->types.v, s->types.n, sizeof(struct qm_ent), ent_cmp);
	return 0;
}

int qm_schema_from_json_rd(struct qmig_schema **out, struct json_object *schema_array,
			   struct qm_rd *rd)
{
	struct qmig_schema *s;
	int r;

	if (!qm_rd_as_arr(rd, schema_array))
		return rd->err;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->root = json_object_get(schema_array);
	r = index_all(s, rd);
	if (!r)
		r = index_caps(s);
	if (!r)
		r = index_params(s);
	if (r < 0) {
		qmig_schema_free(s);
		return r;
	}
	*out = s;
	return 0;
}

int qmig_schema_from_json(struct qmig_schema **out, struct json_object *schema_array)
{
	struct qm_rd rd;

	if (!out || !json_object_is_type(schema_array, json_type_array))
		return -EINVAL;
	qm_rd_init(&rd, "query-qmp-schema");
	return qm_schema_from_json_rd(out, schema_array, &rd);
}

int qmig_schema_probe(struct qmig_schema **out, struct qmig_qmp_conn *conn)
{
	struct json_object *ret = NULL;
	struct qm_rd rd;
	int r = qmig_qmp_conn_call(conn, "query-qmp-schema", NULL, &ret, -1);

	if (r < 0)
		return r;
	if (!out) {
		json_object_put(ret);
		return -EINVAL;
	}
	qm_rd_init(&rd, "query-qmp-schema");
	r = qm_schema_from_json_rd(out, ret, &rd);
	json_object_put(ret);
	return rd.err ? qm_call_rd(conn, &rd) : r;
}

void qmig_schema_free(struct qmig_schema *s)
{
	if (!s)
		return;
	free(s->cmds.v);
	free(s->events.v);
	free(s->types.v);
	free(s->caps);
	free(s->params);
	json_object_put(s->root);
	free(s);
}

static int in_sorted(const char *const *v, size_t n, const char *name)
{
	return name && n && bsearch(&name, v, n, sizeof(*v), str_cmp) != NULL;
}

int qmig_schema_has_command(const struct qmig_schema *s, const char *command)
{
	return s && find(&s->cmds, command) != NULL;
}

int qmig_schema_has_event(const struct qmig_schema *s, const char *event)
{
	return s && find(&s->events, event) != NULL;
}

int qmig_schema_has_arg(const struct qmig_schema *s, const char *command, const char *arg)
{
	struct json_object *members;

	if (!s || !arg || !(members = get_arr(arg_type(s, command), "members")))
		return 0;
	for (size_t i = 0; i < arr_len(members); i++) {
		const char *n = get_str(arr_obj(members, i), "name");

		if (n && !strcmp(n, arg))
			return 1;
	}
	return 0;
}

int qmig_schema_has_capability(const struct qmig_schema *s, const char *cap)
{
	return s && in_sorted(s->caps, s->ncaps, cap);
}

int qmig_schema_has_parameter(const struct qmig_schema *s, const char *param)
{
	return s && in_sorted(s->params, s->nparams, param);
}

int qmig_schema_has_enum_value(const struct qmig_schema *s, const char *command, const char *arg,
			       const char *value)
{
	if (!s || !arg || !value)
		return 0;
	return enum_has(s, member_type(s, arg_type(s, command), arg), value, 0);
}

const char *const *qmig_schema_capabilities(const struct qmig_schema *s)
{
	static const char *const none[] = {NULL};

	return s ? s->caps : none;
}

const char *const *qmig_schema_parameters(const struct qmig_schema *s)
{
	static const char *const none[] = {NULL};

	return s ? s->params : none;
}
