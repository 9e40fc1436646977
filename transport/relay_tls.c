/* The relay's TLS: OpenSSL in user space over a BIO of our own.
 *
 * OpenSSL never touches the socket: the ring reads ciphertext into the
 * channel's `cin` buffer, which OpenSSL reads through our BIO; the records
 * OpenSSL writes are appended by the BIO to `cout`, which the ring sends.
 * So TLS channels are driven by the same completions as plain ones, and
 * their memory is as fixed (cin and cout, one segment each, plus OpenSSL's
 * record buffers). An earlier version used a BIO pair: two more 64 KiB
 * buffers per channel and one more copy of every byte each way.
 * Both sides authenticate: the destination asks for the source's client
 * certificate, the source checks the destination's name. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "relay_int.h"
#include "transport_int.h"

/* ---- the BIO: reads cin, appends to cout ------------------------------ */

static int cbio_write(BIO *b, const char *data, int len)
{
	struct rl_chan *c = BIO_get_data(b);
	uint32_t room = c->cout_cap - c->cout_len;

	BIO_clear_retry_flags(b);
	if (len <= 0)
		return 0;
	if (!room) {
		BIO_set_retry_write(b); /* cout drains when its send completes */
		return -1;
	}
	if ((uint32_t)len > room)
		len = (int)room;
	memcpy(c->cout + c->cout_len, data, (size_t)len);
	c->cout_len += (uint32_t)len;
	return len;
}

static int cbio_read(BIO *b, char *out, int len)
{
	struct rl_chan *c = BIO_get_data(b);
	uint32_t avail = c->cin_len - c->cin_off;

	BIO_clear_retry_flags(b);
	if (len <= 0)
		return 0;
	if (!avail) {
		if (c->net_eof)
			return 0; /* OpenSSL sees the end after the last byte */
		BIO_set_retry_read(b);
		return -1;
	}
	if ((uint32_t)len > avail)
		len = (int)avail;
	memcpy(out, c->cin + c->cin_off, (size_t)len);
	c->cin_off += (uint32_t)len;
	return len;
}

static long cbio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
	struct rl_chan *c = BIO_get_data(b);

	(void)num;
	(void)ptr;
	switch (cmd) {
	case BIO_CTRL_FLUSH:
		return 1;
	case BIO_CTRL_PENDING:
		return c ? (long)(c->cin_len - c->cin_off) : 0;
	case BIO_CTRL_WPENDING:
		return c ? (long)(c->cout_len - c->cout_off) : 0;
	case BIO_CTRL_EOF:
		return c && c->net_eof && c->cin_off == c->cin_len;
	default:
		return 0;
	}
}

static int cbio_create(BIO *b)
{
	BIO_set_init(b, 1);
	return 1;
}

int qm_rl_tls_ctx(struct qmig_relay *r, char *msg, size_t len)
{
	const char *who = r->o.side == QMIG_RELAY_SOURCE ? "client" : "server";
	char ca[PATH_MAX], cert[PATH_MAX], key[PATH_MAX], e[200];
	SSL_CTX *ctx;

	snprintf(ca, sizeof(ca), "%s/ca-cert.pem", r->o.tls_dir);
	snprintf(cert, sizeof(cert), "%s/%s-cert.pem", r->o.tls_dir, who);
	snprintf(key, sizeof(key), "%s/%s-key.pem", r->o.tls_dir, who);
	ctx = SSL_CTX_new(r->o.side == QMIG_RELAY_SOURCE ? TLS_client_method()
							 : TLS_server_method());
	if (!ctx)
		return -ENOMEM;
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	if (SSL_CTX_load_verify_locations(ctx, ca, NULL) != 1) {
		qm_tp_msg(msg, len, "relay TLS: cannot load %s: %s", ca, qm_tp_ssl_err(e, sizeof(e)));
		goto fail;
	}
	if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
		qm_tp_msg(msg, len, "relay TLS: cannot load %s: %s", cert,
			  qm_tp_ssl_err(e, sizeof(e)));
		goto fail;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_check_private_key(ctx) != 1) {
		qm_tp_msg(msg, len, "relay TLS: %s does not hold the key of %s: %s", key, cert,
			  qm_tp_ssl_err(e, sizeof(e)));
		goto fail;
	}
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
	/* Record buffers are kept for the channel's life (no
	 * SSL_MODE_RELEASE_BUFFERS: freeing and allocating them again whenever
	 * the stream pauses for a moment costs more than they weigh). */
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	/* AES-128-GCM first: with AES-NI it is the cheapest suite here
	 * (`openssl speed -evp`: 3.9 GB/s against 3.7 for AES-256-GCM), and
	 * both ends are ours. The server's order decides. */
	if (SSL_CTX_set_ciphersuites(ctx, "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:"
				     "TLS_CHACHA20_POLY1305_SHA256") != 1) {
		qm_tp_msg(msg, len, "relay TLS: cipher suites: %s", qm_tp_ssl_err(e, sizeof(e)));
		goto fail;
	}
	SSL_CTX_set_options(ctx, SSL_OP_CIPHER_SERVER_PREFERENCE);
	/* One connection per channel, never resumed: no tickets to send. */
	SSL_CTX_set_num_tickets(ctx, 0);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	r->bio_meth = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "qmigrate relay");
	if (!r->bio_meth || !BIO_meth_set_write(r->bio_meth, cbio_write) ||
	    !BIO_meth_set_read(r->bio_meth, cbio_read) ||
	    !BIO_meth_set_ctrl(r->bio_meth, cbio_ctrl) ||
	    !BIO_meth_set_create(r->bio_meth, cbio_create)) {
		SSL_CTX_free(ctx);
		return -ENOMEM;
	}
	r->ssl_ctx = ctx;
	return 0;
fail:
	SSL_CTX_free(ctx);
	return -EKEYREJECTED;
}

int qm_rl_tls_chan(struct qmig_relay *r, struct rl_chan *c)
{
	BIO *b = NULL;

	c->ssl = SSL_new(r->ssl_ctx);
	if (!c->ssl || !(b = BIO_new(r->bio_meth))) {
		SSL_free(c->ssl);
		c->ssl = NULL;
		return -ENOMEM;
	}
	BIO_set_data(b, c);
	SSL_set_bio(c->ssl, b, b);
	c->cout_cap = (uint32_t)r->seg;
	c->cin_off = c->cin_len = c->cout_off = c->cout_len = 0;
	if (r->o.side == QMIG_RELAY_SOURCE) {
		if (qm_tp_is_ip(r->tls_host))
			X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(c->ssl), r->tls_host);
		else
			SSL_set1_host(c->ssl, r->tls_host);
		SSL_set_connect_state(c->ssl);
	} else {
		SSL_set_accept_state(c->ssl);
	}
	return 0;
}

void qm_rl_tls_chan_free(struct rl_chan *c)
{
	if (c->ssl)
		SSL_free(c->ssl); /* and its BIO */
	c->ssl = NULL;
}

/* A failed OpenSSL call as a sentence in c->errmsg. */
static int ssl_fail(struct rl_chan *c, int rc, const char *what)
{
	int e = SSL_get_error(c->ssl, rc);
	long v = SSL_get_verify_result(c->ssl);
	char buf[120];

	if (v != X509_V_OK)
		snprintf(c->errmsg, sizeof(c->errmsg), "TLS %s: peer certificate: %s", what,
			 X509_verify_cert_error_string(v));
	else if (c->net_eof && e != SSL_ERROR_SSL)
		snprintf(c->errmsg, sizeof(c->errmsg), "TLS %s: connection closed by the peer "
			 "without close_notify", what);
	else
		snprintf(c->errmsg, sizeof(c->errmsg), "TLS %s: %s", what,
			 qm_tp_ssl_err(buf, sizeof(buf)));
	ERR_clear_error();
	return v != X509_V_OK ? -EKEYREJECTED : c->net_eof ? -ECONNRESET : -EPROTO;
}

static bool ssl_retry(struct rl_chan *c, int rc)
{
	int e = SSL_get_error(c->ssl, rc);

	return e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE;
}

static int pump_once(struct qmig_relay *r, struct rl_chan *c, bool *progress)
{
	struct rl_dir *up = &c->d[0], *dn = &c->d[1];
	int n;

	if (!c->hs_done) {
		n = SSL_do_handshake(c->ssl);
		if (n == 1) {
			c->hs_done = true;
			*progress = true;
		} else if (!ssl_retry(c, n)) {
			return ssl_fail(c, n, "handshake");
		}
	}
	if (c->hs_done && c->state == RL_OPEN) {
		while (up->head != up->tail) {
			uint32_t avail = up->len[up->tail % r->nsegs] - up->off;
			uint64_t g = qm_rl_grant(r, 0, avail);

			if (!g)
				break;
			n = SSL_write(c->ssl, up->buf + (size_t)(up->tail % r->nsegs) * r->seg + up->off,
				      (int)g);
			if (n <= 0) {
				if (r->o.limiter && r->o.side == QMIG_RELAY_SOURCE)
					qm_rl_limiter_refund(r->o.limiter, &r->share, g);
				if (ssl_retry(c, n))
					break;
				return ssl_fail(c, n, "write");
			}
			if ((uint64_t)n < g && r->o.limiter && r->o.side == QMIG_RELAY_SOURCE)
				qm_rl_limiter_refund(r->o.limiter, &r->share, g - (uint64_t)n);
			qm_rl_dir_written(r, c, 0, (uint32_t)n);
			*progress = true;
		}
		if (up->eof_in && up->head == up->tail && !c->shut_sent) {
			SSL_shutdown(c->ssl); /* queues close_notify */
			c->shut_sent = true;
			*progress = true;
		}
	}
	while (c->hs_done && !dn->eof_in && dn->head - dn->tail < r->nsegs) {
		n = SSL_read(c->ssl, dn->buf + (size_t)(dn->head % r->nsegs) * r->seg, (int)r->seg);
		if (n > 0) {
			dn->len[dn->head % r->nsegs] = (uint32_t)n;
			dn->head++;
			*progress = true;
			continue;
		}
		if (SSL_get_error(c->ssl, n) == SSL_ERROR_ZERO_RETURN) {
			dn->eof_in = true;
			*progress = true;
			break;
		}
		if (ssl_retry(c, n))
			break;
		return ssl_fail(c, n, "read");
	}
	return 0;
}

int qm_rl_tls_pump(struct qmig_relay *r, struct rl_chan *c)
{
	struct io_uring_sqe *sqe;
	bool progress;
	int rc, rounds = 0;

	do {
		progress = false;
		rc = pump_once(r, c, &progress);
		if (rc < 0)
			return rc;
	} while (progress && ++rounds < 64);
	if (!c->send_busy && c->cout_off < c->cout_len && (sqe = qm_rl_sqe(r))) {
		io_uring_prep_send(sqe, c->nfd, c->cout + c->cout_off, c->cout_len - c->cout_off,
				   MSG_NOSIGNAL);
		io_uring_sqe_set_data64(sqe, qm_rl_ud(r, c, RL_OP_NSEND));
		c->send_busy = true;
		c->inflight++;
	}
	if (!c->recv_busy && !c->net_eof && c->cin_off == c->cin_len && (sqe = qm_rl_sqe(r))) {
		io_uring_prep_read_fixed(sqe, c->nfd, c->cin, (unsigned)r->seg, 0, 0);
		io_uring_sqe_set_data64(sqe, qm_rl_ud(r, c, RL_OP_NRECV));
		c->recv_busy = true;
		c->inflight++;
	}
	if (c->shut_sent && !c->d[0].eof_done && !c->send_busy && c->cout_off == c->cout_len) {
		shutdown(c->nfd, SHUT_WR);
		c->d[0].eof_done = true;
	}
	return 0;
}

void qm_rl_tls_done_recv(struct qmig_relay *r, struct rl_chan *c, int res)
{
	c->recv_busy = false;
	if (c->state == RL_DYING || res == -EAGAIN || res == -EINTR)
		return;
	if (res < 0) {
		qm_rl_chan_fail(r, c, res, "network read: %s", strerror(-res));
		return;
	}
	if (res == 0) {
		c->net_eof = true;
		return;
	}
	c->cin_len = (uint32_t)res;
	c->cin_off = 0;
}

void qm_rl_tls_done_send(struct qmig_relay *r, struct rl_chan *c, int res)
{
	c->send_busy = false;
	if (c->state == RL_DYING || res == -EAGAIN || res == -EINTR)
		return;
	if (res < 0) {
		qm_rl_chan_fail(r, c, res, "network write: %s", strerror(-res));
		return;
	}
	c->cout_off += (uint32_t)res;
	/* What OpenSSL appended meanwhile goes out with the next send; keep
	 * cout's free room at its end. */
	if (c->cout_off == c->cout_len) {
		c->cout_off = c->cout_len = 0;
	} else if (c->cout_off > c->cout_cap / 2) {
		memmove(c->cout, c->cout + c->cout_off, c->cout_len - c->cout_off);
		c->cout_len -= c->cout_off;
		c->cout_off = 0;
	}
}
