/* transport/relay*.c: shared between the relay's files. Not exported. */
#ifndef QMIG_RELAY_INT_H
#define QMIG_RELAY_INT_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <liburing.h>
#include <openssl/ssl.h>

#include "qmig_relay.h"

#define RL_MAX_SEGS 16
/* OpenSSL's memory per TLS connection, an estimate rounded up: the SSL
 * object with its handshake state (a few KiB) and its read and write
 * record buffers (16 KiB + headroom each), kept while the channel lives. */
#define RL_SSL_MEM (48 * 1024)

/* One direction of a channel: segments [tail, head) are filled and wait to
 * be written; `off` bytes of segment tail are written already. */
struct rl_dir {
	char *buf;
	uint32_t len[RL_MAX_SEGS];
	unsigned head, tail;
	uint32_t off;
	bool rd_busy, wr_busy;
	bool eof_in;   /* the reading end said EOF */
	bool eof_done; /* ... and it was passed on (shutdown SHUT_WR) */
	uint64_t bytes;
};

enum rl_state { RL_FREE, RL_CONNECTING, RL_HANDSHAKE, RL_WAIT_QEMU, RL_OPEN, RL_DYING };

struct rl_chan {
	enum rl_state state;
	unsigned id;
	int ufd, nfd;          /* QEMU's unix socket, the network socket */
	struct rl_dir d[2];    /* 0: unix -> net, 1: net -> unix */
	unsigned inflight;
	int err;
	char errmsg[120];
	bool opened;           /* EV_OPEN was sent */
	bool ahead;            /* SOURCE: opened before QEMU connected (preconnect) */
	struct sockaddr_un sun;        /* DEST: QEMU's socket, while connecting */
	struct __kernel_timespec ts;   /* the connect timeout */
	int64_t open_ns;
	/* TLS (OpenSSL over a BIO of ours reading cin and appending to cout;
	 * the ring moves the ciphertext). */
	SSL *ssl;
	char *cin, *cout;
	uint32_t cin_len, cin_off, cout_len, cout_off, cout_cap;
	bool recv_busy, send_busy, net_eof, hs_done, shut_sent;
};

struct rl_hist {
	unsigned channel;
	int open, error;
	uint64_t up, down;
	int64_t open_ns, close_ns;
};

#define RL_NEV 64

/* A relay's own part of a shared limiter (relay_sys.c). */
struct rl_share {
	struct rl_share *next;  /* the limiter's other users */
	double tokens;
	int64_t last_ns;
	int64_t want_ns;        /* when it last asked for bytes */
};

struct qmig_relay {
	struct qmig_relay_opts o;
	struct io_uring ring;
	bool ring_ok;
	int efd;
	int lfd;               /* listener: unix (SOURCE) or TCP (DEST) */
	bool accept_busy, stopped;
	char *unix_path, *host, *tls_host, *priv_dir;
	bool made_socket;
	unsigned port;
	struct sockaddr_storage peer;  /* SOURCE: the far relay */
	socklen_t peer_len;
	int family;
	int *pool;             /* SOURCE with netns: sockets made inside it */
	unsigned pool_n;
	struct rl_chan *ch;
	unsigned nch;
	unsigned *fifo;        /* channels in arrival order, waiting their turn */
	unsigned fifo_n;
	bool connect_busy;     /* one connect at a time keeps the order */
	char *arena;
	size_t arena_len, per_chan, seg;
	unsigned nsegs;
	SSL_CTX *ssl_ctx;
	BIO_METHOD *bio_meth;  /* relay_tls.c's BIO over cin and cout */
	int ktls;
	unsigned next_id;
	struct rl_hist *hist;
	unsigned nhist;
	struct qmig_relay_event ev[RL_NEV];
	unsigned ev_head, ev_n, ev_dropped;
	uint64_t up_total, down_total;
	unsigned failed;
	int64_t first_ns, last_ns;
	int64_t win_ns;
	uint64_t win_up, win_down;
	double rate_up, rate_down;
	int64_t limit_wait_ns; /* when the limiter will have tokens again */
	struct rl_share share;
	char err[256];
};

struct qmig_relay_limiter {
	uint64_t rate;
	double tokens;
	int64_t last_ns;
	unsigned users;
	struct rl_share *members;
};

/* relay_sys.c */
/* A relay joins or leaves a limiter. */
void qm_rl_limiter_join(struct qmig_relay_limiter *l, struct rl_share *s);
void qm_rl_limiter_leave(struct qmig_relay_limiter *l, struct rl_share *s);
/* Bytes relay s may send now (at most want), or 0 with *wait_ns set. */
uint64_t qm_rl_limiter_take(struct qmig_relay_limiter *l, struct rl_share *s, uint64_t want,
			    int64_t now, int64_t *wait_ns);
/* Give back what a short write did not use. */
void qm_rl_limiter_refund(struct qmig_relay_limiter *l, struct rl_share *s, uint64_t n);

/* n stream sockets of family made inside netns, into fds[]. */
int qm_rl_netns_sockets(const char *netns, int family, unsigned n, int *fds, char *msg,
			size_t len);
int qm_rl_ktls_available(void);
/* Raise to size the send buffer of every socket of the process at the far
 * end of unix socket fd that is connected to path; how many were set. */
int qm_rl_peer_sndbuf(int fd, const char *path, int size);

/* relay_tls.c */
int qm_rl_tls_ctx(struct qmig_relay *r, char *msg, size_t len);
int qm_rl_tls_chan(struct qmig_relay *r, struct rl_chan *c);
void qm_rl_tls_chan_free(struct rl_chan *c);
/* Move what can move between the ring's buffers and OpenSSL; queue I/O.
 * 0, or a negative errno with c->errmsg set. */
int qm_rl_tls_pump(struct qmig_relay *r, struct rl_chan *c);
void qm_rl_tls_done_recv(struct qmig_relay *r, struct rl_chan *c, int res);
void qm_rl_tls_done_send(struct qmig_relay *r, struct rl_chan *c, int res);

/* relay_chan.c, below relay.c and relay_tls.c */
#define RL_LISTENER_SLOT 0xffffffu
int64_t qm_rl_now(void);
/* How much of `want` the limiter lets through now (up direction only). */
/* The direction that carries the migration stream (source to destination). */
bool qm_rl_is_up(const struct qmig_relay *r, int dir);
uint64_t qm_rl_grant(struct qmig_relay *r, int dir, uint64_t want);
/* n bytes of direction dir's oldest segment were written. */
void qm_rl_dir_written(struct qmig_relay *r, struct rl_chan *c, int dir, uint32_t n);
struct io_uring_sqe *qm_rl_sqe(struct qmig_relay *r);
uint64_t qm_rl_ud(const struct qmig_relay *r, const struct rl_chan *c, unsigned op);
void qm_rl_chan_fail(struct qmig_relay *r, struct rl_chan *c, int err, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

enum { RL_OP_ACCEPT = 1, RL_OP_CONNECT, RL_OP_TIMEOUT, RL_OP_RD0, RL_OP_WR0, RL_OP_RD1,
       RL_OP_WR1, RL_OP_NRECV, RL_OP_NSEND, RL_OP_CANCEL };

#endif
