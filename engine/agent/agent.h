/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The face of engine/agent/: the agent protocol's plumbing, shared by the
 * source side (agent_client.c) and the daemon (tools/agent*.c): TLS contexts, one connection that is TLS
 * or a plain pair of fds (ssh stdio), JSON lines with a size limit, and raw
 * bytes for the QMP tunnel. Every wait goes through qm_wait_fd, so these
 * block on an ordinary stack and suspend on a fiber. Not installed. */
#ifndef QM_AGENT_INT_H
#define QM_AGENT_INT_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>

#include "qmig_agent.h"

struct json_object;

/* The largest request or reply line (bytes, newline included). */
#define QM_AGENT_LINE_MAX (64 * 1024)

/*
 * The only place that knows where certificates live. role_server: the
 * agent (server-cert.pem, server-key.pem), else the source
 * (client-cert.pem, client-key.pem); both trust DIR/ca-cert.pem and
 * require the peer's certificate to chain to it.
 */
SSL_CTX *qm_agent_tls_ctx(const char *dir, int role_server, char *msg, size_t len);

struct qm_aconn {
	SSL *ssl;            /* NULL: plain fds */
	int rfd, wfd;        /* the socket (both the same) or stdin/stdout */
	int own_fds;         /* close them in qm_aconn_close */
	char *buf;           /* received and not yet consumed */
	size_t len, cap;
	char peer[256];      /* the client certificate's subject, or "stdio" */
	char err[256];
};

/* Wrap an fd (connected socket, non-blocking) for TLS; handshake bounded by
 * deadline (monotonic ns). server: accept side. host: the name to check in
 * the server's certificate (client side; NULL: not checked). */
int qm_aconn_tls(struct qm_aconn *c, SSL_CTX *ctx, int fd, int server, const char *host,
		 int64_t deadline_ns);
/* Plain fds (ssh stdio). */
void qm_aconn_plain(struct qm_aconn *c, int rfd, int wfd, int own);
void qm_aconn_close(struct qm_aconn *c);
/* The fd to poll for input, and whether input is already buffered. */
int qm_aconn_fd(const struct qm_aconn *c);
int qm_aconn_pending(const struct qm_aconn *c);

/* Write all of buf by deadline. 0 or -errno. */
int qm_aconn_write(struct qm_aconn *c, const void *buf, size_t n, int64_t deadline_ns);
/* Read what is there (at least one byte unless EOF), waiting until the
 * deadline. >0 bytes, 0 EOF, -ETIMEDOUT, -errno. Buffered line data is
 * returned first. */
ssize_t qm_aconn_read(struct qm_aconn *c, void *buf, size_t n, int64_t deadline_ns);
/* Same without waiting: -EAGAIN when nothing is there. */
ssize_t qm_aconn_read_now(struct qm_aconn *c, void *buf, size_t n);

/* One JSON object per line. recv: *out is a new object; -EMSGSIZE a line
 * over QM_AGENT_LINE_MAX, -EBADMSG not a JSON object, -ECONNRESET EOF. */
int qm_aconn_recv(struct qm_aconn *c, struct json_object **out, int64_t deadline_ns);
int qm_aconn_send(struct qm_aconn *c, struct json_object *msg, int64_t deadline_ns);

/* Typed access to a received message. */
const char *qm_aj_str(struct json_object *o, const char *key);
int qm_aj_int(struct json_object *o, const char *key, int64_t *out);
/* An object member: 1 (*out set), 0 absent, -1 present but not an object. */
int qm_aj_obj(struct json_object *o, const char *key, struct json_object **out);
/* The same for an array member. */
int qm_aj_arr(struct json_object *o, const char *key, struct json_object **out);

/* dst_qmp is the local end of a live agent session's QMP tunnel: the
 * destination QEMU runs on another host, its files are out of reach here
 * (engine/tls.c leaves the check of its certificates to the agent). */
int qm_agent_remote_dst(const char *dst_qmp);

#endif
