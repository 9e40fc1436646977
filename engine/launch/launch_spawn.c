/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Starting QEMU as a child process, safely: fork, then in the child a
 * session of its own (a terminal's ^C reaches the engine, which rolls
 * back, not QEMU), stdio to a file, the network namespace, no new
 * privileges, QEMU's own user and groups, every capability dropped with
 * libcap-ng (bounding set too, so exec as root does not hand them back)
 * except CAP_SYS_PTRACE where userfaultfd needs it, then a death signal
 * (unless detached; set last, because changing the uid clears it), all
 * other fds closed at exec. A failed step is reported back through a
 * CLOEXEC pipe.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <grp.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cap-ng.h>

#include "qm_wait.h"
#include "launch.h"

struct child_err {
	int err;
	char step[48];
};

int64_t qm_launch_mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void child_fail(int fd, const char *step)
{
	struct child_err ce = {.err = errno};
	ssize_t r;

	snprintf(ce.step, sizeof(ce.step), "%s", step);
	r = write(fd, &ce, sizeof(ce));
	(void)r;
	_exit(127);
}

static int join_netns(const char *netns)
{
	char path[256];
	int fd, r;

	if (strchr(netns, '/'))
		snprintf(path, sizeof(path), "%s", netns);
	else
		snprintf(path, sizeof(path), "/run/netns/%s", netns);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	r = setns(fd, CLONE_NEWNET);
	close(fd);
	return r;
}

/* QEMU needs no capability for what we ask of it (TCG or KVM through
 * /dev/kvm, unix sockets in our directory, user networking, ports above
 * 1023), so it gets none; except that a postcopy destination needs
 * userfaultfd, which vm.unprivileged_userfaultfd=0 reserves to
 * CAP_SYS_PTRACE: that one it keeps, as an ambient capability when it
 * runs as another user (so that it survives exec). */
static int drop_caps(const struct qm_spawn *s)
{
	const capng_type_t keep = CAPNG_EFFECTIVE | CAPNG_PERMITTED | CAPNG_BOUNDING_SET;

	capng_clear(CAPNG_SELECT_ALL);
	if (s->userfaultfd)
		capng_update(CAPNG_ADD, keep, CAP_SYS_PTRACE);
	if (s->read_any && !s->change_id)
		capng_update(CAPNG_ADD, keep, CAP_DAC_READ_SEARCH);
	if (s->change_id) {
		if (setgroups((size_t)s->ngroups, s->groups) < 0)
			return -1;
		if (s->userfaultfd) {
			capng_update(CAPNG_ADD, CAPNG_INHERITABLE | CAPNG_AMBIENT, CAP_SYS_PTRACE);
			/* The bounding set now, while we may still change it;
			 * capng_change_id() then applies the rest. */
			if (capng_apply(CAPNG_SELECT_BOUNDS) < 0)
				return -1;
			if (capng_change_id((int)s->uid, (int)s->gid, CAPNG_NO_FLAG) < 0)
				return -1;
			return capng_apply(CAPNG_SELECT_AMBIENT) < 0 ? -1 : 0;
		}
		return capng_change_id((int)s->uid, (int)s->gid, CAPNG_CLEAR_BOUNDING);
	}
	if (capng_apply(CAPNG_SELECT_ALL) == 0)
		return 0;
	/* Unprivileged callers cannot touch the bounding set, and have
	 * nothing there that exec could give back. */
	if (geteuid() != 0 && capng_apply(CAPNG_SELECT_CAPS) == 0)
		return 0;
	return -1;
}

static void child(const struct qm_spawn *s, pid_t parent, int out_fd, int err_fd)
{
	int nul;

	if (setsid() < 0)
		child_fail(err_fd, "setsid");
	nul = open("/dev/null", O_RDONLY);
	if (nul < 0 || dup2(nul, 0) < 0 || dup2(out_fd, 1) < 0 || dup2(out_fd, 2) < 0)
		child_fail(err_fd, "redirecting stdio");
	if (s->netns && join_netns(s->netns) < 0)
		child_fail(err_fd, "joining the network namespace");
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		child_fail(err_fd, "prctl(PR_SET_NO_NEW_PRIVS)");
	if (drop_caps(s) < 0)
		child_fail(err_fd, s->change_id ? "changing to QEMU's user" : "dropping capabilities");
	/* After the uid change, which clears the death signal. */
	if (!s->detach) {
		if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0)
			child_fail(err_fd, "prctl(PR_SET_PDEATHSIG)");
		if (getppid() != parent)
			_exit(127); /* the parent died before we could ask */
	}
	if (close_range(3, ~0U, CLOSE_RANGE_CLOEXEC) < 0)
		child_fail(err_fd, "close_range");
	for (int i = 0; i < s->nkeep; i++)
		if (fcntl(s->keep_fds[i], F_SETFD, 0) < 0)
			child_fail(err_fd, "passing the guest's files");
	for (int sig = 1; sig < NSIG; sig++)
		signal(sig, SIG_DFL);
	{
		sigset_t none;

		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
	}
	execvp(s->argv[0], (char *const *)s->argv);
	child_fail(err_fd, "exec");
}

int qm_qemu_cred(struct qmig_qmp_conn *conn, uid_t *uid, gid_t *gid)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);
	int fd = qmig_qmp_conn_fd(conn);

	if (fd < 0)
		return -EBADF;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
		return -errno;
	if (uid)
		*uid = cred.uid;
	if (gid)
		*gid = cred.gid;
	return 0;
}

int qm_spawn(const struct qm_spawn *s, pid_t *pid_out, int *pidfd_out, char *msg,
	     size_t msg_len)
{
	struct child_err ce;
	pid_t parent = getpid(), pid;
	int pfd[2], out_fd, status;
	struct stat st;
	ssize_t n;

	/* No output wanted: /dev/null, opened, never replaced. */
	if (!s->out_path) {
		out_fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
		if (out_fd < 0) {
			snprintf(msg, msg_len, "cannot open /dev/null: %s", strerror(errno));
			return -errno;
		}
		goto opened;
	}
	/* In a directory QEMU's user may write to: a file of our own, never
	 * a link (symbolic or hard) to something else truncated. Only a file
	 * or a link is replaced: a device, FIFO, socket or directory named
	 * here is a caller's mistake (this once replaced /dev/null). */
	if (lstat(s->out_path, &st) == 0 && !S_ISREG(st.st_mode) && !S_ISLNK(st.st_mode)) {
		snprintf(msg, msg_len, "%s is not a regular file: not replaced", s->out_path);
		return -EEXIST;
	}
	if (unlink(s->out_path) < 0 && errno != ENOENT) {
		snprintf(msg, msg_len, "cannot replace %s: %s", s->out_path, strerror(errno));
		return -errno;
	}
	out_fd = open(s->out_path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
opened:
	if (out_fd < 0) {
		snprintf(msg, msg_len, "cannot create %s: %s", s->out_path, strerror(errno));
		return -errno;
	}
	if (pipe2(pfd, O_CLOEXEC) < 0) {
		close(out_fd);
		return -errno;
	}
	pid = fork();
	if (pid < 0) {
		int e = errno;

		close(out_fd);
		close(pfd[0]);
		close(pfd[1]);
		snprintf(msg, msg_len, "fork: %s", strerror(e));
		return -e;
	}
	if (pid == 0) {
		close(pfd[0]);
		child(s, parent, out_fd, pfd[1]);
	}
	close(out_fd);
	close(pfd[1]);
	do
		n = read(pfd[0], &ce, sizeof(ce));
	while (n < 0 && errno == EINTR);
	close(pfd[0]);
	if (n == (ssize_t)sizeof(ce)) {
		while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
			;
		ce.step[sizeof(ce.step) - 1] = 0;
		snprintf(msg, msg_len, "cannot start %s: %s: %s", s->argv[0], ce.step,
			 strerror(ce.err));
		return ce.err ? -ce.err : -EIO;
	}
	*pid_out = pid;
	*pidfd_out = (int)syscall(SYS_pidfd_open, pid, 0);
	return 0;
}

int qm_wait_exit(pid_t pid, int pidfd, int timeout_ms, int *wstatus)
{
	int64_t end = qm_launch_mono_ns() + (int64_t)timeout_ms * 1000000;
	int st;

	for (;;) {
		pid_t r = waitpid(pid, &st, WNOHANG);
		int64_t left;

		if (r == pid || (r < 0 && errno == ECHILD)) {
			if (wstatus)
				*wstatus = (r == pid) ? st : 0;
			return 1;
		}
		left = (end - qm_launch_mono_ns()) / 1000000;
		if (left <= 0)
			return 0;
		/* Through qm_wait: inside the engine's fiber this suspends the
		 * step instead of blocking the caller's loop. */
		if (qm_wait_fd(pidfd, POLLIN, qm_wait_now_ns() +
					       (pidfd >= 0 ? (left < 50 ? left : 50) : 5) * 1000000) ==
		    -ECANCELED)
			return 0;
	}
}

static void send_signal(pid_t pid, int pidfd, int sig)
{
	/* Through the pidfd where possible: immune to pid reuse. */
	if (pidfd >= 0 && syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, 0) == 0)
		return;
	kill(pid, sig);
}

void qm_terminate(pid_t pid, int pidfd, int grace_ms, int *wstatus)
{
	if (qm_wait_exit(pid, pidfd, 0, wstatus))
		return;
	if (grace_ms > 0) {
		send_signal(pid, pidfd, SIGTERM);
		if (qm_wait_exit(pid, pidfd, grace_ms, wstatus))
			return;
	}
	send_signal(pid, pidfd, SIGKILL);
	qm_wait_exit(pid, pidfd, 10000, wstatus);
}

/* QEMU's user owns the runtime directory: never follow a link it put
 * there, nor block on a FIFO. */
char *qm_launch_read_tail(const char *path, size_t max)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	struct stat st;
	char *buf;
	ssize_t n;
	off_t off = 0;

	if (fd < 0)
		return NULL;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return NULL;
	}
	if ((size_t)st.st_size > max)
		off = st.st_size - (off_t)max;
	buf = malloc(max + 1);
	if (!buf) {
		close(fd);
		return NULL;
	}
	n = pread(fd, buf, max, off);
	close(fd);
	if (n < 0)
		n = 0;
	buf[n] = 0;
	/* trim trailing newlines for messages */
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
		buf[--n] = 0;
	return buf;
}
