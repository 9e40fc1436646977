/* The scripted fake QMP peer: see fakepeer.h. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fakepeer.h"

int fp_last_fd = -1;

int fakepeer_start(struct fakepeer *fp, fakepeer_script script, void *arg)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int lfd, cfd;

	memset(fp, 0, sizeof(*fp));
	fp->pid = -1;
	snprintf(fp->dir, sizeof(fp->dir), "/tmp/qmig-fakepeer.XXXXXX");
	if (!mkdtemp(fp->dir))
		return -errno;
	snprintf(fp->path, sizeof(fp->path), "%s/qmp.sock", fp->dir);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", fp->path);
	/* Listening before the fork: the client can connect at once. */
	lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(lfd, 1) < 0) {
		int e = -errno;

		if (lfd >= 0)
			close(lfd);
		rmdir(fp->dir);
		return e;
	}
	fp->pid = fork();
	if (fp->pid < 0) {
		close(lfd);
		return -errno;
	}
	if (fp->pid == 0) {
		signal(SIGPIPE, SIG_IGN);
		cfd = accept(lfd, NULL, NULL);
		if (cfd < 0)
			_exit(2);
		close(lfd);
		script(cfd, arg);
		close(cfd);
		_exit(0);
	}
	close(lfd);
	return 0;
}

int fakepeer_stop(struct fakepeer *fp)
{
	int status = 0, r = -1;

	if (fp->pid > 0) {
		/* Give a finished script a moment to exit on its own. */
		for (int i = 0; i < 10; i++) {
			if (waitpid(fp->pid, &status, WNOHANG) == fp->pid) {
				r = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
				fp->pid = -1;
				break;
			}
			usleep(10000);
		}
		if (fp->pid > 0) {
			kill(fp->pid, SIGKILL);
			waitpid(fp->pid, &status, 0);
			fp->pid = -1;
		}
	}
	if (fp->path[0])
		unlink(fp->path);
	if (fp->dir[0])
		rmdir(fp->dir);
	return r;
}

void fp_send_n(int fd, const void *p, size_t n)
{
	const char *c = p;

	while (n) {
		ssize_t w = send(fd, c, n, MSG_NOSIGNAL);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			_exit(3);
		c += w;
		n -= (size_t)w;
	}
}

void fp_send(int fd, const char *s)
{
	fp_send_n(fd, s, strlen(s));
}

/* One byte with recvmsg, so an fd attached to it is caught. */
static int read_byte(int fd, char *c)
{
	char ctl[CMSG_SPACE(sizeof(int))];
	struct iovec iov = {c, 1};
	struct msghdr mh = {
	    .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl, .msg_controllen = sizeof(ctl)};
	struct cmsghdr *cm;
	ssize_t n = recvmsg(fd, &mh, 0);

	if (n <= 0)
		return -1;
	for (cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm))
		if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS)
			memcpy(&fp_last_fd, CMSG_DATA(cm), sizeof(int));
	return 0;
}

long fp_read_command(int fd, char *buf, size_t len)
{
	size_t n = 0;
	const char *id;

	fp_last_fd = -1;
	while (n + 1 < len) {
		if (read_byte(fd, &buf[n]) < 0)
			return -1;
		if (++n >= 2 && buf[n - 2] == '\r' && buf[n - 1] == '\n')
			break;
	}
	buf[n] = 0;
	id = strstr(buf, "\"id\":");
	return id ? strtol(id + 5, NULL, 10) : -1;
}

void fp_handshake(int fd)
{
	char buf[512], reply[64];
	long id;

	fp_send(fd,
		"{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 0, \"minor\": 2, \"major\": 7}, "
		"\"package\": \"fake\"}, \"capabilities\": [\"oob\"]}}\r\n");
	id = fp_read_command(fd, buf, sizeof(buf));
	if (id < 0 || !strstr(buf, "qmp_capabilities"))
		_exit(4);
	snprintf(reply, sizeof(reply), "{\"return\": {}, \"id\": %ld}\r\n", id);
	fp_send(fd, reply);
}
