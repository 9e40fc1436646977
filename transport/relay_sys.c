/* The relay's helpers: the shared token bucket, sockets made inside
 * another network namespace, kernel TLS detection. */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
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

/* The bucket holds at most 50 ms of bytes. A relay takes at most its share
 * of that (bucket / relays using it), so relays served one after the other
 * by one event loop split the rate evenly instead of the first one taking
 * everything. */
uint64_t qm_rl_limiter_take(struct qmig_relay_limiter *l, uint64_t want, int64_t now,
			    int64_t *wait_ns)
{
	double burst, share;
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
	share = burst / (l->users ? l->users : 1);
	/* Below a small chunk, wait: tiny writes cost more than they move. */
	if (l->tokens < 1024 && l->tokens < (double)want) {
		double need = (want < 1024 ? want : 1024) - l->tokens;

		*wait_ns = (int64_t)(need / l->rate * 1e9) + 1;
		return 0;
	}
	n = want;
	if (n > l->tokens)
		n = (uint64_t)l->tokens;
	if (n > share)
		n = (uint64_t)share;
	if (!n)
		n = 1;
	l->tokens -= n;
	return n;
}

void qm_rl_limiter_refund(struct qmig_relay_limiter *l, uint64_t n)
{
	if (l->rate)
		l->tokens += n;
}

/* ---- sockets in another namespace ------------------------------------- */

/* setns() changes the calling thread and we start no threads: a child
 * enters the namespace, makes the sockets (a socket stays in the namespace
 * it was made in) and passes them back over a socketpair. */
int qm_rl_netns_sockets(const char *netns, int family, unsigned n, int *fds, char *msg,
			size_t len)
{
	char path[300], cbuf[CMSG_SPACE(sizeof(int) * 256)];
	struct msghdr mh = {0};
	struct cmsghdr *cm;
	struct iovec iov;
	int sp[2], status, nsfd, rc = 0;
	char byte = 0;
	pid_t pid;

	if (n == 0 || n > 256)
		return -EINVAL;
	if (strchr(netns, '/'))
		snprintf(path, sizeof(path), "%s", netns);
	else
		snprintf(path, sizeof(path), "/run/netns/%s", netns);
	nsfd = open(path, O_RDONLY | O_CLOEXEC);
	if (nsfd < 0) {
		rc = -errno;
		qm_tp_msg(msg, len, "network namespace %s: %s", netns, strerror(errno));
		return rc;
	}
	if (socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sp) < 0) {
		rc = -errno;
		close(nsfd);
		return rc;
	}
	pid = fork();
	if (pid < 0) {
		rc = -errno;
		goto out;
	}
	if (pid == 0) {
		int cfds[256];

		if (setns(nsfd, CLONE_NEWNET) < 0)
			_exit(1);
		for (unsigned i = 0; i < n; i++) {
			cfds[i] = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
			if (cfds[i] < 0)
				_exit(2);
		}
		iov.iov_base = &byte;
		iov.iov_len = 1;
		mh.msg_iov = &iov;
		mh.msg_iovlen = 1;
		mh.msg_control = cbuf;
		mh.msg_controllen = CMSG_SPACE(sizeof(int) * n);
		cm = CMSG_FIRSTHDR(&mh);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int) * n);
		memcpy(CMSG_DATA(cm), cfds, sizeof(int) * n);
		_exit(sendmsg(sp[1], &mh, 0) == 1 ? 0 : 3);
	}
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR) {
			rc = -errno;
			goto out;
		}
	if (!WIFEXITED(status) || WEXITSTATUS(status)) {
		qm_tp_msg(msg, len, "cannot make sockets in network namespace %s", netns);
		rc = -EPERM;
		goto out;
	}
	iov.iov_base = &byte;
	iov.iov_len = 1;
	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	mh.msg_control = cbuf;
	mh.msg_controllen = sizeof(cbuf);
	if (recvmsg(sp[0], &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC) != 1 ||
	    !(cm = CMSG_FIRSTHDR(&mh)) || cm->cmsg_type != SCM_RIGHTS ||
	    cm->cmsg_len != CMSG_LEN(sizeof(int) * n)) {
		rc = -EPROTO;
		goto out;
	}
	memcpy(fds, CMSG_DATA(cm), sizeof(int) * n);
out:
	close(sp[0]);
	close(sp[1]);
	close(nsfd);
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
