/* The agent protocol's framing (engine/agent/agent_io.c) against canned bytes:
 * one JSON object per line, the size and nesting limits, lines split
 * across reads, garbage, EOF. The hostile cases the real agent must
 * survive, with no network and no QEMU. */
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <json-c/json.h>

#include "agent/agent.h"
#include "qm_wait.h"
#include "unit.h"

#define MS 1000000LL

static int pair(struct qm_aconn *c, int *peer)
{
	int sv[2];

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0)
		return -1;
	qm_aconn_plain(c, sv[0], sv[0], 1);
	*peer = sv[1];
	return 0;
}

static int64_t soon(void)
{
	return qm_wait_now_ns() + 500 * MS;
}

static void t_lines(void)
{
	struct qm_aconn c;
	struct json_object *o = NULL;
	const char *two = "{\"op\":\"hello\",\"version\":1}\n{\"op\":\"ping\"}\r\n{\"op\":";
	int p = -1;

	CU_ASSERT_EQUAL_FATAL(pair(&c, &p), 0);
	CU_ASSERT_EQUAL(write(p, two, strlen(two)), (ssize_t)strlen(two));
	CU_ASSERT_EQUAL(qm_aconn_recv(&c, &o, soon()), 0);
	CU_ASSERT_STRING_EQUAL(qm_aj_str(o, "op"), "hello");
	json_object_put(o);
	CU_ASSERT_EQUAL(qm_aconn_recv(&c, &o, soon()), 0);
	CU_ASSERT_STRING_EQUAL(qm_aj_str(o, "op"), "ping");
	json_object_put(o);
	/* Half a line: waits, then times out. */
	CU_ASSERT_EQUAL(qm_aconn_recv(&c, &o, qm_wait_now_ns() + 20 * MS), -ETIMEDOUT);
	/* The rest arrives. */
	CU_ASSERT_EQUAL(write(p, "\"status\"}\n", 10), 10);
	CU_ASSERT_EQUAL(qm_aconn_recv(&c, &o, soon()), 0);
	CU_ASSERT_STRING_EQUAL(qm_aj_str(o, "op"), "status");
	json_object_put(o);
	close(p);
	CU_ASSERT_EQUAL(qm_aconn_recv(&c, &o, soon()), -ECONNRESET);
	qm_aconn_close(&c);
}

static void t_hostile(void)
{
	static const char *bad[] = {
		"not json\n", "[1,2,3]\n", "\"a string\"\n", "{\"op\":1} {\"op\":2}\n",
		"{\"op\":\"x\"\n", "\x01\x02\xff\xfe\n", "{\"a\":\0}\n", NULL};
	struct qm_aconn c;
	struct json_object *o = NULL;
	int p = -1;

	CU_ASSERT_EQUAL_FATAL(pair(&c, &p), 0);
	for (int i = 0; bad[i]; i++) {
		size_t n = i == 6 ? 9 : strlen(bad[i]);

		CU_ASSERT_EQUAL(write(p, bad[i], n), (ssize_t)n);
		CU_ASSERT_EQUAL(qm_aconn_recv(&c, &o, soon()), -EBADMSG);
	}
	/* Nested deeper than the limit. */
	{
		char deep[200];
		size_t n = 0;

		for (int i = 0; i < 40; i++)
			n += (size_t)snprintf(deep + n, sizeof(deep) - n, "[");
		deep[n++] = '\n';
		CU_ASSERT_EQUAL(write(p, deep, n), (ssize_t)n);
		CU_ASSERT_EQUAL(qm_aconn_recv(&c, &o, soon()), -EBADMSG);
	}
	/* Still good after all that. */
	CU_ASSERT_EQUAL(write(p, "{\"op\":\"ping\"}\n", 14), 14);
	CU_ASSERT_EQUAL(qm_aconn_recv(&c, &o, soon()), 0);
	json_object_put(o);
	close(p);
	qm_aconn_close(&c);
}

static void t_oversize(void)
{
	struct qm_aconn c;
	struct json_object *o = NULL;
	char *big = malloc(QM_AGENT_LINE_MAX + 100);
	int p = -1, r;
	size_t off = 0, n = QM_AGENT_LINE_MAX + 100;

	CU_ASSERT_EQUAL_FATAL(pair(&c, &p), 0);
	memset(big, 'x', n);
	memcpy(big, "{\"op\":\"", 7);
	/* Feed it in pieces as the socket buffer allows; the reader must
	 * refuse once it holds the limit without a newline. */
	do {
		ssize_t w = write(p, big + off, n - off);

		if (w > 0)
			off += (size_t)w;
		r = qm_aconn_recv(&c, &o, qm_wait_now_ns() + 20 * MS);
	} while (r == -ETIMEDOUT && off < n);
	CU_ASSERT_EQUAL(r, -EMSGSIZE);
	free(big);
	close(p);
	qm_aconn_close(&c);
}

static void t_send_raw(void)
{
	struct qm_aconn c;
	struct json_object *o = json_object_new_object();
	char buf[64];
	int p = -1;
	ssize_t n;

	CU_ASSERT_EQUAL_FATAL(pair(&c, &p), 0);
	json_object_object_add(o, "op", json_object_new_string("a/b"));
	CU_ASSERT_EQUAL(qm_aconn_send(&c, o, soon()), 0);
	json_object_put(o);
	n = read(p, buf, sizeof(buf) - 1);
	CU_ASSERT_TRUE(n > 0);
	buf[n > 0 ? n : 0] = 0;
	CU_ASSERT_PTR_NOT_NULL(strchr(buf, '\n'));
	CU_ASSERT_EQUAL(strchr(buf, '\n') - buf, n - 1);
	/* Raw bytes after a line (the tunnel) come out in order, buffered first. */
	CU_ASSERT_EQUAL(write(p, "{\"op\":\"qmp\"}\nRAW", 16), 16);
	CU_ASSERT_EQUAL(qm_aconn_recv(&c, &o, soon()), 0);
	json_object_put(o);
	n = qm_aconn_read(&c, buf, sizeof(buf), soon());
	CU_ASSERT_EQUAL(n, 3);
	CU_ASSERT_EQUAL(memcmp(buf, "RAW", 3), 0);
	CU_ASSERT_EQUAL(qm_aconn_read_now(&c, buf, sizeof(buf)), -EAGAIN);
	close(p);
	qm_aconn_close(&c);
}

/* A version-1 caller's options end before stream_tls_dir: only that much
 * is read (ASan sees an over-read of this exactly-sized copy). No session
 * is alive, so no path is a remote destination. */
static void t_opts_v1(void)
{
	size_t v1 = offsetof(struct qmig_agent_opts, stream_tls_dir);
	struct qmig_agent_opts full = QMIG_AGENT_OPTS_INIT;
	void *o = malloc(v1);
	struct json_object *rep = NULL;
	char msg[200] = "";

	CU_ASSERT_PTR_NOT_NULL_FATAL(o);
	full.version = 1;
	full.url = "ssh://nowhere.invalid";
	memcpy(o, &full, v1);
	CU_ASSERT_EQUAL(qmig_agent_request(o, "status", &rep, msg, sizeof(msg)), -EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(msg, "connect callback"));
	CU_ASSERT_PTR_NULL(rep);
	free(o);
	CU_ASSERT_EQUAL(qm_agent_remote_dst(NULL), 0);
	CU_ASSERT_EQUAL(qm_agent_remote_dst("/tmp/qmig-agent-1-x/dst-qmp.sock"), 0);
}

/* A version-2 caller's options end before queued (version 3): the same. */
static void t_opts_v2(void)
{
	size_t v2 = offsetof(struct qmig_agent_opts, queued);
	struct qmig_agent_opts full = QMIG_AGENT_OPTS_INIT;
	void *o = malloc(v2);
	struct json_object *rep = NULL;
	char msg[200] = "";

	CU_ASSERT_PTR_NOT_NULL_FATAL(o);
	full.version = 2;
	full.url = "ssh://nowhere.invalid";
	memcpy(o, &full, v2);
	CU_ASSERT_EQUAL(qmig_agent_request(o, "status", &rep, msg, sizeof(msg)), -EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(msg, "connect callback"));
	CU_ASSERT_PTR_NULL(rep);
	free(o);
}

UNIT_SUITE(agent, NULL, NULL, {"JSON lines, split reads, timeout, EOF", t_lines},
	   {"garbage, several objects, deep nesting refused; the reader goes on", t_hostile},
	   {"an oversized line refused at the limit", t_oversize},
	   {"send is one line; raw bytes after a line", t_send_raw},
	   {"a version-1 caller's options; no remote destination", t_opts_v1},
	   {"a version-2 caller's options read only as far as they go", t_opts_v2})
