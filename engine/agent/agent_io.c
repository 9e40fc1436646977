/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The agent protocol's connections: TLS (OpenSSL, non-blocking socket,
 * every wait through qm_wait_fd) or a plain pair of fds, carrying JSON
 * lines with a size limit, then raw bytes for the QMP tunnel. */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "agent.h"
#include "qm_wait.h"

static void ssl_errstr(char *buf, size_t len)
{
	unsigned long e = ERR_get_error();

	if (!e)
		snprintf(buf, len, "no detail");
	else
		ERR_error_string_n(e, buf, len);
	ERR_clear_error();
}

SSL_CTX *qm_agent_tls_ctx(const char *dir, int role_server, char *msg, size_t len)
{
	const char *who = role_server ? "server" : "client";
	char ca[PATH_MAX], cert[PATH_MAX], key[PATH_MAX], e[200];
	SSL_CTX *ctx;

	snprintf(ca, sizeof(ca), "%s/ca-cert.pem", dir);
	snprintf(cert, sizeof(cert), "%s/%s-cert.pem", dir, who);
	snprintf(key, sizeof(key), "%s/%s-key.pem", dir, who);
	ctx = SSL_CTX_new(role_server ? TLS_server_method() : TLS_client_method());
	if (!ctx) {
		snprintf(msg, len, "TLS: out of memory");
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	if (SSL_CTX_load_verify_locations(ctx, ca, NULL) != 1) {
		ssl_errstr(e, sizeof(e));
		snprintf(msg, len, "TLS: cannot load the CA %s: %s", ca, e);
		goto fail;
	}
	if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
		ssl_errstr(e, sizeof(e));
		snprintf(msg, len, "TLS: cannot load %s: %s", cert, e);
		goto fail;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_check_private_key(ctx) != 1) {
		ssl_errstr(e, sizeof(e));
		snprintf(msg, len, "TLS: %s does not hold the key of %s: %s", key, cert, e);
		goto fail;
	}
	/* Mutual: each side's certificate must chain to the CA. */
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
#ifdef SSL_OP_IGNORE_UNEXPECTED_EOF
	/* A peer that dies (kill -9) closes without close_notify: that is
	 * "the peer closed the connection", not a TLS error; every message
	 * is a whole line, so a cut one is seen anyway. */
	SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
#endif
	SSL_CTX_set_num_tickets(ctx, 0);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	return ctx;
fail:
	SSL_CTX_free(ctx);
	return NULL;
}

/* Wait for what OpenSSL asked for. 0 go on, or -errno. */
static int ssl_wait(struct qm_aconn *c, int rc, int64_t deadline_ns, const char *what)
{
	int e = SSL_get_error(c->ssl, rc), w;
	char es[200];

	if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
		w = qm_wait_fd(c->rfd, e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, deadline_ns);
		if (w == 0) {
			snprintf(c->err, sizeof(c->err), "%s: timed out", what);
			return -ETIMEDOUT;
		}
		return w < 0 ? w : 0;
	}
	if (e == SSL_ERROR_ZERO_RETURN) {
		snprintf(c->err, sizeof(c->err), "%s: the peer closed the connection", what);
		return -ECONNRESET;
	}
	if (e == SSL_ERROR_SYSCALL) {
		int err = errno ? errno : ECONNRESET;

		ERR_clear_error();
		snprintf(c->err, sizeof(c->err), "%s: %s", what,
			 err == ECONNRESET ? "the peer closed the connection" : strerror(err));
		return -err;
	}
	ssl_errstr(es, sizeof(es));
	snprintf(c->err, sizeof(c->err), "%s: %s", what, es);
	return -EPROTO;
}

int qm_aconn_tls(struct qm_aconn *c, SSL_CTX *ctx, int fd, int server, const char *host,
		 int64_t deadline_ns)
{
	X509 *peer;
	int r;

	memset(c, 0, sizeof(*c));
	c->rfd = c->wfd = fd;
	c->own_fds = 1;
	c->ssl = SSL_new(ctx);
	if (!c->ssl || SSL_set_fd(c->ssl, fd) != 1) {
		snprintf(c->err, sizeof(c->err), "TLS: cannot set up the connection");
		return -ENOMEM;
	}
	if (!server && host) {
		SSL_set_tlsext_host_name(c->ssl, host);
		SSL_set_hostflags(c->ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
		if (SSL_set1_host(c->ssl, host) != 1)
			return -EINVAL;
	}
	for (;;) {
		r = server ? SSL_accept(c->ssl) : SSL_connect(c->ssl);
		if (r == 1)
			break;
		r = ssl_wait(c, r, deadline_ns, "TLS handshake");
		if (r < 0) {
			long v = SSL_get_verify_result(c->ssl);

			if (v != X509_V_OK && strstr(c->err, "certificate"))
				snprintf(c->err + strlen(c->err), sizeof(c->err) - strlen(c->err),
					 " (%s)", X509_verify_cert_error_string(v));
			return r;
		}
	}
	peer = SSL_get1_peer_certificate(c->ssl);
	if (peer) {
		X509_NAME_oneline(X509_get_subject_name(peer), c->peer, sizeof(c->peer));
		X509_free(peer);
	}
	return 0;
}

void qm_aconn_plain(struct qm_aconn *c, int rfd, int wfd, int own)
{
	memset(c, 0, sizeof(*c));
	c->rfd = rfd;
	c->wfd = wfd;
	c->own_fds = own;
	snprintf(c->peer, sizeof(c->peer), "stdio");
}

void qm_aconn_close(struct qm_aconn *c)
{
	if (c->ssl) {
		SSL_shutdown(c->ssl); /* best effort, never waits */
		SSL_free(c->ssl);
		c->ssl = NULL;
	}
	if (c->own_fds) {
		if (c->rfd >= 0)
			close(c->rfd);
		if (c->wfd >= 0 && c->wfd != c->rfd)
			close(c->wfd);
	}
	c->rfd = c->wfd = -1;
	free(c->buf);
	c->buf = NULL;
	c->len = c->cap = 0;
}

int qm_aconn_fd(const struct qm_aconn *c)
{
	return c->rfd;
}

int qm_aconn_pending(const struct qm_aconn *c)
{
	return c->len > 0 || (c->ssl && SSL_pending(c->ssl) > 0);
}

int qm_aconn_write(struct qm_aconn *c, const void *buf, size_t n, int64_t deadline_ns)
{
	const char *p = buf;

	while (n) {
		ssize_t w;
		int r;

		if (c->ssl) {
			size_t done = 0;

			r = SSL_write_ex(c->ssl, p, n, &done);
			if (r == 1) {
				p += done;
				n -= done;
				continue;
			}
			r = ssl_wait(c, 0, deadline_ns, "send");
			if (r < 0)
				return r;
			continue;
		}
		w = write(c->wfd, p, n);
		if (w > 0) {
			p += w;
			n -= (size_t)w;
			continue;
		}
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && errno != EAGAIN) {
			snprintf(c->err, sizeof(c->err), "send: %s", strerror(errno));
			return -errno;
		}
		r = qm_wait_fd(c->wfd, POLLOUT, deadline_ns);
		if (r == 0) {
			snprintf(c->err, sizeof(c->err), "send: timed out");
			return -ETIMEDOUT;
		}
		if (r < 0)
			return r;
	}
	return 0;
}

/* One read attempt without waiting. */
static ssize_t raw_read(struct qm_aconn *c, void *buf, size_t n, int *want)
{
	*want = POLLIN;
	if (c->ssl) {
		size_t got = 0;
		int r = SSL_read_ex(c->ssl, buf, n, &got), e;

		if (r == 1)
			return (ssize_t)got;
		e = SSL_get_error(c->ssl, r);
		if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
			*want = e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT;
			return -EAGAIN;
		}
		if (e == SSL_ERROR_ZERO_RETURN)
			return 0;
		if (e == SSL_ERROR_SYSCALL) {
			ERR_clear_error();
			return errno && errno != EAGAIN ? -errno : 0;
		}
		ssl_errstr(c->err, sizeof(c->err));
		return -EPROTO;
	}
	for (;;) {
		ssize_t r = read(c->rfd, buf, n);

		if (r >= 0)
			return r;
		if (errno != EINTR)
			return -errno;
	}
}

ssize_t qm_aconn_read_now(struct qm_aconn *c, void *buf, size_t n)
{
	int want;

	if (c->len) {
		size_t k = c->len < n ? c->len : n;

		memcpy(buf, c->buf, k);
		memmove(c->buf, c->buf + k, c->len - k);
		c->len -= k;
		return (ssize_t)k;
	}
	return raw_read(c, buf, n, &want);
}

ssize_t qm_aconn_read(struct qm_aconn *c, void *buf, size_t n, int64_t deadline_ns)
{
	for (;;) {
		int want = POLLIN, r;
		ssize_t got;

		if (c->len)
			return qm_aconn_read_now(c, buf, n);
		got = raw_read(c, buf, n, &want);
		if (got != -EAGAIN)
			return got;
		r = qm_wait_fd(c->rfd, (short)want, deadline_ns);
		if (r == 0)
			return -ETIMEDOUT;
		if (r < 0)
			return r;
	}
}

int qm_aconn_recv(struct qm_aconn *c, struct json_object **out, int64_t deadline_ns)
{
	for (;;) {
		char *nl = c->len ? memchr(c->buf, '\n', c->len) : NULL;
		ssize_t got;
		int want;

		if (nl) {
			size_t ll = (size_t)(nl - c->buf);
			struct json_tokener *tok;
			struct json_object *o;
			enum json_tokener_error je;

			tok = json_tokener_new_ex(32);
			if (!tok)
				return -ENOMEM;
			o = json_tokener_parse_ex(tok, c->buf, (int)ll);
			je = json_tokener_get_error(tok);
			/* The whole line must be one object: nothing before or after. */
			if (o && (je != json_tokener_success ||
				  json_tokener_get_parse_end(tok) != ll)) {
				size_t end = json_tokener_get_parse_end(tok);

				while (end < ll && (c->buf[end] == ' ' || c->buf[end] == '\r' ||
						    c->buf[end] == '\t'))
					end++;
				if (end != ll) {
					json_object_put(o);
					o = NULL;
				}
			}
			json_tokener_free(tok);
			memmove(c->buf, nl + 1, c->len - ll - 1);
			c->len -= ll + 1;
			if (!o || !json_object_is_type(o, json_type_object)) {
				json_object_put(o);
				snprintf(c->err, sizeof(c->err), "a line that is not one JSON object");
				return -EBADMSG;
			}
			*out = o;
			return 0;
		}
		if (c->len >= QM_AGENT_LINE_MAX) {
			snprintf(c->err, sizeof(c->err), "a line longer than %d bytes",
				 QM_AGENT_LINE_MAX);
			return -EMSGSIZE;
		}
		if (c->cap < QM_AGENT_LINE_MAX + 1) {
			char *nb = realloc(c->buf, QM_AGENT_LINE_MAX + 1);

			if (!nb)
				return -ENOMEM;
			c->buf = nb;
			c->cap = QM_AGENT_LINE_MAX + 1;
		}
		got = raw_read(c, c->buf + c->len, QM_AGENT_LINE_MAX + 1 - c->len, &want);
		if (got > 0) {
			c->len += (size_t)got;
			continue;
		}
		if (got == 0) {
			snprintf(c->err, sizeof(c->err), "the peer closed the connection");
			return -ECONNRESET;
		}
		if (got != -EAGAIN) {
			if (!*c->err)
				snprintf(c->err, sizeof(c->err), "receive: %s", strerror((int)-got));
			return (int)got;
		}
		got = qm_wait_fd(c->rfd, (short)want, deadline_ns);
		if (got == 0) {
			snprintf(c->err, sizeof(c->err), "timed out waiting for a message");
			return -ETIMEDOUT;
		}
		if (got < 0)
			return (int)got;
	}
}

int qm_aconn_send(struct qm_aconn *c, struct json_object *msg, int64_t deadline_ns)
{
	size_t n;
	const char *s = json_object_to_json_string_length(msg, JSON_C_TO_STRING_PLAIN, &n);
	char *line;
	int r;

	if (!s)
		return -ENOMEM;
	line = malloc(n + 1);
	if (!line)
		return -ENOMEM;
	memcpy(line, s, n);
	line[n] = '\n';
	r = qm_aconn_write(c, line, n + 1, deadline_ns);
	free(line);
	return r;
}

const char *qm_aj_str(struct json_object *o, const char *key)
{
	struct json_object *v;

	if (!o || !json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

int qm_aj_obj(struct json_object *o, const char *key, struct json_object **out)
{
	struct json_object *v;

	*out = NULL;
	if (!o || !json_object_object_get_ex(o, key, &v))
		return 0;
	if (!json_object_is_type(v, json_type_object))
		return -1;
	*out = v;
	return 1;
}

int qm_aj_int(struct json_object *o, const char *key, int64_t *out)
{
	struct json_object *v;

	if (!o || !json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_int))
		return -ENOENT;
	*out = json_object_get_int64(v);
	return 0;
}

int qm_aj_arr(struct json_object *o, const char *key, struct json_object **out)
{
	struct json_object *v;

	*out = NULL;
	if (!o || !json_object_object_get_ex(o, key, &v))
		return 0;
	if (!json_object_is_type(v, json_type_array))
		return -1;
	*out = v;
	return 1;
}
