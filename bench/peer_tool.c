/* Helpers for bench/peers.sh (make bench-peers), not a benchmark itself.
 *
 *   peer_tool drive SRC-QMP DST-QMP URI [--max-bandwidth BYTES] [--no-events]
 *                   [--poll MS] [--keep-source]
 *       The bare QMP driver: the QMP sequence of a live migration sent by a
 *       minimal program (no doctor, no plan, no verification, no journal):
 *       dst migrate-set-capabilities events, migrate-incoming URI; src
 *       migrate-set-capabilities events, [migrate-set-parameters
 *       max-bandwidth], migrate URI; then wait for the source's MIGRATION
 *       completed event and the destination's RESUME, quit the source.
 *       --no-events polls query-migrate every --poll ms instead (QEMU's
 *       defaults: no capability changed). Prints one JSON line.
 *
 *   peer_tool run CMD [ARG]...
 *       Runs CMD and prints one JSON line: start and end (CLOCK_REALTIME,
 *       us), wall ms, the child's user and system CPU ms, its exit status.
 *       CMD's output goes to stderr.
 *
 *   peer_tool netprobe ADDR PORT
 *       From a client network namespace, until SIGTERM: an ICMP echo to
 *       ADDR every 200 ms, and one TCP session to ADDR:PORT (the Linux test
 *       guest's httpd) that sends a header line every 200 ms, the guest's
 *       kernel acknowledging each. Prints "ready" on stderr once both
 *       answer; on SIGTERM prints the longest gap between echo replies,
 *       echoes lost, the longest time the session had data unacknowledged,
 *       and whether it survived (the request finished, a response read).
 *
 *   peer_tool watch SRC-SERIAL DST-SERIAL TIMEOUT-S [--tap-src PATH --tap-dst PATH]
 *       Reads the test guest's heartbeats ("HB seq=...") from the source's
 *       serial socket and, as soon as it exists, the destination's, on the
 *       host clock. Prints "ready" on stderr at the source's first beat;
 *       1 s after the destination's first beat prints the guest-observed
 *       downtime (source's last beat to destination's first, ms) and the
 *       largest gap between consecutive beats over the whole watch (the
 *       switchover, and any pause before or after it), then exits.
 *       --tap-*: a unix socket at PATH where one client (qmigrate's
 *       --src-serial/--dst-serial) gets a copy of all the guest writes and
 *       may write to the guest's serial port; the watch then exits once
 *       that client has gone.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/ip_icmp.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "qmig_commands.h"
#include "qmig_qmp.h"

static int64_t now_ns(clockid_t c)
{
	struct timespec ts;

	clock_gettime(c, &ts);
	return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

#include <stdarg.h>
__attribute__((format(printf, 1, 2), noreturn)) static void die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fprintf(stderr, "peer_tool: ");
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(1);
}

/* ---- drive ---------------------------------------------------------------- */

struct side_ev {
	int64_t stop_us, resume_us, active_us, completed_us, failed;
};

static void on_event(const char *event, struct json_object *data, int64_t sec, int64_t usec,
		     void *ud)
{
	struct side_ev *e = ud;
	int64_t us = sec * 1000000 + usec;
	struct json_object *v;
	const char *st = NULL;

	if (!strcmp(event, "STOP") && !e->stop_us)
		e->stop_us = us;
	else if (!strcmp(event, "RESUME") && !e->resume_us)
		e->resume_us = us;
	else if (!strcmp(event, "MIGRATION") && data &&
		 json_object_object_get_ex(data, "status", &v))
		st = json_object_get_string(v);
	if (!st)
		return;
	if (!strcmp(st, "active") && !e->active_us)
		e->active_us = us;
	else if (!strcmp(st, "completed") && !e->completed_us)
		e->completed_us = us;
	else if (!strcmp(st, "failed") || !strcmp(st, "cancelled"))
		e->failed = 1;
}

static void call(struct qmig_qmp_conn *c, const char *what, int r)
{
	if (r < 0)
		die("%s: %s", what, qmig_qmp_conn_error(c) ? qmig_qmp_conn_error(c) : strerror(-r));
}

static struct json_object *events_cap(void)
{
	struct json_object *o = json_object_new_object();

	json_object_object_add(o, "events", json_object_new_boolean(1));
	return o;
}

static int cmd_drive(int argc, char **argv)
{
	struct qmig_qmp_conn *src, *dst;
	struct side_ev se = {0}, de = {0};
	struct qmig_qmp_event_cb scb = {on_event, &se, NULL}, dcb = {on_event, &de, NULL};
	struct qmig_migrate_info mi;
	struct qmig_vm_status vs;
	long long bw = -1;
	int events = 1, poll_ms = 100, keep = 0, r;
	int64_t t0, t_migrate, t_done, t_ret, deadline;

	if (argc < 4)
		die("drive SRC-QMP DST-QMP URI [options]");
	for (int i = 4; i < argc; i++) {
		if (!strcmp(argv[i], "--max-bandwidth") && i + 1 < argc)
			bw = atoll(argv[++i]);
		else if (!strcmp(argv[i], "--no-events"))
			events = 0;
		else if (!strcmp(argv[i], "--poll") && i + 1 < argc)
			poll_ms = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--keep-source"))
			keep = 1;
		else
			die("drive: unknown option %s", argv[i]);
	}
	t0 = now_ns(CLOCK_REALTIME);
	if (qmig_qmp_conn_open(&src, argv[1], NULL) < 0)
		die("cannot connect to %s", argv[1]);
	if (qmig_qmp_conn_open(&dst, argv[2], NULL) < 0)
		die("cannot connect to %s", argv[2]);
	qmig_qmp_conn_set_event_cb(src, &scb);
	qmig_qmp_conn_set_event_cb(dst, &dcb);
	if (events) {
		struct json_object *c = events_cap();

		call(dst, "dst migrate-set-capabilities", qmig_cmd_migrate_set_capabilities(dst, c));
		call(src, "src migrate-set-capabilities", qmig_cmd_migrate_set_capabilities(src, c));
		json_object_put(c);
	}
	call(dst, "migrate-incoming", qmig_cmd_migrate_incoming(dst, argv[3]));
	if (bw >= 0) {
		struct json_object *p = json_object_new_object();

		json_object_object_add(p, "max-bandwidth", json_object_new_int64(bw));
		call(src, "migrate-set-parameters", qmig_cmd_migrate_set_parameters(src, p));
		json_object_put(p);
	}
	t_migrate = now_ns(CLOCK_REALTIME);
	call(src, "migrate", qmig_cmd_migrate(src, argv[3], 0));
	deadline = now_ns(CLOCK_MONOTONIC) + 300 * 1000000000LL;
	for (;;) {
		struct pollfd p[2] = {{qmig_qmp_conn_fd(src), POLLIN, 0},
				      {qmig_qmp_conn_fd(dst), POLLIN, 0}};

		if (events ? se.completed_us != 0 : 0)
			break;
		if (!events) {
			call(src, "query-migrate", qmig_cmd_query_migrate(src, &mi));
			if (!strcmp(mi.status, "completed")) {
				se.completed_us = now_ns(CLOCK_REALTIME) / 1000;
				break;
			}
			if (!strcmp(mi.status, "failed") || !strcmp(mi.status, "cancelled"))
				se.failed = 1;
		}
		if (se.failed)
			die("the migration failed");
		if (now_ns(CLOCK_MONOTONIC) > deadline)
			die("no completion in 300 s");
		r = poll(p, 2, events ? 1000 : poll_ms);
		if (r < 0 && errno != EINTR)
			die("poll: %s", strerror(errno));
		if ((r = qmig_qmp_conn_process(src)) < 0 || (r = qmig_qmp_conn_process(dst)) < 0)
			die("a QMP connection broke: %s", strerror(-r));
	}
	t_done = now_ns(CLOCK_REALTIME);
	/* The destination resumes by itself (no -S): wait for it to run. */
	while (!de.resume_us) {
		struct pollfd p = {qmig_qmp_conn_fd(dst), POLLIN, 0};

		if (now_ns(CLOCK_MONOTONIC) > deadline)
			die("the destination did not resume");
		if (!events) {
			call(dst, "query-status", qmig_cmd_query_status(dst, &vs));
			if (vs.running)
				break;
		}
		poll(&p, 1, events ? 1000 : poll_ms);
		if ((r = qmig_qmp_conn_process(dst)) < 0)
			die("the destination's QMP connection broke: %s", strerror(-r));
	}
	call(src, "query-migrate", qmig_cmd_query_migrate(src, &mi));
	if (!keep)
		qmig_cmd_quit(src);
	qmig_qmp_conn_close(src);
	qmig_qmp_conn_close(dst);
	t_ret = now_ns(CLOCK_REALTIME);
	printf("{\"status\":\"completed\",\"start_us\":%lld,\"migrate_us\":%lld,\"done_seen_us\":%lld,"
	       "\"return_us\":%lld,\"src_stop_us\":%lld,\"src_completed_us\":%lld,"
	       "\"dst_active_us\":%lld,\"dst_resume_us\":%lld,\"total_ms\":%llu,"
	       "\"setup_ms\":%llu,\"downtime_ms\":%llu,\"transferred_bytes\":%llu}\n",
	       (long long)(t0 / 1000), (long long)(t_migrate / 1000), (long long)(t_done / 1000),
	       (long long)(t_ret / 1000), (long long)se.stop_us, (long long)se.completed_us,
	       (long long)de.active_us, (long long)de.resume_us,
	       (unsigned long long)mi.total_time_ms, (unsigned long long)mi.setup_time_ms,
	       (unsigned long long)mi.downtime_ms,
	       (unsigned long long)mi.ram_transferred);
	return 0;
}

/* ---- run ------------------------------------------------------------------ */

static int cmd_run(int argc, char **argv)
{
	int64_t t0, t1;
	struct rusage ru;
	pid_t pid;
	int st;

	if (argc < 2)
		die("run CMD [ARG]...");
	t0 = now_ns(CLOCK_REALTIME);
	pid = fork();
	if (pid == 0) {
		dup2(2, 1);
		execvp(argv[1], argv + 1);
		_exit(127);
	}
	if (pid < 0 || waitpid(pid, &st, 0) < 0)
		die("cannot run %s", argv[1]);
	t1 = now_ns(CLOCK_REALTIME);
	getrusage(RUSAGE_CHILDREN, &ru);
	printf("{\"start_us\":%lld,\"end_us\":%lld,\"wall_ms\":%.3f,\"user_ms\":%.3f,"
	       "\"sys_ms\":%.3f,\"exit\":%d}\n",
	       (long long)(t0 / 1000), (long long)(t1 / 1000), (t1 - t0) / 1e6,
	       ru.ru_utime.tv_sec * 1e3 + ru.ru_utime.tv_usec / 1e3,
	       ru.ru_stime.tv_sec * 1e3 + ru.ru_stime.tv_usec / 1e3,
	       WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
	return 0;
}

/* ---- watch ---------------------------------------------------------------- */

static int unix_connect(const char *path)
{
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	snprintf(a.sun_path, sizeof(a.sun_path), "%s", path);
	if (fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0)
		return fd;
	if (fd >= 0)
		close(fd);
	return -1;
}

struct reader {
	int fd;
	int tap;         /* listening socket of --tap-*, or -1 */
	int client;      /* the command connected to the tap, or -1 */
	int had_client;
	char buf[512];
	size_t n;
	int64_t beats, last_ns, first_ns, max_gap;
};

/* Count complete heartbeat lines in what was read, time them. */
static void feed(struct reader *r, const char *data, size_t len, int64_t t)
{
	char *nl;

	while (len) {
		size_t k = sizeof(r->buf) - 1 - r->n < len ? sizeof(r->buf) - 1 - r->n : len;

		memcpy(r->buf + r->n, data, k);
		r->n += k;
		data += k;
		len -= k;
		r->buf[r->n] = 0;
		while ((nl = memchr(r->buf, '\n', r->n))) {
			if (strstr(r->buf, "HB seq=") && strstr(r->buf, "HB seq=") < nl) {
				if (!r->beats++)
					r->first_ns = t;
				else if (t - r->last_ns > r->max_gap)
					r->max_gap = t - r->last_ns;
				r->last_ns = t;
			}
			r->n -= (size_t)(nl + 1 - r->buf);
			memmove(r->buf, nl + 1, r->n);
		}
		if (r->n == sizeof(r->buf) - 1)
			r->n = 0; /* a line too long: not a heartbeat */
	}
}

/* Read what the guest wrote; hand a copy to the tap's client. */
static int pump(struct reader *r, int64_t t)
{
	char chunk[4096];
	ssize_t k = read(r->fd, chunk, sizeof(chunk));

	if (k <= 0)
		return -1;
	if (r->client >= 0 && send(r->client, chunk, (size_t)k, MSG_DONTWAIT | MSG_NOSIGNAL) < 0 &&
	    errno != EAGAIN) {
		close(r->client);
		r->client = -1;
	}
	feed(r, chunk, (size_t)k, t);
	return 0;
}

/* What the tap's client writes goes to the guest's serial port. */
static void pump_back(struct reader *r)
{
	char chunk[512];
	ssize_t k = read(r->client, chunk, sizeof(chunk));

	if (k <= 0) {
		close(r->client);
		r->client = -1;
		return;
	}
	if (r->fd >= 0 && write(r->fd, chunk, (size_t)k) < 0)
		fprintf(stderr, "peer_tool: to the guest: %s\n", strerror(errno));
}

static int tap_listen(const char *path)
{
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);

	snprintf(a.sun_path, sizeof(a.sun_path), "%s", path);
	unlink(path);
	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(fd, 1) < 0)
		die("tap %s: %s", path, strerror(errno));
	return fd;
}

static int cmd_watch(int argc, char **argv)
{
	struct reader s = {.fd = -1, .tap = -1, .client = -1}, d = {.fd = -1, .tap = -1, .client = -1};
	struct reader *rs[2] = {&s, &d};
	int64_t deadline, t, max_gap = 0;
	int ready = 0, reported = 0;

	if (argc < 4)
		die("watch SRC-SERIAL DST-SERIAL TIMEOUT-S [--tap-src PATH --tap-dst PATH]");
	for (int i = 4; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--tap-src"))
			s.tap = tap_listen(argv[i + 1]);
		else if (!strcmp(argv[i], "--tap-dst"))
			d.tap = tap_listen(argv[i + 1]);
		else
			die("watch: unknown option %s", argv[i]);
	}
	deadline = now_ns(CLOCK_MONOTONIC) + atoll(argv[3]) * 1000000000LL;
	signal(SIGPIPE, SIG_IGN);
	while ((s.fd = unix_connect(argv[1])) < 0) {
		if (now_ns(CLOCK_MONOTONIC) > deadline)
			die("cannot connect to %s", argv[1]);
		usleep(10000);
	}
	while ((t = now_ns(CLOCK_MONOTONIC)) < deadline) {
		struct pollfd p[6];

		if (d.fd < 0 && !d.beats)
			d.fd = unix_connect(argv[2]);
		for (int k = 0; k < 2; k++) {
			p[3 * k] = (struct pollfd){rs[k]->fd, POLLIN, 0};
			p[3 * k + 1] = (struct pollfd){rs[k]->client < 0 ? rs[k]->tap : -1, POLLIN, 0};
			p[3 * k + 2] = (struct pollfd){rs[k]->client, POLLIN, 0};
		}
		if (poll(p, 6, d.fd < 0 ? 2 : 200) < 0 && errno != EINTR)
			break;
		t = now_ns(CLOCK_MONOTONIC);
		for (int k = 0; k < 2; k++) {
			struct reader *r = rs[k];

			if (r->fd >= 0 && (p[3 * k].revents & (POLLIN | POLLHUP)) && pump(r, t) < 0) {
				close(r->fd);
				r->fd = -1;
			}
			if (p[3 * k + 1].revents & POLLIN) {
				r->client = accept4(r->tap, NULL, NULL, SOCK_CLOEXEC);
				r->had_client |= r->client >= 0;
			}
			if (r->client >= 0 && (p[3 * k + 2].revents & (POLLIN | POLLHUP)))
				pump_back(r);
		}
		max_gap = s.max_gap > d.max_gap ? s.max_gap : d.max_gap;
		if (s.beats >= 1 && !d.beats && !ready++)
			fprintf(stderr, "ready\n"); /* the source guest beats */
		/* A few beats from the destination: it runs on. */
		if (!reported && d.beats >= 3 && s.beats && t - d.first_ns > 1000000000LL) {
			printf("{\"guest_downtime_ms\":%.3f,\"guest_max_gap_ms\":%.3f,"
			       "\"src_beats\":%lld,\"dst_beats\":%lld}\n",
			       (d.first_ns - s.last_ns) / 1e6,
			       (max_gap > d.first_ns - s.last_ns ? max_gap : d.first_ns - s.last_ns) / 1e6,
			       (long long)s.beats, (long long)d.beats);
			fflush(stdout);
			reported = 1;
		}
		/* Done, and the command on the taps (if any) has let go. */
		if (reported && d.client < 0 && (d.tap < 0 || d.had_client))
			return 0;
	}
	if (reported)
		return 0;
	printf("{\"guest_downtime_ms\":null,\"src_beats\":%lld,\"dst_beats\":%lld}\n",
	       (long long)s.beats, (long long)d.beats);
	return 1;
}

/* ---- netprobe ------------------------------------------------------------- */

static volatile sig_atomic_t stop_probe;

static void on_term(int sig)
{
	(void)sig;
	stop_probe = 1;
}

static uint16_t icmp_sum(const void *p, size_t n)
{
	const uint16_t *w = p;
	uint32_t s = 0;

	for (; n > 1; n -= 2)
		s += *w++;
	if (n)
		s += *(const uint8_t *)w;
	s = (s >> 16) + (s & 0xffff);
	s += s >> 16;
	return (uint16_t)~s;
}

static int cmd_netprobe(int argc, char **argv)
{
	struct sockaddr_in a = {.sin_family = AF_INET};
	const int64_t period = 200 * 1000000LL;
	int64_t next, t, last_reply = 0, max_gap = 0, unacked_since = 0, max_unacked = 0;
	int64_t deadline;
	long sent = 0, recvd = 0, tcp_sent = 0;
	int ic, tc, ready = 0, survived = 0, tcp_broken = 0;
	uint16_t seq = 0, ident = (uint16_t)getpid();

	if (argc < 3)
		die("netprobe ADDR PORT");
	if (inet_pton(AF_INET, argv[1], &a.sin_addr) != 1)
		die("netprobe: %s is not an IPv4 address", argv[1]);
	signal(SIGTERM, on_term);
	signal(SIGINT, on_term);
	signal(SIGPIPE, SIG_IGN);
	ic = socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_ICMP);
	if (ic < 0)
		die("raw ICMP socket: %s (root needed)", strerror(errno));
	/* The session: until the guest's httpd accepts (it boots first). */
	deadline = now_ns(CLOCK_MONOTONIC) + 120 * 1000000000LL;
	for (;;) {
		a.sin_port = htons((uint16_t)atoi(argv[2]));
		tc = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (tc >= 0 && connect(tc, (struct sockaddr *)&a, sizeof(a)) == 0)
			break;
		if (tc >= 0)
			close(tc);
		if (stop_probe || now_ns(CLOCK_MONOTONIC) > deadline)
			die("netprobe: cannot connect to %s:%s", argv[1], argv[2]);
		usleep(100000);
	}
	{
		int one = 1;

		setsockopt(tc, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	}
	if (write(tc, "GET / HTTP/1.0\r\n", 16) != 16)
		die("netprobe: the session broke at once");
	a.sin_port = 0;
	next = now_ns(CLOCK_MONOTONIC);
	while (!stop_probe) {
		struct pollfd p = {ic, POLLIN, 0};
		int outq = 0;

		t = now_ns(CLOCK_MONOTONIC);
		if (t >= next) {
			struct icmphdr h = {.type = ICMP_ECHO};
			char pkt[64] = {0};

			h.un.echo.id = ident;
			h.un.echo.sequence = htons(++seq);
			memcpy(pkt, &h, sizeof(h));
			((struct icmphdr *)pkt)->checksum = icmp_sum(pkt, sizeof(pkt));
			if (sendto(ic, pkt, sizeof(pkt), 0, (struct sockaddr *)&a, sizeof(a)) > 0)
				sent++;
			if (!tcp_broken) {
				if (write(tc, "X-Probe: 1\r\n", 12) == 12)
					tcp_sent++;
				else
					tcp_broken = 1;
			}
			next += period;
		}
		if (poll(&p, 1, 1) > 0) {
			char buf[256];
			ssize_t k = recv(ic, buf, sizeof(buf), 0);
			int hl = k > 0 ? (buf[0] & 0x0f) * 4 : 0;

			if (k >= hl + 8) {
				struct icmphdr *h = (struct icmphdr *)(buf + hl);

				if (h->type == ICMP_ECHOREPLY && h->un.echo.id == ident) {
					int64_t now = now_ns(CLOCK_MONOTONIC);

					recvd++;
					if (last_reply && now - last_reply > max_gap)
						max_gap = now - last_reply;
					last_reply = now;
				}
			}
		}
		if (!tcp_broken && ioctl(tc, SIOCOUTQ, &outq) == 0) {
			t = now_ns(CLOCK_MONOTONIC);
			if (outq > 0 && !unacked_since)
				unacked_since = t;
			else if (outq == 0 && unacked_since) {
				if (t - unacked_since > max_unacked)
					max_unacked = t - unacked_since;
				unacked_since = 0;
			}
		}
		if (!ready && recvd >= 2 && tcp_sent >= 2 && !unacked_since) {
			fprintf(stderr, "ready\n");
			ready = 1;
			max_gap = 0;
			max_unacked = 0;
			sent = recvd = 0;
		}
	}
	if (unacked_since && now_ns(CLOCK_MONOTONIC) - unacked_since > max_unacked)
		max_unacked = now_ns(CLOCK_MONOTONIC) - unacked_since;
	/* Survival: finish the request, and the guest answers on this session. */
	if (!tcp_broken && write(tc, "\r\n", 2) == 2) {
		struct pollfd p = {tc, POLLIN, 0};
		char buf[16] = {0};

		if (poll(&p, 1, 5000) > 0 && read(tc, buf, sizeof(buf) - 1) > 0 &&
		    !strncmp(buf, "HTTP/1.", 7))
			survived = 1;
	}
	printf("{\"ping_sent\":%ld,\"ping_lost\":%ld,\"ping_max_gap_ms\":%.1f,"
	       "\"tcp_max_unacked_ms\":%.1f,\"tcp_survived\":%d}\n",
	       sent, sent > recvd ? sent - recvd : 0, max_gap / 1e6, max_unacked / 1e6, survived);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc > 1 && !strcmp(argv[1], "netprobe"))
		return cmd_netprobe(argc - 1, argv + 1);
	if (argc > 1 && !strcmp(argv[1], "drive"))
		return cmd_drive(argc - 1, argv + 1);
	if (argc > 1 && !strcmp(argv[1], "run"))
		return cmd_run(argc - 1, argv + 1);
	if (argc > 1 && !strcmp(argv[1], "watch"))
		return cmd_watch(argc - 1, argv + 1);
	fprintf(stderr, "usage: peer_tool drive|run|watch ... (see bench/peer_tool.c)\n");
	return 2;
}
