/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Typed access to what a QMP peer sent. Every byte from QEMU is hostile:
 * a member may be missing, null, or of another type than the schema says,
 * and json-c aborts (array length of a non-array) or returns NULL strings
 * when asked the wrong question. So no code outside this file calls a
 * json-c getter on a peer's object; it asks here, with the type it wants.
 *
 * A reader (struct qm_rd) carries the command name and the first failure.
 * Accessors never fail loudly: on a wrong shape they record
 * "CMD: member 'KEY' is a string, not an integer", set rd->err to -EPROTO
 * and return a neutral value (NULL, 0); every later accessor on the same
 * reader returns neutral values too. The caller checks rd->err once, at
 * the end, so a parser reads like a description of the reply.
 *
 * Rule (grep-able): json_object_get_*, json_object_array_*,
 * json_object_object_get* and json_object_object_foreach appear on a
 * peer's objects only in qmp/reply.c. Internal to the library (qm_ names).
 */
#ifndef QM_QMP_REPLY_H
#define QM_QMP_REPLY_H

#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

#include "qmig_qmp.h"

struct qm_rd {
	const char *cmd; /* for messages: the command or event read */
	int err;         /* 0, or -EPROTO after the first wrong shape */
	char msg[256];
};

void qm_rd_init(struct qm_rd *rd, const char *cmd);
/* Record a failure found by the caller (format like printf); returns rd->err. */
int qm_rd_fail(struct qm_rd *rd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The value itself must have a type: "CMD returned a string, not an array". */
struct json_object *qm_rd_as_obj(struct qm_rd *rd, struct json_object *v);
struct json_object *qm_rd_as_arr(struct qm_rd *rd, struct json_object *v);

/* Required members of object o: missing, null or another type fail. */
struct json_object *qm_rd_obj(struct qm_rd *rd, struct json_object *o, const char *key);
struct json_object *qm_rd_arr(struct qm_rd *rd, struct json_object *o, const char *key);
const char *qm_rd_str(struct qm_rd *rd, struct json_object *o, const char *key);
int qm_rd_bool(struct qm_rd *rd, struct json_object *o, const char *key);
int64_t qm_rd_i64(struct qm_rd *rd, struct json_object *o, const char *key);
/* A non-negative integer. */
uint64_t qm_rd_u64(struct qm_rd *rd, struct json_object *o, const char *key);
/* An integer or a finite double. */
double qm_rd_num(struct qm_rd *rd, struct json_object *o, const char *key);
/* A string copied into dst; longer than n-1 bytes fails too. */
void qm_rd_strcpy(struct qm_rd *rd, struct json_object *o, const char *key, char *dst, size_t n);

/* Optional members: absent gives def (and *present = 0 where asked);
 * present but null or of another type fails. */
int qm_rd_has(struct qm_rd *rd, struct json_object *o, const char *key);
/* A member of any type, NULL when absent or null (the caller checks it). */
struct json_object *qm_rd_any(struct qm_rd *rd, struct json_object *o, const char *key);
struct json_object *qm_rd_opt_obj(struct qm_rd *rd, struct json_object *o, const char *key);
struct json_object *qm_rd_opt_arr(struct qm_rd *rd, struct json_object *o, const char *key);
const char *qm_rd_opt_str(struct qm_rd *rd, struct json_object *o, const char *key,
			  const char *def);
int qm_rd_opt_bool(struct qm_rd *rd, struct json_object *o, const char *key, int def);
int64_t qm_rd_opt_i64(struct qm_rd *rd, struct json_object *o, const char *key, int64_t def);
uint64_t qm_rd_opt_u64(struct qm_rd *rd, struct json_object *o, const char *key, uint64_t def);
double qm_rd_opt_num(struct qm_rd *rd, struct json_object *o, const char *key, double def);
void qm_rd_opt_strcpy(struct qm_rd *rd, struct json_object *o, const char *key, char *dst,
		      size_t n, const char *def);

/* Arrays: the length (0 for a failed reader), and element i with a type. */
size_t qm_rd_len(struct qm_rd *rd, struct json_object *arr);
struct json_object *qm_rd_idx_obj(struct qm_rd *rd, struct json_object *arr, size_t i);
const char *qm_rd_idx_str(struct qm_rd *rd, struct json_object *arr, size_t i);

/* Iterate an object's members: *key and *val of member i in insertion
 * order; 0 when there are no more. Keys are json-c's (NUL-terminated). */
struct qm_rd_iter {
	struct lh_entry *e;
};
void qm_rd_iter_init(struct qm_rd *rd, struct json_object *o, struct qm_rd_iter *it);
int qm_rd_iter_next(struct qm_rd_iter *it, const char **key, struct json_object **val);

/* v itself when it has type t, else NULL with rd failed. */
struct json_object *qm_rd_as(struct qm_rd *rd, struct json_object *v, enum json_type t);
/* A value's type name for messages: "an object", "null", ... */
const char *qm_rd_type_name(struct json_object *v);

/* Calls with typed returns (conn.c: above the readers, so that reply.c
 * calls nothing back). qm_call_get: the return value must have
 * type; *out is a new reference. qm_call_rd: reports a reader's failure
 * on the connection (returns rd->err, 0 if none). */
int qm_call_get(struct qmig_qmp_conn *c, const char *cmd, struct json_object *args,
		enum json_type type, struct json_object **out);
int qm_call_rd(struct qmig_qmp_conn *c, const struct qm_rd *rd);

/* The reply parsers of commands.c: no I/O, so they are fuzzed alone.
 * Each returns 0 or rd->err; out is filled as far as read. */
struct qmig_vm_status;
struct qmig_migrate_info;
struct qmig_dirty_rate;
struct qm_add_fd {
	int64_t fdset_id, fd;
};
struct qm_kvm {
	int enabled, present;
};
int qm_parse_query_status(struct qm_rd *rd, struct json_object *ret, struct qmig_vm_status *out);
int qm_parse_query_migrate(struct qm_rd *rd, struct json_object *ret,
			   struct qmig_migrate_info *out);
int qm_parse_query_migrate_capabilities(struct qm_rd *rd, struct json_object *ret,
					struct json_object **out);
int qm_parse_query_migrate_parameters(struct qm_rd *rd, struct json_object *ret,
				      struct json_object **out);
int qm_parse_query_memory_size(struct qm_rd *rd, struct json_object *ret, uint64_t *base_memory);
int qm_parse_add_fd(struct qm_rd *rd, struct json_object *ret, struct qm_add_fd *out);
int qm_parse_query_dirty_rate(struct qm_rd *rd, struct json_object *ret,
			      struct qmig_dirty_rate *out);
int qm_parse_query_kvm(struct qm_rd *rd, struct json_object *ret, struct qm_kvm *out);
/* Storage migration: query-block, query-block-jobs (out has room for 64;
 * more is a failure), and a list of objects' string member key as lines. */
struct qmig_block_dev;
struct qmig_block_job;
int qm_parse_query_block(struct qm_rd *rd, struct json_object *ret, struct qmig_block_dev *out,
			 int *n);
int qm_parse_query_block_jobs(struct qm_rd *rd, struct json_object *ret,
			      struct qmig_block_job *out, int *n);
int qm_parse_name_list(struct qm_rd *rd, struct json_object *ret, const char *key, char *buf,
		       size_t len);

/* Build a schema from query-qmp-schema's return; a wrong shape is
 * rd->err with the entity named. */
struct qmig_schema;
int qm_schema_from_json_rd(struct qmig_schema **out, struct json_object *schema_array,
			   struct qm_rd *rd);

#endif
