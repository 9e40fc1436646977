/* The relay's helpers: the shared token bucket, sockets made inside
 * another network namespace, kernel TLS detection, the send buffer of
 * QEMU's end of a channel. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include "relay_int.h"
#include "transport_int.h"

/* ---- token bucket ------------------------------------------------------ */

int qmig_relay_limiter_new(struct qmig_relay_limiter **out, uint64_t bytes_per_s)
{
	struct qmig_relay_limiter *l = calloc(1, sizeof(*l));

	if (!l)
		return -ENOMEM;
	l->rate = bytes_per_s;
	*out = l;
	return 0;
}

void qmig_relay_limiter_set_rate(struct qmig_relay_limiter *l, uint64_t bytes_per_s)
{
	l->rate = bytes_per_s;
	if (l->tokens > bytes_per_s / 20.0)
		l->tokens = bytes_per_s / 20.0;
}

void qmig_relay_limiter_free(struct qmig_relay_limiter *l)
{
	free(l);
}

void qm_rl_limiter_join(struct qmig_relay_limiter *l, struct rl_share *s)
{
	memset(s, 0, sizeof(*s));
	s->next = l->members;
	l->members = s;
	l->users++;
}

void qm_rl_limiter_leave(struct qmig_relay_limiter *l, struct rl_share *s)
{
	for (struct rl_share **p = &l->members; *p; p = &(*p)->next)
		if (*p == s) {
			*p = s->next;
			l->users--;
			break;
		}
}

/* A relay that asked for bytes this recently takes part in the sharing. */
#define ACTIVE_NS 100000000LL

/* Two buckets. The limiter's holds at most 50 ms of bytes at its rate and
 * caps the sum. Each relay's own holds its share: the rate divided by the
 * relays that want bytes now (asked within the last 100 ms), so relays
 * split the rate evenly whatever their number of channels and whichever
 * the event loop serves first; one that stops asking leaves its share to
 * the others within 100 ms. Relays sharing a limiter run on one thread. */
uint64_t qm_rl_limiter_take(struct qmig_relay_limiter *l, struct rl_share *s, uint64_t want,
			    int64_t now, int64_t *wait_ns)
{
	double burst, srate, sburst, avail, chunk, need;
	unsigned active = 0;
	uint64_t n;

	if (!l->rate)
		return want;
	burst = l->rate / 20.0;
	if (burst < 4096)
		burst = 4096;
	if (!l->last_ns) {
		l->last_ns = now;
		l->tokens = burst;
	}
	if (now > l->last_ns) {
		l->tokens += (now - l->last_ns) / 1e9 * l->rate;
		if (l->tokens > burst)
			l->tokens = burst;
		l->last_ns = now;
	}
	s->want_ns = now;
	for (const struct rl_share *m = l->members; m; m = m->next)
		if (m == s || now - m->want_ns < ACTIVE_NS)
			active++;
	if (!active)
		active = 1; /* s is not a member: alone */
	srate = (double)l->rate / active;
	sburst = burst / active;
	if (sburst < 4096)
		sburst = 4096;
	if (!s->last_ns) {
		s->last_ns = now;
		s->tokens = sburst;
	}
	if (now > s->last_ns) {
		s->tokens += (now - s->last_ns) / 1e9 * srate;
		s->last_ns = now;
	}
	if (s->tokens > sburst)
		s->tokens = sburst;
	avail = l->tokens < s->tokens ? l->tokens : s->tokens;
	/* Below a small chunk, wait: tiny writes cost more than they move. */
	chunk = want < 1024 ? (double)want : 1024;
	if (avail < chunk) {
		need = (chunk - l->tokens) / l->rate;
		if ((chunk - s->tokens) / srate > need)
			need = (chunk - s->tokens) / srate;
		*wait_ns = (int64_t)(need * 1e9) + 1;
		return 0;
	}
	n = want;
	if (n > avail)
		n = (uint64_t)avail;
	if (!n)
		n = 1;
	l->tokens -= n;
	s->tokens -= n;
	return n;
}

void qm_rl_limiter_refund(struct qmig_relay_limiter *l, struct rl_share *s, uint64_t n)
{
	if (l->rate) {
		l->tokens += n;
		s->tokens += n;
	}
}

/* ---- sockets in another namespace ------------------------------------- */

/* A socket stays in the network namespace it was made in. setns() moves
 * only the calling thread, and the library starts no threads: the thread
 * steps into the namespace, makes the sockets and steps back, without a
 * fork (which would copy the relay's pinned buffers). */
int qm_rl_netns_sockets(const char *netns, int family, unsigned n, int *fds, char *msg,
			size_t len)
{
	char path[300];
	int self, target, rc = 0;
	unsigned i = 0;

	if (n == 0 || n > 256)
		return -EINVAL;
	if (strchr(netns, '/'))
		snprintf(path, sizeof(path), "%s", netns);
	else
		snprintf(path, sizeof(path), "/run/netns/%s", netns);
	target = open(path, O_RDONLY | O_CLOEXEC);
	if (target < 0) {
		rc = -errno;
		qm_tp_msg(msg, len, "network namespace %s: %s", netns, strerror(errno));
		return rc;
	}
	self = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
	if (self < 0) {
		rc = -errno;
		close(target);
		return rc;
	}
	if (setns(target, CLONE_NEWNET) < 0) {
		rc = -errno;
		qm_tp_msg(msg, len, "cannot enter network namespace %s: %s", netns,
			  strerror(errno));
		goto out;
	}
	for (; i < n; i++) {
		fds[i] = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (fds[i] < 0) {
			rc = -errno;
			break;
		}
	}
	if (setns(self, CLONE_NEWNET) < 0)
		rc = -errno; /* cannot happen for root, who could enter it */
	if (rc < 0) {
		qm_tp_msg(msg, len, "cannot make sockets in network namespace %s: %s", netns,
			  strerror(-rc));
		while (i > 0)
			close(fds[--i]);
	}
out:
	close(self);
	close(target);
	return rc;
}

/* kTLS needs the "tls" upper layer protocol; it is listed once the module
 * is loaded, and a kernel without CONFIG_TLS never lists it. */
int qm_rl_ktls_available(void)
{
	char buf[256] = "";
	FILE *f = fopen("/proc/sys/net/ipv4/tcp_available_ulp", "re");

	if (!f)
		return 0;
	if (!fgets(buf, sizeof(buf), f))
		buf[0] = 0;
	fclose(f);
	for (char *t = strtok(buf, " \n"); t; t = strtok(NULL, " \n"))
		if (!strcmp(t, "tls"))
			return 1;
	return 0;
}

/* ---- the send buffer of QEMU's end of a unix socket -------------------- */

/* A unix stream socket's writer may queue only its own send buffer into the
 * reader (net.core.wmem_default, 208 KiB here, whatever the reader does), so
 * the source QEMU writing to the relay blocks every ~200 KiB and waits for
 * our next read, where over TCP the kernel grows its buffer to megabytes.
 * QEMU sets no SO_SNDBUF of its own and has no option for it. The socket is
 * one open file shared by QEMU and the kernel: a copy of QEMU's descriptor
 * (pidfd_getfd, which needs the rights of a tracer over QEMU: the same user
 * or CAP_SYS_PTRACE) reaches the very socket, and its buffer is raised
 * there; the copy is closed at once. Every socket of QEMU's that is
 * connected to our listener (`path`) is one of our channels. Best effort:
 * without the rights nothing changes but speed. Returns how many were set. */
#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_pidfd_getfd
#define SYS_pidfd_getfd 438
#endif

int qm_rl_peer_sndbuf(int fd, const char *path, int size)
{
	struct ucred cr;
	socklen_t cl = sizeof(cr);
	char dir[64];
	struct dirent *e;
	int pidfd, n = 0;
	DIR *d;

	if (!path || getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &cl) < 0 || cr.pid <= 0)
		return 0;
	pidfd = (int)syscall(SYS_pidfd_open, cr.pid, 0);
	if (pidfd < 0)
		return 0;
	snprintf(dir, sizeof(dir), "/proc/%d/fd", (int)cr.pid);
	d = opendir(dir);
	while (d && (e = readdir(d))) {
		struct sockaddr_un sa;
		socklen_t sl = sizeof(sa);
		char link[320], target[64];
		ssize_t k;
		int theirs, mine;

		if (e->d_name[0] < '0' || e->d_name[0] > '9')
			continue;
		snprintf(link, sizeof(link), "%s/%s", dir, e->d_name);
		k = readlink(link, target, sizeof(target) - 1);
		if (k < 8 || strncmp(target, "socket:[", 8))
			continue;
		theirs = atoi(e->d_name);
		mine = (int)syscall(SYS_pidfd_getfd, pidfd, theirs, 0);
		if (mine < 0)
			break; /* no rights over QEMU: none of the others either */
		memset(&sa, 0, sizeof(sa));
		if (getpeername(mine, (struct sockaddr *)&sa, &sl) == 0 && sa.sun_family == AF_UNIX &&
		    sl > offsetof(struct sockaddr_un, sun_path) &&
		    !strncmp(sa.sun_path, path, sizeof(sa.sun_path)) &&
		    (setsockopt(mine, SOL_SOCKET, SO_SNDBUFFORCE, &size, sizeof(size)) == 0 ||
		     setsockopt(mine, SOL_SOCKET, SO_SNDBUF, &size, sizeof(size)) == 0))
			n++;
		close(mine);
	}
	if (d)
		closedir(d);
	close(pidfd);
	return n;
}
