/* A small TCP tool for transport tests (ping is not always installed, and
 * we want throughput, not just reachability). Built on the library's own
 * socket helpers and port allocator:
 *
 *   transport_tcp serve ADDR PORT [TIMEOUT_MS]
 *       listen (PORT 0: any), print "listening PORT", accept one client,
 *       read until EOF checking the byte pattern, answer "ok N\n".
 *   transport_tcp send ADDR PORT BYTES [TIMEOUT_MS]
 *       connect, send BYTES of the pattern, wait for the answer, print
 *       "sent N bytes in S s: R Mbit/s". Exit 0 only if the server got all.
 *   transport_tcp port ADDR LO HI [NETNS [LOCKDIR]]
 *       qmig_port_alloc(); print "port P", or "error -E: MESSAGE" (exit 1).
 *   transport_tcp
 *       (as run by the test suite) a self-test on loopback: a port from
 *       the allocator, a forked sender, 64 MB checked byte by byte.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "qmig_transport.h"

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static unsigned char pattern(unsigned long long i)
{
	return (unsigned char)(i * 7 % 251);
}

/* Wait for fd to be ready; 0, or -1 after timeout_ms. */
static int wait_ready(int fd, short ev, int timeout_ms)
{
	struct pollfd p = {.fd = fd, .events = ev};

	return poll(&p, 1, timeout_ms) == 1 ? 0 : -1;
}

static int serve_on(int lfd, int timeout_ms)
{
	char buf[65536], reply[64];
	unsigned long long got = 0;
	int fd, bad = 0;
	ssize_t n;

	fd = qmig_tcp_accept(lfd, timeout_ms);
	close(lfd);
	if (fd < 0) {
		fprintf(stderr, "serve: accept: %s\n", strerror(-fd));
		return 1;
	}
	for (;;) {
		n = read(fd, buf, sizeof(buf));
		if (n == 0)
			break;
		if (n < 0) {
			if (errno == EAGAIN && wait_ready(fd, POLLIN, timeout_ms) == 0)
				continue;
			fprintf(stderr, "serve: read: %s\n", n < 0 ? strerror(errno) : "timeout");
			return 1;
		}
		for (ssize_t i = 0; i < n; i++)
			bad += buf[i] != (char)pattern(got + (unsigned long long)i);
		got += (unsigned long long)n;
	}
	n = snprintf(reply, sizeof(reply), "%s %llu\n", bad ? "corrupt" : "ok", got);
	if (write(fd, reply, (size_t)n) != n)
		return 1;
	close(fd);
	printf("received %llu bytes%s\n", got, bad ? " CORRUPT" : "");
	return bad ? 1 : 0;
}

static int serve(const char *addr, unsigned port, int timeout_ms)
{
	char msg[256] = "";
	int lfd = qmig_tcp_listen(addr, port, 1, msg, sizeof(msg));

	if (lfd < 0) {
		fprintf(stderr, "serve: %s\n", msg);
		return 1;
	}
	printf("listening %d\n", qmig_tcp_local_port(lfd));
	return serve_on(lfd, timeout_ms);
}

static int send_all(int fd, unsigned long long bytes, int timeout_ms)
{
	char buf[65536];
	unsigned long long off = 0;

	while (off < bytes) {
		size_t len = bytes - off < sizeof(buf) ? (size_t)(bytes - off) : sizeof(buf);
		ssize_t n;

		for (size_t i = 0; i < len; i++)
			buf[i] = (char)pattern(off + i);
		n = write(fd, buf, len);
		if (n < 0 && errno == EAGAIN) {
			if (wait_ready(fd, POLLOUT, timeout_ms) < 0)
				return -ETIMEDOUT;
			continue;
		}
		if (n < 0)
			return -errno;
		off += (unsigned long long)n;
	}
	return 0;
}

static int sender(const char *addr, unsigned port, unsigned long long bytes, int timeout_ms)
{
	char msg[256] = "", reply[64] = "";
	double t0 = now_s(), t;
	unsigned long long acked = 0;
	int fd, r;
	ssize_t n;

	fd = qmig_tcp_connect(addr, port, timeout_ms, msg, sizeof(msg));
	if (fd < 0) {
		printf("error %d: %s\n", fd, msg);
		return 1;
	}
	r = send_all(fd, bytes, timeout_ms);
	if (r < 0 || shutdown(fd, SHUT_WR) < 0) {
		printf("error %d: send: %s\n", r, strerror(-r));
		return 1;
	}
	if (wait_ready(fd, POLLIN, timeout_ms) < 0 ||
	    (n = read(fd, reply, sizeof(reply) - 1)) <= 0) {
		printf("error: no answer from the server\n");
		return 1;
	}
	t = now_s() - t0;
	reply[n] = 0;
	if (sscanf(reply, "ok %llu", &acked) != 1 || acked != bytes) {
		printf("error: server answered '%s' for %llu bytes\n", reply, bytes);
		return 1;
	}
	printf("sent %llu bytes in %.3f s: %.1f Mbit/s\n", bytes, t, bytes * 8 / t / 1e6);
	close(fd);
	return 0;
}

static int port(const char *addr, unsigned lo, unsigned hi, const char *ns, const char *dir)
{
	struct qmig_port_opts o = QMIG_PORT_OPTS_INIT;
	struct qmig_port *p;
	char msg[256] = "";
	int r;

	o.lo = lo;
	o.hi = hi;
	o.bind_addr = addr;
	o.netns = ns && *ns ? ns : NULL;
	o.lock_dir = dir;
	r = qmig_port_alloc(&p, &o, msg, sizeof(msg));
	if (r < 0) {
		printf("error %d: %s\n", r, msg);
		return 1;
	}
	printf("port %u\n", qmig_port_number(p));
	qmig_port_free(p);
	return 0;
}

/* Both ends on loopback, the port from the allocator as QEMU would get it. */
static int selftest(void)
{
	struct qmig_port_opts o = QMIG_PORT_OPTS_INIT;
	struct qmig_port *p;
	char msg[256] = "";
	int status, r, lfd;
	pid_t pid;

	o.bind_addr = "127.0.0.1";
	r = qmig_port_alloc(&p, &o, msg, sizeof(msg));
	if (r < 0) {
		printf("FAIL: port: %s\n", msg);
		return 1;
	}
	printf("port %u (lock %s)\n", qmig_port_number(p), qmig_port_lock_path(p));
	lfd = qmig_tcp_listen("127.0.0.1", qmig_port_number(p), 1, msg, sizeof(msg));
	if (lfd < 0) {
		printf("FAIL: listen on the allocated port: %s\n", msg);
		return 1;
	}
	pid = fork();
	if (pid == 0)
		_exit(sender("127.0.0.1", qmig_port_number(p), 64ull << 20, 10000));
	r = serve_on(lfd, 10000);
	qmig_port_free(p);
	if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status)) {
		printf("FAIL: sender\n");
		return 1;
	}
	printf(r ? "FAIL\n" : "PASS\n");
	return r;
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc == 1)
		return selftest();
	if (argc >= 4 && !strcmp(argv[1], "serve"))
		return serve(argv[2], (unsigned)atoi(argv[3]), argc > 4 ? atoi(argv[4]) : 10000);
	if (argc >= 5 && !strcmp(argv[1], "send"))
		return sender(argv[2], (unsigned)atoi(argv[3]), strtoull(argv[4], NULL, 0),
			      argc > 5 ? atoi(argv[5]) : 10000);
	if (argc >= 5 && !strcmp(argv[1], "port"))
		return port(argv[2], (unsigned)atoi(argv[3]), (unsigned)atoi(argv[4]),
			    argc > 5 ? argv[5] : NULL, argc > 6 ? argv[6] : NULL);
	fprintf(stderr, "usage: transport_tcp serve ADDR PORT [TIMEOUT_MS]\n"
			"       transport_tcp send ADDR PORT BYTES [TIMEOUT_MS]\n"
			"       transport_tcp port ADDR LO HI [NETNS [LOCKDIR]]\n");
	return 2;
}
