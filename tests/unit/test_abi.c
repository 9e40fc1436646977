/* Output structs carry a size set by the caller (docs/API.md): the library
 * writes no more than that and says how much it wrote; a result read back
 * (qmig_result_to_json) is read no further than its size either. */
#include <stddef.h>
#include <string.h>
#include <json-c/json.h>

#include "qmig_migrate.h"
#include "unit.h"

static struct qmig_migration *new_attached(void)
{
	struct qmig_migrate_opts o = QMIG_MIGRATE_OPTS_INIT;
	struct qmig_migration *m = NULL;

	o.src_qmp = "/nonexistent/src.sock"; /* never connected: no process() */
	o.dst_qmp = "/nonexistent/dst.sock";
	CU_ASSERT_EQUAL(qmig_migration_new(&m, &o), 0);
	return m;
}

static int untouched(const unsigned char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] != 0xab)
			return 0;
	return 1;
}

static void t_result_short(void)
{
	struct qmig_migration *m = new_attached();
	unsigned char buf[sizeof(struct qmig_result) + 64];
	struct qmig_result *r = (struct qmig_result *)buf;
	size_t short_size = offsetof(struct qmig_result, error);

	CU_ASSERT_PTR_NOT_NULL_FATAL(m);
	memset(buf, 0xab, sizeof(buf));
	r->size = short_size;
	qmig_migration_result(m, r);
	CU_ASSERT_EQUAL(r->size, short_size);
	CU_ASSERT_TRUE(untouched(buf + short_size, sizeof(buf) - short_size));
	qmig_migration_free(m);
}

static void t_whole_structs(void)
{
	struct qmig_migration *m = new_attached();
	struct qmig_result r = QMIG_RESULT_INIT, z;
	struct qmig_sample s = QMIG_SAMPLE_INIT;
	struct qmig_convergence c = QMIG_CONVERGENCE_INIT;

	CU_ASSERT_PTR_NOT_NULL_FATAL(m);
	qmig_migration_result(m, &r);
	CU_ASSERT_EQUAL(r.size, sizeof(r));
	memset(&z, 0, sizeof(z)); /* size 0: not made with the macro, gets it all */
	qmig_migration_result(m, &z);
	CU_ASSERT_EQUAL(z.size, sizeof(z));
	qmig_migration_last_sample(m, &s);
	CU_ASSERT_EQUAL(s.size, sizeof(s));
	qmig_migration_convergence(m, &c);
	CU_ASSERT_EQUAL(c.size, sizeof(c));
	CU_ASSERT_EQUAL(c.time_left_ms, -1);
	qmig_migration_free(m);
}

static void t_json_reads_size(void)
{
	unsigned char buf[sizeof(struct qmig_result)];
	struct qmig_result *r = (struct qmig_result *)buf;
	struct json_object *o, *v;

	memset(buf, 0xab, sizeof(buf));
	r->size = offsetof(struct qmig_result, error);
	snprintf(r->status, sizeof(r->status), "completed");
	o = qmig_result_to_json(r);
	CU_ASSERT_PTR_NOT_NULL_FATAL(o);
	CU_ASSERT_TRUE(json_object_object_get_ex(o, "status", &v) &&
		       !strcmp(json_object_get_string(v), "completed"));
	/* error lies past the caller's size: read as 0, so not reported */
	CU_ASSERT_FALSE(json_object_object_get_ex(o, "error", NULL));
	json_object_put(o);
}

UNIT_SUITE(abi, NULL, NULL, {"a short result is written only up to its size", t_result_short},
	   {"whole output structs, and size 0", t_whole_structs},
	   {"a result turned into JSON is read only up to its size", t_json_reads_size})
