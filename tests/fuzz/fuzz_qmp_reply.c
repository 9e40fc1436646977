/* libFuzzer: the typed accessors and every reply parser of commands.c,
 * one JSON value in, handed to each parser as its command's "return".
 * Nothing may crash, leak or read out of bounds, whatever the shape. */
#include <stdio.h>
#include <stdlib.h>

#include "fuzz_json.h"
#include "qmig_commands.h"
#include "qmp_reply.h"

/* Every accessor on every member, with a small copy buffer. */
static void walk(struct json_object *v, int depth)
{
	struct qm_rd rd;
	char small[8];

	if (depth > 8)
		return;
	qm_rd_init(&rd, "walk");
	if (json_object_is_type(v, json_type_object)) {
		struct qm_rd_iter it;
		struct json_object *m;
		const char *k;

		qm_rd_iter_init(&rd, v, &it);
		while (qm_rd_iter_next(&it, &k, &m)) {
			struct qm_rd r2;

			qm_rd_init(&r2, k);
			qm_rd_opt_str(&r2, v, k, NULL);
			qm_rd_init(&r2, k);
			qm_rd_opt_i64(&r2, v, k, 0);
			qm_rd_init(&r2, k);
			qm_rd_opt_u64(&r2, v, k, 0);
			qm_rd_init(&r2, k);
			qm_rd_opt_num(&r2, v, k, 0);
			qm_rd_init(&r2, k);
			qm_rd_opt_bool(&r2, v, k, 0);
			qm_rd_init(&r2, k);
			qm_rd_opt_strcpy(&r2, v, k, small, sizeof(small), "");
			qm_rd_init(&r2, k);
			qm_rd_any(&r2, v, k);
			qm_rd_init(&r2, k);
			qm_rd_str(&r2, v, k);
			qm_rd_type_name(m);
			walk(m, depth + 1);
		}
	} else if (json_object_is_type(v, json_type_array)) {
		size_t n = qm_rd_len(&rd, v);

		for (size_t i = 0; i < n && i < 64; i++) {
			struct qm_rd r2;

			qm_rd_init(&r2, "idx");
			qm_rd_idx_obj(&r2, v, i);
			qm_rd_init(&r2, "idx");
			qm_rd_idx_str(&r2, v, i);
			walk(json_object_array_get_idx(v, i), depth + 1);
		}
	} else {
		qm_rd_as_obj(&rd, v);
		qm_rd_init(&rd, "walk");
		qm_rd_as_arr(&rd, v);
	}
	qm_rd_init(&rd, "walk");
	qm_rd_fail(&rd, "%s", "x");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct json_object *ret = fuzz_json(data, size), *caps = NULL, *params = NULL;
	struct qmig_vm_status st;
	struct qmig_migrate_info mi;
	struct qmig_dirty_rate dr;
	struct qm_add_fd af;
	struct qm_kvm kvm;
	uint64_t mem;
	struct qm_rd rd;

	if (!ret && size)
		return 0;
#define RUN(fn, ...)                                                                               \
	do {                                                                                       \
		qm_rd_init(&rd, #fn);                                                              \
		if (fn(&rd, ret, __VA_ARGS__) < 0 && !rd.msg[0])                                   \
			abort(); /* every failure names what was wrong */                          \
	} while (0)
	RUN(qm_parse_query_status, &st);
	RUN(qm_parse_query_migrate, &mi);
	RUN(qm_parse_query_memory_size, &mem);
	RUN(qm_parse_add_fd, &af);
	RUN(qm_parse_query_dirty_rate, &dr);
	RUN(qm_parse_query_kvm, &kvm);
	RUN(qm_parse_query_migrate_capabilities, &caps);
	RUN(qm_parse_query_migrate_parameters, &params);
	json_object_put(caps);
	json_object_put(params);
	walk(ret, 0);
	json_object_put(ret);
	return 0;
}
