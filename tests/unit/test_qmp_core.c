/* The QMP protocol core with canned bytes: framing, handshake, matching,
 * events, errors and limits. No sockets. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "qmig_qmp.h"
#include "qmp_int.h"
#include "unit.h"

#define GREETING_OOB                                                                       \
	"{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 22, \"minor\": 2, \"major\": 7}, " \
	"\"package\": \"Debian\"}, \"capabilities\": [\"oob\"]}}\r\n"
#define GREETING_PLAIN                                                                    \
	"{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 0, \"minor\": 0, \"major\": 6}, " \
	"\"package\": \"\"}, \"capabilities\": []}}\r\n"
#define EV_STOP                                                                 \
	"{\"timestamp\": {\"seconds\": 1700000000, \"microseconds\": 123456}, " \
	"\"event\": \"STOP\"}\r\n"

static int feed(struct qmig_qmp *q, const char *s)
{
	return qmig_qmp_feed(q, s, strlen(s));
}

/* The output so far as a string, consumed. */
static char *take_output(struct qmig_qmp *q)
{
	size_t len;
	const char *p = qmig_qmp_output(q, &len);
	char *s = strndup(p, len);

	qmig_qmp_output_done(q, len);
	return s;
}

/* A core past the handshake (caps id 1). */
static struct qmig_qmp *ready_core(const char *greeting, const struct qmig_qmp_limits *lim)
{
	struct qmig_qmp *q = NULL;

	CU_ASSERT_FATAL(qmig_qmp_new(&q, lim) == 0);
	CU_ASSERT(feed(q, greeting) == 0);
	free(take_output(q));
	CU_ASSERT(feed(q, "{\"return\": {}, \"id\": 1}\r\n") == 0);
	CU_ASSERT(qmig_qmp_state(q) == QMIG_QMP_READY);
	return q;
}

static void test_greeting_oob(void)
{
	struct qmig_qmp *q;
	struct qmig_qmp_msg m;
	char *out;

	CU_ASSERT_FATAL(qmig_qmp_new(&q, NULL) == 0);
	CU_ASSERT(qmig_qmp_state(q) == QMIG_QMP_WAIT_GREETING);
	CU_ASSERT(feed(q, GREETING_OOB) == 0);
	CU_ASSERT(qmig_qmp_state(q) == QMIG_QMP_NEGOTIATING);
	CU_ASSERT(qmig_qmp_qemu_version(q) == 70222);
	out = take_output(q);
	CU_ASSERT_STRING_EQUAL(out, "{\"execute\":\"qmp_capabilities\",\"arguments\":"
				    "{\"enable\":[\"oob\"]},\"id\":1}\r\n");
	free(out);
	CU_ASSERT(feed(q, "{\"return\": {}, \"id\": 1}\r\n") == 0);
	CU_ASSERT(qmig_qmp_state(q) == QMIG_QMP_READY);
	CU_ASSERT(qmig_qmp_has_oob(q) == 1);
	/* The handshake reply is the core's own business. */
	CU_ASSERT(qmig_qmp_next(q, &m) == 0);
	qmig_qmp_free(q);
}

static void test_greeting_plain(void)
{
	struct qmig_qmp *q;
	char *out;

	CU_ASSERT_FATAL(qmig_qmp_new(&q, NULL) == 0);
	CU_ASSERT(feed(q, GREETING_PLAIN) == 0);
	out = take_output(q);
	CU_ASSERT_STRING_EQUAL(out,
			       "{\"execute\":\"qmp_capabilities\",\"arguments\":{},\"id\":1}\r\n");
	free(out);
	CU_ASSERT(feed(q, "{\"return\": {}, \"id\": 1}") == 0);
	CU_ASSERT(qmig_qmp_has_oob(q) == 0);
	CU_ASSERT(qmig_qmp_qemu_version(q) == 60000);
	/* oob is refused when not negotiated. */
	CU_ASSERT(qmig_qmp_command(q, "query-status", NULL, 1, NULL) == -EOPNOTSUPP);
	qmig_qmp_free(q);
}

static void test_held_commands(void)
{
	struct qmig_qmp *q;
	uint64_t id = 0;
	size_t len;
	char *out;

	CU_ASSERT_FATAL(qmig_qmp_new(&q, NULL) == 0);
	CU_ASSERT(qmig_qmp_command(q, "query-status", NULL, 0, &id) == 0);
	CU_ASSERT(id == 1);
	qmig_qmp_output(q, &len);
	CU_ASSERT(len == 0); /* held until READY */
	CU_ASSERT(feed(q, GREETING_OOB) == 0);
	out = take_output(q);
	CU_ASSERT(strstr(out, "qmp_capabilities") && !strstr(out, "query-status"));
	free(out);
	CU_ASSERT(feed(q, "{\"return\": {}, \"id\": 2}\r\n") == 0);
	out = take_output(q);
	CU_ASSERT_STRING_EQUAL(out, "{\"execute\":\"query-status\",\"id\":1}\r\n");
	free(out);
	qmig_qmp_free(q);
}

/* A caller that negotiates itself gets its own reply, and no second
 * qmp_capabilities goes out. */
static void test_manual_caps(void)
{
	struct qmig_qmp *q;
	struct qmig_qmp_msg m;
	uint64_t id;
	char *out;

	CU_ASSERT_FATAL(qmig_qmp_new(&q, NULL) == 0);
	CU_ASSERT(qmig_qmp_command(q, "qmp_capabilities", NULL, 0, &id) == 0);
	CU_ASSERT(feed(q, GREETING_OOB) == 0);
	out = take_output(q);
	CU_ASSERT_STRING_EQUAL(out, "{\"execute\":\"qmp_capabilities\",\"id\":1}\r\n");
	free(out);
	CU_ASSERT(feed(q, "{\"return\": {}, \"id\": 1}") == 0);
	CU_ASSERT(qmig_qmp_state(q) == QMIG_QMP_READY);
	CU_ASSERT(qmig_qmp_has_oob(q) == 0);
	CU_ASSERT(qmig_qmp_next(q, &m) == 1);
	CU_ASSERT(m.kind == QMIG_QMP_MSG_REPLY && m.id == id);
	qmig_qmp_msg_clear(&m);
	qmig_qmp_free(q);
}

static void test_oob_command(void)
{
	struct qmig_qmp *q = ready_core(GREETING_OOB, NULL);
	struct json_object *args = json_object_new_object();
	uint64_t id;
	char *out;

	json_object_object_add(args, "uri", json_object_new_string("tcp:[::1]:4444"));
	CU_ASSERT(qmig_qmp_command(q, "migrate-recover", args, 1, &id) == 0);
	out = take_output(q);
	CU_ASSERT_STRING_EQUAL(out, "{\"exec-oob\":\"migrate-recover\",\"arguments\":"
				    "{\"uri\":\"tcp:[::1]:4444\"},\"id\":2}\r\n");
	free(out);
	/* args are not consumed */
	CU_ASSERT(json_object_put(args) == 1);
	CU_ASSERT(qmig_qmp_command(q, "", NULL, 0, NULL) == -EINVAL);
	qmig_qmp_free(q);
}

/* A whole session, fed one byte at a time. */
static void test_split_bytes(void)
{
	/* query-status is held with id 1, so qmp_capabilities gets id 2. */
	const char *in = GREETING_OOB
	    "{\"return\": {}, \"id\": 2}\r\n" EV_STOP
	    "{\"return\": {\"status\": \"paused\", \"running\": false}, \"id\": 1}\r\n";
	struct qmig_qmp *q;
	struct qmig_qmp_msg m;

	CU_ASSERT_FATAL(qmig_qmp_new(&q, NULL) == 0);
	CU_ASSERT(qmig_qmp_command(q, "query-status", NULL, 0, NULL) == 0);
	for (size_t i = 0; in[i]; i++)
		CU_ASSERT_FATAL(qmig_qmp_feed(q, in + i, 1) == 0);
	CU_ASSERT(qmig_qmp_next(q, &m) == 1);
	CU_ASSERT(m.kind == QMIG_QMP_MSG_EVENT);
	CU_ASSERT_STRING_EQUAL(m.event, "STOP");
	qmig_qmp_msg_clear(&m);
	CU_ASSERT(qmig_qmp_next(q, &m) == 1);
	CU_ASSERT(m.kind == QMIG_QMP_MSG_REPLY && m.id == 1);
	CU_ASSERT_STRING_EQUAL(json_object_get_string(json_object_object_get(m.data, "status")),
			       "paused");
	qmig_qmp_msg_clear(&m);
	CU_ASSERT(qmig_qmp_next(q, &m) == 0);
	CU_ASSERT(qmig_qmp_eof(q) == 0);
	qmig_qmp_free(q);
}

static void test_several_per_feed(void)
{
	struct qmig_qmp *q = ready_core(GREETING_OOB, NULL);
	struct qmig_qmp_stats st;
	struct qmig_qmp_msg m;
	uint64_t a, b;
	int n = 0;

	qmig_qmp_command(q, "stop", NULL, 0, &a);
	qmig_qmp_command(q, "cont", NULL, 0, &b);
	/* Replies in the other order, with events around, no separators at all. */
	CU_ASSERT(
	    feed(q, EV_STOP "{\"return\": {}, \"id\": 3}{\"return\": {}, \"id\": 2}" EV_STOP) == 0);
	while (qmig_qmp_next(q, &m) == 1) {
		if (n == 1)
			CU_ASSERT(m.kind == QMIG_QMP_MSG_REPLY && m.id == b);
		if (n == 2)
			CU_ASSERT(m.kind == QMIG_QMP_MSG_REPLY && m.id == a);
		qmig_qmp_msg_clear(&m);
		n++;
	}
	CU_ASSERT(n == 4);
	qmig_qmp_get_stats(q, &st);
	CU_ASSERT(st.events == 2 && st.messages == 6);
	qmig_qmp_free(q);
}

static char logged[512];

static void log_fn(enum qmig_log_level level, const char *msg, void *ud)
{
	(*(int *)ud)++;
	snprintf(logged, sizeof(logged), "%s", msg);
}

static void log_free(void *ud)
{
	*(int *)ud += 1000;
}

/* A reply that answers no command in flight (never sent, answered
 * already, no id, an id that is not a number) breaks the stream at once:
 * waiting for the right one would only end in a timeout. */
static void test_unknown_ids(void)
{
	static const char *const bad[] = {
	    "{\"return\": {}, \"id\": 999}\r\n",
	    "{\"error\": {\"class\": \"GenericError\", \"desc\": \"JSON parse error\"}}\r\n",
	    "{\"return\": {}, \"id\": \"text\"}\r\n",
	    "{\"return\": {}, \"id\": -1}\r\n",
	};
	static const char *const why[] = {"id 999, which answers no command",
					   "without an id: JSON parse error",
					   "'id' is a string, not an integer", "'id' is negative"};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct qmig_qmp *q = ready_core(GREETING_OOB, NULL);
		int calls = 0;
		struct qmig_log_cb log = {log_fn, &calls, log_free};
		struct qmig_qmp_msg m;

		qmig_qmp_set_log(q, &log);
		CU_ASSERT(feed(q, bad[i]) == -EPROTO);
		CU_ASSERT(strstr(qmig_qmp_error(q), why[i]) != NULL);
		CU_ASSERT(strstr(logged, why[i]) != NULL);
		CU_ASSERT(qmig_qmp_next(q, &m) == 0);
		CU_ASSERT(qmig_qmp_state(q) == QMIG_QMP_BROKEN);
		qmig_qmp_free(q);
		CU_ASSERT(calls >= 1001); /* free ran exactly once */
		CU_ASSERT(calls < 2000);
	}
}

/* QEMU answers, on our connection, a command of the client before us that
 * was still running when it went away: after our greeting, before the
 * answer to our qmp_capabilities. Such leftovers are dropped (a few at
 * most); once we are ready, an unknown id breaks the stream as before. */
static void test_stale_replies(void)
{
	struct qmig_qmp *q = NULL;
	char *out;
	int i;

	CU_ASSERT_FATAL(qmig_qmp_new(&q, NULL) == 0);
	qm_qmp_set_next_id(q, 5000);
	CU_ASSERT(feed(q, GREETING_PLAIN) == 0);
	out = take_output(q);
	CU_ASSERT(strstr(out, "\"id\":5000}") != NULL);
	free(out);
	for (i = 0; i < 15; i++)
		CU_ASSERT(feed(q, "{\"return\": {\"status\": \"active\"}, \"id\": 21}\r\n") == 0);
	CU_ASSERT(feed(q, "{\"error\": {\"class\": \"GenericError\", \"desc\": \"x\"}, "
			  "\"id\": 22}\r\n") == 0);
	CU_ASSERT(qmig_qmp_state(q) == QMIG_QMP_NEGOTIATING);
	CU_ASSERT(feed(q, "{\"return\": {}, \"id\": 5000}\r\n") == 0);
	CU_ASSERT(qmig_qmp_state(q) == QMIG_QMP_READY);
	CU_ASSERT(feed(q, "{\"return\": {}, \"id\": 21}\r\n") == -EPROTO);
	CU_ASSERT(strstr(qmig_qmp_error(q), "id 21, which answers no command") != NULL);
	qmig_qmp_free(q);

	/* A peer that sends nothing but leftovers is not waited on for ever. */
	CU_ASSERT_FATAL(qmig_qmp_new(&q, NULL) == 0);
	CU_ASSERT(feed(q, GREETING_PLAIN) == 0);
	free(take_output(q));
	for (i = 0; i < 16; i++)
		CU_ASSERT(feed(q, "{\"return\": {}, \"id\": 77}\r\n") == 0);
	CU_ASSERT(feed(q, "{\"return\": {}, \"id\": 77}\r\n") == -EPROTO);
	CU_ASSERT(qmig_qmp_state(q) == QMIG_QMP_BROKEN);
	qmig_qmp_free(q);
}

/* An id we sent whose reply came already: the answer to another command. */
static void test_answered_id(void)
{
	struct qmig_qmp *q = ready_core(GREETING_OOB, NULL);
	struct qmig_qmp_msg m;
	uint64_t id;
	char reply[96];

	CU_ASSERT(qmig_qmp_command(q, "query-status", NULL, 0, &id) == 0);
	snprintf(reply, sizeof(reply), "{\"return\": {}, \"id\": %llu}\r\n", (unsigned long long)id);
	CU_ASSERT(feed(q, reply) == 0);
	CU_ASSERT(qmig_qmp_next(q, &m) == 1);
	qmig_qmp_msg_clear(&m);
	CU_ASSERT(qmig_qmp_command(q, "query-migrate", NULL, 0, &id) == 0);
	CU_ASSERT(feed(q, reply) == -EPROTO);
	CU_ASSERT(strstr(qmig_qmp_error(q), "answers no command in flight") != NULL);
	qmig_qmp_free(q);
}

/* Found by fuzz_qmp_core: the output of a core that never queued a byte
 * (no greeting yet, nothing held) was NULL + 0. */
static void test_output_empty(void)
{
	struct qmig_qmp *q;
	size_t len = 1;

	CU_ASSERT_FATAL(qmig_qmp_new(&q, NULL) == 0);
	CU_ASSERT(qmig_qmp_output(q, &len) != NULL);
	CU_ASSERT(len == 0);
	qmig_qmp_output_done(q, 0);
	qmig_qmp_free(q);
}

/* Both "return" and "error": which one did QEMU mean? Neither is trusted. */
static void test_return_and_error(void)
{
	struct qmig_qmp *q = ready_core(GREETING_OOB, NULL);
	uint64_t id;
	char reply[160];

	CU_ASSERT(qmig_qmp_command(q, "query-status", NULL, 0, &id) == 0);
	snprintf(reply, sizeof(reply),
		 "{\"return\": {}, \"error\": {\"class\": \"GenericError\", \"desc\": \"x\"}, "
		 "\"id\": %llu}\r\n",
		 (unsigned long long)id);
	CU_ASSERT(feed(q, reply) == -EPROTO);
	CU_ASSERT(strstr(qmig_qmp_error(q), "both 'return' and 'error'") != NULL);
	qmig_qmp_free(q);
}

static void test_events(void)
{
	struct qmig_qmp *q = ready_core(GREETING_OOB, NULL);
	struct qmig_qmp_msg m;

	CU_ASSERT(feed(q,
		       "{\"timestamp\": {\"seconds\": 1795475109, \"microseconds\": 289454}, "
		       "\"event\": \"MIGRATION\", \"data\": {\"status\": \"active\"}}\r\n") == 0);
	CU_ASSERT(feed(q, EV_STOP) == 0);
	CU_ASSERT(qmig_qmp_next(q, &m) == 1);
	CU_ASSERT(m.kind == QMIG_QMP_MSG_EVENT);
	CU_ASSERT_STRING_EQUAL(m.event, "MIGRATION");
	CU_ASSERT(m.ts_sec == 1795475109 && m.ts_usec == 289454);
	CU_ASSERT_STRING_EQUAL(json_object_get_string(json_object_object_get(m.data, "status")),
			       "active");
	qmig_qmp_msg_clear(&m);
	CU_ASSERT(m.root == NULL);
	CU_ASSERT(qmig_qmp_next(q, &m) == 1);
	CU_ASSERT(m.data == NULL && m.ts_usec == 123456);
	qmig_qmp_msg_clear(&m);
	qmig_qmp_free(q);
}

static void test_error_reply(void)
{
	struct qmig_qmp *q = ready_core(GREETING_OOB, NULL);
	struct qmig_qmp_msg m;
	uint64_t id;

	qmig_qmp_command(q, "nonexistent", NULL, 0, &id);
	CU_ASSERT(feed(q, "{\"id\": 2, \"error\": {\"class\": \"CommandNotFound\", \"desc\": "
			  "\"The command nonexistent has not been found\"}}\r\n") == 0);
	CU_ASSERT(qmig_qmp_next(q, &m) == 1);
	CU_ASSERT(m.kind == QMIG_QMP_MSG_ERROR && m.id == id);
	CU_ASSERT_STRING_EQUAL(m.err_class, "CommandNotFound");
	CU_ASSERT_STRING_EQUAL(m.err_desc, "The command nonexistent has not been found");
	qmig_qmp_msg_clear(&m);
	qmig_qmp_free(q);
	/* a refused handshake breaks the stream */
	CU_ASSERT_FATAL(qmig_qmp_new(&q, NULL) == 0);
	feed(q, GREETING_OOB);
	CU_ASSERT(
	    feed(q, "{\"error\": {\"class\": \"GenericError\", \"desc\": \"no\"}, \"id\": 1}") ==
	    -EPROTO);
	CU_ASSERT(qmig_qmp_state(q) == QMIG_QMP_BROKEN);
	qmig_qmp_free(q);
}

static void test_limit_size(void)
{
	struct qmig_qmp_limits lim = QMIG_QMP_LIMITS_INIT;
	struct qmig_qmp *q;
	struct qmig_qmp_stats st;
	char *chunk = malloc(65536);
	size_t fed = 0;
	int r = 0;

	lim.max_message = 1 << 20;
	q = ready_core(GREETING_OOB, &lim);
	memset(chunk, 'a', 65536);
	CU_ASSERT(feed(q, "{\"return\": \"") == 0);
	/* A 100 MiB string: refused after 1 MiB, never buffered further. */
	while (fed < (100u << 20) && (r = qmig_qmp_feed(q, chunk, 65536)) == 0)
		fed += 65536;
	CU_ASSERT(r == -EMSGSIZE);
	CU_ASSERT(fed <= (1u << 20));
	CU_ASSERT(strstr(qmig_qmp_error(q), "larger than") != NULL);
	CU_ASSERT(qmig_qmp_feed(q, "{}", 2) == -EMSGSIZE); /* stays broken */
	CU_ASSERT(qmig_qmp_command(q, "stop", NULL, 0, NULL) == -EMSGSIZE);
	qmig_qmp_get_stats(q, &st);
	CU_ASSERT(st.messages == 2);
	free(chunk);
	qmig_qmp_free(q);
}

static void test_limit_depth(void)
{
	struct qmig_qmp *q = ready_core(GREETING_OOB, NULL);
	char *deep = malloc(10020);
	size_t n;

	n = (size_t)sprintf(deep, "{\"return\": ");
	memset(deep + n, '[', 10000);
	CU_ASSERT(qmig_qmp_feed(q, deep, n + 10000) == -ELOOP);
	CU_ASSERT(strstr(qmig_qmp_error(q), "deeper") != NULL);
	free(deep);
	qmig_qmp_free(q);
}

/* A reply {"return": [EL,EL,...], "id": 2} with n elements, fed at once. */
static int feed_array(struct qmig_qmp *q, const char *el, size_t n)
{
	size_t el_n = strlen(el), len = 0;
	char *b = malloc(64 + n * (el_n + 1));
	int r;

	len += (size_t)sprintf(b, "{\"return\": [");
	for (size_t i = 0; i < n; i++) {
		if (i)
			b[len++] = ',';
		memcpy(b + len, el, el_n);
		len += el_n;
	}
	len += (size_t)sprintf(b + len, "], \"id\": 2}\r\n");
	r = qmig_qmp_feed(q, b, len);
	free(b);
	return r;
}

static void test_limit_elements(void)
{
	struct qmig_qmp *q = ready_core(GREETING_OOB, NULL);
	struct qmig_qmp_msg m;

	CU_ASSERT(qmig_qmp_command(q, "x", NULL, 0, NULL) == 0);
	CU_ASSERT(feed_array(q, "1", 16384) == 0); /* the limit itself is allowed */
	CU_ASSERT(qmig_qmp_next(q, &m) == 1);
	qmig_qmp_msg_clear(&m);
	CU_ASSERT(qmig_qmp_command(q, "x", NULL, 0, NULL) == 0);
	CU_ASSERT(feed_array(q, "1", 16385) == -EMSGSIZE);
	CU_ASSERT(strstr(qmig_qmp_error(q), "more than 16384 elements (limit max_elements)") != NULL);
	qmig_qmp_free(q);
}

/* Objects are what json-c makes big: the node budget counts them 10. */
static void test_limit_nodes(void)
{
	struct qmig_qmp_limits lim = QMIG_QMP_LIMITS_INIT;
	struct qmig_qmp *q;
	struct qmig_qmp_msg m;

	lim.max_nodes = 1000;
	q = ready_core(GREETING_OOB, &lim);
	CU_ASSERT(qmig_qmp_command(q, "x", NULL, 0, NULL) == 0);
	CU_ASSERT(feed_array(q, "{}", 80) == 0); /* 10+1+2 + 80*10 + 79 + 2 = 894 */
	CU_ASSERT(qmig_qmp_next(q, &m) == 1);
	qmig_qmp_msg_clear(&m);
	CU_ASSERT(qmig_qmp_command(q, "x", NULL, 0, NULL) == 0);
	CU_ASSERT(feed_array(q, "{}", 90) == -EMSGSIZE);
	CU_ASSERT(strstr(qmig_qmp_error(q), "(limit max_nodes") != NULL);
	qmig_qmp_free(q);
}

static void test_limit_greeting(void)
{
	struct qmig_qmp *q;
	char x[1024];
	int r = 0;

	memset(x, 'x', sizeof(x));
	CU_ASSERT_FATAL(qmig_qmp_new(&q, NULL) == 0);
	CU_ASSERT(feed(q, "{\"QMP\": {\"version\": {}, \"package\": \"") == 0);
	for (int i = 0; i < 100 && r == 0; i++)
		r = qmig_qmp_feed(q, x, sizeof(x));
	CU_ASSERT(r == -EMSGSIZE);
	CU_ASSERT(strstr(qmig_qmp_error(q), "greeting larger than 16384 bytes (limit max_greeting)") !=
		  NULL);
	qmig_qmp_free(q);
}

/* The largest real reply passes the default limits with room to spare. */
static void test_limit_schema_fits(void)
{
	struct json_object *o =
	    json_object_from_file(QMIG_BUILD_GUESTDIR "/../data/qmp-schema-7.2.json");
	struct qmig_qmp *q = ready_core(GREETING_OOB, NULL);
	struct qmig_qmp_msg m;
	const char *s;
	char *b;

	CU_ASSERT_FATAL(o != NULL);
	CU_ASSERT(qmig_qmp_command(q, "query-qmp-schema", NULL, 0, NULL) == 0);
	s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
	CU_ASSERT_FATAL(asprintf(&b, "{\"return\": %s, \"id\": 2}\r\n", s) > 0);
	/* in odd chunks, as a socket would deliver it */
	for (size_t off = 0, n = strlen(b); off < n; off += 4093)
		CU_ASSERT_FATAL(qmig_qmp_feed(q, b + off, n - off < 4093 ? n - off : 4093) == 0);
	CU_ASSERT(qmig_qmp_next(q, &m) == 1);
	CU_ASSERT(m.kind == QMIG_QMP_MSG_REPLY && json_object_is_type(m.data, json_type_array));
	qmig_qmp_msg_clear(&m);
	free(b);
	json_object_put(o);
	qmig_qmp_free(q);
}

/* Queued events are bounded by what they cost too, not only by number. */
static void test_limit_event_cost(void)
{
	struct qmig_qmp_limits lim = QMIG_QMP_LIMITS_INIT;
	struct qmig_qmp *q;
	struct qmig_qmp_stats st;
	struct qmig_qmp_msg m;
	int n = 0;

	lim.max_nodes = 120;
	q = ready_core(GREETING_OOB, &lim);
	for (int i = 0; i < 5; i++) /* each costs 3 objects, 4 ':' and 4 ',' = 38 */
		CU_ASSERT(feed(q, "{\"event\": \"X\", \"data\": {}, \"timestamp\": {\"seconds\": 1, "
				  "\"microseconds\": 2}}\r\n") == 0);
	qmig_qmp_get_stats(q, &st);
	CU_ASSERT(st.events == 5);
	CU_ASSERT(st.events_dropped == 2);
	while (qmig_qmp_next(q, &m) == 1) {
		n++;
		qmig_qmp_msg_clear(&m);
	}
	CU_ASSERT(n == 3);
	/* taken: room again */
	CU_ASSERT(feed(q, "{\"event\": \"X\"}\r\n") == 0);
	CU_ASSERT(qmig_qmp_next(q, &m) == 1);
	qmig_qmp_msg_clear(&m);
	qmig_qmp_free(q);
}

/* A timestamp a caller cannot turn into microseconds is a lie. */
static void test_event_bad_timestamp(void)
{
	static const char *const bad[] = {
	    "{\"event\": \"X\", \"timestamp\": {\"seconds\": 9223372036854775807, "
	    "\"microseconds\": 0}}\r\n",
	    "{\"event\": \"X\", \"timestamp\": {\"seconds\": 1, \"microseconds\": 1000000}}\r\n",
	    "{\"event\": \"X\", \"timestamp\": {\"seconds\": \"1\", \"microseconds\": 0}}\r\n",
	    "{\"event\": \"X\", \"data\": [], \"timestamp\": {\"seconds\": 1, "
	    "\"microseconds\": 0}}\r\n",
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct qmig_qmp *q = ready_core(GREETING_OOB, NULL);

		CU_ASSERT(feed(q, bad[i]) == -EPROTO);
		CU_ASSERT(strstr(qmig_qmp_error(q), "event X: ") != NULL);
		qmig_qmp_free(q);
	}
}

static void test_garbage(void)
{
	static const char *bad[] = {
	    "hello\r\n",
	    "[1, 2]\r\n",
	    "{\"foo\": 1}\r\n",			/* no return, error, event or QMP */
	    "{\"return\": {}, \"id\": 2,}\r\n", /* trailing comma: strict */
	    "{\"return\" 1}\r\n",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct qmig_qmp *q = ready_core(GREETING_OOB, NULL);

		qmig_qmp_command(q, "stop", NULL, 0, NULL);
		CU_ASSERT(feed(q, bad[i]) == -EPROTO);
		CU_ASSERT(qmig_qmp_state(q) == QMIG_QMP_BROKEN);
		qmig_qmp_free(q);
	}
}

static void test_event_limit(void)
{
	struct qmig_qmp_limits lim = QMIG_QMP_LIMITS_INIT;
	struct qmig_qmp *q;
	struct qmig_qmp_stats st;
	struct qmig_qmp_msg m;
	int n = 0;

	lim.max_pending_events = 3;
	q = ready_core(GREETING_OOB, &lim);
	for (int i = 0; i < 5; i++)
		CU_ASSERT(feed(q, EV_STOP) == 0);
	qmig_qmp_get_stats(q, &st);
	CU_ASSERT(st.events == 5 && st.events_dropped == 2);
	while (qmig_qmp_next(q, &m) == 1) {
		qmig_qmp_msg_clear(&m);
		n++;
	}
	CU_ASSERT(n == 3);
	/* taking them makes room again */
	CU_ASSERT(feed(q, EV_STOP) == 0);
	qmig_qmp_get_stats(q, &st);
	CU_ASSERT(st.events_dropped == 2);
	qmig_qmp_free(q);
}

static void test_eof(void)
{
	struct qmig_qmp *q = ready_core(GREETING_OOB, NULL);

	CU_ASSERT(feed(q, "{\"return\": {\"a\"") == 0);
	CU_ASSERT(qmig_qmp_eof(q) == -ECONNRESET);
	CU_ASSERT(strstr(qmig_qmp_error(q), "middle of a message") != NULL);
	qmig_qmp_free(q);

	q = ready_core(GREETING_OOB, NULL);
	qmig_qmp_command(q, "stop", NULL, 0, NULL);
	CU_ASSERT(qmig_qmp_eof(q) == -ECONNRESET);
	CU_ASSERT(strstr(qmig_qmp_error(q), "unanswered") != NULL);
	qmig_qmp_free(q);

	q = ready_core(GREETING_OOB, NULL);
	CU_ASSERT(feed(q, "\r\n") == 0); /* whitespace is no message */
	CU_ASSERT(qmig_qmp_eof(q) == 0);
	qmig_qmp_free(q);
	qmig_qmp_free(NULL);
}

static void test_bad_limits(void)
{
	struct qmig_qmp_limits lim = QMIG_QMP_LIMITS_INIT;
	struct qmig_qmp *q = NULL;

	lim.version = 99;
	CU_ASSERT(qmig_qmp_new(&q, &lim) == -EINVAL);
	CU_ASSERT(q == NULL);
}

/* clang-format off */
UNIT_SUITE(qmp_core, NULL, NULL,
	   {"greeting with oob", test_greeting_oob},
	   {"greeting without oob", test_greeting_plain},
	   {"commands held until ready", test_held_commands},
	   {"qmp_capabilities sent by the caller", test_manual_caps},
	   {"oob command", test_oob_command},
	   {"split byte by byte", test_split_bytes},
	   {"several messages per feed", test_several_per_feed},
	   {"unknown ids break the stream", test_unknown_ids},
   {"a reply with the id of an answered command", test_answered_id},
	   {"leftover replies of an earlier client", test_stale_replies},
   {"a reply with both return and error", test_return_and_error},
   {"output of a core with nothing queued", test_output_empty},
	   {"events with timestamps", test_events},
	   {"error replies", test_error_reply},
	   {"limit: message size", test_limit_size},
	   {"limit: nesting depth", test_limit_depth},
	   {"limit: elements of one array", test_limit_elements},
	   {"limit: parse nodes", test_limit_nodes},
	   {"limit: an endless greeting", test_limit_greeting},
	   {"limit: the QEMU 7.2 schema fits", test_limit_schema_fits},
	   {"limit: the cost of queued events", test_limit_event_cost},
	   {"events with timestamps out of range", test_event_bad_timestamp},
	   {"garbage", test_garbage},
	   {"limit: pending events", test_event_limit},
	   {"eof", test_eof},
	   {"bad limits", test_bad_limits})
/* clang-format on */
