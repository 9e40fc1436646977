/* The relay's TLS: OpenSSL in user space over a BIO pair.
 *
 * OpenSSL never touches the socket: the ring reads ciphertext into the
 * channel's `cin` buffer and we hand it to OpenSSL's side of the pair;
 * what OpenSSL writes to the pair is taken out into `cout` and sent by the
 * ring. So TLS channels are driven by the same completions as plain ones,
 * and their memory is as fixed (two 64 KiB pair buffers, cin and cout).
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

#define PAIR_BUF 65536

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
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
			      SSL_MODE_RELEASE_BUFFERS);
	/* One connection per channel, never resumed: no tickets to send. */
	SSL_CTX_set_num_tickets(ctx, 0);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	r->ssl_ctx = ctx;
	return 0;
fail:
	SSL_CTX_free(ctx);
	return -EKEYREJECTED;
}

int qm_rl_tls_chan(struct qmig_relay *r, struct rl_chan *c)
{
	BIO *ib = NULL, *nb = NULL;

	c->ssl = SSL_new(r->ssl_ctx);
	if (!c->ssl || BIO_new_bio_pair(&ib, PAIR_BUF, &nb, PAIR_BUF) != 1) {
		SSL_free(c->ssl);
		c->ssl = NULL;
		return -ENOMEM;
	}
	SSL_set_bio(c->ssl, ib, ib);
	c->nbio = nb;
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
		SSL_free(c->ssl); /* frees its half of the pair */
	if (c->nbio)
		BIO_free(c->nbio);
	c->ssl = NULL;
	c->nbio = NULL;
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

	while (c->cin_off < c->cin_len) {
		n = BIO_write(c->nbio, c->cin + c->cin_off, (int)(c->cin_len - c->cin_off));
		if (n <= 0)
			break;
		c->cin_off += (uint32_t)n;
		*progress = true;
	}
	if (c->net_eof && c->cin_off == c->cin_len)
		BIO_shutdown_wr(c->nbio); /* OpenSSL sees the end after the last byte */
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
					qm_rl_limiter_refund(r->o.limiter, g);
				if (ssl_retry(c, n))
					break;
				return ssl_fail(c, n, "write");
			}
			if ((uint64_t)n < g && r->o.limiter && r->o.side == QMIG_RELAY_SOURCE)
				qm_rl_limiter_refund(r->o.limiter, g - (uint64_t)n);
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
	if (!c->send_busy && c->cout_off == c->cout_len) {
		n = BIO_read(c->nbio, c->cout, (int)r->seg);
		if (n > 0) {
			c->cout_len = (uint32_t)n;
			c->cout_off = 0;
			*progress = true;
		}
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
	if (c->shut_sent && !c->d[0].eof_done && !c->send_busy && c->cout_off == c->cout_len &&
	    !BIO_ctrl_pending(c->nbio)) {
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
}
