/* Addresses and plain TCP sockets: the pieces the relay and the TLS
 * channel are built from. Every socket is non-blocking and close-on-exec;
 * the blocking helpers wait with poll() against a deadline. */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "qm_wait.h"
#include "qmig_transport.h"
#include "transport_int.h"

static int parse_port(const char *s, unsigned *port)
{
	char *end;
	unsigned long v;

	if (!*s || *s == '-' || *s == '+')
		return -EINVAL;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || *end || v == 0 || v > 65535)
		return -EINVAL;
	*port = (unsigned)v;
	return 0;
}

static int copy_host(char *host, size_t host_len, const char *s, size_t n)
{
	if (n == 0)
		return -EINVAL;
	if (n >= host_len)
		return -ENAMETOOLONG;
	memcpy(host, s, n);
	host[n] = 0;
	return 0;
}

int qmig_addr_parse(const char *s, unsigned default_port, char *host, size_t host_len,
		    unsigned *port)
{
	const char *h = s, *colon, *rest;
	size_t n;
	unsigned p = default_port;
	int r;

	if (!s || !host || !port)
		return -EINVAL;
	if (*s == '[') {
		const char *close = strchr(s, ']');

		if (!close)
			return -EINVAL;
		h = s + 1;
		n = (size_t)(close - h);
		rest = close + 1;
		if (*rest == ':') {
			r = parse_port(rest + 1, &p);
			if (r < 0)
				return r;
		} else if (*rest) {
			return -EINVAL;
		}
	} else {
		colon = strrchr(s, ':');
		if (colon && strchr(s, ':') != colon)
			return -EINVAL; /* a bare IPv6 literal needs brackets */
		n = colon ? (size_t)(colon - s) : strlen(s);
		if (colon) {
			r = parse_port(colon + 1, &p);
			if (r < 0)
				return r;
		}
	}
	if (p == 0 || p > 65535)
		return -EINVAL;
	r = copy_host(host, host_len, h, n);
	if (r < 0)
		return r;
	*port = p;
	return 0;
}

int qmig_addr_format(char *buf, size_t len, const char *host, unsigned port)
{
	int n;

	if (strchr(host, ':'))
		n = snprintf(buf, len, "[%s]:%u", host, port);
	else
		n = snprintf(buf, len, "%s:%u", host, port);
	if (n < 0 || (size_t)n >= len)
		return -ENOSPC;
	return n;
}

static int gai_errno(int r)
{
	switch (r) {
	case EAI_NONAME:
	case EAI_NODATA:
		return -ENOENT;
	case EAI_AGAIN:
		return -EAGAIN;
	case EAI_MEMORY:
		return -ENOMEM;
	case EAI_SYSTEM:
		return errno ? -errno : -EIO;
	default:
		return -EINVAL;
	}
}

static int resolve(const char *host, unsigned port, int flags, struct addrinfo **res,
		   char *msg, size_t msg_len)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = flags | AI_NUMERICSERV};
	char service[8];
	int r;

	snprintf(service, sizeof(service), "%u", port);
	r = getaddrinfo(host, service, &hints, res);
	if (r) {
		qm_tp_msg(msg, msg_len, "%s: %s", host ? host : "*", gai_strerror(r));
		return gai_errno(r);
	}
	return 0;
}

int qmig_tcp_listen(const char *host, unsigned port, int backlog, char *msg, size_t msg_len)
{
	struct addrinfo *res, *ai;
	int one = 1, fd = -1, r, err = -EADDRNOTAVAIL;

	if (port > 65535)
		return -EINVAL;
	if (!host || !*host)
		host = "0.0.0.0";
	r = resolve(host, port, AI_PASSIVE, &res, msg, msg_len);
	if (r < 0)
		return r;
	for (ai = res; ai; ai = ai->ai_next) {
		fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (fd < 0) {
			err = -errno;
			continue;
		}
		if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == 0 &&
		    bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 &&
		    listen(fd, backlog > 0 ? backlog : 16) == 0)
			break;
		err = -errno;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd < 0) {
		qm_tp_msg(msg, msg_len, "cannot listen on %s port %u: %s", host, port,
			  strerror(-err));
		return err;
	}
	return fd;
}

int qmig_tcp_local_port(int fd)
{
	struct sockaddr_storage a;
	socklen_t len = sizeof(a);

	if (getsockname(fd, (struct sockaddr *)&a, &len) < 0)
		return -errno;
	if (a.ss_family == AF_INET6)
		return ntohs(((struct sockaddr_in6 *)&a)->sin6_port);
	if (a.ss_family == AF_INET)
		return ntohs(((struct sockaddr_in *)&a)->sin_port);
	return -EAFNOSUPPORT;
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Wait for events on fd until deadline (<0: none). 0 ready, -ETIMEDOUT. */
static int wait_fd(int fd, short events, int64_t deadline)
{
	struct pollfd pfd = {.fd = fd, .events = events};

	for (;;) {
		int t = -1, r;

		if (deadline >= 0) {
			int64_t left = deadline - now_ms();

			t = left > 0 ? (int)(left > 1 << 30 ? 1 << 30 : left) : 0;
		}
		r = qm_wait_fd(pfd.fd, pfd.events, t < 0 ? 0 : qm_wait_now_ns() + (int64_t)t * 1000000);
		if (r > 0)
			return 0;
		if (r == 0)
			return -ETIMEDOUT;
		return r;
	}
}

int qmig_tcp_accept(int listen_fd, int timeout_ms)
{
	int64_t deadline = timeout_ms < 0 ? -1 : now_ms() + timeout_ms;

	for (;;) {
		int fd = accept4(listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC), r;

		if (fd >= 0)
			return fd;
		if (errno == EINTR || errno == ECONNABORTED)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			return -errno;
		if (timeout_ms == 0)
			return -ETIMEDOUT;
		r = wait_fd(listen_fd, POLLIN, deadline);
		if (r < 0)
			return r;
	}
}

/* One address: 0 connected, or a negative errno. */
static int connect_one(int fd, const struct addrinfo *ai, int64_t deadline)
{
	int err = 0, r;
	socklen_t len = sizeof(err);

	if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
		return 0;
	if (errno != EINPROGRESS)
		return -errno;
	r = wait_fd(fd, POLLOUT, deadline);
	if (r < 0)
		return r;
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		return -errno;
	return -err;
}

int qmig_tcp_connect(const char *host, unsigned port, int timeout_ms, char *msg,
		     size_t msg_len)
{
	int64_t deadline = timeout_ms < 0 ? -1 : now_ms() + timeout_ms;
	struct addrinfo *res, *ai;
	int one = 1, fd = -1, r, err = -EHOSTUNREACH;

	if (!host || !*host || port == 0 || port > 65535)
		return -EINVAL;
	r = resolve(host, port, 0, &res, msg, msg_len);
	if (r < 0)
		return r;
	for (ai = res; ai; ai = ai->ai_next) {
		fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (fd < 0) {
			err = -errno;
			continue;
		}
		err = connect_one(fd, ai, deadline);
		if (err == 0)
			break;
		close(fd);
		fd = -1;
		if (err == -ETIMEDOUT)
			break;
	}
	freeaddrinfo(res);
	if (fd < 0) {
		char where[QMIG_HOST_MAX + 8];

		if (qmig_addr_format(where, sizeof(where), host, port) < 0)
			snprintf(where, sizeof(where), "port %u", port);
		qm_tp_msg(msg, msg_len, "cannot connect to %s: %s", where,
		       err == -ETIMEDOUT ? "timed out" : strerror(-err));
		return err;
	}
	/* Migration streams are bulk, but the handshakes are not. */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return fd;
}
