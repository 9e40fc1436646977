/* qmp_cut LISTEN UPSTREAM EVENT: a QMP proxy that drops the connection
 * when QEMU sends EVENT.
 *
 * It listens on the unix socket LISTEN; each client gets its own
 * connection to the QMP socket UPSTREAM and bytes go both ways unchanged.
 * Lines from QEMU are passed on whole; right after the first line that is
 * the event EVENT (e.g. RESUME), every connection is closed on both sides,
 * the listening socket removed, and the proxy exits 0. Tests use it to
 * lose a destination's QMP at a precise moment, which real QEMU will not
 * do on request. QMP_CUT_DEBUG=1 logs every line from QEMU to stderr. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define MAX_PAIRS 8
#define LINE_MAX_LEN 65536

struct pair {
	int client, upstream;
	size_t len;               /* bytes of an unfinished line from QEMU */
	char line[LINE_MAX_LEN];
};

static struct pair pairs[MAX_PAIRS];
static const char *event;

static int unix_fd(const char *path, int listen_on)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd;

	if (strlen(path) >= sizeof(sa.sun_path))
		return -1;
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	if (listen_on ? bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 8) < 0
		      : connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static int write_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t k = send(fd, p, n, MSG_NOSIGNAL);

		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return -1;
		p += k;
		n -= (size_t)k;
	}
	return 0;
}

static void pair_close(struct pair *p)
{
	if (p->client >= 0)
		close(p->client);
	if (p->upstream >= 0)
		close(p->upstream);
	p->client = p->upstream = -1;
	p->len = 0;
}

/* 1 when the line is the event we cut on. */
static int is_event(const char *line, size_t len)
{
	char want[128];
	char *copy = strndup(line, len);
	int hit;

	snprintf(want, sizeof(want), "\"%s\"", event);
	hit = copy && strstr(copy, "\"event\"") && strstr(copy, want);
	free(copy);
	return hit;
}

/* Pass QEMU's bytes on, line by line: 1 when the event went by. */
static int from_upstream(struct pair *p, const char *buf, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (p->len == sizeof(p->line)) {
			if (write_all(p->client, p->line, p->len) < 0)
				return -1;
			p->len = 0;
		}
		p->line[p->len++] = buf[i];
		if (buf[i] != '\n')
			continue;
		if (write_all(p->client, p->line, p->len) < 0)
			return -1;
		if (getenv("QMP_CUT_DEBUG"))
			fprintf(stderr, "fwd: %.*s", (int)p->len, p->line);
		if (is_event(p->line, p->len))
			return 1;
		p->len = 0;
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct pollfd pfd[1 + 2 * MAX_PAIRS];
	char buf[65536];
	int lfd;

	if (argc != 4) {
		fprintf(stderr, "usage: qmp_cut LISTEN UPSTREAM EVENT\n");
		return 2;
	}
	event = argv[3];
	for (int i = 0; i < MAX_PAIRS; i++)
		pairs[i].client = pairs[i].upstream = -1;
	unlink(argv[1]);
	lfd = unix_fd(argv[1], 1);
	if (lfd < 0) {
		perror(argv[1]);
		return 1;
	}
	for (;;) {
		int n = 0, cut = 0;

		pfd[n++] = (struct pollfd){lfd, POLLIN, 0};
		for (int i = 0; i < MAX_PAIRS; i++) {
			pfd[n++] = (struct pollfd){pairs[i].client, POLLIN, 0};
			pfd[n++] = (struct pollfd){pairs[i].upstream, POLLIN, 0};
		}
		if (poll(pfd, (nfds_t)n, -1) < 0) {
			if (errno == EINTR)
				continue;
			perror("poll");
			return 1;
		}
		if (pfd[0].revents & POLLIN) {
			int c = accept4(lfd, NULL, NULL, SOCK_CLOEXEC), i = 0;

			while (i < MAX_PAIRS && pairs[i].client >= 0)
				i++;
			if (c >= 0 && i == MAX_PAIRS) {
				close(c);
			} else if (c >= 0) {
				pairs[i].client = c;
				pairs[i].upstream = unix_fd(argv[2], 0);
				if (pairs[i].upstream < 0) {
					perror(argv[2]);
					pair_close(&pairs[i]);
				}
			}
		}
		for (int i = 0; i < MAX_PAIRS && !cut; i++) {
			struct pair *p = &pairs[i];
			ssize_t k;

			if (p->client >= 0 && pfd[1 + 2 * i].revents) {
				k = read(p->client, buf, sizeof(buf));
				if (k <= 0 || write_all(p->upstream, buf, (size_t)k) < 0) {
					pair_close(p);
					continue;
				}
			}
			if (p->upstream >= 0 && pfd[2 + 2 * i].revents) {
				k = read(p->upstream, buf, sizeof(buf));
				if (k <= 0) {
					pair_close(p);
					continue;
				}
				switch (from_upstream(p, buf, (size_t)k)) {
				case -1: pair_close(p); break;
				case 1: cut = 1; break;
				}
			}
		}
		if (cut) {
			for (int i = 0; i < MAX_PAIRS; i++)
				pair_close(&pairs[i]);
			close(lfd);
			unlink(argv[1]);
			fprintf(stderr, "qmp_cut: %s seen, connections closed\n", event);
			return 0;
		}
	}
}
