/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A live reader of a test guest's serial socket. Each line is stamped with
 * CLOCK_MONOTONIC when read() returns it; the largest gap between two
 * heartbeats is the guest's longest pause as the host saw it. Lines:
 *   READY tiny wss=... rate=... mem=...
 *   HB seq=<n> gen=<g> pages=<p> rate=<bytes/s>
 *   CORRUPT page=<i> gpa=0x<hex> expected_gen=<g> found_gen=<g'>
 * The socket stream is exact. (QEMU 7.2's serial.log is not, while a live
 * reader is connected: a byte the socket refused with EAGAIN is sometimes
 * logged twice.)
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "qm_wait.h"
#include "launch/launch.h"

struct qmig_hb {
	int fd;
	size_t len;
	int overlong; /* dropping the rest of a line too long to keep */
	int have_prev;
	int64_t prev_ns;
	struct qmig_hb_stats st;
	char buf[512];
};

int qmig_hb_open(struct qmig_hb **out, const char *serial_socket)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct qmig_hb *hb;
	int fd, e;

	if (!out || !serial_socket)
		return -EINVAL;
	if (strlen(serial_socket) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	strcpy(sa.sun_path, serial_socket);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) < 0) {
		e = errno;
		close(fd);
		return -e;
	}
	hb = calloc(1, sizeof(*hb));
	if (!hb) {
		close(fd);
		return -ENOMEM;
	}
	hb->fd = fd;
	*out = hb;
	return 0;
}

void qmig_hb_free(struct qmig_hb *hb)
{
	if (!hb)
		return;
	if (hb->fd >= 0)
		close(hb->fd);
	free(hb);
}

int qmig_hb_fd(const struct qmig_hb *hb)
{
	return hb ? hb->fd : -1;
}

static void on_beat(struct qmig_hb *hb, const char *line, int64_t now)
{
	unsigned long long seq, gen, pages, rate;
	struct qmig_hb_stats *st = &hb->st;

	if (sscanf(line, "HB seq=%llu gen=%llu pages=%llu rate=%llu", &seq, &gen, &pages,
		   &rate) != 4)
		return;
	if (st->beats && seq > st->last_seq + 1)
		st->seq_missed += seq - st->last_seq - 1;
	st->beats++;
	st->last_seq = seq;
	st->generation = gen;
	st->pages_written = pages;
	st->guest_rate = rate;
	if (!st->first_ns)
		st->first_ns = now;
	st->last_ns = now;
	if (hb->have_prev && now - hb->prev_ns > st->max_gap_ns) {
		st->max_gap_ns = now - hb->prev_ns;
		st->max_gap_end_ns = now;
	}
	hb->prev_ns = now;
	hb->have_prev = 1;
}

static void on_line(struct qmig_hb *hb, const char *line, int64_t now)
{
	if (!strncmp(line, "HB ", 3)) {
		on_beat(hb, line, now);
		return;
	}
	if (*line)
		snprintf(hb->st.last_msg, sizeof(hb->st.last_msg), "%.159s", line);
	if (!strncmp(line, "READY ", 6)) {
		hb->st.ready = 1;
	} else if (!strncmp(line, "CORRUPT ", 8)) {
		if (!hb->st.corrupt)
			snprintf(hb->st.corrupt_msg, sizeof(hb->st.corrupt_msg), "%.159s", line);
		hb->st.corrupt = 1;
	}
}

static void feed(struct qmig_hb *hb, const char *p, size_t n, int64_t now)
{
	for (size_t i = 0; i < n; i++) {
		char c = p[i];

		if (c == '\n') {
			if (!hb->overlong) {
				hb->buf[hb->len] = 0;
				if (hb->len && hb->buf[hb->len - 1] == '\r')
					hb->buf[hb->len - 1] = 0;
				on_line(hb, hb->buf, now);
			}
			hb->len = 0;
			hb->overlong = 0;
		} else if (hb->len + 1 < sizeof(hb->buf)) {
			hb->buf[hb->len++] = c;
		} else {
			hb->overlong = 1;
		}
	}
}

int qmig_hb_process(struct qmig_hb *hb)
{
	char chunk[4096];

	if (!hb)
		return -EINVAL;
	for (;;) {
		ssize_t n = read(hb->fd, chunk, sizeof(chunk));

		if (n > 0) {
			feed(hb, chunk, (size_t)n, qm_launch_mono_ns());
			continue;
		}
		if (n == 0)
			return -ECONNRESET;
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return 0;
		return -errno;
	}
}

int qmig_hb_wait(struct qmig_hb *hb, unsigned n, int timeout_ms)
{
	int64_t end = qm_launch_mono_ns() + (int64_t)timeout_ms * 1000000;
	uint64_t want;
	int r;

	if (!hb)
		return -EINVAL;
	want = hb->st.beats + n;
	r = qmig_hb_process(hb);
	while (r == 0 && hb->st.beats < want) {
		struct pollfd p = {.fd = hb->fd, .events = POLLIN};
		int64_t left = (end - qm_launch_mono_ns()) / 1000000;

		if (left <= 0)
			return -ETIMEDOUT;
		r = qm_wait_fd(p.fd, p.events, qm_wait_now_ns() + left * 1000000);
		if (r < 0)
			return r;
		r = qmig_hb_process(hb);
	}
	return r;
}

void qmig_hb_get(const struct qmig_hb *hb, struct qmig_hb_stats *out)
{
	if (hb && out)
		*out = hb->st;
}

void qmig_hb_reset_gap(struct qmig_hb *hb)
{
	if (!hb)
		return;
	hb->st.max_gap_ns = 0;
	hb->st.max_gap_end_ns = 0;
}
