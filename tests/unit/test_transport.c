/* Unit tests of transport/: the port allocator and the socket helpers.
 * Everything binds on 127.0.0.1 and uses a private lock directory. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "qmig_transport.h"
#include "unit.h"

static char lock_dir[64];

static int suite_init(void)
{
	snprintf(lock_dir, sizeof(lock_dir), "/tmp/qmig-test-ports-XXXXXX");
	return mkdtemp(lock_dir) ? 0 : -1;
}

static int suite_cleanup(void)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", lock_dir);
	return system(cmd) == 0 ? 0 : -1;
}

/* A socket bound (and listening) on 127.0.0.1:port, or -1. */
static int occupy(unsigned port)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port),
				.sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -1;
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(fd, 1) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* n consecutive ports below the ephemeral range that we could bind; the
 * first of them, with all n occupied (fds[]) when occupy_them. */
static unsigned find_range(unsigned n, int *fds, int occupy_them)
{
	srand((unsigned)getpid() ^ (unsigned)time(NULL));
	for (int tries = 0; tries < 200; tries++) {
		unsigned base = 20000 + (unsigned)rand() % 10000, i;

		for (i = 0; i < n; i++) {
			fds[i] = occupy(base + i);
			if (fds[i] < 0)
				break;
		}
		if (i == n) {
			if (!occupy_them)
				for (i = 0; i < n; i++)
					close(fds[i]);
			return base;
		}
		while (i--)
			close(fds[i]);
	}
	return 0;
}

static struct qmig_port_opts opts_for(unsigned lo, unsigned hi)
{
	struct qmig_port_opts o = QMIG_PORT_OPTS_INIT;

	o.lo = lo;
	o.hi = hi;
	o.bind_addr = "127.0.0.1";
	o.lock_dir = lock_dir;
	return o;
}

static void test_exhausted_by_listeners(void)
{
	int fds[3];
	unsigned base = find_range(3, fds, 1);
	struct qmig_port_opts o = opts_for(base, base + 2);
	struct qmig_port *p = (struct qmig_port *)0x1;
	char msg[128] = "", want[128];

	CU_ASSERT_FATAL(base != 0);
	CU_ASSERT_EQUAL(qmig_port_alloc(&p, &o, msg, sizeof(msg)), -EADDRINUSE);
	CU_ASSERT_PTR_EQUAL(p, (struct qmig_port *)0x1); /* untouched on failure */
	snprintf(want, sizeof(want), "no free port in %u-%u (3 in use or locked)", base, base + 2);
	CU_ASSERT_STRING_EQUAL(msg, want);
	/* Free one: it is found. */
	close(fds[1]);
	CU_ASSERT_EQUAL(qmig_port_alloc(&p, &o, msg, sizeof(msg)), 0);
	CU_ASSERT_EQUAL(qmig_port_number(p), base + 1);
	qmig_port_free(p);
	close(fds[0]);
	close(fds[2]);
}

static void test_exhausted_by_locks(void)
{
	int fds[2];
	unsigned base = find_range(2, fds, 0);
	struct qmig_port_opts o = opts_for(base, base + 1);
	struct qmig_port *a = NULL, *b = NULL, *c = NULL;
	char msg[128] = "", want[128];

	CU_ASSERT_FATAL(base != 0);
	CU_ASSERT_EQUAL_FATAL(qmig_port_alloc(&a, &o, msg, sizeof(msg)), 0);
	CU_ASSERT_EQUAL_FATAL(qmig_port_alloc(&b, &o, msg, sizeof(msg)), 0);
	CU_ASSERT_NOT_EQUAL(qmig_port_number(a), qmig_port_number(b));
	CU_ASSERT_EQUAL(qmig_port_alloc(&c, &o, msg, sizeof(msg)), -EADDRINUSE);
	snprintf(want, sizeof(want), "no free port in %u-%u (2 in use or locked)", base, base + 1);
	CU_ASSERT_STRING_EQUAL(msg, want);
	CU_ASSERT_PTR_NULL(c);
	qmig_port_free(a);
	qmig_port_free(b);
}

static void test_release_frees(void)
{
	int fd;
	unsigned base = find_range(1, &fd, 0);
	struct qmig_port_opts o = opts_for(base, base);
	struct qmig_port *a = NULL, *b = NULL;
	char path[256];
	struct stat st;

	CU_ASSERT_FATAL(base != 0);
	CU_ASSERT_EQUAL_FATAL(qmig_port_alloc(&a, &o, NULL, 0), 0);
	snprintf(path, sizeof(path), "%s", qmig_port_lock_path(a));
	CU_ASSERT_EQUAL(stat(path, &st), 0);
	CU_ASSERT_EQUAL(qmig_port_alloc(&b, &o, NULL, 0), -EADDRINUSE);
	qmig_port_free(a);
	CU_ASSERT_EQUAL(stat(path, &st), -1); /* the lock file is removed */
	CU_ASSERT_EQUAL(qmig_port_alloc(&b, &o, NULL, 0), 0);
	CU_ASSERT_EQUAL(qmig_port_number(b), base);
	qmig_port_free(b);
	qmig_port_free(NULL);
}

/* A process that dies holding a port gives it back without cleanup. */
static void test_death_releases(void)
{
	int fd, status, pfd[2];
	unsigned base = find_range(1, &fd, 0);
	struct qmig_port_opts o = opts_for(base, base);
	struct qmig_port *p = NULL;
	pid_t pid;
	char c;

	CU_ASSERT_FATAL(base != 0);
	CU_ASSERT_FATAL(pipe(pfd) == 0);
	pid = fork();
	CU_ASSERT_FATAL(pid >= 0);
	if (pid == 0) {
		struct qmig_port *q;

		close(pfd[0]);
		if (qmig_port_alloc(&q, &o, NULL, 0) == 0 && write(pfd[1], "k", 1) == 1)
			pause();
		_exit(1);
	}
	close(pfd[1]);
	CU_ASSERT_EQUAL(read(pfd[0], &c, 1), 1);
	CU_ASSERT_EQUAL(qmig_port_alloc(&p, &o, NULL, 0), -EADDRINUSE);
	kill(pid, SIGKILL);
	waitpid(pid, &status, 0);
	close(pfd[0]);
	CU_ASSERT_EQUAL(qmig_port_alloc(&p, &o, NULL, 0), 0);
	qmig_port_free(p);
}

/* Several processes allocating at the same moment all get different ports. */
static void test_concurrent_processes(void)
{
	enum { N = 4 };
	int fds[N], to_parent[2], hold[2], status;
	unsigned base = find_range(N, fds, 0), got[N];
	struct qmig_port_opts o = opts_for(base, base + N - 1);
	pid_t pids[N];

	CU_ASSERT_FATAL(base != 0);
	CU_ASSERT_FATAL(pipe(to_parent) == 0 && pipe(hold) == 0);
	for (int i = 0; i < N; i++) {
		pids[i] = fork();
		CU_ASSERT_FATAL(pids[i] >= 0);
		if (pids[i] == 0) {
			struct qmig_port *q;
			unsigned port = 0;
			char c;

			close(to_parent[0]);
			close(hold[1]);
			if (qmig_port_alloc(&q, &o, NULL, 0) == 0)
				port = qmig_port_number(q);
			if (write(to_parent[1], &port, sizeof(port)) != sizeof(port))
				_exit(1);
			/* Hold the port until the parent has seen everyone's. */
			while (read(hold[0], &c, 1) > 0)
				;
			_exit(0);
		}
	}
	close(to_parent[1]);
	close(hold[0]);
	for (int i = 0; i < N; i++) {
		ssize_t n = read(to_parent[0], &got[i], sizeof(got[i]));

		CU_ASSERT_EQUAL(n, (ssize_t)sizeof(got[i]));
		CU_ASSERT(got[i] >= base && got[i] < base + N);
		for (int j = 0; j < i; j++)
			CU_ASSERT_NOT_EQUAL(got[i], got[j]);
	}
	close(hold[1]);
	close(to_parent[0]);
	for (int i = 0; i < N; i++) {
		waitpid(pids[i], &status, 0);
		CU_ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	}
}

/* Lock files are removed on release: processes racing through
 * alloc/free on a 2-port range must never hold the same port at once.
 * Each holder marks its port with an O_EXCL file while it holds it. */
static void test_churn_exclusive(void)
{
	enum { N = 3, ROUNDS = 500 };
	int fds[2], status, bad = 0;
	unsigned base = find_range(2, fds, 0);
	struct qmig_port_opts o = opts_for(base, base + 1);
	pid_t pids[N];

	CU_ASSERT_FATAL(base != 0);
	for (int i = 0; i < N; i++) {
		pids[i] = fork();
		CU_ASSERT_FATAL(pids[i] >= 0);
		if (pids[i] > 0)
			continue;
		for (int k = 0; k < ROUNDS; k++) {
			struct qmig_port *q;
			char mark[128];
			int fd;

			if (qmig_port_alloc(&q, &o, NULL, 0) < 0)
				continue; /* both held by the others: fine */
			snprintf(mark, sizeof(mark), "%s/held-%u", lock_dir, qmig_port_number(q));
			fd = open(mark, O_CREAT | O_EXCL | O_WRONLY, 0600);
			if (fd < 0)
				_exit(2); /* someone else holds the same port */
			close(fd);
			unlink(mark);
			qmig_port_free(q);
		}
		_exit(0);
	}
	for (int i = 0; i < N; i++) {
		waitpid(pids[i], &status, 0);
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
			bad++;
	}
	CU_ASSERT_EQUAL(bad, 0);
}

/* The random start spreads allocations over the range. */
static void test_random_start(void)
{
	int fds[16];
	unsigned base = find_range(16, fds, 0), seen = 0;
	struct qmig_port_opts o = opts_for(base, base + 15);

	CU_ASSERT_FATAL(base != 0);
	for (int i = 0; i < 32; i++) {
		struct qmig_port *p;

		CU_ASSERT_EQUAL_FATAL(qmig_port_alloc(&p, &o, NULL, 0), 0);
		seen |= 1u << (qmig_port_number(p) - base);
		qmig_port_free(p);
	}
	CU_ASSERT(__builtin_popcount(seen) >= 4);
}

static void test_bad_options(void)
{
	struct qmig_port_opts o = opts_for(5000, 4000);
	struct qmig_port *p = NULL;
	char msg[128] = "";

	CU_ASSERT_EQUAL(qmig_port_alloc(&p, &o, msg, sizeof(msg)), -EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(msg, "bad port range"));
	o = opts_for(20000, 20001);
	o.version = 99;
	CU_ASSERT_EQUAL(qmig_port_alloc(&p, &o, msg, sizeof(msg)), -EINVAL);
	o = opts_for(20000, 20001);
	o.bind_addr = "192.0.2.77"; /* TEST-NET-1: not ours */
	CU_ASSERT_EQUAL(qmig_port_alloc(&p, &o, msg, sizeof(msg)), -EADDRNOTAVAIL);
	o = opts_for(20000, 20001);
	o.netns = "qmig-no-such-ns";
	CU_ASSERT_EQUAL(qmig_port_alloc(&p, &o, msg, sizeof(msg)), -ENOENT);
	CU_ASSERT_PTR_NOT_NULL(strstr(msg, "qmig-no-such-ns"));
	CU_ASSERT_PTR_NULL(p);
}

/* The check in another namespace runs in a child; our own namespace by
 * path exercises the same code without needing ip netns. */
static void test_netns_check(void)
{
	int fd;
	unsigned base = find_range(1, &fd, 1);
	struct qmig_port_opts o = opts_for(base, base);
	struct qmig_port *p = NULL;
	char msg[128] = "";

	CU_ASSERT_FATAL(base != 0);
	if (geteuid() != 0) {
		close(fd);
		return; /* setns needs CAP_SYS_ADMIN */
	}
	o.netns = "/proc/self/ns/net";
	CU_ASSERT_EQUAL(qmig_port_alloc(&p, &o, msg, sizeof(msg)), -EADDRINUSE);
	close(fd);
	CU_ASSERT_EQUAL(qmig_port_alloc(&p, &o, msg, sizeof(msg)), 0);
	CU_ASSERT_EQUAL(qmig_port_number(p), base);
	qmig_port_free(p);
}

static void test_default_lock_dir(void)
{
	struct qmig_port_opts o = QMIG_PORT_OPTS_INIT;
	struct qmig_port *p = NULL;
	char msg[128] = "";
	int r;

	o.bind_addr = "127.0.0.1";
	r = qmig_port_alloc(&p, &o, msg, sizeof(msg));
	if (r == -EADDRINUSE)
		return; /* the real range is busy: nothing to learn here */
	CU_ASSERT_EQUAL_FATAL(r, 0);
	CU_ASSERT(qmig_port_number(p) >= QMIG_PORT_LO_DEFAULT &&
		  qmig_port_number(p) <= QMIG_PORT_HI_DEFAULT);
	if (geteuid() == 0)
		CU_ASSERT_EQUAL(strncmp(qmig_port_lock_path(p), "/run/qmigrate/ports/", 20), 0);
	qmig_port_free(p);
}

static void test_addr_parse(void)
{
	char host[QMIG_HOST_MAX], small[4];
	unsigned port = 0;

	CU_ASSERT_EQUAL(qmig_addr_parse("10.0.0.1:4444", 0, host, sizeof(host), &port), 0);
	CU_ASSERT_STRING_EQUAL(host, "10.0.0.1");
	CU_ASSERT_EQUAL(port, 4444);
	CU_ASSERT_EQUAL(qmig_addr_parse("[fe80::1]:80", 0, host, sizeof(host), &port), 0);
	CU_ASSERT_STRING_EQUAL(host, "fe80::1");
	CU_ASSERT_EQUAL(port, 80);
	CU_ASSERT_EQUAL(qmig_addr_parse("[::1]", 49152, host, sizeof(host), &port), 0);
	CU_ASSERT_STRING_EQUAL(host, "::1");
	CU_ASSERT_EQUAL(port, 49152);
	CU_ASSERT_EQUAL(qmig_addr_parse("dst.example", 7, host, sizeof(host), &port), 0);
	CU_ASSERT_STRING_EQUAL(host, "dst.example");
	CU_ASSERT_EQUAL(port, 7);
	CU_ASSERT_EQUAL(qmig_addr_parse("host", 0, host, sizeof(host), &port), -EINVAL);
	CU_ASSERT_EQUAL(qmig_addr_parse("host:0", 0, host, sizeof(host), &port), -EINVAL);
	CU_ASSERT_EQUAL(qmig_addr_parse("host:65536", 0, host, sizeof(host), &port), -EINVAL);
	CU_ASSERT_EQUAL(qmig_addr_parse("host:12x", 0, host, sizeof(host), &port), -EINVAL);
	CU_ASSERT_EQUAL(qmig_addr_parse("host:-1", 0, host, sizeof(host), &port), -EINVAL);
	CU_ASSERT_EQUAL(qmig_addr_parse(":80", 0, host, sizeof(host), &port), -EINVAL);
	CU_ASSERT_EQUAL(qmig_addr_parse("::1:80", 0, host, sizeof(host), &port), -EINVAL);
	CU_ASSERT_EQUAL(qmig_addr_parse("[::1", 0, host, sizeof(host), &port), -EINVAL);
	CU_ASSERT_EQUAL(qmig_addr_parse("[::1]x", 0, host, sizeof(host), &port), -EINVAL);
	CU_ASSERT_EQUAL(qmig_addr_parse("longname:1", 0, small, sizeof(small), &port),
			-ENAMETOOLONG);
}

static void test_addr_format(void)
{
	char buf[64], tiny[6];

	CU_ASSERT_EQUAL(qmig_addr_format(buf, sizeof(buf), "10.0.0.1", 5), 10);
	CU_ASSERT_STRING_EQUAL(buf, "10.0.0.1:5");
	CU_ASSERT(qmig_addr_format(buf, sizeof(buf), "::1", 49152) > 0);
	CU_ASSERT_STRING_EQUAL(buf, "[::1]:49152");
	CU_ASSERT_EQUAL(qmig_addr_format(tiny, sizeof(tiny), "::1", 49152), -ENOSPC);
}

static void test_tcp_roundtrip(void)
{
	int lfd = qmig_tcp_listen("127.0.0.1", 0, 4, NULL, 0), cfd, afd, port;
	char buf[8] = "";

	CU_ASSERT_FATAL(lfd >= 0);
	port = qmig_tcp_local_port(lfd);
	CU_ASSERT_FATAL(port > 0);
	CU_ASSERT_EQUAL(qmig_tcp_accept(lfd, 0), -ETIMEDOUT);
	cfd = qmig_tcp_connect("127.0.0.1", (unsigned)port, 2000, NULL, 0);
	CU_ASSERT_FATAL(cfd >= 0);
	afd = qmig_tcp_accept(lfd, 2000);
	CU_ASSERT_FATAL(afd >= 0);
	CU_ASSERT_EQUAL(write(cfd, "ping", 4), 4);
	for (int i = 0; i < 100 && read(afd, buf, sizeof(buf)) < 0; i++)
		usleep(10000);
	CU_ASSERT_STRING_EQUAL(buf, "ping");
	close(afd);
	close(cfd);
	close(lfd);
}

static void test_tcp_errors(void)
{
	int lfd = qmig_tcp_listen("127.0.0.1", 0, 4, NULL, 0), port, fd;
	char msg[128] = "";
	struct timespec a, b;

	CU_ASSERT_FATAL(lfd >= 0);
	port = qmig_tcp_local_port(lfd);
	close(lfd); /* now nothing listens there */
	CU_ASSERT_EQUAL(qmig_tcp_connect("127.0.0.1", (unsigned)port, 2000, msg, sizeof(msg)),
			-ECONNREFUSED);
	CU_ASSERT_PTR_NOT_NULL(strstr(msg, "cannot connect to 127.0.0.1:"));
	CU_ASSERT_EQUAL(qmig_tcp_connect("qmig-no-such-host.invalid", 80, 2000, msg, sizeof(msg)),
			-ENOENT);
	/* Accept waits as long as asked, not longer. */
	lfd = qmig_tcp_listen("127.0.0.1", 0, 4, NULL, 0);
	clock_gettime(CLOCK_MONOTONIC, &a);
	CU_ASSERT_EQUAL(qmig_tcp_accept(lfd, 100), -ETIMEDOUT);
	clock_gettime(CLOCK_MONOTONIC, &b);
	CU_ASSERT((b.tv_sec - a.tv_sec) * 1000 + (b.tv_nsec - a.tv_nsec) / 1000000 >= 90);
	/* A second listener on the same port is refused with a message. */
	port = qmig_tcp_local_port(lfd);
	fd = qmig_tcp_listen("127.0.0.1", (unsigned)port, 4, msg, sizeof(msg));
	CU_ASSERT_EQUAL(fd, -EADDRINUSE);
	CU_ASSERT_PTR_NOT_NULL(strstr(msg, "cannot listen on 127.0.0.1"));
	close(lfd);
	/* IPv6 loopback, when the host has it. */
	lfd = qmig_tcp_listen("::1", 0, 4, NULL, 0);
	if (lfd >= 0) {
		fd = qmig_tcp_connect("::1", (unsigned)qmig_tcp_local_port(lfd), 2000, NULL, 0);
		CU_ASSERT(fd >= 0);
		if (fd >= 0)
			close(fd);
		close(lfd);
	}
}

UNIT_SUITE(transport, suite_init, suite_cleanup,
	   {"port range exhausted by listeners", test_exhausted_by_listeners},
	   {"port range exhausted by locks", test_exhausted_by_locks},
	   {"port release frees the lock", test_release_frees},
	   {"port freed when holder dies", test_death_releases},
	   {"concurrent processes get different ports", test_concurrent_processes},
	   {"alloc/free churn stays exclusive", test_churn_exclusive},
	   {"random start spreads ports", test_random_start},
	   {"port bad options", test_bad_options},
	   {"port check in a netns", test_netns_check},
	   {"port default lock dir", test_default_lock_dir},
	   {"addr parse", test_addr_parse},
	   {"addr format", test_addr_format},
	   {"tcp roundtrip", test_tcp_roundtrip},
	   {"tcp errors", test_tcp_errors})
