/* Control sockets of running migrations: JOBDIR/<pid>.sock, one request
 * line in, one JSON line out (see job.h).
 *
 * The server lives inside the migration's event loop, so nothing here may
 * wait: the listening socket and every client are non-blocking and sit in
 * one epoll set (the one fd the loop polls). Each client has a bounded
 * buffer and a deadline; a request counts once its whole line is in; the
 * reply is written (waiting for POLLOUT if the socket is full) before the
 * connection is closed. */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include <json-c/json.h>

#include "job.h"

enum client_state { C_FREE, C_READ, C_WRITE };

struct client {
	int fd;
	enum client_state state;
	int64_t deadline_ns;
	size_t len;                /* bytes of the request so far */
	char buf[JOB_LINE_MAX];
	char *out;                 /* the reply, newline included */
	size_t out_len, out_off;
};

struct job {
	int lfd, epfd;
	char path[108];
	job_answer_fn answer;
	void *user_data;
	struct client c[JOB_MAX_CLIENTS];
	int nclients;
	int listening;             /* the listener is in the epoll set */
	uint64_t served, dropped;
};

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* ---- the request parser (no I/O: the fuzzers' entry) ---- */

static int perr(char *err, size_t len, const char *what)
{
	if (err && len)
		snprintf(err, len, "%s", what);
	return -22; /* -EINVAL */
}

int job_parse_request(const char *line, size_t len, struct job_request *out, char *err,
		      size_t errlen)
{
	struct job_request rq = {0};
	const char *eq, *arg;
	size_t n, word;

	if (!line)
		return perr(err, errlen, "no request");
	/* One line: the newline (and a CR before it) ends it; nothing may follow. */
	for (n = 0; n < len && line[n] != '\n'; n++)
		if (!line[n])
			return perr(err, errlen, "NUL byte in request");
	if (n < len && n + 1 != len)
		return perr(err, errlen, "more than one line");
	if (n && line[n - 1] == '\r')
		n--;
	if (n >= JOB_LINE_MAX)
		return perr(err, errlen, "request too long");
	for (size_t i = 0; i < n; i++)
		if (!isprint((unsigned char)line[i]))
			return perr(err, errlen, "request is not printable text");
	for (word = 0; word < n && line[word] != ' '; word++)
		;
#define IS(w) (word == sizeof(w) - 1 && !memcmp(line, w, word))
	if (IS("status") || IS("cancel") || IS("postcopy")) {
		if (word != n)
			return perr(err, errlen, "this request takes no argument");
		rq.kind = IS("status") ? JOB_REQ_STATUS : IS("cancel") ? JOB_REQ_CANCEL
								       : JOB_REQ_POSTCOPY;
		*out = rq;
		return 0;
	}
	if (!IS("set"))
		return perr(err, errlen, "unknown request (status, cancel, set, postcopy)");
#undef IS
	if (word + 1 >= n)
		return perr(err, errlen, "set needs NAME=VALUE");
	arg = line + word + 1;
	eq = memchr(arg, '=', n - word - 1);
	if (!eq || eq == arg || eq + 1 == line + n)
		return perr(err, errlen, "set needs NAME=VALUE");
	if ((size_t)(eq - arg) >= sizeof(rq.name) ||
	    (size_t)(line + n - eq - 1) >= sizeof(rq.value))
		return perr(err, errlen, "set: name or value too long");
	if (memchr(arg, ' ', (size_t)(line + n - arg)))
		return perr(err, errlen, "set: no spaces in NAME=VALUE");
	memcpy(rq.name, arg, (size_t)(eq - arg));
	memcpy(rq.value, eq + 1, (size_t)(line + n - eq - 1));
	rq.kind = JOB_REQ_SET;
	*out = rq;
	return 0;
}

/* ---- the jobs directory ---- */

const char *job_dir(char *buf, size_t len)
{
	const char *xdg = getenv("XDG_RUNTIME_DIR");

	if (getuid() == 0)
		snprintf(buf, len, "/run/qmigrate/jobs");
	else if (xdg && *xdg == '/')
		snprintf(buf, len, "%s/qmigrate-jobs", xdg);
	else
		snprintf(buf, len, "/tmp/qmigrate-jobs-%u", (unsigned)getuid());
	return buf;
}

/* mkdir -p with private leaf; an existing leaf must be a directory of ours
 * that nobody else may enter, or another user could plant a socket (or a
 * symlink) for our clients to talk to, as transport/port.c checks its locks. */
static int make_private_dir(const char *dir, char *msg, size_t len)
{
	char tmp[256];
	struct stat st;

	if ((size_t)snprintf(tmp, sizeof(tmp), "%s", dir) >= sizeof(tmp)) {
		snprintf(msg, len, "%s: path too long", dir);
		return -ENAMETOOLONG;
	}
	for (char *p = tmp + 1; *p; p++)
		if (*p == '/') {
			*p = 0;
			mkdir(tmp, 0755);
			*p = '/';
		}
	if (mkdir(tmp, 0700) < 0 && errno != EEXIST) {
		snprintf(msg, len, "%s: %s", dir, strerror(errno));
		return -errno;
	}
	if (lstat(tmp, &st) < 0) {
		snprintf(msg, len, "%s: %s", dir, strerror(errno));
		return -errno;
	}
	if (!S_ISDIR(st.st_mode) || st.st_uid != geteuid() || (st.st_mode & 077)) {
		snprintf(msg, len, "job directory %s is not a private directory of ours "
				   "(owner uid %u, mode %03o)",
			 dir, (unsigned)st.st_uid, (unsigned)(st.st_mode & 0777));
		return -EPERM;
	}
	return 0;
}

int job_prepare_dir(char *buf, size_t len, char *msg, size_t msglen)
{
	job_dir(buf, len);
	return make_private_dir(buf, msg, msglen);
}

/* ---- the server ---- */

int job_open(struct job **out, const char *path, job_answer_fn answer, void *user_data,
	     char *msg, size_t len)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct epoll_event ev = {.events = EPOLLIN};
	char dir[200];
	struct job *j;
	int r;

	j = calloc(1, sizeof(*j));
	if (!j)
		return -ENOMEM;
	j->lfd = j->epfd = -1;
	j->answer = answer;
	j->user_data = user_data;
	if (path) {
		if ((size_t)snprintf(j->path, sizeof(j->path), "%s", path) >= sizeof(j->path)) {
			snprintf(msg, len, "%s: path too long for a unix socket", path);
			free(j);
			return -ENAMETOOLONG;
		}
	} else {
		job_dir(dir, sizeof(dir));
		r = make_private_dir(dir, msg, len);
		if (r < 0) {
			free(j);
			return r;
		}
		if ((size_t)snprintf(j->path, sizeof(j->path), "%s/%d.sock", dir,
				     (int)getpid()) >= sizeof(j->path)) {
			snprintf(msg, len, "%s: path too long for a unix socket", dir);
			free(j);
			return -ENAMETOOLONG;
		}
	}
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", j->path);
	unlink(j->path);
	j->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	j->epfd = epoll_create1(EPOLL_CLOEXEC);
	ev.data.u32 = JOB_MAX_CLIENTS;
	if (j->lfd < 0 || j->epfd < 0 || bind(j->lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    chmod(j->path, 0600) < 0 || listen(j->lfd, JOB_MAX_CLIENTS) < 0 ||
	    epoll_ctl(j->epfd, EPOLL_CTL_ADD, j->lfd, &ev) < 0) {
		r = -errno;
		snprintf(msg, len, "%s: %s", j->path, strerror(errno));
		job_close(j);
		return r;
	}
	j->listening = 1;
	*out = j;
	return 0;
}

static void client_drop(struct job *j, struct client *c, int served)
{
	epoll_ctl(j->epfd, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	free(c->out);
	*c = (struct client){.fd = -1};
	j->nclients--;
	if (served)
		j->served++;
	else
		j->dropped++;
}

void job_close(struct job *j)
{
	if (!j)
		return;
	for (int i = 0; i < JOB_MAX_CLIENTS; i++)
		if (j->c[i].state != C_FREE)
			client_drop(j, &j->c[i], 0);
	if (j->lfd >= 0) {
		close(j->lfd);
		unlink(j->path);
	}
	if (j->epfd >= 0)
		close(j->epfd);
	free(j);
}

int job_fd(const struct job *j)
{
	return j ? j->epfd : -1;
}

int job_timeout(const struct job *j)
{
	int64_t first = 0, now;

	if (!j || !j->nclients)
		return -1;
	for (int i = 0; i < JOB_MAX_CLIENTS; i++)
		if (j->c[i].state != C_FREE && (!first || j->c[i].deadline_ns < first))
			first = j->c[i].deadline_ns;
	now = now_ns();
	return first <= now ? 0 : (int)((first - now + 999999) / 1000000);
}

void job_stats(const struct job *j, uint64_t *served, uint64_t *dropped)
{
	*served = j ? j->served : 0;
	*dropped = j ? j->dropped : 0;
}

static char *error_reply(const char *what)
{
	struct json_object *o = json_object_new_object();
	char *s;

	json_object_object_add(o, "error", json_object_new_string(what));
	s = strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
	json_object_put(o);
	return s;
}

/* Try to write the rest of the reply; 1 when done (or hopeless). */
static int client_flush(struct job *j, struct client *c)
{
	while (c->out_off < c->out_len) {
		ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off,
				 MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			struct epoll_event ev = {.events = EPOLLOUT,
						 .data.u32 = (uint32_t)(c - j->c)};

			epoll_ctl(j->epfd, EPOLL_CTL_MOD, c->fd, &ev);
			return 0;
		}
		if (n <= 0) {
			client_drop(j, c, 0); /* gone before it took the reply */
			return 1;
		}
		c->out_off += (size_t)n;
	}
	client_drop(j, c, 1);
	return 1;
}

static void client_reply(struct job *j, struct client *c, char *body)
{
	size_t n;

	if (!body) {
		client_drop(j, c, 0);
		return;
	}
	n = strlen(body);
	c->out = realloc(body, n + 2);
	if (!c->out) {
		free(body);
		client_drop(j, c, 0);
		return;
	}
	c->out[n] = '\n';
	c->out[n + 1] = 0;
	c->out_len = n + 1;
	c->out_off = 0;
	c->state = C_WRITE;
	client_flush(j, c);
}

static void client_request(struct job *j, struct client *c, size_t line_len)
{
	struct job_request rq;
	char err[128];

	if (job_parse_request(c->buf, line_len, &rq, err, sizeof(err)) < 0)
		client_reply(j, c, error_reply(err));
	else
		client_reply(j, c, j->answer(&rq, j->user_data));
}

static void client_read(struct job *j, struct client *c)
{
	for (;;) {
		ssize_t n = recv(c->fd, c->buf + c->len, sizeof(c->buf) - c->len, MSG_DONTWAIT);
		char *nl;

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (n < 0) {
			client_drop(j, c, 0);
			return;
		}
		if (n == 0) {
			/* The client shut its side without a full line: tell it
			 * (it may still read), then close. */
			if (c->len)
				client_reply(j, c, error_reply("incomplete request: no newline"));
			else
				client_drop(j, c, 0);
			return;
		}
		nl = memchr(c->buf + c->len, '\n', (size_t)n);
		c->len += (size_t)n;
		if (nl) {
			/* Whatever follows the first line is ignored: one request
			 * per connection. */
			client_request(j, c, (size_t)(nl - c->buf) + 1);
			return;
		}
		if (c->len == sizeof(c->buf)) {
			client_reply(j, c, error_reply("request too long"));
			return;
		}
	}
}

/* Root and our own uid only: the socket is 0600 in a private directory,
 * and this holds even if someone loosens those. */
static int peer_allowed(int fd)
{
	struct ucred cr;
	socklen_t l = sizeof(cr);

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &l) < 0)
		return 0;
	return cr.uid == 0 || cr.uid == geteuid();
}

static void accept_clients(struct job *j)
{
	while (j->nclients < JOB_MAX_CLIENTS) {
		struct epoll_event ev = {.events = EPOLLIN};
		struct client *c = NULL;
		int fd = accept4(j->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd < 0)
			return;
		for (int i = 0; i < JOB_MAX_CLIENTS && !c; i++)
			if (j->c[i].state == C_FREE)
				c = &j->c[i];
		*c = (struct client){.fd = fd, .state = C_READ,
				     .deadline_ns = now_ns() + (int64_t)JOB_CLIENT_MS * 1000000};
		ev.data.u32 = (uint32_t)(c - j->c);
		if (epoll_ctl(j->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
			close(fd);
			*c = (struct client){.fd = -1};
			j->dropped++;
			continue;
		}
		j->nclients++;
		if (!peer_allowed(fd))
			client_reply(j, c, error_reply("permission denied: not the job's user"));
	}
}

/* With every slot taken, the listener leaves the epoll set (new clients
 * wait in the backlog) so that a level-triggered poll does not spin. */
static void listener_update(struct job *j)
{
	struct epoll_event ev = {.events = EPOLLIN, .data.u32 = JOB_MAX_CLIENTS};
	int want = j->nclients < JOB_MAX_CLIENTS;

	if (want == j->listening)
		return;
	if (epoll_ctl(j->epfd, want ? EPOLL_CTL_ADD : EPOLL_CTL_DEL, j->lfd, &ev) == 0)
		j->listening = want;
}

void job_serve(struct job *j)
{
	struct epoll_event evs[16];
	int64_t now;
	int n;

	if (!j)
		return;
	while ((n = epoll_wait(j->epfd, evs, 16, 0)) > 0) {
		for (int i = 0; i < n; i++) {
			uint32_t k = evs[i].data.u32;
			struct client *c;

			if (k == JOB_MAX_CLIENTS) {
				accept_clients(j);
				continue;
			}
			c = &j->c[k];
			if (c->state == C_READ)
				client_read(j, c);
			else if (c->state == C_WRITE)
				client_flush(j, c);
		}
		listener_update(j);
		if (n < 16)
			break;
	}
	now = now_ns();
	for (int i = 0; i < JOB_MAX_CLIENTS; i++)
		if (j->c[i].state != C_FREE && j->c[i].deadline_ns <= now)
			client_drop(j, &j->c[i], 0);
	listener_update(j);
}

/* ---- the client ---- */

char *job_request_path(const char *path, const char *req, int timeout_ms, char *msg,
		       size_t len)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct pollfd p = {.events = POLLIN};
	char line[JOB_LINE_MAX + 1], buf[8192];
	int64_t deadline = now_ns() + (int64_t)timeout_ms * 1000000;
	size_t got = 0, n;
	int send_err = 0;
	ssize_t k;

	n = (size_t)snprintf(line, sizeof(line), "%s\n", req);
	if (n >= sizeof(line) || n > JOB_LINE_MAX) {
		snprintf(msg, len, "request too long");
		return NULL;
	}
	if ((size_t)snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path) >=
	    sizeof(sa.sun_path)) {
		snprintf(msg, len, "%s: path too long for a unix socket", path);
		return NULL;
	}
	p.fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (p.fd < 0 || connect(p.fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		snprintf(msg, len, "%s: %s", path, strerror(errno));
		if (p.fd >= 0)
			close(p.fd);
		return NULL;
	}
	/* The whole line in one write. If it fails (the server answered and
	 * closed already, e.g. to refuse us), its reply may still be there. */
	if (send(p.fd, line, n, MSG_NOSIGNAL) != (ssize_t)n)
		send_err = errno ? errno : EIO;
	while (got < sizeof(buf) - 1 && !memchr(buf, '\n', got)) {
		int64_t left = (deadline - now_ns()) / 1000000;

		if (left <= 0 || poll(&p, 1, (int)left) != 1)
			break;
		k = read(p.fd, buf + got, sizeof(buf) - 1 - got);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			break;
		got += (size_t)k;
	}
	close(p.fd);
	buf[got] = 0;
	buf[strcspn(buf, "\n")] = 0;
	if (!*buf) {
		snprintf(msg, len, "%s: no reply (%s)", path,
			 send_err ? strerror(send_err) : got ? "empty line" : "timed out");
		return NULL;
	}
	return strdup(buf);
}

char *job_request(int pid, const char *req, char *msg, size_t len)
{
	char dir[200], path[300], found[300] = "";
	struct dirent *de;
	int n = 0;
	DIR *d;

	job_dir(dir, sizeof(dir));
	if (pid) {
		snprintf(path, sizeof(path), "%s/%d.sock", dir, pid);
		if (access(path, F_OK) < 0) {
			snprintf(msg, len, "no migration job with pid %d (no %s)", pid, path);
			return NULL;
		}
		return job_request_path(path, req, 5000, msg, len);
	}
	d = opendir(dir);
	while (d && (de = readdir(d))) {
		size_t l = strlen(de->d_name);

		if (l < 6 || strcmp(de->d_name + l - 5, ".sock"))
			continue;
		if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, de->d_name) >= sizeof(path))
			continue;
		/* A socket left by a process that died is removed. */
		if (kill(atoi(de->d_name), 0) < 0 && errno == ESRCH) {
			unlink(path);
			continue;
		}
		snprintf(found, sizeof(found), "%s", path);
		n++;
	}
	if (d)
		closedir(d);
	if (n != 1) {
		if (n > 1)
			snprintf(msg, len, "%d migrations are running: name one with --job PID",
				 n);
		else
			snprintf(msg, len, "no migration is running (no job in %s)", dir);
		return NULL;
	}
	return job_request_path(found, req, 5000, msg, len);
}
