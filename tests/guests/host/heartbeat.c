/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A live reader of a test guest's serial socket. Each line is stamped with
 * CLOCK_MONOTONIC when read() returns it; the largest gap between two
 * heartbeats is the guest's longest pause as the host saw it. Lines:
 *   READY tiny wss=... rate=... mem=...
 *   HB seq=<n> gen=<g> pages=<p> rate=<bytes/s>[ work=<units>][ tiny]
 *     (tiny: the tiny guest; work=: units of non-writing work done, pace=cpu)
 *   CORRUPT page=<i> gpa=0x<hex> expected_gen=<g> found_gen=<g'>
 *   VERIFY pages=<n> bad=<k> ... (the tiny guest's check, on request)
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
#include <time.h>
#include <unistd.h>

#include "qmig_commands.h"
#include "qmig_guests.h"

#include "../tiny/tiny_abi.h"

static int64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

struct qmig_hb {
	int fd;
	size_t len;
	int overlong; /* dropping the rest of a line too long to keep */
	int have_prev;
	int64_t prev_ns;
	struct qmig_guest_stats st;
	unsigned verify_asked_at; /* verify_lines when the last check was asked */
	unsigned verify_lines;
	char verify[160];
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
	unsigned long long seq, gen, pages, rate, units;
	struct qmig_guest_stats *st = &hb->st;
	const char *work;

	if (sscanf(line, "HB seq=%llu gen=%llu pages=%llu rate=%llu", &seq, &gen, &pages,
		   &rate) != 4)
		return;
	if (strstr(line, " tiny"))
		hb->st.self_check = 1;
	work = strstr(line, " work=");
	if (work && sscanf(work, " work=%llu", &units) == 1) {
		if (!st->has_work)
			st->work_first = units;
		st->has_work = 1;
		st->work = units;
	}
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
	} else if (!strncmp(line, "VERIFY ", 7)) {
		snprintf(hb->verify, sizeof(hb->verify), "%.159s", line);
		hb->verify_lines++;
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
			feed(hb, chunk, (size_t)n, mono_ns());
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
	int64_t end = mono_ns() + (int64_t)timeout_ms * 1000000;
	uint64_t want;
	int r;

	if (!hb)
		return -EINVAL;
	want = hb->st.beats + n;
	r = qmig_hb_process(hb);
	while (r == 0 && hb->st.beats < want) {
		struct pollfd p = {.fd = hb->fd, .events = POLLIN};
		int64_t left = (end - mono_ns()) / 1000000;

		if (left <= 0)
			return -ETIMEDOUT;
		if (poll(&p, 1, (int)left) < 0 && errno != EINTR)
			return -errno;
		r = qmig_hb_process(hb);
	}
	return r;
}

void qmig_hb_get(const struct qmig_hb *hb, struct qmig_guest_stats *out)
{
	size_t n;

	if (!hb || !out)
		return;
	n = out->size && out->size < sizeof(*out) ? out->size : sizeof(*out);
	memcpy(out, &hb->st, n);
	out->size = n;
}

unsigned qmig_hb_verify_line(const struct qmig_hb *hb, char *line, size_t len)
{
	if (!hb)
		return 0;
	if (line && len)
		snprintf(line, len, "%s", hb->verify);
	return hb->verify_lines;
}

/* ---- the plug-in ----------------------------------------------------------- */

static int op_open(void **probe, const char *serial_socket, void *user_data)
{
	return qmig_hb_open((struct qmig_hb **)probe, serial_socket);
}

static int op_fd(void *probe)
{
	return qmig_hb_fd(probe);
}

static int op_process(void *probe)
{
	return qmig_hb_process(probe);
}

static void op_get(void *probe, struct qmig_guest_stats *out)
{
	qmig_hb_get(probe, out);
}

static void op_close(void *probe)
{
	qmig_hb_free(probe);
}

/* The tiny guest checks itself on an NMI and answers with a VERIFY line. */
static int op_check_ask(void *probe, struct qmig_qmp_conn *conn)
{
	struct qmig_hb *hb = probe;

	qmig_hb_process(hb);
	hb->verify_asked_at = hb->verify_lines;
	return qmig_cmd_inject_nmi(conn);
}

static int op_check_answer(void *probe, struct qmig_verify_report *rep)
{
	unsigned long long pages, bad, gen, seq, us, first = 0, expected = 0, found = 0;
	struct qmig_hb *hb = probe;

	if (hb->verify_lines == hb->verify_asked_at)
		return 0;
	if (sscanf(hb->verify, "VERIFY pages=%llu bad=%llu gen=%llu seq=%llu us=%llu first=%llu "
			       "expected=%llu found=%llu", &pages, &bad, &gen, &seq, &us, &first,
		   &expected, &found) < 5) {
		snprintf(rep->detail, sizeof(rep->detail), "%s", hb->verify);
		return -EBADMSG;
	}
	rep->pages_checked = pages;
	rep->pages_bad = bad;
	rep->generation = gen;
	rep->seq = seq;
	if (bad) {
		rep->first_bad_gpa = TINY_WS_GPA + first * TINY_PAGE;
		snprintf(rep->detail, sizeof(rep->detail),
			 "page %llu should hold generation %llu, it holds %llu (the guest's own "
			 "check)", first, expected, found);
	} else {
		snprintf(rep->detail, sizeof(rep->detail), "in %llu us", us);
	}
	return 1;
}

static int op_verify(struct qmig_qmp_conn *conn, const char *dir,
		     struct qmig_verify_report *report, void *user_data)
{
	return qmig_tiny_verify(conn, dir, report);
}

const struct qmig_guest_ops qmig_test_guest_ops = {
	.version = QMIG_GUEST_OPS_VERSION,
	.name = "qmigrate test guests",
	.probe_open = op_open,
	.probe_fd = op_fd,
	.probe_process = op_process,
	.probe_get = op_get,
	.probe_close = op_close,
	.check_ask = op_check_ask,
	.check_answer = op_check_answer,
	.verify_memory = op_verify,
	.boot = qmig_test_guest_boot,
};

void qmig_hb_reset_gap(struct qmig_hb *hb)
{
	if (!hb)
		return;
	hb->st.max_gap_ns = 0;
	hb->st.max_gap_end_ns = 0;
}
