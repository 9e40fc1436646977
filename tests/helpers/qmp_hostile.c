/* qmp_hostile LISTEN-PATH SHAPE [--only CMD] [--skip N] [--qemu QMP-PATH]
 *             [--drop-events] [--count N] [--group G] [--log FILE]
 *
 * A hostile QMP peer for the CLI tests: what a compromised or broken QEMU
 * could send, which a real one never does. It serves one client at a
 * time on LISTEN-PATH, forever, and prints "ready" once it listens.
 *
 * Every command (or only CMD, and only after the first N of them with
 * --skip N) is answered with SHAPE instead of its real reply; qmp_capabilities is always answered properly so the handshake
 * completes (except for SHAPE greeting). Other commands go to the real
 * QEMU at QMP-PATH with --qemu (descriptors passed along with them), or
 * are answered {"return": {}} without it; --drop-events keeps QEMU's events
 * from the client (a peer whose events are late or lost). --log FILE: every command's name,
 * one a line, with " *" after the ones answered with SHAPE.
 *
 * SHAPE:
 *   obj      {"return": {}}            arr     {"return": []}
 *   null     {"return": null}          str     {"return": "hostile"}
 *   hugenum  {"return": 1234...890}    (30 digits: past every integer type)
 *   both     {"return": {}, "error": {...}} with the right id
 *   otherid  the reply of another command (the id before, or one never sent)
 *   trunc    half a reply, then the connection closes
 *   oversize a reply of 8 MiB (a string), then silence
 *   greeting an endless greeting, never finished
 *   objects  {"return": [{},{},...]} with N (--count) empty objects
 *   scalars  {"return": [1,1,...]} with N ones
 *   strings  {"return": ["","",...]} with N empty strings
 *            (these three in arrays of G elements each with --group G,
 *            [[{},...],[{},...],...], to stay under an element limit)
 *   string   {"return": "xxx..."} with N bytes
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <json-c/json.h>

#define GREETING                                                                               \
	"{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 0, \"minor\": 2, \"major\": 7}, "      \
	"\"package\": \"hostile\"}, \"capabilities\": [\"oob\"]}}\r\n"

static const char *shape, *only;
static long count = 1000, group, skip;
static int drop_events;
static FILE *cmdlog;

static int unix_sock(const char *path, int listen_)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	if (listen_) {
		unlink(path);
		if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 8) < 0)
			return -1;
	} else if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* Write all of it; 0, or -1 when the client went away. */
static int put(int fd, const void *p, size_t n)
{
	const char *s = p;

	while (n) {
		ssize_t w = send(fd, s, n, MSG_NOSIGNAL);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		s += w;
		n -= (size_t)w;
	}
	return 0;
}

static int puts_fd(int fd, const char *s)
{
	return put(fd, s, strlen(s));
}

/* Forward with the descriptor that came with the bytes, if any. */
static int put_fd(int to, const char *p, size_t n, int pass)
{
	char ctl[CMSG_SPACE(sizeof(int))] = {0};
	struct iovec iov = {(void *)p, n};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
	struct cmsghdr *cm;

	if (pass < 0)
		return put(to, p, n);
	mh.msg_control = ctl;
	mh.msg_controllen = sizeof(ctl);
	cm = CMSG_FIRSTHDR(&mh);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cm), &pass, sizeof(int));
	if (sendmsg(to, &mh, MSG_NOSIGNAL) != (ssize_t)n)
		return -1;
	return 0;
}

/* A big array or string reply, built in pieces. */
static int send_many(int fd, long id, const char *open, const char *el, const char *sep,
		     const char *close)
{
	char tail[64], chunk[65536];
	size_t el_n = strlen(el), sep_n = strlen(sep), used = 0;

	if (puts_fd(fd, open) < 0)
		return -1;
	for (long i = 0; i < count; i++) {
		if (used + el_n + sep_n + 4 > sizeof(chunk)) {
			if (put(fd, chunk, used) < 0)
				return -1;
			used = 0;
		}
		if (group && i % group == 0) {
			memcpy(chunk + used, i ? "],[" : "[", i ? 3 : 1);
			used += i ? 3 : 1;
		} else if (i) {
			memcpy(chunk + used, sep, sep_n);
			used += sep_n;
		}
		memcpy(chunk + used, el, el_n);
		used += el_n;
	}
	if (group && count)
		chunk[used++] = ']';
	if (used && put(fd, chunk, used) < 0)
		return -1;
	snprintf(tail, sizeof(tail), "%s, \"id\": %ld}\r\n", close, id);
	return puts_fd(fd, tail);
}

/* Answer command id with the shape. Returns 0 to go on, -1 to hang up,
 * 1 to go silent (the client's timeouts end it). */
static int answer(int fd, long id, long prev_id)
{
	char buf[512];

	if (!strcmp(shape, "objects"))
		return send_many(fd, id, "{\"return\": [", "{}", ",", "]");
	if (!strcmp(shape, "scalars"))
		return send_many(fd, id, "{\"return\": [", "1", ",", "]");
	if (!strcmp(shape, "strings"))
		return send_many(fd, id, "{\"return\": [", "\"\"", ",", "]");
	if (!strcmp(shape, "string"))
		return send_many(fd, id, "{\"return\": \"", "x", "", "\"");
	if (!strcmp(shape, "oversize")) {
		long keep = count, keep_group = group;

		count = 8L << 20;
		group = 0;
		send_many(fd, id, "{\"return\": \"", "x", "", "\"");
		count = keep;
		group = keep_group;
		return 1;
	}
	if (!strcmp(shape, "trunc")) {
		snprintf(buf, sizeof(buf), "{\"id\": %ld, \"return\": {\"status\": \"runn", id);
		puts_fd(fd, buf);
		return -1;
	}
	if (!strcmp(shape, "otherid")) {
		snprintf(buf, sizeof(buf), "{\"return\": {}, \"id\": %ld}\r\n",
			 prev_id >= 0 ? prev_id : id + 1000);
		return puts_fd(fd, buf);
	}
	if (!strcmp(shape, "both"))
		snprintf(buf, sizeof(buf),
			 "{\"return\": {}, \"error\": {\"class\": \"GenericError\", \"desc\": "
			 "\"both\"}, \"id\": %ld}\r\n",
			 id);
	else
		snprintf(buf, sizeof(buf), "{\"return\": %s, \"id\": %ld}\r\n",
			 !strcmp(shape, "obj")	   ? "{}"
			 : !strcmp(shape, "arr")   ? "[]"
			 : !strcmp(shape, "null")  ? "null"
			 : !strcmp(shape, "str")   ? "\"hostile\""
			 : !strcmp(shape, "hugenum") ? "123456789012345678901234567890"
						   : "{}",
			 id);
	return puts_fd(fd, buf);
}

static void endless_greeting(int fd)
{
	char x[4096];

	memset(x, 'x', sizeof(x));
	puts_fd(fd, "{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 0, \"minor\": 2, "
		    "\"major\": 7}, \"package\": \"");
	while (put(fd, x, sizeof(x)) == 0)
		;
}

/* One command line from the client: answer it or forward it. */
static int on_line(int cfd, int qfd, char *line, size_t n, int pass, long *prev_id)
{
	struct json_object *o = json_tokener_parse(line), *v;
	const char *cmd = "";
	long id = -1;
	int r = 0;

	if (o && json_object_object_get_ex(o, "execute", &v))
		cmd = json_object_get_string(v);
	else if (o && json_object_object_get_ex(o, "exec-oob", &v))
		cmd = json_object_get_string(v);
	if (o && json_object_object_get_ex(o, "id", &v))
		id = (long)json_object_get_int64(v);
	int hit = strcmp(cmd, "qmp_capabilities") && (!only || !strcmp(cmd, only)) && skip-- <= 0;

	if (cmdlog) {
		fprintf(cmdlog, "%s%s\n", cmd, hit ? " *" : "");
		fflush(cmdlog);
	}
	if (hit) {
		r = answer(cfd, id, *prev_id);
	} else if (qfd >= 0) {
		line[n] = '\n';
		r = put_fd(qfd, line, n + 1, pass);
	} else {
		char buf[128];

		snprintf(buf, sizeof(buf), "{\"return\": {}, \"id\": %ld}\r\n", id);
		r = puts_fd(cfd, buf);
	}
	*prev_id = id;
	json_object_put(o);
	return r;
}

struct linebuf {
	char *p;
	size_t len, cap;
};

/* --drop-events: QEMU's lines to the client, its events left out. */
static int forward_lines(int cfd, struct linebuf *b, const char *in, size_t n)
{
	char *s, *nl;

	if (b->len + n + 1 > b->cap) {
		size_t cap = (b->len + n + 1) * 2;
		char *p = realloc(b->p, cap);

		if (!p)
			return -1;
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->len, in, n);
	b->len += n;
	b->p[b->len] = 0;
	for (s = b->p; (nl = strchr(s, '\n')); s = nl + 1) {
		struct json_object *o;
		int ev;

		*nl = 0;
		o = json_tokener_parse(s);
		ev = o && json_object_object_get_ex(o, "event", NULL);
		json_object_put(o);
		if (!ev && (put(cfd, s, strlen(s)) < 0 || put(cfd, "\n", 1) < 0))
			return -1;
	}
	b->len -= (size_t)(s - b->p);
	memmove(b->p, s, b->len);
	return 0;
}

static void serve(int cfd, const char *qemu)
{
	size_t cap = 1 << 20, used = 0;
	char *in = malloc(cap), buf[65536];
	int qfd = -1, pass = -1;
	long prev_id = -1;
	struct linebuf qin = {0};

	if (!strcmp(shape, "greeting")) {
		endless_greeting(cfd);
		goto out;
	}
	if (qemu) {
		qfd = unix_sock(qemu, 0);
		if (qfd < 0) {
			perror("qmp_hostile: the real QEMU");
			goto out;
		}
	} else if (puts_fd(cfd, GREETING) < 0) {
		goto out;
	}
	for (;;) {
		struct pollfd p[2] = {{cfd, POLLIN, 0}, {qfd, POLLIN, 0}};
		int silent = 0;

		if (poll(p, qfd >= 0 ? 2 : 1, -1) < 0)
			break;
		if (qfd >= 0 && p[1].revents) {
			ssize_t n = read(qfd, buf, sizeof(buf));

			if (n <= 0)
				break;
			if (!drop_events) {
				if (put(cfd, buf, (size_t)n) < 0)
					break;
			} else if (forward_lines(cfd, &qin, buf, (size_t)n) < 0) {
				break;
			}
		}
		if (p[0].revents) {
			char ctl[CMSG_SPACE(sizeof(int))];
			struct iovec iov = {in + used, cap - used - 1};
			struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl,
					    .msg_controllen = sizeof(ctl)};
			struct cmsghdr *cm;
			ssize_t n = recvmsg(cfd, &mh, MSG_CMSG_CLOEXEC);
			char *s, *nl;

			if (n <= 0)
				break;
			for (cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm))
				if (cm->cmsg_type == SCM_RIGHTS) {
					if (pass >= 0)
						close(pass);
					memcpy(&pass, CMSG_DATA(cm), sizeof(int));
				}
			used += (size_t)n;
			in[used] = 0;
			for (s = in; (nl = strchr(s, '\n')); s = nl + 1) {
				int r;

				*nl = 0;
				r = on_line(cfd, qfd, s, (size_t)(nl - s), pass, &prev_id);
				if (pass >= 0) {
					close(pass);
					pass = -1;
				}
				if (r < 0)
					goto out;
				if (r > 0)
					silent = 1;
			}
			used -= (size_t)(s - in);
			memmove(in, s, used);
			if (used + 1 >= cap)
				break;
		}
		/* Silence: keep the connection, answer nothing more. */
		while (silent) {
			ssize_t n = read(cfd, buf, sizeof(buf));

			if (n <= 0)
				goto out;
		}
	}
out:
	free(qin.p);
	if (pass >= 0)
		close(pass);
	if (qfd >= 0)
		close(qfd);
	close(cfd);
	free(in);
}

int main(int argc, char **argv)
{
	const char *qemu = NULL;
	int lfd;

	if (argc < 3) {
		fprintf(stderr, "usage: qmp_hostile LISTEN-PATH SHAPE [--only CMD] "
				"[--skip N] [--qemu QMP-PATH] [--drop-events] [--count N] "
				"[--group G] [--log FILE]\n");
		return 2;
	}
	shape = argv[2];
	for (int i = 3; i < argc; i++) {
		const char *v = i + 1 < argc ? argv[i + 1] : "";

		if (!strcmp(argv[i], "--drop-events")) {
			drop_events = 1;
			continue;
		}
		if (!strcmp(argv[i], "--only"))
			only = v;
		else if (!strcmp(argv[i], "--qemu"))
			qemu = v;
		else if (!strcmp(argv[i], "--count"))
			count = atol(v);
		else if (!strcmp(argv[i], "--group"))
			group = atol(v);
		else if (!strcmp(argv[i], "--skip"))
			skip = atol(v);
		else if (!strcmp(argv[i], "--log"))
			cmdlog = fopen(v, "we");
		else {
			fprintf(stderr, "qmp_hostile: unknown option %s\n", argv[i]);
			return 2;
		}
		i++;
	}
	signal(SIGPIPE, SIG_IGN);
	lfd = unix_sock(argv[1], 1);
	if (lfd < 0) {
		perror("qmp_hostile");
		return 1;
	}
	puts("ready");
	fflush(stdout);
	for (;;) {
		int cfd = accept(lfd, NULL, NULL);

		if (cfd >= 0)
			serve(cfd, qemu);
	}
}
