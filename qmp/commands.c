/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The QMP vocabulary of qmigrate: one short function per command, so what
 * we ask of QEMU is visible in one place. Replies are read tolerantly:
 * unknown keys are ignored, missing ones leave zeroes.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <json-c/json.h>

#include "qmig_commands.h"
#include "qmp_int.h"

/* ---- helpers ----------------------------------------------------------- */

static struct json_object *member(struct json_object *o, const char *key)
{
	struct json_object *v = NULL;

	if (!o || !json_object_object_get_ex(o, key, &v))
		return NULL;
	return v;
}

static uint64_t u64(struct json_object *o, const char *key)
{
	struct json_object *v = member(o, key);

	return v && json_object_is_type(v, json_type_int) ? json_object_get_uint64(v) : 0;
}

static int64_t i64(struct json_object *o, const char *key)
{
	struct json_object *v = member(o, key);

	return v && json_object_is_type(v, json_type_int) ? json_object_get_int64(v) : 0;
}

static void str(char *dst, size_t n, struct json_object *o, const char *key)
{
	struct json_object *v = member(o, key);

	snprintf(dst, n, "%s",
		 v && json_object_is_type(v, json_type_string) ? json_object_get_string(v) : "");
}

/* Call with no arguments and no interesting return. */
static int call0(struct qmig_qmp_conn *c, const char *cmd)
{
	return qmig_qmp_conn_call(c, cmd, NULL, NULL, -1);
}

/* Call with args built here (consumed) and no interesting return. */
static int call_own(struct qmig_qmp_conn *c, const char *cmd, struct json_object *args)
{
	int r;

	if (!args)
		return -ENOMEM;
	r = qmig_qmp_conn_call(c, cmd, args, NULL, -1);
	json_object_put(args);
	return r;
}

/* One-key argument objects, the most common shape. */
static struct json_object *arg_str(const char *key, const char *val)
{
	struct json_object *o = json_object_new_object();

	if (o && json_object_object_add(o, key, json_object_new_string(val))) {
		json_object_put(o);
		return NULL;
	}
	return o;
}

/* Call and keep the return if it has the wanted type. */
static int call_get(struct qmig_qmp_conn *c, const char *cmd, struct json_object *args,
		    enum json_type type, struct json_object **out)
{
	struct json_object *ret = NULL;
	int r = qmig_qmp_conn_call(c, cmd, args, &ret, -1);

	if (r < 0)
		return r;
	if (!json_object_is_type(ret, type)) {
		json_object_put(ret);
		return qm_qmp_conn_fail(c, -EPROTO, "%s returned %s, not %s", cmd,
					json_type_to_name(json_object_get_type(ret)),
					json_type_to_name(type));
	}
	*out = ret;
	return 0;
}

/* ---- run state --------------------------------------------------------- */

int qmig_cmd_query_status(struct qmig_qmp_conn *c, struct qmig_vm_status *out)
{
	struct json_object *ret;
	int r = call_get(c, "query-status", NULL, json_type_object, &ret);

	if (r < 0)
		return r;
	out->running = json_object_get_boolean(member(ret, "running"));
	str(out->status, sizeof(out->status), ret, "status");
	json_object_put(ret);
	return 0;
}

int qmig_cmd_stop(struct qmig_qmp_conn *c)
{
	return call0(c, "stop");
}

int qmig_cmd_cont(struct qmig_qmp_conn *c)
{
	return call0(c, "cont");
}

int qmig_cmd_quit(struct qmig_qmp_conn *c)
{
	return call0(c, "quit");
}

/* ---- migration --------------------------------------------------------- */

static void parse_ram(struct qmig_migrate_info *o, struct json_object *ram)
{
	struct json_object *mbps = member(ram, "mbps");

	o->has_ram = 1;
	o->ram_transferred = u64(ram, "transferred");
	o->ram_remaining = u64(ram, "remaining");
	o->ram_total = u64(ram, "total");
	o->ram_duplicate = u64(ram, "duplicate");
	o->ram_normal = u64(ram, "normal");
	o->ram_normal_bytes = u64(ram, "normal-bytes");
	o->ram_dirty_pages_rate = u64(ram, "dirty-pages-rate");
	o->ram_dirty_sync_count = u64(ram, "dirty-sync-count");
	o->ram_postcopy_requests = u64(ram, "postcopy-requests");
	o->ram_page_size = u64(ram, "page-size");
	o->ram_multifd_bytes = u64(ram, "multifd-bytes");
	o->ram_pages_per_second = u64(ram, "pages-per-second");
	o->ram_precopy_bytes = u64(ram, "precopy-bytes");
	o->ram_downtime_bytes = u64(ram, "downtime-bytes");
	o->ram_postcopy_bytes = u64(ram, "postcopy-bytes");
	/* An int when the rate is whole, a double otherwise. */
	o->ram_mbps = mbps ? json_object_get_double(mbps) : 0;
}

int qmig_cmd_query_migrate(struct qmig_qmp_conn *c, struct qmig_migrate_info *out)
{
	struct json_object *ret, *ram;
	int r = call_get(c, "query-migrate", NULL, json_type_object, &ret);

	if (r < 0)
		return r;
	memset(out, 0, sizeof(*out));
	str(out->status, sizeof(out->status), ret, "status");
	if (!out->status[0]) /* no migration ever: QEMU returns {} */
		snprintf(out->status, sizeof(out->status), "none");
	out->total_time_ms = u64(ret, "total-time");
	out->setup_time_ms = u64(ret, "setup-time");
	out->downtime_ms = u64(ret, "downtime");
	out->expected_downtime_ms = u64(ret, "expected-downtime");
	out->cpu_throttle_percentage = i64(ret, "cpu-throttle-percentage");
	str(out->error_desc, sizeof(out->error_desc), ret, "error-desc");
	ram = member(ret, "ram");
	if (ram)
		parse_ram(out, ram);
	json_object_put(ret);
	return 0;
}

int qmig_cmd_migrate_set_capabilities(struct qmig_qmp_conn *c, struct json_object *caps)
{
	struct json_object *args = json_object_new_object(), *list = json_object_new_array();

	if (!args || !list || !json_object_is_type(caps, json_type_object)) {
		json_object_put(args);
		json_object_put(list);
		return caps ? -ENOMEM : -EINVAL;
	}
	json_object_object_foreach(caps, name, val)
	{
		struct json_object *e = json_object_new_object();

		json_object_object_add(e, "capability", json_object_new_string(name));
		json_object_object_add(e, "state",
				       json_object_new_boolean(json_object_get_boolean(val)));
		json_object_array_add(list, e);
	}
	json_object_object_add(args, "capabilities", list);
	return call_own(c, "migrate-set-capabilities", args);
}

int qmig_cmd_query_migrate_capabilities(struct qmig_qmp_conn *c, struct json_object **out)
{
	struct json_object *ret, *caps;
	int r = call_get(c, "query-migrate-capabilities", NULL, json_type_array, &ret);

	if (r < 0)
		return r;
	caps = json_object_new_object();
	for (size_t i = 0; caps && i < json_object_array_length(ret); i++) {
		struct json_object *e = json_object_array_get_idx(ret, i);
		struct json_object *name = member(e, "capability");

		if (name && json_object_is_type(name, json_type_string))
			json_object_object_add(
			    caps, json_object_get_string(name),
			    json_object_new_boolean(json_object_get_boolean(member(e, "state"))));
	}
	json_object_put(ret);
	if (!caps)
		return -ENOMEM;
	*out = caps;
	return 0;
}

int qmig_cmd_migrate_set_parameters(struct qmig_qmp_conn *c, struct json_object *params)
{
	if (!params)
		return -EINVAL;
	return qmig_qmp_conn_call(c, "migrate-set-parameters", params, NULL, -1);
}

int qmig_cmd_query_migrate_parameters(struct qmig_qmp_conn *c, struct json_object **out)
{
	return call_get(c, "query-migrate-parameters", NULL, json_type_object, out);
}

int qmig_cmd_migrate(struct qmig_qmp_conn *c, const char *uri, int resume)
{
	struct json_object *args = arg_str("uri", uri);

	if (args && resume)
		json_object_object_add(args, "resume", json_object_new_boolean(1));
	return call_own(c, "migrate", args);
}

int qmig_cmd_migrate_incoming(struct qmig_qmp_conn *c, const char *uri)
{
	return call_own(c, "migrate-incoming", arg_str("uri", uri));
}

int qmig_cmd_migrate_cancel(struct qmig_qmp_conn *c)
{
	return call0(c, "migrate_cancel");
}

int qmig_cmd_migrate_recover(struct qmig_qmp_conn *c, const char *uri)
{
	return call_own(c, "migrate-recover", arg_str("uri", uri));
}

int qmig_cmd_migrate_pause(struct qmig_qmp_conn *c)
{
	return call0(c, "migrate-pause");
}

int qmig_cmd_migrate_start_postcopy(struct qmig_qmp_conn *c)
{
	return call0(c, "migrate-start-postcopy");
}

int qmig_cmd_migrate_continue(struct qmig_qmp_conn *c, const char *state)
{
	return call_own(c, "migrate-continue", arg_str("state", state));
}

/* ---- memory ------------------------------------------------------------ */

int qmig_cmd_pmemsave(struct qmig_qmp_conn *c, uint64_t addr, uint64_t size, const char *path)
{
	struct json_object *args = arg_str("filename", path);

	if (args) {
		json_object_object_add(args, "val", json_object_new_uint64(addr));
		json_object_object_add(args, "size", json_object_new_uint64(size));
	}
	return call_own(c, "pmemsave", args);
}

int qmig_cmd_query_memory_size(struct qmig_qmp_conn *c, uint64_t *base_memory)
{
	struct json_object *ret;
	int r = call_get(c, "query-memory-size-summary", NULL, json_type_object, &ret);

	if (r < 0)
		return r;
	*base_memory = u64(ret, "base-memory");
	json_object_put(ret);
	return 0;
}

/* ---- file descriptors -------------------------------------------------- */

int qmig_cmd_getfd(struct qmig_qmp_conn *c, int fd, const char *fdname)
{
	struct json_object *args = arg_str("fdname", fdname);
	int r;

	if (!args)
		return -ENOMEM;
	r = qmig_qmp_conn_call_fd(c, "getfd", args, fd, NULL, -1);
	json_object_put(args);
	return r;
}

int qmig_cmd_closefd(struct qmig_qmp_conn *c, const char *fdname)
{
	return call_own(c, "closefd", arg_str("fdname", fdname));
}

int qmig_cmd_add_fd(struct qmig_qmp_conn *c, int fd, int64_t fdset_id, int64_t *fdset_out,
		    int64_t *fd_out)
{
	struct json_object *args = json_object_new_object(), *ret = NULL;
	int r;

	if (!args)
		return -ENOMEM;
	if (fdset_id >= 0)
		json_object_object_add(args, "fdset-id", json_object_new_int64(fdset_id));
	r = qmig_qmp_conn_call_fd(c, "add-fd", args, fd, &ret, -1);
	json_object_put(args);
	if (r < 0)
		return r;
	if (fdset_out)
		*fdset_out = i64(ret, "fdset-id");
	if (fd_out)
		*fd_out = i64(ret, "fd");
	json_object_put(ret);
	return 0;
}

int qmig_cmd_remove_fd(struct qmig_qmp_conn *c, int64_t fdset_id)
{
	struct json_object *args = json_object_new_object();

	if (args)
		json_object_object_add(args, "fdset-id", json_object_new_int64(fdset_id));
	return call_own(c, "remove-fd", args);
}

/* ---- objects ----------------------------------------------------------- */

int qmig_cmd_object_add(struct qmig_qmp_conn *c, struct json_object *args)
{
	if (!args)
		return -EINVAL;
	return qmig_qmp_conn_call(c, "object-add", args, NULL, -1);
}

int qmig_cmd_object_del(struct qmig_qmp_conn *c, const char *id)
{
	return call_own(c, "object-del", arg_str("id", id));
}

/* ---- dirty rate -------------------------------------------------------- */

int qmig_cmd_calc_dirty_rate(struct qmig_qmp_conn *c, int64_t calc_time_s, const char *mode)
{
	struct json_object *args = json_object_new_object();

	if (args) {
		json_object_object_add(args, "calc-time", json_object_new_int64(calc_time_s));
		if (mode)
			json_object_object_add(args, "mode", json_object_new_string(mode));
	}
	return call_own(c, "calc-dirty-rate", args);
}

int qmig_cmd_query_dirty_rate(struct qmig_qmp_conn *c, struct qmig_dirty_rate *out)
{
	struct json_object *ret, *rate;
	int r = call_get(c, "query-dirty-rate", NULL, json_type_object, &ret);

	if (r < 0)
		return r;
	str(out->status, sizeof(out->status), ret, "status");
	rate = member(ret, "dirty-rate");
	out->dirty_rate_mib = rate ? json_object_get_int64(rate) : -1;
	out->calc_time_s = i64(ret, "calc-time");
	json_object_put(ret);
	return 0;
}

/* ---- host facts -------------------------------------------------------- */

int qmig_cmd_query_kvm(struct qmig_qmp_conn *c, int *enabled, int *present)
{
	struct json_object *ret;
	int r = call_get(c, "query-kvm", NULL, json_type_object, &ret);

	if (r < 0)
		return r;
	if (enabled)
		*enabled = json_object_get_boolean(member(ret, "enabled"));
	if (present)
		*present = json_object_get_boolean(member(ret, "present"));
	json_object_put(ret);
	return 0;
}

int qmig_cmd_query_machines(struct qmig_qmp_conn *c, struct json_object **out)
{
	return call_get(c, "query-machines", NULL, json_type_array, out);
}

int qmig_cmd_query_cpu_definitions(struct qmig_qmp_conn *c, struct json_object **out)
{
	return call_get(c, "query-cpu-definitions", NULL, json_type_array, out);
}
