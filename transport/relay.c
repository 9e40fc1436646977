/* The relay's core: channels, the io_uring, byte moving both ways.
 *
 * Each channel owns a fixed slice of one registered arena: nsegs segments
 * per direction (and, with TLS, one ciphertext buffer each way). A read
 * fills the next free segment, a send drains the oldest filled one; at most
 * one of each is in flight per direction, so a slow reader stops our reads
 * from the other side once every segment is full: the kernel's socket
 * buffers and TCP's window carry the back-pressure to the writer. Nothing
 * grows with the stream.
 *
 * Reads use READ_FIXED (the arena is registered once). Writes use SEND with
 * MSG_NOSIGNAL: a peer that vanished must give EPIPE, never a SIGPIPE in
 * the embedding process, and a library may not change signal dispositions.
 * All submissions of a step go to the kernel in one io_uring_submit(). */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "qmig_transport.h"
#include "relay_int.h"
#include "transport_int.h"

#define LISTENER_SLOT_CANCEL ((uint64_t)RL_LISTENER_SLOT << 8 | RL_OP_CANCEL)
#define MS 1000000LL
#define UNIX_SNDBUF (1 << 20)

static void push_event(struct qmig_relay *r, const struct qmig_relay_event *ev)
{
	if (r->ev_n == RL_NEV) {
		r->ev_head = (r->ev_head + 1) % RL_NEV;
		r->ev_n--;
		r->ev_dropped++;
	}
	r->ev[(r->ev_head + r->ev_n) % RL_NEV] = *ev;
	r->ev_n++;
}

static void chan_event(struct qmig_relay *r, struct rl_chan *c, enum qmig_relay_event_type t)
{
	struct qmig_relay_event ev = {.type = t, .channel = c->id, .error = c->err};
	int up = r->o.side == QMIG_RELAY_SOURCE ? 0 : 1;

	ev.bytes_up = c->d[up].bytes;
	ev.bytes_down = c->d[!up].bytes;
	if (t == QMIG_RELAY_EV_ERROR)
		snprintf(ev.message, sizeof(ev.message), "channel %u: %s", c->id, c->errmsg);
	push_event(r, &ev);
}

static struct rl_hist *hist_of(const struct qmig_relay *r, unsigned id)
{
	return &r->hist[(id - 1) % r->nhist];
}

static void chan_release(struct qmig_relay *r, struct rl_chan *c)
{
	struct rl_hist *h = hist_of(r, c->id);
	int up = r->o.side == QMIG_RELAY_SOURCE ? 0 : 1;

	if (c->state == RL_DYING) {
		r->failed++;
		chan_event(r, c, QMIG_RELAY_EV_ERROR);
	} else {
		chan_event(r, c, QMIG_RELAY_EV_CLOSED);
	}
	if (h->channel == c->id) {
		h->open = 0;
		h->error = c->err;
		h->up = c->d[up].bytes;
		h->down = c->d[!up].bytes;
		h->close_ns = qm_rl_now();
	}
	qm_rl_tls_chan_free(c);
	if (c->ufd >= 0)
		close(c->ufd);
	if (c->nfd >= 0)
		close(c->nfd);
	memset(c->d, 0, sizeof(c->d));
	c->ufd = c->nfd = -1;
	c->state = RL_FREE;
}

static struct rl_chan *chan_alloc(struct qmig_relay *r)
{
	for (unsigned i = 0; i < r->nch; i++) {
		struct rl_chan *c = &r->ch[i];
		char *base = r->arena + i * r->per_chan;
		struct rl_hist *h;

		if (c->state != RL_FREE)
			continue;
		memset(c, 0, sizeof(*c));
		c->ufd = c->nfd = -1;
		c->d[0].buf = base;
		c->d[1].buf = base + r->nsegs * r->seg;
		if (r->ssl_ctx) {
			c->cin = base + 2 * r->nsegs * r->seg;
			c->cout = c->cin + r->seg;
		}
		c->id = ++r->next_id;
		c->open_ns = qm_rl_now();
		h = hist_of(r, c->id);
		memset(h, 0, sizeof(*h));
		h->channel = c->id;
		h->open = 1;
		h->open_ns = c->open_ns;
		return c;
	}
	return NULL;
}

static void set_nodelay(int fd)
{
	int one = 1;

	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

/* ---- accepting and connecting, in arrival order ---------------------- */

static void arm_accept(struct qmig_relay *r)
{
	struct io_uring_sqe *sqe;

	if (r->accept_busy || r->stopped || r->lfd < 0 || r->fifo_n >= r->nch)
		return;
	sqe = qm_rl_sqe(r);
	if (!sqe)
		return;
	io_uring_prep_accept(sqe, r->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	io_uring_sqe_set_data64(sqe, qm_rl_ud(r, NULL, RL_OP_ACCEPT));
	r->accept_busy = true;
}

static void fifo_push(struct qmig_relay *r, struct rl_chan *c)
{
	r->fifo[r->fifo_n++] = (unsigned)(c - r->ch);
}

static void fifo_pop(struct qmig_relay *r)
{
	memmove(r->fifo, r->fifo + 1, (r->fifo_n - 1) * sizeof(*r->fifo));
	r->fifo_n--;
}

static void on_accept(struct qmig_relay *r, int res)
{
	struct rl_chan *c;

	r->accept_busy = false;
	if (res < 0) {
		if (res != -EAGAIN && res != -EINTR && res != -ECONNABORTED && res != -ECANCELED)
			snprintf(r->err, sizeof(r->err), "accept: %s", strerror(-res));
		return;
	}
	/* The source QEMU's end gets the buffer our end has towards the
	 * destination QEMU (relay_sys.c: why, and how). */
	if (r->o.side == QMIG_RELAY_SOURCE)
		qm_rl_peer_sndbuf(res, r->unix_path, UNIX_SNDBUF);
	if (r->o.side == QMIG_RELAY_SOURCE && !r->stopped) {
		/* A channel opened ahead (preconnect) takes QEMU's connection. */
		for (unsigned i = 0; i < r->nch; i++) {
			c = &r->ch[i];
			if (c->ufd >= 0 || (c->state != RL_CONNECTING && c->state != RL_HANDSHAKE &&
					    c->state != RL_WAIT_QEMU) || !c->ahead)
				continue;
			c->ahead = false;
			c->ufd = res;
			if (c->state == RL_WAIT_QEMU)
				c->state = RL_OPEN;
			return;
		}
	}
	c = r->stopped ? NULL : chan_alloc(r);
	if (!c) {
		/* arm_accept() does not accept beyond max_channels: stopped. */
		close(res);
		return;
	}
	if (r->o.side == QMIG_RELAY_SOURCE) {
		c->ufd = res;
		c->state = RL_CONNECTING;
	} else {
		c->nfd = res;
		set_nodelay(res);
		c->state = r->ssl_ctx ? RL_HANDSHAKE : RL_WAIT_QEMU;
		if (r->ssl_ctx && qm_rl_tls_chan(r, c) < 0)
			qm_rl_chan_fail(r, c, -ENOMEM, "TLS setup failed");
	}
	fifo_push(r, c);
}

static int new_net_socket(struct qmig_relay *r)
{
	if (r->o.netns) {
		if (!r->pool_n) {
			unsigned n = r->nch;
			int rc = qm_rl_netns_sockets(r->o.netns, r->family, n, r->pool, r->err,
						     sizeof(r->err));

			if (rc < 0)
				return rc;
			r->pool_n = n;
		}
		return r->pool[--r->pool_n];
	}
	int fd = socket(r->family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	return fd < 0 ? -errno : fd;
}

static int new_unix_socket(struct qmig_relay *r, struct sockaddr_un *sa)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	snprintf(sa->sun_path, sizeof(sa->sun_path), "%s", r->unix_path);
	return fd < 0 ? -errno : fd;
}

static void start_connect(struct qmig_relay *r, struct rl_chan *c)
{
	struct io_uring_sqe *sqe, *tsqe;
	struct __kernel_timespec *ts;
	struct sockaddr_un sa;
	const struct sockaddr *addr = NULL;
	socklen_t alen;
	int fd;

	if (r->o.side == QMIG_RELAY_SOURCE) {
		fd = new_net_socket(r);
		addr = (const struct sockaddr *)&r->peer;
		alen = r->peer_len;
	} else {
		fd = new_unix_socket(r, &sa);
		alen = sizeof(sa);
	}
	if (fd < 0) {
		qm_rl_chan_fail(r, c, fd, "socket: %s", strerror(-fd));
		return;
	}
	if (r->o.side == QMIG_RELAY_SOURCE) {
		c->nfd = fd;
	} else {
		int sz = UNIX_SNDBUF;

		c->ufd = fd;
		/* A unix socket's writer may queue only its send buffer (208 KiB
		 * by default) into the reader: a larger one lets the relay hand
		 * the destination QEMU more at a time, so QEMU finds data ready
		 * instead of waiting for our next wakeup. Kernel memory, bounded
		 * per channel like ours. */
		if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &sz, sizeof(sz)) < 0)
			setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
		/* connect() needs the address to stay put until it completes. */
		c->sun = sa;
		addr = (const struct sockaddr *)&c->sun;
	}
	sqe = qm_rl_sqe(r);
	tsqe = sqe ? qm_rl_sqe(r) : NULL;
	if (!sqe || !tsqe) {
		qm_rl_chan_fail(r, c, -EBUSY, "submission queue full");
		return;
	}
	io_uring_prep_connect(sqe, fd, addr, alen);
	io_uring_sqe_set_data64(sqe, qm_rl_ud(r, c, RL_OP_CONNECT));
	sqe->flags |= IOSQE_IO_LINK;
	ts = &c->ts;

	ts->tv_sec = r->o.connect_timeout_ms / 1000;
	ts->tv_nsec = (long long)(r->o.connect_timeout_ms % 1000) * MS;
	io_uring_prep_link_timeout(tsqe, ts, 0);
	io_uring_sqe_set_data64(tsqe, qm_rl_ud(r, c, RL_OP_TIMEOUT));
	c->inflight += 2;
	r->connect_busy = true;
}

static void pump_connects(struct qmig_relay *r)
{
	while (!r->connect_busy && r->fifo_n) {
		struct rl_chan *c = &r->ch[r->fifo[0]];

		if (c->state == RL_DYING || c->state == RL_FREE) {
			fifo_pop(r);
			continue;
		}
		if (c->state == RL_HANDSHAKE)
			return; /* its turn comes when its handshake is done */
		fifo_pop(r);
		start_connect(r, c);
	}
}

static void on_connect(struct qmig_relay *r, struct rl_chan *c, int res)
{
	r->connect_busy = false;
	if (c->state == RL_DYING)
		return;
	if (res < 0) {
		if (res == -ECANCELED)
			res = -ETIMEDOUT;
		qm_rl_chan_fail(r, c, res, "connect to %s: %s",
				r->o.side == QMIG_RELAY_SOURCE ? "the far relay" : "QEMU",
				strerror(-res));
		return;
	}
	if (r->o.side == QMIG_RELAY_SOURCE) {
		set_nodelay(c->nfd);
		if (r->ssl_ctx && qm_rl_tls_chan(r, c) < 0) {
			qm_rl_chan_fail(r, c, -ENOMEM, "TLS setup failed");
			return;
		}
		if (c->ufd < 0) {
			/* Opened ahead: QEMU has not connected yet. */
			c->state = r->ssl_ctx ? RL_HANDSHAKE : RL_WAIT_QEMU;
			if (!r->ssl_ctx) {
				c->opened = true;
				chan_event(r, c, QMIG_RELAY_EV_OPEN);
			}
			return;
		}
	}
	c->state = RL_OPEN;
	c->opened = true;
	chan_event(r, c, QMIG_RELAY_EV_OPEN);
}

/* ---- moving bytes ----------------------------------------------------- */

static char *seg_ptr(const struct qmig_relay *r, struct rl_dir *d, unsigned i)
{
	return d->buf + (size_t)(i % r->nsegs) * r->seg;
}

/* Read the next free segment of direction `dir` from fd. */
static void arm_read(struct qmig_relay *r, struct rl_chan *c, int dir, int fd)
{
	struct rl_dir *d = &c->d[dir];
	struct io_uring_sqe *sqe;

	if (d->rd_busy || d->eof_in || d->head - d->tail >= r->nsegs)
		return;
	sqe = qm_rl_sqe(r);
	if (!sqe)
		return;
	io_uring_prep_read_fixed(sqe, fd, seg_ptr(r, d, d->head), (unsigned)r->seg, 0, 0);
	io_uring_sqe_set_data64(sqe, qm_rl_ud(r, c, dir ? RL_OP_RD1 : RL_OP_RD0));
	d->rd_busy = true;
	c->inflight++;
}

static void arm_write(struct qmig_relay *r, struct rl_chan *c, int dir, int fd)
{
	struct rl_dir *d = &c->d[dir];
	struct io_uring_sqe *sqe;
	uint64_t n;

	if (d->wr_busy || d->head == d->tail)
		return;
	n = qm_rl_grant(r, dir, d->len[d->tail % r->nsegs] - d->off);
	if (!n)
		return;
	sqe = qm_rl_sqe(r);
	if (!sqe) {
		if (r->o.limiter && qm_rl_is_up(r, dir))
			qm_rl_limiter_refund(r->o.limiter, &r->share, n);
		return;
	}
	io_uring_prep_send(sqe, fd, seg_ptr(r, d, d->tail) + d->off, (size_t)n, MSG_NOSIGNAL);
	io_uring_sqe_set_data64(sqe, qm_rl_ud(r, c, dir ? RL_OP_WR1 : RL_OP_WR0));
	d->wr_busy = true;
	c->inflight++;
}

static void on_rw(struct qmig_relay *r, struct rl_chan *c, unsigned op, int res)
{
	int dir = (op == RL_OP_RD1 || op == RL_OP_WR1);
	bool rd = (op == RL_OP_RD0 || op == RL_OP_RD1);
	struct rl_dir *d = &c->d[dir];
	bool net = rd ? dir == 1 : dir == 0;

	if (rd)
		d->rd_busy = false;
	else
		d->wr_busy = false;
	if (c->state == RL_DYING)
		return;
	if (res == -EAGAIN || res == -EINTR)
		return; /* the pump submits it again */
	if (res < 0) {
		qm_rl_chan_fail(r, c, res, "%s %s: %s", net ? "network" : "QEMU socket",
				rd ? "read" : "write", strerror(-res));
		return;
	}
	if (rd) {
		if (res == 0) {
			d->eof_in = true;
			return;
		}
		d->len[d->head % r->nsegs] = (uint32_t)res;
		d->head++;
	} else {
		qm_rl_dir_written(r, c, dir, (uint32_t)res);
	}
}

/* Pass an EOF on once everything before it is written. */
static void pass_eof(struct rl_chan *c, int dir, int out_fd)
{
	struct rl_dir *d = &c->d[dir];

	if (d->eof_in && !d->eof_done && d->head == d->tail && !d->wr_busy) {
		shutdown(out_fd, SHUT_WR);
		d->eof_done = true;
	}
}

static void pump_chan(struct qmig_relay *r, struct rl_chan *c)
{
	if (c->state == RL_OPEN) {
		arm_read(r, c, 0, c->ufd);
		if (!c->ssl) {
			arm_write(r, c, 0, c->nfd);
			pass_eof(c, 0, c->nfd);
			arm_read(r, c, 1, c->nfd);
		}
		arm_write(r, c, 1, c->ufd);
		pass_eof(c, 1, c->ufd);
	}
	if (c->ssl && (c->state == RL_OPEN || c->state == RL_HANDSHAKE ||
		       c->state == RL_WAIT_QEMU)) {
		int rc = qm_rl_tls_pump(r, c);

		if (rc < 0)
			qm_rl_chan_fail(r, c, rc, "%s", c->errmsg[0] ? c->errmsg : "TLS error");
		else if (c->hs_done && c->state == RL_HANDSHAKE &&
			 r->o.side == QMIG_RELAY_SOURCE) {
			/* A channel opened ahead: ready for QEMU, or QEMU came. */
			c->state = c->ufd >= 0 ? RL_OPEN : RL_WAIT_QEMU;
			if (!c->opened) {
				c->opened = true;
				chan_event(r, c, QMIG_RELAY_EV_OPEN);
			}
		} else if (c->hs_done && c->state == RL_HANDSHAKE)
			c->state = RL_WAIT_QEMU;
		/* Data SSL_read just produced can go out in this same step. */
		if (c->state == RL_OPEN) {
			arm_write(r, c, 1, c->ufd);
			pass_eof(c, 1, c->ufd);
		}
	}
	if (c->state == RL_OPEN && c->d[0].eof_done && c->d[1].eof_done && !c->inflight)
		chan_release(r, c);
	else if (c->state == RL_DYING && !c->inflight)
		chan_release(r, c);
}

static void on_cqe(struct qmig_relay *r, uint64_t ud, int res)
{
	unsigned slot = (unsigned)(ud >> 8), op = ud & 0xff;
	struct rl_chan *c;

	if (slot == RL_LISTENER_SLOT) {
		if (op == RL_OP_ACCEPT)
			on_accept(r, res);
		return;
	}
	if (slot >= r->nch)
		return;
	c = &r->ch[slot];
	if (c->inflight)
		c->inflight--;
	switch (op) {
	case RL_OP_CONNECT:
		on_connect(r, c, res);
		break;
	case RL_OP_RD0: case RL_OP_RD1: case RL_OP_WR0: case RL_OP_WR1:
		on_rw(r, c, op, res);
		break;
	case RL_OP_NRECV:
		qm_rl_tls_done_recv(r, c, res);
		break;
	case RL_OP_NSEND:
		qm_rl_tls_done_send(r, c, res);
		break;
	default: /* timeouts and cancels: only the count matters */
		break;
	}
}

static void update_rates(struct qmig_relay *r)
{
	int64_t now = qm_rl_now();
	double dt = (now - r->win_ns) / 1e9;

	if (!r->win_ns) {
		r->win_ns = now;
		return;
	}
	if (dt < 0.5)
		return;
	r->rate_up = (r->up_total - r->win_up) / dt;
	r->rate_down = (r->down_total - r->win_down) / dt;
	r->win_up = r->up_total;
	r->win_down = r->down_total;
	r->win_ns = now;
}

int qmig_relay_process(struct qmig_relay *r)
{
	struct io_uring_cqe *cqe;
	uint64_t junk;
	int rounds = 0, rc;

	while (read(r->efd, &junk, sizeof(junk)) > 0)
		;
	if (r->limit_wait_ns && qm_rl_now() >= r->limit_wait_ns)
		r->limit_wait_ns = 0;
	do {
		unsigned head, n = 0;

		io_uring_for_each_cqe(&r->ring, head, cqe) {
			on_cqe(r, cqe->user_data, cqe->res);
			n++;
		}
		io_uring_cq_advance(&r->ring, n);
		pump_connects(r);
		for (unsigned i = 0; i < r->nch; i++)
			if (r->ch[i].state != RL_FREE)
				pump_chan(r, &r->ch[i]);
		pump_connects(r);
		arm_accept(r);
		rc = io_uring_submit(&r->ring);
		if (rc < 0 && rc != -EBUSY && rc != -EAGAIN && rc != -EINTR) {
			snprintf(r->err, sizeof(r->err), "io_uring_submit: %s", strerror(-rc));
			return rc;
		}
		/* Completions that arrived meanwhile: handle them now rather than
		 * after another trip through the caller's poll. */
	} while (io_uring_cq_ready(&r->ring) && ++rounds < 8);
	/* Completions left for the next call: their eventfd signal was
	 * consumed above, so signal again or a caller polling only the fd
	 * would sleep on them. */
	if (io_uring_cq_ready(&r->ring)) {
		uint64_t one = 1;

		if (write(r->efd, &one, sizeof(one)) < 0) {
			/* the counter is full: it is signalled anyway */
		}
	}
	update_rates(r);
	return 0;
}

/* ---- setup and the public calls -------------------------------------- */

static int make_unix_listener(struct qmig_relay *r, char *msg, size_t len)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd;

	if (!r->unix_path) {
		const char *base = getenv("XDG_RUNTIME_DIR");
		char tmpl[PATH_MAX];

		if (!base || access(base, W_OK))
			base = "/tmp";
		snprintf(tmpl, sizeof(tmpl), "%s/qmig-relay-XXXXXX", base);
		if (!mkdtemp(tmpl)) {
			qm_tp_msg(msg, len, "cannot create a private directory in %s: %s", base,
				  strerror(errno));
			return -errno;
		}
		r->priv_dir = strdup(tmpl);
		if (asprintf(&r->unix_path, "%s/relay.sock", tmpl) < 0)
			r->unix_path = NULL;
		if (!r->priv_dir || !r->unix_path)
			return -ENOMEM;
	}
	if (strlen(r->unix_path) >= sizeof(sa.sun_path)) {
		qm_tp_msg(msg, len, "unix socket path too long: %s", r->unix_path);
		return -ENAMETOOLONG;
	}
	strcpy(sa.sun_path, r->unix_path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int e = errno;

		qm_tp_msg(msg, len, "cannot listen on %s: %s", r->unix_path, strerror(e));
		close(fd);
		return -e;
	}
	r->made_socket = true;
	if (chmod(r->unix_path, 0600) < 0 || listen(fd, 64) < 0) {
		int e = errno;

		close(fd);
		return -e;
	}
	r->lfd = fd;
	return 0;
}

static int resolve_peer(struct qmig_relay *r, char *msg, size_t len)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai = NULL;
	char port[8];
	int rc;

	snprintf(port, sizeof(port), "%u", r->o.port);
	rc = getaddrinfo(r->host, port, &hints, &ai);
	if (rc || !ai) {
		qm_tp_msg(msg, len, "cannot resolve %s: %s", r->host, gai_strerror(rc));
		return -ENOENT;
	}
	memcpy(&r->peer, ai->ai_addr, ai->ai_addrlen);
	r->peer_len = ai->ai_addrlen;
	r->family = ai->ai_family;
	freeaddrinfo(ai);
	return 0;
}

static int make_tcp_listener(struct qmig_relay *r, char *msg, size_t len)
{
	int fd;

	if (r->o.listen_fd >= 0) {
		r->lfd = r->o.listen_fd;
	} else if (r->o.netns) {
		struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(r->o.port)};
		int one = 1;

		if (r->host && *r->host && inet_pton(AF_INET, r->host, &sa.sin_addr) != 1) {
			qm_tp_msg(msg, len, "listen address %s: an IPv4 address is needed with a "
				  "network namespace", r->host);
			return -EINVAL;
		}
		int rc = qm_rl_netns_sockets(r->o.netns, AF_INET, 1, &fd, msg, len);

		if (rc < 0)
			return rc;
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 64) < 0) {
			int e = errno;

			qm_tp_msg(msg, len, "cannot listen on %s:%u in %s: %s",
				  r->host ? r->host : "0.0.0.0", r->o.port, r->o.netns, strerror(e));
			close(fd);
			return -e;
		}
		r->lfd = fd;
	} else {
		fd = qmig_tcp_listen(r->host, r->o.port, 64, msg, len);
		if (fd < 0)
			return fd;
		r->lfd = fd;
	}
	fd = qmig_tcp_local_port(r->lfd);
	if (fd < 0)
		return fd;
	r->port = (unsigned)fd;
	return 0;
}

static int check_opts(const struct qmig_relay_opts *o, char *msg, size_t len)
{
	if (!o || o->version < 1 || o->version > QMIG_RELAY_OPTS_VERSION) {
		qm_tp_msg(msg, len, "relay options: unsupported version");
		return -EINVAL;
	}
	if (o->side != QMIG_RELAY_SOURCE && o->side != QMIG_RELAY_DEST) {
		qm_tp_msg(msg, len, "relay options: side must be SOURCE or DEST");
		return -EINVAL;
	}
	if (o->side == QMIG_RELAY_SOURCE && (!o->host || !*o->host || !o->port || o->port > 65535)) {
		qm_tp_msg(msg, len, "relay: the source side needs the far relay's host and port");
		return -EINVAL;
	}
	if (o->side == QMIG_RELAY_DEST && (!o->unix_path || !*o->unix_path)) {
		qm_tp_msg(msg, len, "relay: the destination side needs QEMU's unix socket path");
		return -EINVAL;
	}
	if (o->version >= 2 && o->preconnect &&
	    (o->side != QMIG_RELAY_SOURCE || o->preconnect > (o->max_channels ? o->max_channels : 8))) {
		qm_tp_msg(msg, len, "relay options: preconnect is for the source side, at most "
			  "max_channels");
		return -EINVAL;
	}
	if (o->max_channels > 256 || o->nsegs > RL_MAX_SEGS || o->seg_kib > 4096 ||
	    o->port > 65535) {
		qm_tp_msg(msg, len, "relay options: max_channels <= 256, nsegs <= %d, "
			  "seg_kib <= 4096", RL_MAX_SEGS);
		return -EINVAL;
	}
	return 0;
}

static int setup(struct qmig_relay *r, char *msg, size_t len)
{
	struct iovec iov;
	int rc;

	r->nch = r->o.max_channels ? r->o.max_channels : 8;
	r->nsegs = r->o.nsegs ? r->o.nsegs : 4;
	if (r->nsegs < 2)
		r->nsegs = 2;
	r->seg = (size_t)(r->o.seg_kib ? r->o.seg_kib : 64) * 1024;
	if (!r->o.connect_timeout_ms)
		r->o.connect_timeout_ms = 5000;
	r->ch = calloc(r->nch, sizeof(*r->ch));
	r->fifo = calloc(r->nch, sizeof(*r->fifo));
	r->pool = calloc(r->nch, sizeof(*r->pool));
	r->nhist = r->nch * 4;
	r->hist = calloc(r->nhist, sizeof(*r->hist));
	if (!r->ch || !r->fifo || !r->pool || !r->hist)
		return -ENOMEM;
	for (unsigned i = 0; i < r->nch; i++)
		r->ch[i].ufd = r->ch[i].nfd = -1;
	r->ktls = qm_rl_ktls_available();
	if (r->o.tls_dir && (rc = qm_rl_tls_ctx(r, msg, len)) < 0)
		return rc;
	r->per_chan = 2 * r->nsegs * r->seg + (r->ssl_ctx ? 2 * r->seg : 0);
	r->arena_len = r->per_chan * r->nch;
	r->arena = mmap(NULL, r->arena_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
			-1, 0);
	if (r->arena == MAP_FAILED) {
		r->arena = NULL;
		return -ENOMEM;
	}
	rc = io_uring_queue_init(r->nch * 12 + 16, &r->ring, 0);
	if (rc < 0) {
		qm_tp_msg(msg, len, "io_uring: %s", strerror(-rc));
		return rc;
	}
	r->ring_ok = true;
	iov.iov_base = r->arena;
	iov.iov_len = r->arena_len;
	rc = io_uring_register_buffers(&r->ring, &iov, 1);
	if (rc < 0) {
		qm_tp_msg(msg, len, "io_uring: cannot register %zu KiB of buffers: %s",
			  r->arena_len >> 10, strerror(-rc));
		return rc;
	}
	r->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (r->efd < 0)
		return -errno;
	rc = io_uring_register_eventfd(&r->ring, r->efd);
	if (rc < 0)
		return rc;
	if (r->o.side == QMIG_RELAY_SOURCE) {
		rc = resolve_peer(r, msg, len);
		if (!rc)
			rc = make_unix_listener(r, msg, len);
	} else {
		rc = make_tcp_listener(r, msg, len);
	}
	if (rc < 0)
		return rc;
	for (unsigned i = 0; r->o.side == QMIG_RELAY_SOURCE && i < r->o.preconnect; i++) {
		struct rl_chan *c = chan_alloc(r);

		c->state = RL_CONNECTING;
		c->ahead = true;
		fifo_push(r, c);
	}
	pump_connects(r);
	arm_accept(r);
	io_uring_submit(&r->ring);
	return 0;
}

static char *dup_or_null(const char *s, bool *oom)
{
	char *d;

	if (!s)
		return NULL;
	d = strdup(s);
	if (!d)
		*oom = true;
	return d;
}

int qmig_relay_new(struct qmig_relay **out, const struct qmig_relay_opts *opts, char *msg,
		   size_t msg_len)
{
	struct qmig_relay *r;
	bool oom = false;
	int rc;

	rc = check_opts(opts, msg, msg_len);
	if (rc < 0)
		return rc;
	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	/* A version-1 caller's struct ends before preconnect. */
	if (opts->version < 2)
		memcpy(&r->o, opts, offsetof(struct qmig_relay_opts, preconnect));
	else
		r->o = *opts;
	r->lfd = r->efd = -1;
	r->unix_path = dup_or_null(opts->unix_path, &oom);
	r->host = dup_or_null(opts->host, &oom);
	r->tls_host = dup_or_null(opts->tls_hostname ? opts->tls_hostname : opts->host, &oom);
	r->o.netns = dup_or_null(opts->netns, &oom);
	r->o.tls_dir = dup_or_null(opts->tls_dir, &oom);
	r->o.unix_path = r->o.host = r->o.tls_hostname = NULL;
	if (oom) {
		rc = -ENOMEM;
		goto fail;
	}
	rc = setup(r, msg, msg_len);
	if (rc < 0)
		goto fail;
	if (r->o.limiter)
		qm_rl_limiter_join(r->o.limiter, &r->share);
	*out = r;
	return 0;
fail:
	if (rc == -ENOMEM)
		qm_tp_msg(msg, msg_len, "relay: out of memory");
	r->o.limiter = NULL;
	if (opts->listen_fd >= 0 && r->lfd == opts->listen_fd)
		r->lfd = -1; /* not taken over on failure */
	qmig_relay_free(r);
	return rc;
}

/* Cancel everything in flight and wait (bounded) for the ring to let go
 * of the sockets: a request still pending keeps its socket open, and a
 * listener kept open that way makes the next relay's bind on the same
 * port fail (EADDRINUSE). */
static void drain_ring(struct qmig_relay *r)
{
	struct io_uring_sqe *sqe;
	struct io_uring_cqe *cqe;
	unsigned pending = r->accept_busy;
	int64_t deadline = qm_rl_now() + 500 * MS;

	for (unsigned i = 0; r->ch && i < r->nch; i++)
		if (r->ch[i].state != RL_FREE)
			pending += r->ch[i].inflight;
	if (!pending || !(sqe = qm_rl_sqe(r)))
		return;
	io_uring_prep_cancel64(sqe, 0, IORING_ASYNC_CANCEL_ANY);
	io_uring_sqe_set_data64(sqe, LISTENER_SLOT_CANCEL);
	io_uring_submit(&r->ring);
	while (pending && qm_rl_now() < deadline) {
		struct __kernel_timespec ts = {0, 20 * MS};

		if (io_uring_wait_cqe_timeout(&r->ring, &cqe, &ts) < 0)
			continue;
		if (cqe->user_data != LISTENER_SLOT_CANCEL)
			pending--;
		io_uring_cqe_seen(&r->ring, cqe);
	}
}

void qmig_relay_free(struct qmig_relay *r)
{
	if (!r)
		return;
	if (r->ring_ok)
		drain_ring(r);
	for (unsigned i = 0; r->ch && i < r->nch; i++) {
		struct rl_chan *c = &r->ch[i];

		if (c->state == RL_FREE)
			continue;
		qm_rl_tls_chan_free(c);
		if (c->ufd >= 0)
			close(c->ufd);
		if (c->nfd >= 0)
			close(c->nfd);
	}
	for (unsigned i = 0; i < r->pool_n; i++)
		close(r->pool[i]);
	if (r->lfd >= 0)
		close(r->lfd);
	/* Exiting the ring cancels what is in flight; pinned pages stay
	 * referenced by the kernel until it is done with them. */
	if (r->ring_ok)
		io_uring_queue_exit(&r->ring);
	if (r->efd >= 0)
		close(r->efd);
	if (r->arena)
		munmap(r->arena, r->arena_len);
	if (r->made_socket && r->unix_path)
		unlink(r->unix_path);
	if (r->priv_dir)
		rmdir(r->priv_dir);
	if (r->ssl_ctx)
		SSL_CTX_free(r->ssl_ctx);
	if (r->bio_meth)
		BIO_meth_free(r->bio_meth);
	if (r->o.limiter)
		qm_rl_limiter_leave(r->o.limiter, &r->share);
	free(r->ch);
	free(r->fifo);
	free(r->pool);
	free(r->hist);
	free(r->unix_path);
	free(r->host);
	free(r->tls_host);
	free(r->priv_dir);
	free((char *)r->o.netns);
	free((char *)r->o.tls_dir);
	free(r);
}

const char *qmig_relay_unix_path(const struct qmig_relay *r)
{
	return r->unix_path;
}

unsigned qmig_relay_port(const struct qmig_relay *r)
{
	return r->port;
}

int qmig_relay_get_fd(const struct qmig_relay *r)
{
	return r->efd;
}

int qmig_relay_get_timeout(const struct qmig_relay *r)
{
	int64_t left;

	/* Completions need no timeout: each one signals the eventfd, and
	 * process() signals it again for those it leaves. A 0 here made the
	 * engine re-arm its timer at nearly every wake of a busy stream. */
	if (!r->limit_wait_ns)
		return -1;
	left = r->limit_wait_ns - qm_rl_now();
	return left <= 0 ? 0 : (int)((left + MS - 1) / MS);
}

int qmig_relay_next_event(struct qmig_relay *r, struct qmig_relay_event *ev)
{
	if (!r->ev_n)
		return 0;
	*ev = r->ev[r->ev_head];
	r->ev_head = (r->ev_head + 1) % RL_NEV;
	r->ev_n--;
	return 1;
}

void qmig_relay_stop_accepting(struct qmig_relay *r)
{
	r->stopped = true;
	if (r->lfd >= 0) {
		shutdown(r->lfd, SHUT_RDWR);
		close(r->lfd);
		r->lfd = -1;
	}
}

void qmig_relay_abort(struct qmig_relay *r)
{
	for (unsigned i = 0; i < r->nch; i++)
		if (r->ch[i].state != RL_FREE)
			qm_rl_chan_fail(r, &r->ch[i], -ECONNABORTED, "aborted");
	io_uring_submit(&r->ring);
}

void qmig_relay_get_stats(const struct qmig_relay *r, struct qmig_relay_stats *st)
{
	memset(st, 0, sizeof(*st));
	for (unsigned i = 0; i < r->nch; i++)
		if (r->ch[i].state != RL_FREE)
			st->channels_open++;
	st->channels_total = r->next_id;
	st->channels_failed = r->failed;
	st->bytes_up = r->up_total;
	st->bytes_down = r->down_total;
	st->rate_up = r->rate_up;
	st->rate_down = r->rate_down;
	st->first_byte_ns = r->first_ns;
	st->last_byte_ns = r->last_ns;
	/* With TLS, OpenSSL's own record buffers (about 17 KiB each way, kept
	 * for the channel's life) and its connection object. */
	st->mem_per_channel = r->per_chan + (r->ssl_ctx ? RL_SSL_MEM : 0);
	st->mem_total = st->mem_per_channel * r->nch;
	st->tls = r->ssl_ctx ? 1 : 0;
	st->ktls_available = r->ktls;
	st->events_dropped = r->ev_dropped;
}

int qmig_relay_channel_stats(const struct qmig_relay *r, unsigned channel,
			     struct qmig_relay_channel_stats *out)
{
	const struct rl_hist *h;
	int up = r->o.side == QMIG_RELAY_SOURCE ? 0 : 1;

	if (!channel || channel > r->next_id)
		return -ENOENT;
	h = hist_of(r, channel);
	if (h->channel != channel)
		return -ENOENT;
	memset(out, 0, sizeof(*out));
	out->channel = channel;
	out->open = h->open;
	out->error = h->error;
	out->bytes_up = h->up;
	out->bytes_down = h->down;
	out->open_ns = h->open_ns;
	out->close_ns = h->close_ns;
	if (h->open)
		for (unsigned i = 0; i < r->nch; i++)
			if (r->ch[i].state != RL_FREE && r->ch[i].id == channel) {
				out->bytes_up = r->ch[i].d[up].bytes;
				out->bytes_down = r->ch[i].d[!up].bytes;
			}
	return 0;
}

const char *qmig_relay_error(const struct qmig_relay *r)
{
	return r->err;
}
