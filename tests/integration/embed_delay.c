/* An embedder whose QMP links are slow: every byte a QEMU sends reaches the
 * engine QMIG_DELAY_MS later (default 100 ms), through a relay on a thread of
 * its own. The embedder drives the migration from its own poll() loop and
 * times every qmig_migration_process() call.
 *
 * Asserted: the migration completes and verifies through the slow links.
 * Reported, never asserted (a duration on a shared machine is a benchmark,
 * not a test): the longest single process() call and the 99th percentile,
 * in wall time and in the thread's CPU time (on a loaded machine the wall
 * time of a short call includes being preempted; the CPU time does not).
 * A library that never blocks keeps the longest call far below the delay;
 * one that waits for replies inside process() shows the delay or more. */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "guest_util.h"
#include "qmigrate.h"

#define CHUNKS 256  /* queued chunks per direction; a full queue stops reading */
#define CHUNK 65536

struct chunk {
	int64_t due_ns;
	size_t len;
	char *data;
};

/* One direction of one connection: bytes read from `from` are written to `to`
 * no earlier than delay after they arrived. */
struct dir {
	int from, to;
	int64_t delay_ns;
	struct chunk q[CHUNKS];
	unsigned head, count;
	size_t off;     /* bytes of q[head] already written */
	int eof;
};

struct link {
	char listen_path[108];
	char target[108];
	int64_t delay_ns;
	int lfd, stop_fd;
};

static int dir_read(struct dir *d)
{
	char buf[CHUNK];
	ssize_t n;
	struct chunk *c;

	if (d->count == CHUNKS)
		return 0;
	n = read(d->from, buf, sizeof(buf));
	if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
		d->eof = 1;
		return 0;
	}
	if (n < 0)
		return 0;
	c = &d->q[(d->head + d->count) % CHUNKS];
	c->data = malloc((size_t)n);
	if (!c->data)
		return -ENOMEM;
	memcpy(c->data, buf, (size_t)n);
	c->len = (size_t)n;
	c->due_ns = now_ns() + d->delay_ns;
	d->count++;
	return 0;
}

/* Writes what is due; returns ms until the next chunk is due, or -1. */
static int dir_write(struct dir *d)
{
	while (d->count) {
		struct chunk *c = &d->q[d->head];
		int64_t now = now_ns();
		ssize_t n;

		if (c->due_ns > now)
			return (int)((c->due_ns - now) / 1000000) + 1;
		n = send(d->to, c->data + d->off, c->len - d->off, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0)
			return errno == EAGAIN ? 5 : -2;
		d->off += (size_t)n;
		if (d->off < c->len)
			return 5;
		free(c->data);
		d->off = 0;
		d->head = (d->head + 1) % CHUNKS;
		d->count--;
	}
	return -1;
}

static void dir_clear(struct dir *d)
{
	while (d->count) {
		free(d->q[d->head].data);
		d->head = (d->head + 1) % CHUNKS;
		d->count--;
	}
}

static int unix_connect(const char *path)
{
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	snprintf(a.sun_path, sizeof(a.sun_path), "%s", path);
	if (fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* Serves one client at a time until stop_fd is readable: the engine opens
 * one QMP connection per side, the launch helpers none through here. */
static void *link_main(void *arg)
{
	struct link *l = arg;

	for (;;) {
		struct pollfd p[2] = {{l->lfd, POLLIN, 0}, {l->stop_fd, POLLIN, 0}};
		struct dir up = {0}, down = {0};
		int cfd, qfd;

		if (poll(p, 2, -1) < 0 && errno != EINTR)
			return NULL;
		if (p[1].revents)
			return NULL;
		if (!(p[0].revents & POLLIN))
			continue;
		cfd = accept4(l->lfd, NULL, NULL, SOCK_CLOEXEC);
		if (cfd < 0)
			continue;
		qfd = unix_connect(l->target);
		if (qfd < 0) {
			close(cfd);
			continue;
		}
		up = (struct dir){.from = cfd, .to = qfd, .delay_ns = 0};
		down = (struct dir){.from = qfd, .to = cfd, .delay_ns = l->delay_ns};
		while (!(up.eof && !up.count) && !(down.eof && !down.count)) {
			struct pollfd q[3] = {{cfd, up.count < CHUNKS ? POLLIN : 0, 0},
					      {qfd, down.count < CHUNKS ? POLLIN : 0, 0},
					      {l->stop_fd, POLLIN, 0}};
			int t1 = dir_write(&up), t2 = dir_write(&down), t;

			if (t1 == -2 || t2 == -2)
				break;
			t = t1 < 0 ? t2 : t2 < 0 ? t1 : (t1 < t2 ? t1 : t2);
			if (poll(q, 3, t) < 0 && errno != EINTR)
				break;
			if (q[2].revents)
				break;
			if ((q[0].revents & (POLLIN | POLLHUP | POLLERR)) && dir_read(&up) < 0)
				break;
			if ((q[1].revents & (POLLIN | POLLHUP | POLLERR)) && dir_read(&down) < 0)
				break;
		}
		dir_clear(&up);
		dir_clear(&down);
		close(cfd);
		close(qfd);
		struct pollfd s = {l->stop_fd, POLLIN, 0};
		if (poll(&s, 1, 0) > 0)
			return NULL;
	}
}

static int link_start(struct link *l, pthread_t *th, const char *dir, const char *name,
		      const char *target, int64_t delay_ns, int stop_fd)
{
	struct sockaddr_un a = {.sun_family = AF_UNIX};

	snprintf(l->listen_path, sizeof(l->listen_path), "%s/%s", dir, name);
	snprintf(l->target, sizeof(l->target), "%s", target);
	snprintf(a.sun_path, sizeof(a.sun_path), "%s", l->listen_path);
	l->delay_ns = delay_ns;
	l->stop_fd = stop_fd;
	l->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (l->lfd < 0 || bind(l->lfd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
	    listen(l->lfd, 4) < 0)
		return -errno;
	return -pthread_create(th, NULL, link_main, l);
}

static int64_t cpu_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return (x > y) - (x < y);
}

int main(void)
{
	struct qmig_vm *src = NULL, *dst = NULL;
	struct qmig_migrate_opts o = QMIG_MIGRATE_OPTS_INIT;
	struct qmig_migration *m = NULL;
	struct qmig_result res = QMIG_RESULT_INIT;
	struct link ls = {.lfd = -1}, ld = {.lfd = -1};
	pthread_t ts, td;
	int started = 0, stop[2] = {-1, -1};
	char dir[] = "/tmp/qmig-embed-delay.XXXXXX", msg[512];
	const char *env = getenv("QMIG_DELAY_MS");
	int delay_ms = env ? atoi(env) : 100;
	int64_t *calls = NULL, *cpus = NULL;
	size_t ncalls = 0, cap = 0;
	int r;

	skip_without_qemu();
	signal(SIGPIPE, SIG_IGN);
	CHECK(mkdtemp(dir) != NULL, "mkdtemp: %s", strerror(errno));
	CHECK(pipe2(stop, O_CLOEXEC) == 0, "pipe: %s", strerror(errno));

	r = launch_pair(&src, &dst, 128ull << 20, 32ull << 20, 20ull << 20, &o, msg, sizeof(msg));
	CHECK(r == 0, "launch: %s (%s)", strerror(-r), msg);

	r = link_start(&ls, &ts, dir, "src.qmp", qmig_vm_qmp_path(src),
		       (int64_t)delay_ms * 1000000, stop[0]);
	CHECK(r == 0, "source relay: %s", strerror(-r));
	started |= 1;
	r = link_start(&ld, &td, dir, "dst.qmp", qmig_vm_qmp_path(dst),
		       (int64_t)delay_ms * 1000000, stop[0]);
	CHECK(r == 0, "destination relay: %s", strerror(-r));
	started |= 2;

	o.src_qmp = ls.listen_path; /* through the slow links */
	o.dst_qmp = ld.listen_path;
	o.timeout_ms = 240000;
	r = qmig_migration_new(&m, &o);
	CHECK(r == 0, "qmig_migration_new: %s", strerror(-r));

	for (;;) {
		struct pollfd p = {qmig_migration_get_fd(m), POLLIN, 0};
		int64_t t0 = now_ns(), c0 = cpu_ns();

		r = qmig_migration_process(m);
		if (ncalls == cap) {
			int64_t *n = realloc(calls, (cap ? cap * 2 : 1024) * sizeof(*n));
			int64_t *c = n ? realloc(cpus, (cap ? cap * 2 : 1024) * sizeof(*c)) : NULL;

			if (n)
				calls = n;
			CHECK(n && c, "out of memory");
			cpus = c;
			cap = cap ? cap * 2 : 1024;
		}
		cpus[ncalls] = cpu_ns() - c0;
		calls[ncalls++] = now_ns() - t0;
		if (r != 0)
			break;
		CHECK(poll(&p, 1, qmig_migration_get_timeout(m)) >= 0, "poll: %s",
		      strerror(errno));
	}
	CHECK(r == 1, "process returned %d", r);
	qmig_migration_result(m, &res);
	qsort(calls, ncalls, sizeof(*calls), cmp_i64);
	qsort(cpus, ncalls, sizeof(*cpus), cmp_i64);
	printf("embed_delay: qmp delay %d ms: %zu process() calls; wall: longest %.3f ms, "
	       "p99 %.3f ms, median %.3f ms; cpu: longest %.3f ms, p99 %.3f ms; "
	       "status=%s verified=%d engine_total_ms=%llu\n",
	       delay_ms, ncalls, calls[ncalls - 1] / 1e6, calls[ncalls * 99 / 100] / 1e6,
	       calls[ncalls / 2] / 1e6, cpus[ncalls - 1] / 1e6, cpus[ncalls * 99 / 100] / 1e6,
	       res.status, res.verified, (unsigned long long)res.engine_total_ms);
	CHECK(!strcmp(res.status, "completed"), "status %s: %s", res.status, res.message);
	CHECK(res.verified == 1, "destination not verified: %s", res.message);
out:
	qmig_migration_free(m);
	if (stop[1] >= 0 && write(stop[1], "x", 1) < 0)
		failed = 1;
	if (started & 1)
		pthread_join(ts, NULL);
	if (started & 2)
		pthread_join(td, NULL);
	if (ls.lfd >= 0)
		close(ls.lfd);
	if (ld.lfd >= 0)
		close(ld.lfd);
	unlink(ls.listen_path);
	unlink(ld.listen_path);
	rmdir(dir);
	free(calls);
	free(cpus);
	qmig_vm_free(src);
	qmig_vm_free(dst);
	puts(failed ? "embed_delay: FAILED" : "embed_delay: ok");
	return failed;
}
