/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The QMP connection: the protocol core around a non-blocking unix or TCP
 * socket. Every wait is a poll() bounded by a deadline, so a peer that
 * never answers costs a timeout, never a hang. Reads are bounded per step
 * and events are handed to the callback as soon as they are parsed, so a
 * peer that floods events costs CPU until the call's deadline, not memory.
 */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "qmig_qmp.h"
#include "qm_wait.h"
#include "qmp_int.h"
#include "qmp_reply.h"

/* Calls may nest (an event callback may issue a command); replies for an
 * outer call that arrive during an inner one are kept here. */
#define QM_MAX_NEST 8

struct qmig_qmp_conn {
	int fd;
	int broken; /* negative errno once the connection is unusable */
	int timeout_ms;
	struct qmig_qmp *core;
	struct qmig_qmp_event_cb ev;
	char addr[128];
	char err[512];
	char err_class[64];
	uint64_t waiting[QM_MAX_NEST];
	size_t nwaiting;
	struct qmig_qmp_msg stash[QM_MAX_NEST];
	size_t nstash;
	char rbuf[65536];
	struct qmig_log_cb hs_log; /* the caller's, during the handshake */
};

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int set_err(struct qmig_qmp_conn *c, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int set_err(struct qmig_qmp_conn *c, int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(c->err, sizeof(c->err), fmt, ap);
	va_end(ap);
	c->err_class[0] = 0;
	return err;
}

int qm_qmp_conn_fail(struct qmig_qmp_conn *c, int err, const char *fmt, ...)
{
	va_list ap;
	int n;

	n = snprintf(c->err, sizeof(c->err), "%s: ", c->addr);
	va_start(ap, fmt);
	vsnprintf(c->err + n, sizeof(c->err) - (size_t)n, fmt, ap);
	va_end(ap);
	c->err_class[0] = 0;
	return err;
}

/* The connection cannot be used any more: remember why. */
static int set_broken(struct qmig_qmp_conn *c, int err)
{
	if (!c->broken) {
		c->broken = err;
		snprintf(c->err, sizeof(c->err), "%s: %s", c->addr, qmig_qmp_error(c->core));
		c->err_class[0] = 0;
		/* Nothing more is read from a peer that broke the protocol or a
		 * limit, and the monitor is handed back at once. */
		if (c->fd >= 0)
			shutdown(c->fd, SHUT_RDWR);
	}
	return c->broken;
}

/* ---- connecting -------------------------------------------------------- */

/* Waits go through qm_wait_fd: blocking on a plain stack, a suspension
 * inside the engine's fiber (qm_wait.h). */
static int wait_fd(int fd, short events, int64_t deadline)
{
	int r;

	if (deadline - now_ms() <= 0)
		return -ETIMEDOUT;
	r = qm_wait_fd(fd, events, deadline * 1000000);
	if (r < 0)
		return r;
	return r == 0 ? -ETIMEDOUT : 0;
}

static int connect_unix(struct qmig_qmp_conn *c, const char *path, int64_t deadline)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int r;

	if (strlen(path) >= sizeof(sa.sun_path))
		return set_err(c, -ENAMETOOLONG, "QMP socket path too long: %s", path);
	memcpy(sa.sun_path, path, strlen(path) + 1);
	c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd < 0)
		return set_err(c, -errno, "socket: %s", strerror(errno));
	/* A full backlog gives EAGAIN on unix sockets: retry until the deadline. */
	while (connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		r = -errno;
		if (r == -EINTR)
			continue;
		if (r != -EAGAIN)
			return set_err(c, r, "cannot connect to QMP socket %s: %s", path,
				       strerror(-r));
		if (now_ms() >= deadline)
			return set_err(c, -ETIMEDOUT, "QMP socket %s: backlog full until timeout",
				       path);
		r = qm_sleep_until((now_ms() + 10) * 1000000);
		if (r < 0)
			return set_err(c, r, "QMP socket %s: %s", path, strerror(-r));
	}
	return 0;
}

static int connect_tcp(struct qmig_qmp_conn *c, const char *hostport, int64_t deadline)
{
	struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *ai;
	char host[128];
	const char *colon = strrchr(hostport, ':');
	size_t hl;
	int r, one = 1, soerr = 0;
	socklen_t sl = sizeof(soerr);

	if (!colon || colon == hostport || (hl = (size_t)(colon - hostport)) >= sizeof(host))
		return set_err(c, -EINVAL, "bad QMP address tcp:%s (want tcp:HOST:PORT)", hostport);
	if (hostport[0] == '[' && colon[-1] == ']') {
		memcpy(host, hostport + 1, hl - 2);
		host[hl - 2] = 0;
	} else {
		memcpy(host, hostport, hl);
		host[hl] = 0;
	}
	r = getaddrinfo(host, colon + 1, &hints, &ai);
	if (r)
		return set_err(c, -EHOSTUNREACH, "tcp:%s: %s", hostport, gai_strerror(r));
	c->fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd < 0) {
		r = set_err(c, -errno, "socket: %s", strerror(errno));
		freeaddrinfo(ai);
		return r;
	}
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	r = connect(c->fd, ai->ai_addr, ai->ai_addrlen) < 0 ? -errno : 0;
	freeaddrinfo(ai);
	if (r == -EINPROGRESS) {
		r = wait_fd(c->fd, POLLOUT, deadline);
		if (!r && getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) == 0)
			r = -soerr;
	}
	if (r < 0)
		return set_err(c, r, "cannot connect to QMP at tcp:%s: %s", hostport, strerror(-r));
	return 0;
}

/* ---- moving bytes ------------------------------------------------------ */

static int recv_some(struct qmig_qmp_conn *c);
static void drain(struct qmig_qmp_conn *c);

/* Send what the core has queued, without waiting. With pass_fd >= 0 the
 * descriptor rides on the first byte sent (QEMU attaches it to the command
 * whose bytes carried it). Returns 1 if something remains, 0, or -errno. */
static int send_some(struct qmig_qmp_conn *c, int pass_fd)
{
	size_t len;
	const void *p = qmig_qmp_output(c->core, &len);
	ssize_t n;

	if (!len)
		return 0;
	if (pass_fd >= 0) {
		char ctl[CMSG_SPACE(sizeof(int))] = {0};
		struct iovec iov = {(void *)p, len};
		struct msghdr mh = {.msg_iov = &iov,
				    .msg_iovlen = 1,
				    .msg_control = ctl,
				    .msg_controllen = sizeof(ctl)};
		struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);

		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(cm), &pass_fd, sizeof(int));
		n = sendmsg(c->fd, &mh, MSG_NOSIGNAL);
	} else {
		n = send(c->fd, p, len, MSG_NOSIGNAL);
	}
	if (n < 0) {
		int e = errno, r;

		if (e == EAGAIN || e == EINTR)
			return 1;
		if (e == EPIPE || e == ECONNRESET) {
			/* The peer hung up: how the stream ended (mid-message,
			 * commands unanswered) says more than "broken pipe". */
			while ((r = recv_some(c)) > 0)
				;
			/* What came before the hang-up still goes to its owners:
			 * an event such as RESUME must not be lost with it. */
			drain(c);
			if (r < 0)
				return r;
		}
		c->broken = -e;
		return set_err(c, -e, "%s: send: %s", c->addr, strerror(e));
	}
	qmig_qmp_output_done(c->core, (size_t)n);
	qmig_qmp_output(c->core, &len);
	return len ? 1 : 0;
}

/* Read once; 1 if bytes came, 0 if none were there, or -errno. */
static int recv_some(struct qmig_qmp_conn *c)
{
	ssize_t n = recv(c->fd, c->rbuf, sizeof(c->rbuf), MSG_DONTWAIT);
	int r;

	/* A peer that closes with our bytes unread gives ECONNRESET instead
	 * of eof: it is the same hang-up. */
	if (n < 0 && errno == ECONNRESET)
		n = 0;
	if (n < 0) {
		int e = errno;

		if (e == EAGAIN || e == EINTR)
			return 0;
		c->broken = -e;
		return set_err(c, -e, "%s: recv: %s", c->addr, strerror(e));
	}
	if (n == 0) {
		r = qmig_qmp_eof(c->core);
		if (r < 0)
			return set_broken(c, r);
		c->broken = -ECONNRESET;
		return set_err(c, -ECONNRESET, "%s: QEMU closed the QMP connection", c->addr);
	}
	r = qmig_qmp_feed(c->core, c->rbuf, (size_t)n);
	return r < 0 ? set_broken(c, r) : 1;
}

/* One bounded wait: for input, and for output room when bytes are queued. */
static int step(struct qmig_qmp_conn *c, int64_t deadline)
{
	struct pollfd p = {c->fd, POLLIN, 0};
	int64_t left = deadline - now_ms();
	size_t len;
	int r;

	qmig_qmp_output(c->core, &len);
	if (len)
		p.events |= POLLOUT;
	if (left <= 0)
		return -ETIMEDOUT;
	r = qm_wait_fd(c->fd, p.events, deadline * 1000000);
	if (r == -ECANCELED)
		return set_err(c, r, "%s: abandoned (the migration handle was freed)", c->addr);
	if (r < 0)
		return set_err(c, r, "poll: %s", strerror(-r));
	if (r == 0)
		return -ETIMEDOUT;
	p.revents = (short)r;
	if (p.revents & POLLOUT) {
		r = send_some(c, -1);
		if (r < 0)
			return r;
	}
	if (p.revents & (POLLIN | POLLHUP | POLLERR))
		return recv_some(c) < 0 ? c->broken : 0;
	return 0;
}

/* ---- dispatching ------------------------------------------------------- */

static int is_waited(const struct qmig_qmp_conn *c, uint64_t id)
{
	for (size_t i = 0; i < c->nwaiting; i++)
		if (c->waiting[i] == id)
			return 1;
	return 0;
}

/* Hand every parsed message to its owner: events to the callback,
 * replies to the stash when some call waits for them. */
static void drain(struct qmig_qmp_conn *c)
{
	struct qmig_qmp_msg m;

	while (qmig_qmp_next(c->core, &m) == 1) {
		if (m.kind == QMIG_QMP_MSG_EVENT) {
			if (c->ev.fn)
				c->ev.fn(m.event, m.data, m.ts_sec, m.ts_usec, c->ev.user_data);
		} else if (is_waited(c, m.id) && c->nstash < QM_MAX_NEST) {
			c->stash[c->nstash++] = m;
			continue;
		} else {
			qm_qmp_log(c->core, QMIG_LOG_DEBUG, "qmp: reply %llu nobody waits for",
				   (unsigned long long)m.id);
		}
		qmig_qmp_msg_clear(&m);
	}
}

static int take_stashed(struct qmig_qmp_conn *c, uint64_t id, struct qmig_qmp_msg *out)
{
	for (size_t i = 0; i < c->nstash; i++) {
		if (c->stash[i].id != id)
			continue;
		*out = c->stash[i];
		c->stash[i] = c->stash[--c->nstash];
		return 1;
	}
	return 0;
}

/* ---- public ------------------------------------------------------------ */

static int handshake(struct qmig_qmp_conn *c, int64_t deadline)
{
	int r = 0;

	while (qmig_qmp_state(c->core) != QMIG_QMP_READY) {
		r = step(c, deadline);
		if (r == -ETIMEDOUT)
			return set_err(c, r,
				       qmig_qmp_state(c->core) == QMIG_QMP_WAIT_GREETING
					   ? "%s: no QMP greeting within %d ms (is another client "
					     "connected to this monitor?)"
					   : "%s: qmp_capabilities not answered within %d ms",
				       c->addr, c->timeout_ms);
		if (r < 0)
			return r;
	}
	drain(c);
	return 0;
}

static void handshake_log(enum qmig_log_level level, const char *msg, void *user_data)
{
	struct qmig_qmp_conn *c = user_data;

	if (level != QMIG_LOG_ERROR && c->hs_log.fn)
		c->hs_log.fn(level, msg, c->hs_log.user_data);
}

/* Where this connection's command ids start: random, below 2^44 (exact as
 * a double anywhere the id travels), so the leftover reply of an earlier
 * client of the same monitor cannot answer one of ours. */
static uint64_t first_id(void)
{
	uint64_t r = 0;
	struct timespec ts;

	if (getrandom(&r, sizeof(r), GRND_NONBLOCK) != (ssize_t)sizeof(r)) {
		clock_gettime(CLOCK_MONOTONIC, &ts);
		r = ((uint64_t)ts.tv_nsec << 20) ^ (uint64_t)ts.tv_sec ^ ((uint64_t)getpid() << 32);
	}
	return 1 + (r & ((UINT64_C(1) << 44) - 1));
}

int qmig_qmp_conn_open(struct qmig_qmp_conn **out, const char *addr,
		       const struct qmig_qmp_conn_opts *opts)
{
	struct qmig_qmp_conn_opts def = QMIG_QMP_CONN_OPTS_INIT;
	struct qmig_qmp_conn *c;
	int64_t deadline;
	int r;

	if (!out || !addr || !*addr)
		return -EINVAL;
	if (!opts)
		opts = &def;
	if (opts->version != QMIG_QMP_CONN_OPTS_VERSION)
		return -EINVAL;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->fd = -1;
	c->timeout_ms = opts->timeout_ms > 0 ? opts->timeout_ms : def.timeout_ms;
	snprintf(c->addr, sizeof(c->addr), "%s", addr);
	r = qmig_qmp_new(&c->core, &opts->limits);
	if (r < 0)
		goto fail;
	qm_qmp_set_next_id(c->core, first_id());
	/* The handshake may have something to say (a leftover reply dropped):
	 * warnings go to the caller's callback now, an error once, below. */
	c->hs_log = opts->log;
	qm_qmp_take_log(c->core, &(struct qmig_log_cb){handshake_log, c, NULL});
	deadline = now_ms() + c->timeout_ms;
	if (!strncmp(addr, "tcp:", 4))
		r = connect_tcp(c, addr + 4, deadline);
	else
		r = connect_unix(c, addr, deadline);
	if (!r)
		r = handshake(c, deadline);
	if (r < 0)
		goto fail;
	/* Only now does the log callback belong to us (on failure it never runs). */
	qm_qmp_take_log(c->core, &opts->log);
	*out = c;
	return 0;
fail:
	if (c->core)
		qm_qmp_take_log(c->core, NULL);
	/* The reason would die with the handle: hand it to the logger (its
	 * free does not run, the caller still owns it). */
	if (opts->log.fn && c->err[0])
		opts->log.fn(QMIG_LOG_ERROR, c->err, opts->log.user_data);
	qmig_qmp_conn_close(c);
	return r;
}

void qmig_qmp_conn_close(struct qmig_qmp_conn *c)
{
	if (!c)
		return;
	if (c->fd >= 0) {
		/* Tell QEMU at once that the monitor is free for the next client. */
		shutdown(c->fd, SHUT_RDWR);
		close(c->fd);
	}
	while (c->nstash)
		qmig_qmp_msg_clear(&c->stash[--c->nstash]);
	if (c->ev.free)
		c->ev.free(c->ev.user_data);
	qmig_qmp_free(c->core);
	free(c);
}

/* Wait for the reply to id; takes care of the nesting bookkeeping. */
static int wait_reply(struct qmig_qmp_conn *c, const char *cmd, uint64_t id,
		      struct json_object **ret, int64_t deadline, int timeout_ms)
{
	struct qmig_qmp_msg m;
	int r = 0;

	for (;;) {
		drain(c);
		if (take_stashed(c, id, &m))
			break;
		if (c->broken)
			return c->broken;
		r = step(c, deadline);
		if (r == -ETIMEDOUT) {
			qm_qmp_forget(c->core, id);
			return set_err(c, r, "%s: no reply to %s within %d ms", c->addr, cmd,
				       timeout_ms);
		}
		if (r < 0)
			return r;
	}
	if (m.kind == QMIG_QMP_MSG_ERROR) {
		snprintf(c->err, sizeof(c->err), "%s", m.err_desc);
		snprintf(c->err_class, sizeof(c->err_class), "%s", m.err_class);
		r = -EREMOTEIO;
	} else if (ret) {
		*ret = json_object_get(m.data);
	}
	qmig_qmp_msg_clear(&m);
	return r;
}

static int do_call(struct qmig_qmp_conn *c, const char *cmd, struct json_object *args, int fd,
		   struct json_object **ret, int timeout_ms)
{
	int64_t deadline;
	uint64_t id;
	int r;

	if (!c || !cmd)
		return -EINVAL;
	if (c->broken)
		return c->broken;
	if (c->nwaiting == QM_MAX_NEST)
		return set_err(c, -EBUSY, "QMP calls nested too deep");
	if (timeout_ms < 0)
		timeout_ms = c->timeout_ms;
	deadline = now_ms() + timeout_ms;
	/* The fd must travel with this command's first byte: flush the rest first. */
	while (fd >= 0 && (r = send_some(c, -1)) != 0) {
		if (r < 0 || (r = wait_fd(c->fd, POLLOUT, deadline)) < 0)
			return r == -ETIMEDOUT ? set_err(c, r, "%s: cannot send", c->addr) : r;
	}
	r = qmig_qmp_command(c->core, cmd, args, 0, &id);
	if (r < 0)
		return set_err(c, r, "%s: cannot queue %s: %s", c->addr, cmd,
			       qmig_qmp_error(c->core));
	while (fd >= 0) {
		size_t before, after;

		qmig_qmp_output(c->core, &before);
		r = send_some(c, fd);
		qmig_qmp_output(c->core, &after);
		if (r < 0 || after < before) /* a byte went, and the fd with it */
			break;
		if ((r = wait_fd(c->fd, POLLOUT, deadline)) < 0)
			break;
	}
	if (r < 0) {
		qm_qmp_forget(c->core, id);
		return r == -ETIMEDOUT ? set_err(c, r, "%s: cannot send %s", c->addr, cmd) : r;
	}
	c->waiting[c->nwaiting++] = id;
	r = wait_reply(c, cmd, id, ret, deadline, timeout_ms);
	c->nwaiting--;
	return r;
}

int qmig_qmp_conn_call(struct qmig_qmp_conn *c, const char *cmd, struct json_object *args,
		       struct json_object **ret, int timeout_ms)
{
	return do_call(c, cmd, args, -1, ret, timeout_ms);
}

int qmig_qmp_conn_call_fd(struct qmig_qmp_conn *c, const char *cmd, struct json_object *args,
			  int fd, struct json_object **ret, int timeout_ms)
{
	if (fd < 0)
		return -EBADF;
	return do_call(c, cmd, args, fd, ret, timeout_ms);
}

int qmig_qmp_conn_fd(const struct qmig_qmp_conn *c)
{
	return c ? c->fd : -EINVAL;
}

int qmig_qmp_conn_process(struct qmig_qmp_conn *c)
{
	int r = 0;

	if (!c)
		return -EINVAL;
	if (c->broken)
		return c->broken;
	/* A call in progress (suspended in a fiber) owns the input. */
	if (c->nwaiting)
		return 0;
	if (send_some(c, -1) < 0)
		return c->broken;
	/* Bounded, so a flooding peer cannot keep the caller's loop here. */
	for (int i = 0; i < 16; i++) {
		r = recv_some(c);
		drain(c);
		if (r <= 0)
			break;
	}
	return r < 0 ? r : 0;
}

int qmig_qmp_conn_set_event_cb(struct qmig_qmp_conn *c, const struct qmig_qmp_event_cb *cb)
{
	if (!c)
		return -EINVAL;
	if (c->ev.free)
		c->ev.free(c->ev.user_data);
	if (cb)
		c->ev = *cb;
	else
		memset(&c->ev, 0, sizeof(c->ev));
	return 0;
}

const char *qmig_qmp_conn_error(const struct qmig_qmp_conn *c)
{
	if (!c)
		return "no connection";
	return c->err[0] ? c->err : "no error";
}

const char *qmig_qmp_conn_error_class(const struct qmig_qmp_conn *c)
{
	return c && c->err_class[0] ? c->err_class : NULL;
}

struct qmig_qmp *qmig_qmp_conn_core(struct qmig_qmp_conn *c)
{
	return c ? c->core : NULL;
}

/* ---- calls with typed returns (qmp_reply.h) ---------------------------- */

int qm_call_get(struct qmig_qmp_conn *c, const char *cmd, struct json_object *args,
		enum json_type type, struct json_object **out)
{
	struct json_object *ret = NULL;
	struct qm_rd rd;
	int r = qmig_qmp_conn_call(c, cmd, args, &ret, -1);

	if (r < 0)
		return r;
	qm_rd_init(&rd, cmd);
	if (!qm_rd_as(&rd, ret, type)) {
		json_object_put(ret);
		return qm_call_rd(c, &rd);
	}
	*out = ret;
	return 0;
}

int qm_call_rd(struct qmig_qmp_conn *c, const struct qm_rd *rd)
{
	if (!rd->err)
		return 0;
	return qm_qmp_conn_fail(c, rd->err, "%s", rd->msg);
}
