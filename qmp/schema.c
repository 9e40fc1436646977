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
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "qmig_qmp.h"

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

static const char *get_str(struct json_object *o, const char *key)
{
	struct json_object *v;

	if (!o || !json_object_object_get_ex(o, key, &v) ||
	    !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
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
	struct json_object *members;

	if (!obj || !json_object_object_get_ex(obj, "members", &members) ||
	    !json_object_is_type(members, json_type_array))
		return NULL;
	for (size_t i = 0; i < json_object_array_length(members); i++) {
		struct json_object *m = json_object_array_get_idx(members, i);
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

/* An enum's values: "members" (objects with "name", QEMU 6.2 and later,
 * where "values" is deprecated) or the older "values" (strings). */
static struct json_object *enum_list(struct json_object *t, const char **key)
{
	struct json_object *v;

	*key = "name";
	if (json_object_object_get_ex(t, "members", &v) && json_object_is_type(v, json_type_array))
		return v;
	*key = NULL;
	if (json_object_object_get_ex(t, "values", &v) && json_object_is_type(v, json_type_array))
		return v;
	return NULL;
}

/* Does enum type t (or an enum branch of an alternate) have value? */
static int enum_has(const struct qmig_schema *s, struct json_object *t, const char *value)
{
	struct json_object *vals, *members;
	const char *key;

	t = unarray(s, t);
	if (is_meta(t, "alternate") && json_object_object_get_ex(t, "members", &members)) {
		for (size_t i = 0; i < json_object_array_length(members); i++) {
			struct json_object *bt =
			    find(&s->types, get_str(json_object_array_get_idx(members, i), "type"));

			if (is_meta(bt, "enum") && enum_has(s, bt, value))
				return 1;
		}
		return 0;
	}
	if (!is_meta(t, "enum") || !(vals = enum_list(t, &key)))
		return 0;
	for (size_t i = 0; i < json_object_array_length(vals); i++) {
		struct json_object *e = json_object_array_get_idx(vals, i);
		const char *name = key ? get_str(e, key) : json_object_get_string(e);

		if (name && !strcmp(name, value))
			return 1;
	}
	return 0;
}

/* Collect string values (enum "values") or member names into a sorted,
 * NULL-terminated array pointing into the schema's JSON. */
static int collect(struct json_object *list, const char *key, const char ***out, size_t *n)
{
	size_t len =
	    list && json_object_is_type(list, json_type_array) ? json_object_array_length(list) : 0;
	const char **v = calloc(len + 1, sizeof(*v));

	if (!v)
		return -ENOMEM;
	*n = 0;
	for (size_t i = 0; i < len; i++) {
		struct json_object *e = json_object_array_get_idx(list, i);
		const char *name =
		    key ? get_str(e, key)
			: (json_object_is_type(e, json_type_string) ? json_object_get_string(e)
								    : NULL);
		if (name)
			v[(*n)++] = name;
	}
	qsort(v, *n, sizeof(*v), str_cmp);
	*out = v;
	return 0;
}

static int index_caps(struct qmig_schema *s)
{
	struct json_object *t, *vals = NULL;
	const char *key = NULL;

	t = unarray(s, member_type(s, arg_type(s, "migrate-set-capabilities"), "capabilities"));
	t = member_type(s, t, "capability");
	if (is_meta(t, "enum"))
		vals = enum_list(t, &key);
	return collect(vals, key, &s->caps, &s->ncaps);
}

static int index_params(struct qmig_schema *s)
{
	struct json_object *t = arg_type(s, "migrate-set-parameters"), *members = NULL;

	if (t)
		json_object_object_get_ex(t, "members", &members);
	return collect(members, "name", &s->params, &s->nparams);
}

static int table_add(struct qm_table *t, const char *name, struct json_object *obj)
{
	t->v[t->n].name = name;
	t->v[t->n].obj = obj;
	t->n++;
	return 0;
}

static int index_all(struct qmig_schema *s)
{
	size_t len = json_object_array_length(s->root);

	s->cmds.v = calloc(len + 1, sizeof(struct qm_ent));
	s->events.v = calloc(len + 1, sizeof(struct qm_ent));
	s->types.v = calloc(len + 1, sizeof(struct qm_ent));
	if (!s->cmds.v || !s->events.v || !s->types.v)
		return -ENOMEM;
	for (size_t i = 0; i < len; i++) {
		struct json_object *e = json_object_array_get_idx(s->root, i);
		const char *name = get_str(e, "name"), *meta = get_str(e, "meta-type");

		if (!name || !meta)
			continue; /* tolerate what we do not understand */
		if (!strcmp(meta, "command"))
			table_add(&s->cmds, name, e);
		else if (!strcmp(meta, "event"))
			table_add(&s->events, name, e);
		else
			table_add(&s->types, name, e);
	}
	qsort(s->cmds.v, s->cmds.n, sizeof(struct qm_ent), ent_cmp);
	qsort(s->events.v, s->events.n, sizeof(struct qm_ent), ent_cmp);
	qsort(s->types.v, s->types.n, sizeof(struct qm_ent), ent_cmp);
	return 0;
}

int qmig_schema_from_json(struct qmig_schema **out, struct json_object *schema_array)
{
	struct qmig_schema *s;
	int r;

	if (!out || !json_object_is_type(schema_array, json_type_array))
		return -EINVAL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->root = json_object_get(schema_array);
	r = index_all(s);
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

int qmig_schema_probe(struct qmig_schema **out, struct qmig_qmp_conn *conn)
{
	struct json_object *ret = NULL;
	int r = qmig_qmp_conn_call(conn, "query-qmp-schema", NULL, &ret, -1);

	if (r < 0)
		return r;
	r = qmig_schema_from_json(out, ret);
	json_object_put(ret);
	return r == -EINVAL ? -EPROTO : r;
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
	struct json_object *t, *members;

	if (!s || !arg || !(t = arg_type(s, command)) ||
	    !json_object_object_get_ex(t, "members", &members))
		return 0;
	for (size_t i = 0; i < json_object_array_length(members); i++) {
		const char *n = get_str(json_object_array_get_idx(members, i), "name");

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
	return enum_has(s, member_type(s, arg_type(s, command), arg), value);
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
