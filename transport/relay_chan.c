/* The relay's channel primitives, below both relay.c (the ring, channels'
 * life, plain bytes) and relay_tls.c (OpenSSL over the ring's buffers):
 * the clock, submissions, what the limiter grants, written bytes, and a
 * channel's failure. Calls go one way: relay.c -> relay_tls.c -> here. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "relay_int.h"

int64_t qm_rl_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

uint64_t qm_rl_ud(const struct qmig_relay *r, const struct rl_chan *c, unsigned op)
{
	uint64_t slot = c ? (uint64_t)(c - r->ch) : RL_LISTENER_SLOT;

	return slot << 8 | op;
}

/* An SQE, flushing the queue to the kernel when it is full. */
struct io_uring_sqe *qm_rl_sqe(struct qmig_relay *r)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&r->ring);

	if (!sqe) {
		io_uring_submit(&r->ring);
		sqe = io_uring_get_sqe(&r->ring);
	}
	return sqe;
}

bool qm_rl_is_up(const struct qmig_relay *r, int dir)
{
	return r->o.side == QMIG_RELAY_SOURCE ? dir == 0 : dir == 1;
}

/* How much of `want` the limiter lets through now (up direction only). */
uint64_t qm_rl_grant(struct qmig_relay *r, int dir, uint64_t want)
{
	int64_t wait = 0, now;
	uint64_t n;

	if (!r->o.limiter || !qm_rl_is_up(r, dir))
		return want;
	now = qm_rl_now();
	n = qm_rl_limiter_take(r->o.limiter, &r->share, want, now, &wait);
	if (!n && (!r->limit_wait_ns || now + wait < r->limit_wait_ns))
		r->limit_wait_ns = now + wait;
	return n;
}

static void account(struct qmig_relay *r, int dir, uint64_t n)
{
	int64_t now = qm_rl_now();

	if (qm_rl_is_up(r, dir)) {
		r->up_total += n;
		if (!r->first_ns)
			r->first_ns = now;
		r->last_ns = now;
	} else {
		r->down_total += n;
	}
}

void qm_rl_dir_written(struct qmig_relay *r, struct rl_chan *c, int dir, uint32_t n)
{
	struct rl_dir *d = &c->d[dir];

	d->off += n;
	d->bytes += n;
	account(r, dir, n);
	if (d->off >= d->len[d->tail % r->nsegs]) {
		d->tail++;
		d->off = 0;
	}
}

void qm_rl_chan_fail(struct qmig_relay *r, struct rl_chan *c, int err, const char *fmt, ...)
{
	char buf[sizeof(c->errmsg)];
	va_list ap;

	if (c->state == RL_DYING || c->state == RL_FREE)
		return;
	c->err = err < 0 ? err : -EIO;
	/* Through a copy: callers pass c->errmsg itself as an argument. */
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	memcpy(c->errmsg, buf, sizeof(buf));
	c->state = RL_DYING;
	/* Wake every operation still waiting on either socket. The network
	 * socket is reset, not shut down: the far relay must see a broken
	 * channel (ECONNRESET), not a clean end of stream. */
	for (int i = 0; i < 2; i++) {
		int fd = i ? c->nfd : c->ufd;
		struct linger lg = {1, 0};
		struct io_uring_sqe *sqe;

		if (fd < 0)
			continue;
		if (i)
			setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
		else
			shutdown(fd, SHUT_RDWR);
		sqe = qm_rl_sqe(r);
		if (sqe) {
			io_uring_prep_cancel_fd(sqe, fd, IORING_ASYNC_CANCEL_ALL);
			io_uring_sqe_set_data64(sqe, qm_rl_ud(r, c, RL_OP_CANCEL));
			c->inflight++;
		}
	}
}
