/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libqmigrate — the relay: qmigrate carries the migration stream itself.
 *
 *   source QEMU -> unix socket -> relay (SOURCE) -> TCP or TLS ->
 *   relay (DEST) -> unix socket -> destination QEMU
 *
 * Every connection QEMU makes (the main channel with its return path,
 * each multifd channel, the postcopy preempt channel) becomes one TCP (or
 * TLS) connection to the far relay, which connects it to the destination
 * QEMU's `migrate-incoming unix:PATH` socket, in the order they arrived.
 * Bytes move both ways with io_uring (registered buffers, one submission
 * per step for every channel). Memory per channel is fixed
 * (qmig_relay_stats.mem_per_channel): a side that stops reading stops the
 * other side's reads, never makes the relay buffer more.
 *
 * Embedding, as for a migration: poll qmig_relay_get_fd() for POLLIN with
 * qmig_relay_get_timeout(), then call qmig_relay_process(). No threads, no
 * globals, no printing. 0 or a negative errno; details in
 * qmig_relay_error() or the optional msg buffer of qmig_relay_new().
 */
#ifndef QMIG_RELAY_H
#define QMIG_RELAY_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* A token bucket several relays can share (several migrations on a host
 * splitting one link): each relay takes at most its fair part of the
 * bucket at a time. It must outlive every relay that uses it. */
struct qmig_relay_limiter;

/* bytes_per_s 0: unlimited. Bursts up to 50 ms worth of bytes. */
int qmig_relay_limiter_new(struct qmig_relay_limiter **out, uint64_t bytes_per_s);
void qmig_relay_limiter_set_rate(struct qmig_relay_limiter *l, uint64_t bytes_per_s);
void qmig_relay_limiter_free(struct qmig_relay_limiter *l);

enum qmig_relay_side {
	QMIG_RELAY_SOURCE = 1, /* QEMU connects to us; we connect to the far relay */
	QMIG_RELAY_DEST = 2    /* the far relay connects to us; we connect to QEMU */
};

#define QMIG_RELAY_OPTS_VERSION 2

struct qmig_relay_opts {
	unsigned int version;
	enum qmig_relay_side side;
	/* SOURCE: the socket the source QEMU migrates to (`migrate unix:PATH`);
	 * NULL: "relay.sock" in a new private directory (0700, removed by
	 * qmig_relay_free()). The socket is made 0600 either way.
	 * DEST: the destination QEMU's `migrate-incoming unix:PATH` socket. */
	const char *unix_path;
	/* SOURCE: the far relay's address. DEST: the address to listen on
	 * (NULL or "": every IPv4 address), port 0: any free port (see
	 * qmig_relay_port()). */
	const char *host;
	unsigned port;
	/* DEST: listen on this socket instead (it is taken over and closed by
	 * qmig_relay_free()); -1: none. */
	int listen_fd;
	/* Create the TCP sockets inside this network namespace (a name under
	 * /run/netns or a path such as /proc/PID/ns/net); NULL: our own. */
	const char *netns;
	/* TLS with mutual authentication, from a `qmigrate tls init`
	 * directory: ca-cert.pem; server-cert/key.pem for DEST,
	 * client-cert/key.pem for SOURCE. NULL: plain TCP. */
	const char *tls_dir;
	const char *tls_hostname; /* SOURCE: the name DEST's certificate must carry; NULL: host */
	unsigned max_channels;    /* 0: 8 open at once */
	unsigned seg_kib;         /* segment size; 0: 64 */
	unsigned nsegs;           /* segments per direction and channel; 0: 4 */
	int connect_timeout_ms;   /* 0: 5000 */
	struct qmig_relay_limiter *limiter; /* caps the source-to-destination bytes; NULL: none */
	/* Version 2. SOURCE: open this many channels to the far relay (TLS
	 * handshake done) before QEMU connects; QEMU's connections take them
	 * in order. EV_OPEN comes when one is ready, EV_ERROR when it could
	 * not be made: so a caller can learn that the far side is reachable
	 * before it tells QEMU to connect (QEMU 7.2 hangs in postcopy-recover
	 * when its resumed connection is closed at once). */
	unsigned preconnect;
};

#define QMIG_RELAY_OPTS_INIT {.version = QMIG_RELAY_OPTS_VERSION, .listen_fd = -1}

enum qmig_relay_event_type {
	QMIG_RELAY_EV_OPEN = 1,  /* a channel is connected end to end (pre-connected:
				    its network side is ready) */
	QMIG_RELAY_EV_CLOSED,    /* both directions ended cleanly */
	QMIG_RELAY_EV_ERROR      /* a channel broke: both of its ends are closed */
};

struct qmig_relay_event {
	enum qmig_relay_event_type type;
	unsigned channel;        /* 1, 2, ... in the order QEMU connected */
	int error;               /* negative errno for EV_ERROR */
	uint64_t bytes_up, bytes_down;
	char message[160];
};

struct qmig_relay_stats {
	unsigned channels_open;
	unsigned channels_total; /* ever opened */
	unsigned channels_failed;
	uint64_t bytes_up;       /* source QEMU towards destination QEMU, delivered */
	uint64_t bytes_down;     /* the return path */
	double rate_up;          /* bytes/s over the last ~0.5 s, our own measure */
	double rate_down;
	int64_t first_byte_ns;   /* CLOCK_MONOTONIC of the first byte up; 0: none yet */
	int64_t last_byte_ns;
	size_t mem_per_channel;  /* fixed buffers (and TLS buffers) of one channel */
	size_t mem_total;        /* mem_per_channel * max_channels, allocated up front */
	int tls;                 /* 1: TLS in user space (OpenSSL); 2: kernel TLS */
	int ktls_available;      /* the kernel offers the "tls" ULP */
	unsigned events_dropped; /* events not fetched before the queue filled */
};

/* Per channel, by channel number (1 .. channels_total; the last
 * max_channels * 4 are kept). -ENOENT for one no longer kept. */
struct qmig_relay_channel_stats {
	unsigned channel;
	int open;                /* 1 open, 0 closed */
	int error;               /* 0 or the negative errno it broke with */
	uint64_t bytes_up, bytes_down;
	int64_t open_ns, close_ns; /* CLOCK_MONOTONIC; close_ns 0 while open */
};

struct qmig_relay;

int qmig_relay_new(struct qmig_relay **out, const struct qmig_relay_opts *opts, char *msg,
		   size_t msg_len);
/* Closes every channel and socket, removes a socket or directory it made. */
void qmig_relay_free(struct qmig_relay *r);

/* SOURCE: the unix socket QEMU migrates to. DEST: the one it connects to. */
const char *qmig_relay_unix_path(const struct qmig_relay *r);
/* DEST: the TCP port listened on. */
unsigned qmig_relay_port(const struct qmig_relay *r);

int qmig_relay_get_fd(const struct qmig_relay *r);
/* ms until qmig_relay_process() must run even without the fd (a rate
 * limit refilling, a connect timing out); -1 none. */
int qmig_relay_get_timeout(const struct qmig_relay *r);
/* Reap completions, move bytes, submit. Never blocks. 0, or a negative
 * errno when the relay itself (not a channel) failed. */
int qmig_relay_process(struct qmig_relay *r);
/* Pop one event: 1 when *ev was filled, 0 when none is queued. */
int qmig_relay_next_event(struct qmig_relay *r, struct qmig_relay_event *ev);
/* Stop accepting new channels (the listeners are closed). */
void qmig_relay_stop_accepting(struct qmig_relay *r);
/* Break every open channel now (as a cut link would): EV_ERROR -ECONNABORTED. */
void qmig_relay_abort(struct qmig_relay *r);

void qmig_relay_get_stats(const struct qmig_relay *r, struct qmig_relay_stats *out);
int qmig_relay_channel_stats(const struct qmig_relay *r, unsigned channel,
			     struct qmig_relay_channel_stats *out);
const char *qmig_relay_error(const struct qmig_relay *r);

#ifdef __cplusplus
}
#endif
#endif
