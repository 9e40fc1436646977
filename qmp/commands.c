/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The QMP vocabulary of qmigrate: one short function per command, so what
 * we ask of QEMU is visible in one place. Each reply is read by a parser
 * (qm_parse_*, no I/O, fuzzed alone) through the typed accessors of
 * reply.c: unknown keys are ignored; a required member missing, null or
 * of another type is -EPROTO naming the command and the member.
 */
#include <errno.h>
#include <stdio.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "qmig_commands.h"
#include "qmp_int.h"
#include "qmp_reply.h"

/* ---- helpers ----------------------------------------------------------- */

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

/* ---- run state --------------------------------------------------------- */

/* Call cmd and read its return with parse(rd, ret, out); on a wrong shape
 * the connection's message names the command and member. out is written
 * only on success. */
#define CALL_PARSE(c, cmd, args, parse, out)                                         \
	({                                                                           \
		struct json_object *ret_ = NULL;                                     \
		struct qm_rd rd_;                                                    \
		__typeof__(*(out)) tmp_ = {0};                                           \
		int r_ = qmig_qmp_conn_call(c, cmd, args, &ret_, -1);                \
		if (r_ == 0) {                                                       \
			qm_rd_init(&rd_, cmd);                                       \
			r_ = parse(&rd_, ret_, &tmp_);                               \
			json_object_put(ret_);                                       \
			if (r_ < 0)                                                  \
				r_ = qm_call_rd(c, &rd_);                            \
			else                                                         \
				*(out) = tmp_;                                       \
		}                                                                    \
		r_;                                                                  \
	})

int qm_parse_query_status(struct qm_rd *rd, struct json_object *ret, struct qmig_vm_status *out)
{
	qm_rd_as_obj(rd, ret);
	out->running = qm_rd_bool(rd, ret, "running");
	qm_rd_strcpy(rd, ret, "status", out->status, sizeof(out->status));
	return rd->err;
}

int qmig_cmd_query_status(struct qmig_qmp_conn *c, struct qmig_vm_status *out)
{
	return CALL_PARSE(c, "query-status", NULL, qm_parse_query_status, out);
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

/* Stable since QEMU 2.x: transferred, remaining, total. The rest came
 * and went across versions: optional, but typed when present. */
static void parse_ram(struct qm_rd *rd, struct qmig_migrate_info *o, struct json_object *ram)
{
	o->has_ram = 1;
	o->ram_transferred = qm_rd_u64(rd, ram, "transferred");
	o->ram_remaining = qm_rd_u64(rd, ram, "remaining");
	o->ram_total = qm_rd_u64(rd, ram, "total");
	o->ram_duplicate = qm_rd_opt_u64(rd, ram, "duplicate", 0);
	o->ram_normal = qm_rd_opt_u64(rd, ram, "normal", 0);
	o->ram_normal_bytes = qm_rd_opt_u64(rd, ram, "normal-bytes", 0);
	o->ram_dirty_pages_rate = qm_rd_opt_u64(rd, ram, "dirty-pages-rate", 0);
	o->ram_dirty_sync_count = qm_rd_opt_u64(rd, ram, "dirty-sync-count", 0);
	o->ram_postcopy_requests = qm_rd_opt_u64(rd, ram, "postcopy-requests", 0);
	o->ram_page_size = qm_rd_opt_u64(rd, ram, "page-size", 0);
	o->ram_multifd_bytes = qm_rd_opt_u64(rd, ram, "multifd-bytes", 0);
	o->ram_pages_per_second = qm_rd_opt_u64(rd, ram, "pages-per-second", 0);
	o->ram_precopy_bytes = qm_rd_opt_u64(rd, ram, "precopy-bytes", 0);
	o->ram_downtime_bytes = qm_rd_opt_u64(rd, ram, "downtime-bytes", 0);
	o->ram_postcopy_bytes = qm_rd_opt_u64(rd, ram, "postcopy-bytes", 0);
	/* An int when the rate is whole, a double otherwise. */
	o->ram_mbps = qm_rd_opt_num(rd, ram, "mbps", 0);
}

int qm_parse_query_migrate(struct qm_rd *rd, struct json_object *ret,
			   struct qmig_migrate_info *out)
{
	struct json_object *ram;

	memset(out, 0, sizeof(*out));
	qm_rd_as_obj(rd, ret);
	/* no migration ever: QEMU returns {} */
	qm_rd_opt_strcpy(rd, ret, "status", out->status, sizeof(out->status), "none");
	out->total_time_ms = qm_rd_opt_u64(rd, ret, "total-time", 0);
	out->setup_time_ms = qm_rd_opt_u64(rd, ret, "setup-time", 0);
	out->downtime_ms = qm_rd_opt_u64(rd, ret, "downtime", 0);
	out->expected_downtime_ms = qm_rd_opt_u64(rd, ret, "expected-downtime", 0);
	out->cpu_throttle_percentage = qm_rd_opt_i64(rd, ret, "cpu-throttle-percentage", 0);
	/* QEMU's text, for people: cut to fit rather than refused. */
	snprintf(out->error_desc, sizeof(out->error_desc), "%s",
		 qm_rd_opt_str(rd, ret, "error-desc", ""));
	ram = qm_rd_opt_obj(rd, ret, "ram");
	if (ram)
		parse_ram(rd, out, ram);
	return rd->err;
}

int qmig_cmd_query_migrate(struct qmig_qmp_conn *c, struct qmig_migrate_info *out)
{
	return CALL_PARSE(c, "query-migrate", NULL, qm_parse_query_migrate, out);
}

int qmig_cmd_migrate_set_capabilities(struct qmig_qmp_conn *c, struct json_object *caps)
{
	struct json_object *args = json_object_new_object(), *list = json_object_new_array(), *val;
	struct qm_rd_iter it;
	struct qm_rd rd;
	const char *name;

	if (!args || !list || !json_object_is_type(caps, json_type_object)) {
		json_object_put(args);
		json_object_put(list);
		return caps ? -ENOMEM : -EINVAL;
	}
	qm_rd_init(&rd, "migrate-set-capabilities");
	qm_rd_iter_init(&rd, caps, &it);
	while (qm_rd_iter_next(&it, &name, &val)) {
		struct json_object *e = json_object_new_object();
		int state = qm_rd_bool(&rd, caps, name);

		json_object_object_add(e, "capability", json_object_new_string(name));
		json_object_object_add(e, "state", json_object_new_boolean(state));
		json_object_array_add(list, e);
	}
	json_object_object_add(args, "capabilities", list);
	if (rd.err) { /* the caller's object: each value must be a boolean */
		json_object_put(args);
		return -EINVAL;
	}
	return call_own(c, "migrate-set-capabilities", args);
}

/* [{"capability": name, "state": bool}, ...] into {"name": bool, ...}. */
int qm_parse_query_migrate_capabilities(struct qm_rd *rd, struct json_object *ret,
					struct json_object **out)
{
	struct json_object *caps = json_object_new_object();
	size_t n = qm_rd_len(rd, ret);

	if (!caps)
		return -ENOMEM;
	for (size_t i = 0; i < n && !rd->err; i++) {
		struct json_object *e = qm_rd_idx_obj(rd, ret, i);
		const char *name = qm_rd_str(rd, e, "capability");
		int state = qm_rd_bool(rd, e, "state");

		if (!rd->err &&
		    json_object_object_add(caps, name, json_object_new_boolean(state))) {
			json_object_put(caps);
			return -ENOMEM;
		}
	}
	if (rd->err) {
		json_object_put(caps);
		return rd->err;
	}
	*out = caps;
	return 0;
}

int qmig_cmd_query_migrate_capabilities(struct qmig_qmp_conn *c, struct json_object **out)
{
	return CALL_PARSE(c, "query-migrate-capabilities", NULL,
			  qm_parse_query_migrate_capabilities, out);
}

int qmig_cmd_migrate_set_parameters(struct qmig_qmp_conn *c, struct json_object *params)
{
	if (!params)
		return -EINVAL;
	return qmig_qmp_conn_call(c, "migrate-set-parameters", params, NULL, -1);
}

/* The engine reads these as numbers, strings and flags (and saves them to
 * restore them on rollback): no null, no negative or non-finite number. */
int qm_parse_query_migrate_parameters(struct qm_rd *rd, struct json_object *ret,
				      struct json_object **out)
{
	struct qm_rd_iter it;
	struct json_object *v;
	const char *k;

	if (!qm_rd_as_obj(rd, ret))
		return rd->err;
	qm_rd_iter_init(rd, ret, &it);
	while (!rd->err && qm_rd_iter_next(&it, &k, &v)) {
		if (!v)
			qm_rd_fail(rd, "member '%s' is null", k);
		else if (json_object_is_type(v, json_type_int))
			qm_rd_u64(rd, ret, k);
		else if (json_object_is_type(v, json_type_double))
			qm_rd_num(rd, ret, k);
	}
	if (rd->err)
		return rd->err;
	*out = json_object_get(ret);
	return 0;
}

int qmig_cmd_query_migrate_parameters(struct qmig_qmp_conn *c, struct json_object **out)
{
	return CALL_PARSE(c, "query-migrate-parameters", NULL, qm_parse_query_migrate_parameters,
			  out);
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

int qmig_cmd_pmemsave(struct qmig_qmp_conn *c, uint64_t addr, uint64_t size, const char *path,
		      int timeout_ms)
{
	struct json_object *args = arg_str("filename", path);
	int r;

	if (!args)
		return -ENOMEM;
	json_object_object_add(args, "val", json_object_new_uint64(addr));
	json_object_object_add(args, "size", json_object_new_uint64(size));
	r = qmig_qmp_conn_call(c, "pmemsave", args, NULL, timeout_ms);
	json_object_put(args);
	return r;
}

int qmig_cmd_inject_nmi(struct qmig_qmp_conn *c)
{
	return call0(c, "inject-nmi");
}

int qm_parse_query_memory_size(struct qm_rd *rd, struct json_object *ret, uint64_t *base_memory)
{
	qm_rd_as_obj(rd, ret);
	*base_memory = qm_rd_u64(rd, ret, "base-memory");
	return rd->err;
}

int qmig_cmd_query_memory_size(struct qmig_qmp_conn *c, uint64_t *base_memory)
{
	return CALL_PARSE(c, "query-memory-size-summary", NULL, qm_parse_query_memory_size,
			  base_memory);
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

int qm_parse_add_fd(struct qm_rd *rd, struct json_object *ret, struct qm_add_fd *out)
{
	qm_rd_as_obj(rd, ret);
	out->fdset_id = qm_rd_i64(rd, ret, "fdset-id");
	out->fd = qm_rd_i64(rd, ret, "fd");
	return rd->err;
}

int qmig_cmd_add_fd(struct qmig_qmp_conn *c, int fd, int64_t fdset_id, int64_t *fdset_out,
		    int64_t *fd_out)
{
	struct json_object *args = json_object_new_object(), *ret = NULL;
	struct qm_add_fd res;
	struct qm_rd rd;
	int r;

	if (!args)
		return -ENOMEM;
	if (fdset_id >= 0)
		json_object_object_add(args, "fdset-id", json_object_new_int64(fdset_id));
	r = qmig_qmp_conn_call_fd(c, "add-fd", args, fd, &ret, -1);
	json_object_put(args);
	if (r < 0)
		return r;
	qm_rd_init(&rd, "add-fd");
	r = qm_parse_add_fd(&rd, ret, &res);
	json_object_put(ret);
	if (r < 0)
		return qm_call_rd(c, &rd);
	if (fdset_out)
		*fdset_out = res.fdset_id;
	if (fd_out)
		*fd_out = res.fd;
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

int qmig_cmd_calc_dirty_rate_pages(struct qmig_qmp_conn *c, int64_t calc_time_s, const char *mode,
				   int64_t sample_pages)
{
	struct json_object *args = json_object_new_object();

	if (args) {
		json_object_object_add(args, "calc-time", json_object_new_int64(calc_time_s));
		if (sample_pages > 0)
			json_object_object_add(args, "sample-pages",
					       json_object_new_int64(sample_pages));
		if (mode)
			json_object_object_add(args, "mode", json_object_new_string(mode));
	}
	return call_own(c, "calc-dirty-rate", args);
}

int qmig_cmd_calc_dirty_rate(struct qmig_qmp_conn *c, int64_t calc_time_s, const char *mode)
{
	return qmig_cmd_calc_dirty_rate_pages(c, calc_time_s, mode, 0);
}

int qmig_cmd_set_vcpu_dirty_limit(struct qmig_qmp_conn *c, int64_t dirty_rate_mib)
{
	struct json_object *args = json_object_new_object();

	if (args)
		json_object_object_add(args, "dirty-rate", json_object_new_int64(dirty_rate_mib));
	return call_own(c, "set-vcpu-dirty-limit", args);
}

int qm_parse_query_dirty_rate(struct qm_rd *rd, struct json_object *ret,
			      struct qmig_dirty_rate *out)
{
	qm_rd_as_obj(rd, ret);
	qm_rd_strcpy(rd, ret, "status", out->status, sizeof(out->status));
	out->dirty_rate_mib = qm_rd_opt_i64(rd, ret, "dirty-rate", -1);
	out->calc_time_s = qm_rd_opt_i64(rd, ret, "calc-time", 0);
	return rd->err;
}

int qmig_cmd_query_dirty_rate(struct qmig_qmp_conn *c, struct qmig_dirty_rate *out)
{
	return CALL_PARSE(c, "query-dirty-rate", NULL, qm_parse_query_dirty_rate, out);
}

/* ---- host facts -------------------------------------------------------- */

int qm_parse_query_kvm(struct qm_rd *rd, struct json_object *ret, struct qm_kvm *out)
{
	qm_rd_as_obj(rd, ret);
	out->enabled = qm_rd_bool(rd, ret, "enabled");
	out->present = qm_rd_bool(rd, ret, "present");
	return rd->err;
}

int qmig_cmd_query_kvm(struct qmig_qmp_conn *c, int *enabled, int *present)
{
	struct qm_kvm k = {0, 0};
	int r = CALL_PARSE(c, "query-kvm", NULL, qm_parse_query_kvm, &k);

	if (r < 0)
		return r;
	if (enabled)
		*enabled = k.enabled;
	if (present)
		*present = k.present;
	return 0;
}

int qmig_cmd_query_machines(struct qmig_qmp_conn *c, struct json_object **out)
{
	return qm_call_get(c, "query-machines", NULL, json_type_array, out);
}

int qmig_cmd_query_cpu_definitions(struct qmig_qmp_conn *c, struct json_object **out)
{
	return qm_call_get(c, "query-cpu-definitions", NULL, json_type_array, out);
}

int qmig_cmd_query_cpus_fast(struct qmig_qmp_conn *c, struct json_object **out)
{
	return qm_call_get(c, "query-cpus-fast", NULL, json_type_array, out);
}

int qmig_cmd_query_block_raw(struct qmig_qmp_conn *c, struct json_object **out)
{
	return qm_call_get(c, "query-block", NULL, json_type_array, out);
}

/* ---- block devices, jobs and NBD (storage migration) ------------------- */

#define QM_MAX_BLOCK 64

/* "/machine/peripheral/ID/virtio-backend" -> "ID"; other paths as they are. */
static void qdev_id(const char *qdev, char *dst, size_t n)
{
	const char *p = "/machine/peripheral/", *s, *e;

	if (!strncmp(qdev, p, strlen(p))) {
		s = qdev + strlen(p);
		e = strchr(s, '/');
		snprintf(dst, n, "%.*s", (int)(e ? e - s : (ptrdiff_t)strlen(s)), s);
		return;
	}
	snprintf(dst, n, "%s", qdev);
}

int qm_parse_query_block(struct qm_rd *rd, struct json_object *ret, struct qmig_block_dev *out,
			 int *n)
{
	size_t len = qm_rd_len(rd, qm_rd_as_arr(rd, ret));

	*n = 0;
	if (len > QM_MAX_BLOCK)
		return qm_rd_fail(rd, "%zu block devices, more than %d", len, QM_MAX_BLOCK);
	for (size_t i = 0; i < len && !rd->err; i++) {
		struct json_object *d = qm_rd_idx_obj(rd, ret, i), *ins, *img;
		struct qmig_block_dev *b = &out[*n];
		const char *dev, *qdev;

		memset(b, 0, sizeof(*b));
		dev = qm_rd_opt_str(rd, d, "device", "");
		qdev = qm_rd_opt_str(rd, d, "qdev", "");
		if (dev && *dev)
			snprintf(b->name, sizeof(b->name), "%s", dev);
		else if (qdev)
			qdev_id(qdev, b->name, sizeof(b->name));
		b->removable = qm_rd_opt_bool(rd, d, "removable", 0);
		ins = qm_rd_opt_obj(rd, d, "inserted");
		if (ins) {
			b->inserted = 1;
			b->ro = qm_rd_bool(rd, ins, "ro");
			qm_rd_opt_strcpy(rd, ins, "node-name", b->node, sizeof(b->node), "");
			qm_rd_opt_strcpy(rd, ins, "file", b->file, sizeof(b->file), "");
			qm_rd_opt_strcpy(rd, ins, "drv", b->format, sizeof(b->format), "");
			b->backing_depth = (int)qm_rd_opt_i64(rd, ins, "backing_file_depth", 0);
			img = qm_rd_opt_obj(rd, ins, "image");
			if (img)
				b->virtual_size = qm_rd_u64(rd, img, "virtual-size");
		}
		if (!rd->err)
			(*n)++;
	}
	return rd->err;
}

int qmig_cmd_query_block(struct qmig_qmp_conn *c, struct qmig_block_dev **out, int *n)
{
	struct json_object *ret = NULL;
	struct qmig_block_dev *b;
	struct qm_rd rd;
	int r = qmig_qmp_conn_call(c, "query-block", NULL, &ret, -1);

	if (r < 0)
		return r;
	b = calloc(QM_MAX_BLOCK, sizeof(*b));
	if (!b) {
		json_object_put(ret);
		return -ENOMEM;
	}
	qm_rd_init(&rd, "query-block");
	r = qm_parse_query_block(&rd, ret, b, n);
	json_object_put(ret);
	if (r < 0) {
		free(b);
		return qm_call_rd(c, &rd);
	}
	*out = b;
	return 0;
}

int qm_parse_query_block_jobs(struct qm_rd *rd, struct json_object *ret,
			      struct qmig_block_job *out, int *n)
{
	size_t len = qm_rd_len(rd, qm_rd_as_arr(rd, ret));

	*n = 0;
	if (len > QM_MAX_BLOCK)
		return qm_rd_fail(rd, "%zu block jobs, more than %d", len, QM_MAX_BLOCK);
	for (size_t i = 0; i < len && !rd->err; i++) {
		struct json_object *j = qm_rd_idx_obj(rd, ret, i);
		struct qmig_block_job *b = &out[*n];

		memset(b, 0, sizeof(*b));
		qm_rd_strcpy(rd, j, "device", b->id, sizeof(b->id));
		qm_rd_opt_strcpy(rd, j, "type", b->type, sizeof(b->type), "");
		qm_rd_opt_strcpy(rd, j, "status", b->status, sizeof(b->status), "");
		/* QEMU's text, for people: cut to fit. */
		snprintf(b->error, sizeof(b->error), "%s", qm_rd_opt_str(rd, j, "error", ""));
		b->len = qm_rd_u64(rd, j, "len");
		b->offset = qm_rd_u64(rd, j, "offset");
		b->speed = qm_rd_opt_u64(rd, j, "speed", 0);
		b->ready = qm_rd_opt_bool(rd, j, "ready", 0);
		if (!rd->err)
			(*n)++;
	}
	return rd->err;
}

int qmig_cmd_query_block_jobs(struct qmig_qmp_conn *c, struct qmig_block_job **out, int *n)
{
	struct json_object *ret = NULL;
	struct qmig_block_job *b;
	struct qm_rd rd;
	int r = qmig_qmp_conn_call(c, "query-block-jobs", NULL, &ret, -1);

	if (r < 0)
		return r;
	b = calloc(QM_MAX_BLOCK, sizeof(*b));
	if (!b) {
		json_object_put(ret);
		return -ENOMEM;
	}
	qm_rd_init(&rd, "query-block-jobs");
	r = qm_parse_query_block_jobs(&rd, ret, b, n);
	json_object_put(ret);
	if (r < 0) {
		free(b);
		return qm_call_rd(c, &rd);
	}
	*out = b;
	return 0;
}

/* An array of objects each with string member key: the values, one a line. */
int qm_parse_name_list(struct qm_rd *rd, struct json_object *ret, const char *key, char *buf,
		       size_t len)
{
	size_t n = qm_rd_len(rd, qm_rd_as_arr(rd, ret)), o = 0;

	if (len)
		buf[0] = 0;
	for (size_t i = 0; i < n && !rd->err; i++) {
		const char *v = qm_rd_opt_str(rd, qm_rd_idx_obj(rd, ret, i), key, NULL);
		size_t l = v ? strlen(v) : 0;

		if (!v || rd->err)
			continue;
		if (o + l + 2 > len)
			return qm_rd_fail(rd, "more names than fit in %zu bytes", len);
		memcpy(buf + o, v, l);
		o += l;
		buf[o++] = '\n';
		buf[o] = 0;
	}
	return rd->err;
}

static int name_list(struct qmig_qmp_conn *c, const char *cmd, struct json_object *args,
		     const char *key, char *buf, size_t len)
{
	struct json_object *ret = NULL;
	struct qm_rd rd;
	int r = qmig_qmp_conn_call(c, cmd, args, &ret, -1);

	json_object_put(args);
	if (r < 0)
		return r;
	qm_rd_init(&rd, cmd);
	r = qm_parse_name_list(&rd, ret, key, buf, len);
	json_object_put(ret);
	return r < 0 ? qm_call_rd(c, &rd) : 0;
}

int qmig_cmd_query_node_names(struct qmig_qmp_conn *c, char *names, size_t len)
{
	struct json_object *args = json_object_new_object();

	if (args)
		json_object_object_add(args, "flat", json_object_new_boolean(1));
	return name_list(c, "query-named-block-nodes", args, "node-name", names, len);
}

int qmig_cmd_query_export_ids(struct qmig_qmp_conn *c, char *ids, size_t len)
{
	return name_list(c, "query-block-exports", NULL, "id", ids, len);
}

int qmig_cmd_blockdev_add(struct qmig_qmp_conn *c, struct json_object *args)
{
	if (!args)
		return -EINVAL;
	return qmig_qmp_conn_call(c, "blockdev-add", args, NULL, -1);
}

int qmig_cmd_blockdev_del(struct qmig_qmp_conn *c, const char *node)
{
	return call_own(c, "blockdev-del", arg_str("node-name", node));
}

int qmig_cmd_block_job_cancel(struct qmig_qmp_conn *c, const char *job, int force)
{
	struct json_object *args = arg_str("device", job);

	if (args)
		json_object_object_add(args, "force", json_object_new_boolean(force));
	return call_own(c, "block-job-cancel", args);
}

int qmig_cmd_job_dismiss(struct qmig_qmp_conn *c, const char *job)
{
	return call_own(c, "job-dismiss", arg_str("id", job));
}

int qmig_cmd_block_job_set_speed(struct qmig_qmp_conn *c, const char *job, uint64_t speed)
{
	struct json_object *args = arg_str("device", job);

	if (args)
		json_object_object_add(args, "speed", json_object_new_int64((int64_t)speed));
	return call_own(c, "block-job-set-speed", args);
}

int qmig_cmd_nbd_server_stop(struct qmig_qmp_conn *c)
{
	return call0(c, "nbd-server-stop");
}

int qmig_cmd_block_export_del(struct qmig_qmp_conn *c, const char *id, int force)
{
	struct json_object *args = arg_str("id", id);

	if (args && force)
		json_object_object_add(args, "mode", json_object_new_string("hard"));
	return call_own(c, "block-export-del", args);
}

int qmig_cmd_yank_block_node(struct qmig_qmp_conn *c, const char *node)
{
	struct json_object *args = json_object_new_object(), *list = json_object_new_array(),
			   *inst = arg_str("type", "block-node");

	if (!args || !list || !inst) {
		json_object_put(args);
		json_object_put(list);
		json_object_put(inst);
		return -ENOMEM;
	}
	json_object_object_add(inst, "node-name", json_object_new_string(node));
	json_object_array_add(list, inst);
	json_object_object_add(args, "instances", list);
	return call_own(c, "yank", args);
}

/* Storage verification across hosts (engine/storage): an NBD server on
 * HOST:PORT (inet, no TLS: bound to the loopback of the QEMU's host) and
 * a read-only export of one node, named as the disk. */
int qmig_cmd_nbd_server_start_inet(struct qmig_qmp_conn *c, const char *host, unsigned port)
{
	struct json_object *args = json_object_new_object(), *addr = json_object_new_object(),
			   *data = json_object_new_object();
	char p[16];

	if (!args || !addr || !data) {
		json_object_put(args);
		json_object_put(addr);
		json_object_put(data);
		return -ENOMEM;
	}
	snprintf(p, sizeof(p), "%u", port);
	json_object_object_add(data, "host", json_object_new_string(host));
	json_object_object_add(data, "port", json_object_new_string(p));
	json_object_object_add(addr, "type", json_object_new_string("inet"));
	json_object_object_add(addr, "data", data);
	json_object_object_add(args, "addr", addr);
	return call_own(c, "nbd-server-start", args);
}

int qmig_cmd_block_export_add_ro(struct qmig_qmp_conn *c, const char *id, const char *node,
				 const char *name)
{
	struct json_object *args = arg_str("id", id);

	if (!args)
		return -ENOMEM;
	json_object_object_add(args, "type", json_object_new_string("nbd"));
	json_object_object_add(args, "node-name", json_object_new_string(node));
	json_object_object_add(args, "name", json_object_new_string(name));
	json_object_object_add(args, "writable", json_object_new_boolean(0));
	return call_own(c, "block-export-add", args);
}

/* ---- commands whose arguments the caller builds ----------------------- */

/* The plan's steps carry their arguments as built (they are journaled and
 * shown by --dry-run): these send them as they are. args is borrowed. */
static int call_args(struct qmig_qmp_conn *c, const char *cmd, struct json_object *args)
{
	if (!args)
		return -EINVAL;
	return qmig_qmp_conn_call(c, cmd, args, NULL, -1);
}

int qmig_cmd_migrate_set_capabilities_args(struct qmig_qmp_conn *c, struct json_object *args)
{
	return call_args(c, "migrate-set-capabilities", args);
}

int qmig_cmd_migrate_args(struct qmig_qmp_conn *c, struct json_object *args)
{
	return call_args(c, "migrate", args);
}

int qmig_cmd_migrate_incoming_args(struct qmig_qmp_conn *c, struct json_object *args)
{
	return call_args(c, "migrate-incoming", args);
}

int qmig_cmd_nbd_server_start(struct qmig_qmp_conn *c, struct json_object *args)
{
	return call_args(c, "nbd-server-start", args);
}

int qmig_cmd_block_export_add(struct qmig_qmp_conn *c, struct json_object *args)
{
	return call_args(c, "block-export-add", args);
}

int qmig_cmd_blockdev_mirror(struct qmig_qmp_conn *c, struct json_object *args)
{
	return call_args(c, "blockdev-mirror", args);
}

int qmig_cmd_block_job_change(struct qmig_qmp_conn *c, struct json_object *args)
{
	return call_args(c, "block-job-change", args);
}

/* ---- QOM and the version ---------------------------------------------- */

int qmig_cmd_qom_get(struct qmig_qmp_conn *c, const char *path, const char *property,
		     struct json_object **out)
{
	struct json_object *args = arg_str("path", path), *ret = NULL;
	int r;

	if (!out || !property) {
		json_object_put(args);
		return -EINVAL;
	}
	if (!args || json_object_object_add(args, "property", json_object_new_string(property))) {
		json_object_put(args);
		return -ENOMEM;
	}
	r = qmig_qmp_conn_call(c, "qom-get", args, &ret, -1);
	json_object_put(args);
	if (r == 0)
		*out = ret;
	return r;
}

int qmig_cmd_qom_list(struct qmig_qmp_conn *c, const char *path, struct json_object **out)
{
	struct json_object *args = arg_str("path", path), *ret = NULL;
	struct qm_rd rd;
	int r;

	if (!out) {
		json_object_put(args);
		return -EINVAL;
	}
	if (!args)
		return -ENOMEM;
	r = qmig_qmp_conn_call(c, "qom-list", args, &ret, -1);
	json_object_put(args);
	if (r < 0)
		return r;
	qm_rd_init(&rd, "qom-list");
	if (!qm_rd_as_arr(&rd, ret)) {
		json_object_put(ret);
		return qm_call_rd(c, &rd);
	}
	*out = ret;
	return 0;
}

static int parse_query_version(struct qm_rd *rd, struct json_object *ret,
			       struct qmig_qemu_version *out)
{
	struct json_object *q = qm_rd_obj(rd, qm_rd_as_obj(rd, ret), "qemu");
	int64_t ma = qm_rd_i64(rd, q, "major"), mi = qm_rd_i64(rd, q, "minor"),
		mc = qm_rd_i64(rd, q, "micro");

	if (rd->err)
		return -EPROTO;
	if (ma < 0 || ma > 999 || mi < 0 || mi > 99 || mc < 0 || mc > 99) {
		return qm_rd_fail(rd, "qemu: a version number out of range");
	}
	out->major = (unsigned)ma;
	out->minor = (unsigned)mi;
	out->micro = (unsigned)mc;
	return 0;
}

int qmig_cmd_query_version(struct qmig_qmp_conn *c, struct qmig_qemu_version *out)
{
	return CALL_PARSE(c, "query-version", NULL, parse_query_version, out);
}

int qmig_cmd_query_migrate_raw(struct qmig_qmp_conn *c, struct json_object **out)
{
	if (!out)
		return -EINVAL;
	return qmig_qmp_conn_call(c, "query-migrate", NULL, out, -1);
}
