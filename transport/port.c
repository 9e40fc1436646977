/* The migration port allocator.
 *
 * Two things make a port ours: an exclusive flock on LOCK_DIR/<port>.lock
 * (so concurrent qmigrate processes never pick the same port, and a dead
 * process releases its ports without any cleanup), and a test bind that
 * shows nothing else on the host listens there. Lock files are removed on
 * release while still locked; a locker that raced with the removal notices
 * that its file is no longer the one at the path and tries again. */
#include <errno.h>
#include <signal.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "qm_wait.h"
#include "qmig_transport.h"
#include "transport_int.h"

struct qmig_port {
	unsigned number;
	int lock_fd;
	char lock_path[PATH_MAX];
};

/* What one allocation needs to know, resolved once. */
struct port_ctx {
	unsigned lo, hi;
	char dir[PATH_MAX - 16];
	struct sockaddr_storage addr;
	socklen_t addr_len;
	int netns_fd; /* -1: our own namespace */
};

void qm_tp_msg(char *msg, size_t len, const char *fmt, ...)
{
	va_list ap;

	if (!msg || !len)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, len, fmt, ap);
	va_end(ap);
}

/* mkdir that accepts an existing directory. */
static int make_dir(const char *path, mode_t mode)
{
	struct stat st;

	if (mkdir(path, mode) == 0)
		return 0;
	if (errno != EEXIST)
		return -errno;
	if (stat(path, &st) < 0)
		return -errno;
	return S_ISDIR(st.st_mode) ? 0 : -ENOTDIR;
}

/* A directory in a world-writable place must be ours and private, or
 * another user could plant lock files (or symlinks) to steer us. */
static int check_private(const char *path, char *msg, size_t len)
{
	struct stat st;

	if (lstat(path, &st) < 0)
		return -errno;
	if (!S_ISDIR(st.st_mode) || st.st_uid != geteuid() || (st.st_mode & 077)) {
		qm_tp_msg(msg, len, "port lock directory %s is not a private directory of ours",
			  path);
		return -EPERM;
	}
	return 0;
}

/* mkdir -p for a caller-chosen lock directory. */
static int make_path(const char *path)
{
	char buf[PATH_MAX];
	size_t n = strlen(path);

	if (n == 0 || n >= sizeof(buf))
		return -ENAMETOOLONG;
	memcpy(buf, path, n + 1);
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = 0;
		int r = make_dir(buf, 0755);
		*p = '/';
		if (r < 0)
			return r;
	}
	return make_dir(buf, 0700);
}

static int lock_dir_default(struct port_ctx *c, char *msg, size_t len)
{
	const char *xdg = getenv("XDG_RUNTIME_DIR");
	int r;

	/* Shared by every qmigrate run as root on this host. */
	if (geteuid() == 0 && make_dir("/run/qmigrate", 0755) == 0 &&
	    make_dir("/run/qmigrate/ports", 0755) == 0) {
		snprintf(c->dir, sizeof(c->dir), "/run/qmigrate/ports");
		return 0;
	}
	if (xdg && xdg[0] == '/' && strlen(xdg) < sizeof(c->dir) - 20)
		snprintf(c->dir, sizeof(c->dir), "%s/qmigrate-ports", xdg);
	else
		snprintf(c->dir, sizeof(c->dir), "/tmp/qmigrate-ports-%u", (unsigned)geteuid());
	r = make_dir(c->dir, 0700);
	if (r < 0) {
		qm_tp_msg(msg, len, "cannot create port lock directory %s: %s", c->dir,
			  strerror(-r));
		return r;
	}
	return check_private(c->dir, msg, len);
}

static int resolve_bind(struct port_ctx *c, const char *host, char *msg, size_t len)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE};
	struct addrinfo *ai;
	int r;

	if (!host || !*host)
		host = "0.0.0.0";
	r = getaddrinfo(host, NULL, &hints, &ai);
	if (r) {
		qm_tp_msg(msg, len, "bind address '%s': %s", host, gai_strerror(r));
		return r == EAI_NONAME ? -EADDRNOTAVAIL : -EINVAL;
	}
	memcpy(&c->addr, ai->ai_addr, ai->ai_addrlen);
	c->addr_len = ai->ai_addrlen;
	freeaddrinfo(ai);
	return 0;
}

static int open_netns(struct port_ctx *c, const char *ns, char *msg, size_t len)
{
	char path[PATH_MAX];

	if (!ns || !*ns)
		return 0;
	if (strchr(ns, '/'))
		snprintf(path, sizeof(path), "%s", ns);
	else
		snprintf(path, sizeof(path), "/run/netns/%s", ns);
	c->netns_fd = open(path, O_RDONLY | O_CLOEXEC);
	if (c->netns_fd < 0) {
		int e = errno;

		qm_tp_msg(msg, len, "network namespace '%s' (%s): %s", ns, path, strerror(e));
		return -e;
	}
	return 0;
}

/* Bind a throw-away socket the way QEMU will bind its listener. */
static int try_bind(const struct port_ctx *c, unsigned port)
{
	struct sockaddr_storage a = c->addr;
	int one = 1, fd, r = 0;

	if (a.ss_family == AF_INET6)
		((struct sockaddr_in6 *)&a)->sin6_port = htons(port);
	else
		((struct sockaddr_in *)&a)->sin_port = htons(port);
	fd = socket(a.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(fd, (struct sockaddr *)&a, c->addr_len) < 0)
		r = -errno;
	close(fd);
	return r;
}

/* setns() changes the calling thread, and we start no threads: a child
 * enters the namespace, tries the bind and reports through its exit code. */
static int try_bind_netns(const struct port_ctx *c, unsigned port)
{
	int status, r;
	pid_t pid;

	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		if (setns(c->netns_fd, CLONE_NEWNET) < 0)
			_exit(errno & 0xff);
		r = try_bind(c, port);
		_exit(-r & 0xff);
	}
	/* Reaped through qm_wait_pid: inside the engine this suspends its step
	 * instead of blocking the caller's loop. */
	r = qm_wait_pid(pid, &status, 0);
	if (r < 0) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		return r;
	}
	if (!WIFEXITED(status))
		return -ECHILD;
	return -WEXITSTATUS(status);
}

static void drop_lock(int fd, const char *path)
{
	/* Still locked here: anyone who opened this file will see it is gone. */
	unlink(path);
	close(fd);
}

/* 0: locked and bindable; -EBUSY: another process holds it; -EADDRINUSE:
 * something listens there; other errors are fatal for the allocation. */
static int try_port(const struct port_ctx *c, unsigned port, struct qmig_port *p)
{
	struct stat fst, pst;
	int fd, r;

	snprintf(p->lock_path, sizeof(p->lock_path), "%s/%u.lock", c->dir, port);
	for (int tries = 0; tries < 8; tries++) {
		fd = open(p->lock_path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
		if (fd < 0)
			return -errno;
		if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
			r = errno == EWOULDBLOCK ? -EBUSY : -errno;
			close(fd);
			return r;
		}
		if (fstat(fd, &fst) == 0 && stat(p->lock_path, &pst) == 0 &&
		    fst.st_ino == pst.st_ino && fst.st_dev == pst.st_dev)
			break;
		/* The holder released and removed it between our open and flock. */
		close(fd);
		fd = -1;
	}
	if (fd < 0)
		return -EBUSY;
	r = c->netns_fd >= 0 ? try_bind_netns(c, port) : try_bind(c, port);
	if (r < 0) {
		drop_lock(fd, p->lock_path);
		return r;
	}
	/* For people looking at the directory: who holds it. */
	if (ftruncate(fd, 0) == 0)
		dprintf(fd, "%ld\n", (long)getpid());
	p->lock_fd = fd;
	p->number = port;
	return 0;
}

static unsigned random_start(unsigned n)
{
	unsigned r;

	if (getrandom(&r, sizeof(r), GRND_NONBLOCK) != sizeof(r)) {
		struct timespec ts;

		clock_gettime(CLOCK_MONOTONIC, &ts);
		r = (unsigned)ts.tv_nsec ^ ((unsigned)getpid() << 16);
	}
	return r % n;
}

static int search(struct port_ctx *c, struct qmig_port *p, char *msg, size_t len)
{
	unsigned n = c->hi - c->lo + 1, start = random_start(n), busy = 0;

	for (unsigned i = 0; i < n; i++) {
		unsigned port = c->lo + (start + i) % n;
		int r = try_port(c, port, p);

		if (r == 0)
			return 0;
		if (r == -EBUSY || r == -EADDRINUSE) {
			busy++;
			continue;
		}
		if (r == -EADDRNOTAVAIL)
			qm_tp_msg(msg, len, "cannot bind port %u: address not available here",
				  port);
		else
			qm_tp_msg(msg, len, "port %u (%s): %s", port, p->lock_path, strerror(-r));
		return r;
	}
	qm_tp_msg(msg, len, "no free port in %u-%u (%u in use or locked)", c->lo, c->hi, busy);
	return -EADDRINUSE;
}

static int setup(struct port_ctx *c, const struct qmig_port_opts *o, char *msg, size_t len)
{
	int r;

	c->lo = o->lo ? o->lo : QMIG_PORT_LO_DEFAULT;
	c->hi = o->hi ? o->hi : QMIG_PORT_HI_DEFAULT;
	if (o->lo && !o->hi)
		c->hi = o->lo;
	if (c->lo == 0 || c->hi > 65535 || c->lo > c->hi) {
		qm_tp_msg(msg, len, "bad port range %u-%u", c->lo, c->hi);
		return -EINVAL;
	}
	if (o->lock_dir) {
		if (strlen(o->lock_dir) >= sizeof(c->dir)) {
			qm_tp_msg(msg, len, "port lock directory path too long");
			return -ENAMETOOLONG;
		}
		snprintf(c->dir, sizeof(c->dir), "%s", o->lock_dir);
		r = make_path(c->dir);
		if (r < 0) {
			qm_tp_msg(msg, len, "cannot create port lock directory %s: %s", c->dir,
			       strerror(-r));
			return r;
		}
	} else {
		r = lock_dir_default(c, msg, len);
		if (r < 0)
			return r;
	}
	r = resolve_bind(c, o->bind_addr, msg, len);
	if (r < 0)
		return r;
	return open_netns(c, o->netns, msg, len);
}

int qmig_port_alloc(struct qmig_port **out, const struct qmig_port_opts *opts, char *msg,
		    size_t msg_len)
{
	static const struct qmig_port_opts defaults = QMIG_PORT_OPTS_INIT;
	struct port_ctx c = {.netns_fd = -1};
	struct qmig_port *p;
	int r;

	if (!out)
		return -EINVAL;
	if (!opts)
		opts = &defaults;
	if (opts->version != QMIG_PORT_OPTS_VERSION) {
		qm_tp_msg(msg, msg_len, "qmig_port_opts version %u not supported", opts->version);
		return -EINVAL;
	}
	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->lock_fd = -1;
	r = setup(&c, opts, msg, msg_len);
	if (r == 0)
		r = search(&c, p, msg, msg_len);
	if (c.netns_fd >= 0)
		close(c.netns_fd);
	if (r < 0) {
		free(p);
		return r;
	}
	*out = p;
	return 0;
}

unsigned qmig_port_number(const struct qmig_port *port)
{
	return port ? port->number : 0;
}

const char *qmig_port_lock_path(const struct qmig_port *port)
{
	return port ? port->lock_path : NULL;
}

void qmig_port_free(struct qmig_port *port)
{
	if (!port)
		return;
	if (port->lock_fd >= 0)
		drop_lock(port->lock_fd, port->lock_path);
	free(port);
}
