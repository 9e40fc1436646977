/* The storage commands' reply parsers (query-block, query-block-jobs, the
 * name lists) against what a misbehaving peer could send: each wrong
 * shape is a clear -EPROTO naming the member, never a crash or an
 * overflow; good replies read as QEMU 7.2 sends them. */
#include <errno.h>
#include <string.h>

#include <json-c/json.h>

#include "qmig_commands.h"
#include "qmp_reply.h"
#include "unit.h"

static struct qmig_block_dev devs[64];
static struct qmig_block_job jobs[64];

static int parse_block(const char *text, int *n, char *msg, size_t len)
{
	struct json_object *v = json_tokener_parse(text);
	struct qm_rd rd;
	int r;

	qm_rd_init(&rd, "query-block");
	r = qm_parse_query_block(&rd, v, devs, n);
	snprintf(msg, len, "%s", rd.msg);
	json_object_put(v);
	return r;
}

static int parse_jobs(const char *text, int *n, char *msg, size_t len)
{
	struct json_object *v = json_tokener_parse(text);
	struct qm_rd rd;
	int r;

	qm_rd_init(&rd, "query-block-jobs");
	r = qm_parse_query_block_jobs(&rd, v, jobs, n);
	snprintf(msg, len, "%s", rd.msg);
	json_object_put(v);
	return r;
}

static void test_block_good(void)
{
	char msg[256];
	int n = -1;

	CU_ASSERT(parse_block(
		"[{\"device\":\"\",\"qdev\":\"/machine/peripheral/vdisk0/virtio-backend\","
		"\"locked\":false,\"removable\":false,\"inserted\":{\"ro\":false,\"drv\":\"qcow2\","
		"\"file\":\"/tmp/x/disk.img\",\"node-name\":\"disk0\",\"backing_file_depth\":1,"
		"\"image\":{\"virtual-size\":536870912,\"filename\":\"/tmp/x/disk.img\"}},"
		"\"type\":\"unknown\",\"new-member\":[1,2]},"
		"{\"device\":\"ide1-cd0\",\"removable\":true,\"locked\":false}]",
		&n, msg, sizeof(msg)) == 0);
	CU_ASSERT_EQUAL(n, 2);
	CU_ASSERT_STRING_EQUAL(devs[0].name, "vdisk0");
	CU_ASSERT_STRING_EQUAL(devs[0].node, "disk0");
	CU_ASSERT_STRING_EQUAL(devs[0].format, "qcow2");
	CU_ASSERT_EQUAL(devs[0].virtual_size, 536870912);
	CU_ASSERT_EQUAL(devs[0].backing_depth, 1);
	CU_ASSERT(devs[0].inserted && !devs[0].ro);
	CU_ASSERT_STRING_EQUAL(devs[1].name, "ide1-cd0");
	CU_ASSERT(!devs[1].inserted && devs[1].removable);
}

static void test_block_bad(void)
{
	static const struct {
		const char *text, *member;
	} cases[] = {
		{"{\"device\":\"x\"}", "not an array"},
		{"[17]", "an object"},
		{"[{\"device\":5}]", "device"},
		{"[{\"device\":\"a\",\"inserted\":{\"ro\":\"no\"}}]", "ro"},
		{"[{\"device\":\"a\",\"inserted\":{\"ro\":false,\"image\":{\"virtual-size\":-1}}}]",
		 "virtual-size"},
		{"[{\"device\":\"a\",\"inserted\":{\"ro\":false,\"image\":{}}}]", "virtual-size"},
		{"[{\"device\":\"a\",\"inserted\":null}]", "inserted"},
	};
	char msg[256], big[2200];
	int n;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		CU_ASSERT(parse_block(cases[i].text, &n, msg, sizeof(msg)) == -EPROTO);
		if (!strstr(msg, cases[i].member))
			CU_FAIL_FATAL("message does not name the member");
	}
	/* A file name longer than the buffer is refused, not cut. */
	snprintf(big, sizeof(big), "[{\"device\":\"a\",\"inserted\":{\"ro\":false,\"file\":\"%01100d\"}}]", 0);
	CU_ASSERT(parse_block(big, &n, msg, sizeof(msg)) == -EPROTO);
	/* 65 devices: more than the parser's room. */
	{
		char many[65 * 16 + 8] = "[";

		for (int i = 0; i < 65; i++)
			strcat(many, i ? ",{\"device\":\"d\"}" : "{\"device\":\"d\"}");
		strcat(many, "]");
		CU_ASSERT(parse_block(many, &n, msg, sizeof(msg)) == -EPROTO);
	}
}

static void test_jobs(void)
{
	char msg[256];
	int n = -1;

	CU_ASSERT(parse_jobs("[{\"auto-finalize\":true,\"io-status\":\"ok\",\"device\":\"qmigrate-mirror-0\","
			     "\"auto-dismiss\":false,\"busy\":false,\"len\":100,\"offset\":40,"
			     "\"status\":\"ready\",\"paused\":false,\"speed\":0,\"ready\":true,"
			     "\"type\":\"mirror\"},{\"device\":\"j\",\"len\":5,\"offset\":5,"
			     "\"status\":\"concluded\",\"type\":\"mirror\",\"error\":\"Input/output error\"}]",
			     &n, msg, sizeof(msg)) == 0);
	CU_ASSERT_EQUAL(n, 2);
	CU_ASSERT(jobs[0].ready && jobs[0].len == 100 && jobs[0].offset == 40);
	CU_ASSERT_STRING_EQUAL(jobs[1].error, "Input/output error");
	CU_ASSERT(parse_jobs("[{\"device\":\"j\",\"len\":\"100\",\"offset\":0}]", &n, msg,
			     sizeof(msg)) == -EPROTO);
	CU_ASSERT(strstr(msg, "len") != NULL);
	CU_ASSERT(parse_jobs("[{\"len\":1,\"offset\":0}]", &n, msg, sizeof(msg)) == -EPROTO);
	CU_ASSERT(parse_jobs("[{\"device\":\"j\",\"len\":1,\"offset\":0,\"ready\":1}]", &n, msg,
			     sizeof(msg)) == -EPROTO);
	CU_ASSERT(parse_jobs("null", &n, msg, sizeof(msg)) == -EPROTO);
}

static void test_names(void)
{
	struct json_object *v = json_tokener_parse(
		"[{\"node-name\":\"disk0\"},{\"other\":1},{\"node-name\":\"qmigrate-nbd-0\"}]");
	struct qm_rd rd;
	char buf[64], small[8];

	qm_rd_init(&rd, "query-named-block-nodes");
	CU_ASSERT(qm_parse_name_list(&rd, v, "node-name", buf, sizeof(buf)) == 0);
	CU_ASSERT_STRING_EQUAL(buf, "disk0\nqmigrate-nbd-0\n");
	qm_rd_init(&rd, "query-named-block-nodes");
	CU_ASSERT(qm_parse_name_list(&rd, v, "node-name", small, sizeof(small)) == -EPROTO);
	json_object_put(v);
	v = json_tokener_parse("[{\"node-name\":7}]");
	qm_rd_init(&rd, "query-named-block-nodes");
	CU_ASSERT(qm_parse_name_list(&rd, v, "node-name", buf, sizeof(buf)) == -EPROTO);
	json_object_put(v);
}

/* clang-format off */
UNIT_SUITE(storage_reply, NULL, NULL,
	   {"query-block as QEMU 7.2 sends it", test_block_good},
	   {"query-block of wrong shapes", test_block_bad},
	   {"query-block-jobs", test_jobs},
	   {"name lists", test_names})
/* clang-format on */
