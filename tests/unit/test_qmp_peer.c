/* The malformed-input suite: the QMP connection against a scripted fake
 * peer that misbehaves in the ways a real QEMU will not. Every case must
 * end in a clear error within its timeout; under unit-asan, with no leak. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "../fakepeer/fakepeer.h"
#include "qmig_qmp.h"
#include "unit.h"

#define TIMEOUT_MS 700

static long elapsed_ms(const struct timespec *t0)
{
	struct timespec t1;

	clock_gettime(CLOCK_MONOTONIC, &t1);
	return (t1.tv_sec - t0->tv_sec) * 1000 + (t1.tv_nsec - t0->tv_nsec) / 1000000;
}

static struct qmig_qmp_conn *open_peer(struct fakepeer *fp, fakepeer_script script)
{
	struct qmig_qmp_conn_opts o = QMIG_QMP_CONN_OPTS_INIT;
	struct qmig_qmp_conn *c = NULL;

	o.timeout_ms = TIMEOUT_MS;
	CU_ASSERT_FATAL(fakepeer_start(fp, script, NULL) == 0);
	CU_ASSERT(qmig_qmp_conn_open(&c, fp->path, &o) == 0);
	return c;
}

/* Open a peer, send query-status, expect err and a message containing
 * what; within the timeout (plus slack). */
static void expect_call_error(fakepeer_script script, int err, const char *what)
{
	struct fakepeer fp;
	struct qmig_qmp_conn *c = open_peer(&fp, script);
	struct json_object *ret = NULL;
	struct timespec t0;
	int r;

	if (!c) {
		fakepeer_stop(&fp);
		return;
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	r = qmig_qmp_conn_call(c, "query-status", NULL, &ret, -1);
	CU_ASSERT(r == err);
	CU_ASSERT(ret == NULL);
	CU_ASSERT(elapsed_ms(&t0) < TIMEOUT_MS + 1000);
	if (!strstr(qmig_qmp_conn_error(c), what)) {
		fprintf(stderr, "\n    got r=%d \"%s\", want %d \"%s\"\n", r,
			qmig_qmp_conn_error(c), err, what);
		CU_FAIL("error message");
	}
	/* broken for good: the next call fails at once */
	CU_ASSERT(qmig_qmp_conn_call(c, "query-status", NULL, NULL, -1) < 0);
	qmig_qmp_conn_close(c);
	fakepeer_stop(&fp);
}

static void await_command(int fd)
{
	char buf[512];

	fp_handshake(fd);
	if (fp_read_command(fd, buf, sizeof(buf)) < 0)
		_exit(5);
}

static void s_truncated(int fd, void *arg)
{
	await_command(fd);
	fp_send(fd, "{\"return\": {\"status\": \"runn");
}

static void test_truncated(void)
{
	expect_call_error(s_truncated, -ECONNRESET, "middle of a message");
}

static void s_garbage(int fd, void *arg)
{
	await_command(fd);
	fp_send(fd, "HTTP/1.1 400 Bad Request\r\n\r\n");
	sleep(5);
}

static void test_garbage(void)
{
	expect_call_error(s_garbage, -EPROTO, "garbage");
}

static void s_huge(int fd, void *arg)
{
	static char chunk[1 << 16];

	await_command(fd);
	memset(chunk, 'a', sizeof(chunk));
	fp_send(fd, "{\"return\": \"");
	/* 100 MiB on one line; the client hangs up long before. */
	for (int i = 0; i < 1600; i++)
		fp_send_n(fd, chunk, sizeof(chunk));
	fp_send(fd, "\"}\r\n");
}

static void test_huge_line(void)
{
	struct fakepeer fp;
	struct qmig_qmp_conn *c = open_peer(&fp, s_huge);
	struct qmig_qmp_stats st;

	if (!c)
		goto out;
	CU_ASSERT(qmig_qmp_conn_call(c, "query-status", NULL, NULL, 5000) == -EMSGSIZE);
	CU_ASSERT(strstr(qmig_qmp_conn_error(c), "larger than") != NULL);
	qmig_qmp_get_stats(qmig_qmp_conn_core(c), &st);
	/* read up to the 64 MiB limit, not the whole 100 MiB */
	CU_ASSERT(st.bytes_in <= (64u << 20) + (1u << 17));
	qmig_qmp_conn_close(c);
out:
	fakepeer_stop(&fp);
}

static void s_deep(int fd, void *arg)
{
	char *deep = malloc(10000);

	await_command(fd);
	memset(deep, '[', 10000);
	fp_send(fd, "{\"return\": ");
	fp_send_n(fd, deep, 10000);
	free(deep);
	sleep(5);
}

static void test_deep(void)
{
	expect_call_error(s_deep, -ELOOP, "deeper");
}

static void s_wrong_ids(int fd, void *arg)
{
	char buf[512], reply[128];
	long id;

	fp_handshake(fd);
	id = fp_read_command(fd, buf, sizeof(buf));
	snprintf(reply, sizeof(reply), "{\"return\": {\"ok\": 1}, \"id\": %ld}\r\n", id);
	fp_send(fd, reply);
	/* the second call gets the first one's reply again */
	fp_read_command(fd, buf, sizeof(buf));
	fp_send(fd, reply);
	sleep(5);
}

static void test_wrong_ids(void)
{
	struct fakepeer fp;
	struct qmig_qmp_conn *c = open_peer(&fp, s_wrong_ids);
	struct json_object *ret = NULL;
	struct qmig_qmp_stats st;

	if (!c)
		goto out;
	CU_ASSERT(qmig_qmp_conn_call(c, "query-status", NULL, &ret, -1) == 0);
	json_object_put(ret);
	/* at once, not after the timeout */
	CU_ASSERT(qmig_qmp_conn_call(c, "query-status", NULL, NULL, 5000) == -EPROTO);
	CU_ASSERT(strstr(qmig_qmp_conn_error(c), "answers no command in flight") != NULL);
	qmig_qmp_get_stats(qmig_qmp_conn_core(c), &st);
	CU_ASSERT(st.unknown_ids == 1);
	qmig_qmp_conn_close(c);
out:
	fakepeer_stop(&fp);
}

static void s_close_at_once(int fd, void *arg)
{
}

static void s_close_after_greeting(int fd, void *arg)
{
	fp_send(fd, "{\"QMP\": {\"version\": {}, \"capabilities\": []}}\r\n");
}

static void s_silent(int fd, void *arg)
{
	sleep(10);
}

static char open_err[512];

static void keep_err(enum qmig_log_level level, const char *msg, void *ud)
{
	snprintf(open_err, sizeof(open_err), "%s", msg);
}

static void expect_open_error(fakepeer_script script, int err, const char *what)
{
	struct qmig_qmp_conn_opts o = QMIG_QMP_CONN_OPTS_INIT;
	struct qmig_qmp_conn *c = NULL;
	struct fakepeer fp;
	struct timespec t0;
	int r;

	o.timeout_ms = TIMEOUT_MS;
	CU_ASSERT_FATAL(fakepeer_start(&fp, script, NULL) == 0);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	o.log.fn = keep_err;
	open_err[0] = 0;
	r = qmig_qmp_conn_open(&c, fp.path, &o);
	CU_ASSERT(r == err);
	CU_ASSERT(c == NULL);
	CU_ASSERT(elapsed_ms(&t0) < TIMEOUT_MS + 1000);
	/* the reason reaches the log callback, since there is no handle */
	if (!strstr(open_err, what)) {
		fprintf(stderr, "\n    got r=%d \"%s\", want %d \"%s\"\n", r, open_err, err, what);
		CU_FAIL("error message");
	}
	fakepeer_stop(&fp);
}

static void test_early_close(void)
{
	expect_open_error(s_close_at_once, -ECONNRESET, "before the handshake completed");
	expect_open_error(s_close_after_greeting, -ECONNRESET, "unanswered");
}

static void test_no_greeting(void)
{
	expect_open_error(s_silent, -ETIMEDOUT, "no QMP greeting within");
}

static void s_never_answers(int fd, void *arg)
{
	await_command(fd);
	sleep(10);
}

static void test_never_answers(void)
{
	expect_call_error(s_never_answers, -ETIMEDOUT, "no reply to query-status within");
}

static void s_flood(int fd, void *arg)
{
	static const char ev[] = "{\"timestamp\": {\"seconds\": 1, \"microseconds\": 2}, "
				 "\"event\": \"MIGRATION_PASS\", \"data\": {\"pass\": 1}}\r\n";
	char block[sizeof(ev) * 64];

	for (int i = 0; i < 64; i++)
		memcpy(block + i * (sizeof(ev) - 1), ev, sizeof(ev) - 1);
	await_command(fd);
	for (;;) /* until the client hangs up (then send fails and we exit) */
		fp_send_n(fd, block, 64 * (sizeof(ev) - 1));
}

/* Live heap bytes: ASan's own count when sanitized (RSS would include its
 * quarantine of freed blocks), else glibc's. */
#if !defined(__SANITIZE_ADDRESS__) && defined(__has_feature)
#if __has_feature(address_sanitizer)
#define __SANITIZE_ADDRESS__ 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
size_t __sanitizer_get_current_allocated_bytes(void);
static long heap_bytes(void)
{
	return (long)__sanitizer_get_current_allocated_bytes();
}
#else
#include <malloc.h>
static long heap_bytes(void)
{
	return (long)mallinfo2().uordblks;
}
#endif

static void count_event(const char *event, struct json_object *data, int64_t s, int64_t us,
			void *ud)
{
	(*(long *)ud)++;
}

static void test_flood(void)
{
	struct fakepeer fp;
	struct qmig_qmp_conn *c;
	long events = 0, heap0, heap1;
	struct qmig_qmp_event_cb cb = {count_event, &events, NULL};
	struct qmig_qmp_stats st;

	for (int with_cb = 1; with_cb >= 0; with_cb--) {
		c = open_peer(&fp, s_flood);
		if (!c)
			break;
		if (with_cb)
			qmig_qmp_conn_set_event_cb(c, &cb);
		heap0 = heap_bytes();
		/* Wait for 10,000 events however long a loaded machine takes
		 * (bounded at 100 rounds): a count, not a rate, is asserted. */
		for (int round = 0; round < 100; round++) {
			CU_ASSERT(qmig_qmp_conn_call(c, "query-status", NULL, NULL, 300) ==
				  -ETIMEDOUT);
			qmig_qmp_get_stats(qmig_qmp_conn_core(c), &st);
			if (st.events > 10000)
				break;
		}
		heap1 = heap_bytes();
		CU_ASSERT(st.events > 10000);
		CU_ASSERT(st.events_dropped == 0); /* handed over, not queued */
		if (with_cb)
			CU_ASSERT(events == (long)st.events);
		/* the flood (many MiB) leaves the heap as it was */
		if (heap1 - heap0 > (1 << 20)) {
			fprintf(stderr, "\n    heap grew by %ld bytes\n", heap1 - heap0);
			CU_FAIL("heap grew during the flood");
		}
		/* process() is bounded too: it returns while the flood goes on */
		CU_ASSERT(qmig_qmp_conn_process(c) == 0);
		qmig_qmp_conn_close(c);
		fakepeer_stop(&fp);
	}
}

static void s_fd_check(int fd, void *arg)
{
	char buf[512], reply[128];
	long id;

	fp_handshake(fd);
	id = fp_read_command(fd, buf, sizeof(buf));
	/* report whether the fd came with the command's bytes */
	snprintf(reply, sizeof(reply), "{\"return\": {\"got-fd\": %s}, \"id\": %ld}\r\n",
		 fp_last_fd >= 0 ? "true" : "false", id);
	fp_send(fd, reply);
	fp_read_command(fd, buf, sizeof(buf));
}

static void test_fd_passing(void)
{
	struct fakepeer fp;
	struct qmig_qmp_conn *c = open_peer(&fp, s_fd_check);
	struct json_object *ret = NULL;
	int p[2];

	if (!c)
		goto out;
	CU_ASSERT_FATAL(pipe(p) == 0);
	CU_ASSERT(qmig_qmp_conn_call_fd(c, "getfd", NULL, p[0], &ret, -1) == 0);
	CU_ASSERT(json_object_get_boolean(json_object_object_get(ret, "got-fd")));
	CU_ASSERT(fcntl(p[0], F_GETFD) >= 0); /* the caller keeps its own */
	CU_ASSERT(qmig_qmp_conn_call_fd(c, "getfd", NULL, -1, NULL, -1) == -EBADF);
	json_object_put(ret);
	close(p[0]);
	close(p[1]);
	qmig_qmp_conn_close(c);
out:
	fakepeer_stop(&fp);
}

/* clang-format off */
UNIT_SUITE(qmp_peer, NULL, NULL,
	   {"truncated JSON then close", test_truncated},
	   {"non-JSON garbage", test_garbage},
	   {"a 100 MiB line", test_huge_line},
	   {"10,000-deep nesting", test_deep},
	   {"replies with wrong ids", test_wrong_ids},
	   {"early close", test_early_close},
	   {"no greeting", test_no_greeting},
	   {"a peer that never answers", test_never_answers},
	   {"an event flood", test_flood},
	   {"fd passing", test_fd_passing})
/* clang-format on */
