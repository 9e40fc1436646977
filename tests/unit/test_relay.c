/* Unit tests of the relay (transport/relay*.c): two relays in this process
 * joined over loopback TCP (or TLS), "QEMUs" played by the test on unix
 * sockets at both ends. Large streams both ways, several channels kept in
 * order, back-pressure from a side that stops reading, and a side that
 * dies mid-stream. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "qmig_relay.h"
#include "qmig_transport.h"
#include "unit.h"

#define MAXP 8
#define MiB (1024 * 1024ull)

static char base[64];
static char tlsdir[128];

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Byte i of a stream with seed s: a pattern a lost, doubled or reordered
 * block cannot reproduce. */
static unsigned char pat(uint64_t i, unsigned s)
{
	uint64_t x = (i >> 4) * 0x9e3779b97f4a7c15ull + s * 0x632be59bd9b4e019ull;

	return (unsigned char)((x >> 29) ^ i ^ s);
}

/* One end of a channel as a QEMU would hold it. */
struct end {
	int fd;
	unsigned tx_seed, rx_seed;
	uint64_t tx_want, tx, rx;
	bool shut, eof, bad, stop_reading;
	int err;
};

struct rig {
	struct qmig_relay *src, *dst;
	int lfd;                      /* the "destination QEMU" listener */
	char qsock[100];
	struct end a[MAXP], b[MAXP];  /* a: source QEMU side, b: destination */
	int na, nb;
	struct qmig_relay_event ev[2][64];
	int nev[2];
	unsigned relay_wakeups;
	bool relay_failed;
	uint64_t down_want[MAXP];     /* what destination channel k answers */
};

static int rig_open2(struct rig *g, bool tls, unsigned seg_kib, unsigned preconnect);

static int rig_open(struct rig *g, bool tls, unsigned seg_kib)
{
	return rig_open2(g, tls, seg_kib, 0);
}

static int rig_open2(struct rig *g, bool tls, unsigned seg_kib, unsigned preconnect)
{
	struct qmig_relay_opts d = QMIG_RELAY_OPTS_INIT, s = QMIG_RELAY_OPTS_INIT;
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	char msg[256] = "";
	int r;

	static unsigned rigs;

	memset(g, 0, sizeof(*g));
	/* A name of its own: a test may hold several rigs at once. */
	snprintf(g->qsock, sizeof(g->qsock), "%s/dst-qemu-%u.sock", base, rigs++);
	unlink(g->qsock);
	g->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", g->qsock);
	if (g->lfd < 0 || bind(g->lfd, (struct sockaddr *)&sa, sizeof(sa)) || listen(g->lfd, 16))
		return -errno;
	d.side = QMIG_RELAY_DEST;
	d.unix_path = g->qsock;
	d.host = "127.0.0.1";
	d.tls_dir = tls ? tlsdir : NULL;
	d.seg_kib = seg_kib;
	r = qmig_relay_new(&g->dst, &d, msg, sizeof(msg));
	if (r < 0) {
		fprintf(stderr, "dst relay: %s\n", msg);
		return r;
	}
	s.side = QMIG_RELAY_SOURCE;
	s.host = "127.0.0.1";
	s.port = qmig_relay_port(g->dst);
	s.tls_dir = tls ? tlsdir : NULL;
	s.tls_hostname = "localhost";
	s.seg_kib = seg_kib;
	s.preconnect = preconnect;
	r = qmig_relay_new(&g->src, &s, msg, sizeof(msg));
	if (r < 0)
		fprintf(stderr, "src relay: %s\n", msg);
	return r;
}

static void rig_close(struct rig *g)
{
	for (int i = 0; i < g->na; i++)
		if (g->a[i].fd >= 0)
			close(g->a[i].fd);
	for (int i = 0; i < g->nb; i++)
		if (g->b[i].fd >= 0)
			close(g->b[i].fd);
	qmig_relay_free(g->src);
	qmig_relay_free(g->dst);
	if (g->lfd >= 0)
		close(g->lfd);
	unlink(g->qsock);
}

/* The source QEMU connects (channel k of the migration). */
static int connect_src(struct rig *g, unsigned seed, uint64_t up, unsigned rx_seed)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct end *e = &g->a[g->na];
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", qmig_relay_unix_path(g->src));
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return -errno;
	memset(e, 0, sizeof(*e));
	e->fd = fd;
	e->tx_seed = seed;
	e->tx_want = up;
	e->rx_seed = rx_seed;
	return g->na++;
}

static void end_io(struct end *e)
{
	char buf[65536];
	ssize_t n;

	while (e->fd >= 0 && e->tx < e->tx_want) {
		size_t len = e->tx_want - e->tx < sizeof(buf) ? e->tx_want - e->tx : sizeof(buf);

		for (size_t i = 0; i < len; i++)
			buf[i] = (char)pat(e->tx + i, e->tx_seed);
		n = send(e->fd, buf, len, MSG_NOSIGNAL);
		if (n <= 0) {
			if (n < 0 && errno != EAGAIN)
				e->err = -errno;
			break;
		}
		e->tx += (uint64_t)n;
	}
	if (e->fd >= 0 && e->tx == e->tx_want && !e->shut && !e->err) {
		shutdown(e->fd, SHUT_WR);
		e->shut = true;
	}
	while (e->fd >= 0 && !e->eof && !e->stop_reading) {
		n = recv(e->fd, buf, sizeof(buf), 0);
		if (n == 0)
			e->eof = true;
		if (n <= 0) {
			if (n < 0 && errno != EAGAIN)
				e->err = -errno;
			break;
		}
		for (ssize_t i = 0; i < n; i++)
			if ((unsigned char)buf[i] != pat(e->rx + (uint64_t)i, e->rx_seed))
				e->bad = true;
		e->rx += (uint64_t)n;
	}
}

/* One round: wait for anything (at most 100 ms), move everything. */
static void rig_step(struct rig *g)
{
	struct pollfd p[2 + 1 + 2 * MAXP];
	int n = 0, t;

	p[n++] = (struct pollfd){.fd = qmig_relay_get_fd(g->src), .events = POLLIN};
	p[n++] = (struct pollfd){.fd = qmig_relay_get_fd(g->dst), .events = POLLIN};
	p[n++] = (struct pollfd){.fd = g->lfd, .events = POLLIN};
	for (int i = 0; i < g->na + g->nb; i++) {
		struct end *e = i < g->na ? &g->a[i] : &g->b[i - g->na];
		short ev = (e->eof || e->stop_reading ? 0 : POLLIN) |
			   (e->tx < e->tx_want ? POLLOUT : 0);

		if (e->fd >= 0 && ev && !e->err)
			p[n++] = (struct pollfd){.fd = e->fd, .events = ev};
	}
	t = 100;
	for (int i = 0; i < 2; i++) {
		int rt = qmig_relay_get_timeout(i ? g->dst : g->src);

		if (rt >= 0 && rt < t)
			t = rt;
	}
	poll(p, (nfds_t)n, t);
	if (p[0].revents || p[1].revents)
		g->relay_wakeups++;
	if (qmig_relay_process(g->src) < 0 || qmig_relay_process(g->dst) < 0)
		g->relay_failed = true;
	for (int i = 0; i < 2; i++) {
		struct qmig_relay *r = i ? g->dst : g->src;

		while (g->nev[i] < 64 && qmig_relay_next_event(r, &g->ev[i][g->nev[i]]))
			g->nev[i]++;
	}
	for (;;) {
		int fd = accept4(g->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		struct end *e = &g->b[g->nb];

		if (fd < 0)
			break;
		CU_ASSERT_FATAL(g->nb < MAXP);
		memset(e, 0, sizeof(*e));
		e->fd = fd;
		/* Channel k of the destination answers with seed 100 + k and
		 * expects what channel k of the source sent. */
		e->rx_seed = g->nb < g->na ? g->a[g->nb].tx_seed : 0;
		e->tx_seed = 100 + (unsigned)g->nb;
		e->tx_want = g->down_want[g->nb];
		g->nb++;
	}
	for (int i = 0; i < g->na; i++)
		end_io(&g->a[i]);
	for (int i = 0; i < g->nb; i++)
		end_io(&g->b[i]);
}

static int count_ev(const struct rig *g, int side, enum qmig_relay_event_type t)
{
	int n = 0;

	for (int i = 0; i < g->nev[side]; i++)
		n += g->ev[side][i].type == t;
	return n;
}

static bool all_done(const struct rig *g, uint64_t const *down)
{
	if (g->nb < g->na)
		return false;
	for (int i = 0; i < g->na; i++)
		if (!g->a[i].eof || !g->b[i].eof || g->b[i].rx != g->a[i].tx_want ||
		    g->a[i].rx != down[i])
			return false;
	return count_ev(g, 0, QMIG_RELAY_EV_CLOSED) == g->na &&
	       count_ev(g, 1, QMIG_RELAY_EV_CLOSED) == g->na;
}

/* n channels, up[i] bytes from the source and down[i] back, all at once;
 * every byte checked, channels matched in order, both relays report the
 * channels closed cleanly with the byte counts. */
static void stream(bool tls, int n, const uint64_t *up, const uint64_t *down)
{
	struct qmig_relay_stats st;
	struct rig g;
	int64_t t0;
	uint64_t sum_up = 0, sum_down = 0;

	CU_ASSERT_FATAL(rig_open(&g, tls, 0) == 0);
	memcpy(g.down_want, down, sizeof(*down) * (size_t)n);
	for (int i = 0; i < n; i++) {
		CU_ASSERT_FATAL(connect_src(&g, 1 + (unsigned)i, up[i], 100 + (unsigned)i) == i);
		sum_up += up[i];
		sum_down += down[i];
	}
	t0 = now_ms();
	while (!all_done(&g, down) && now_ms() - t0 < 60000)
		rig_step(&g);
	CU_ASSERT(all_done(&g, down));
	for (int i = 0; i < n && !all_done(&g, down); i++)
		fprintf(stderr, "\n  channel %d: up %llu/%llu err %d/%d bad %d/%d, down %llu/%llu "
			"eof %d/%d\n", i, (unsigned long long)g.b[i].rx,
			(unsigned long long)up[i], g.a[i].err, g.b[i].err, g.a[i].bad, g.b[i].bad,
			(unsigned long long)g.a[i].rx, (unsigned long long)down[i], g.a[i].eof,
			g.b[i].eof);
	for (int i = 0; i < n; i++) {
		CU_ASSERT(!g.a[i].bad && !g.b[i].bad && !g.a[i].err && !g.b[i].err);
		CU_ASSERT_EQUAL(g.b[i].rx, up[i]);
		CU_ASSERT_EQUAL(g.a[i].rx, down[i]);
	}
	/* The "source QEMU"'s end of each channel got the relay's 1 MiB send
	 * buffer (the kernel reports it doubled), where it had 208 KiB. As
	 * root: SO_SNDBUFFORCE passes net.core.wmem_max. */
	for (int i = 0; i < n && geteuid() == 0; i++) {
		int sz = 0;
		socklen_t sl = sizeof(sz);

		CU_ASSERT(getsockopt(g.a[i].fd, SOL_SOCKET, SO_SNDBUF, &sz, &sl) == 0 &&
			  sz >= 2 * 1024 * 1024);
	}
	CU_ASSERT_EQUAL(count_ev(&g, 0, QMIG_RELAY_EV_OPEN), n);
	CU_ASSERT_EQUAL(count_ev(&g, 1, QMIG_RELAY_EV_OPEN), n);
	CU_ASSERT_EQUAL(count_ev(&g, 0, QMIG_RELAY_EV_ERROR), 0);
	CU_ASSERT_EQUAL(count_ev(&g, 1, QMIG_RELAY_EV_ERROR), 0);
	for (int s = 0; s < 2; s++) {
		qmig_relay_get_stats(s ? g.dst : g.src, &st);
		CU_ASSERT_EQUAL(st.bytes_up, sum_up);
		CU_ASSERT_EQUAL(st.bytes_down, sum_down);
		CU_ASSERT_EQUAL(st.channels_total, (unsigned)n);
		CU_ASSERT_EQUAL(st.channels_open, 0);
		CU_ASSERT_EQUAL(st.tls, tls ? 1 : 0);
		CU_ASSERT(st.mem_per_channel > 0 && st.mem_per_channel <= 1024 * 1024);
	}
	for (int i = 0; i < n; i++) {
		struct qmig_relay_channel_stats cs;

		CU_ASSERT_EQUAL(qmig_relay_channel_stats(g.src, (unsigned)i + 1, &cs), 0);
		CU_ASSERT_EQUAL(cs.bytes_up, up[i]);
		CU_ASSERT_EQUAL(cs.bytes_down, down[i]);
		CU_ASSERT(!cs.open && !cs.error && cs.close_ns >= cs.open_ns);
	}
	CU_ASSERT(!g.relay_failed);
	rig_close(&g);
}

static void test_plain_large(void)
{
	uint64_t up[] = {64 * MiB}, down[] = {8 * MiB + 17};

	stream(false, 1, up, down);
}

static void test_plain_channels(void)
{
	uint64_t up[] = {8 * MiB + 1, 3 * MiB, 5 * MiB + 4095, 1}, down[] = {1 * MiB, 0, 7, 0};

	stream(false, 4, up, down);
}

static void test_tls_large(void)
{
	uint64_t up[] = {32 * MiB + 5}, down[] = {4 * MiB};

	stream(true, 1, up, down);
}

static void test_tls_channels(void)
{
	uint64_t up[] = {4 * MiB, 2 * MiB + 3, 1, 0}, down[] = {1 * MiB + 9, 0, 0, 12};

	stream(true, 4, up, down);
}

static double cpu_s(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_utime.tv_sec + ru.ru_stime.tv_sec +
	       (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

/* The destination QEMU stops reading: the source's writes block after a
 * bounded amount, the relays' memory does not change, they do not spin;
 * once it reads again, every byte arrives. */
static void backpressure(bool tls)
{
	struct qmig_relay_stats st0, st1, st;
	uint64_t down[] = {0};
	struct rig g;
	int64_t t0;
	double c0;
	unsigned w0, idle_rounds = 0;
	uint64_t stuck, offered = 256 * MiB;

	CU_ASSERT_FATAL(rig_open(&g, tls, 0) == 0);
	qmig_relay_get_stats(g.src, &st0);
	CU_ASSERT_FATAL(connect_src(&g, 7, offered, 100) == 0);
	t0 = now_ms();
	while (g.nb < 1 && now_ms() - t0 < 10000)
		rig_step(&g);
	CU_ASSERT_FATAL(g.nb == 1);
	g.b[0].stop_reading = true;
	/* Until nothing moves for a whole round of 100 ms, twice. */
	t0 = now_ms();
	while (idle_rounds < 2 && now_ms() - t0 < 30000) {
		uint64_t before = g.a[0].tx;

		w0 = g.relay_wakeups;
		rig_step(&g);
		idle_rounds = (g.a[0].tx == before && g.relay_wakeups == w0) ? idle_rounds + 1 : 0;
	}
	CU_ASSERT_FATAL(idle_rounds >= 2);
	stuck = g.a[0].tx;
	/* Relay buffers plus the kernel's socket buffers: far below the
	 * stream, whatever its length. */
	CU_ASSERT(stuck < 48 * MiB);
	CU_ASSERT(stuck < offered);
	/* Half a second of nothing: no wakeups, (almost) no CPU. */
	c0 = cpu_s();
	w0 = g.relay_wakeups;
	t0 = now_ms();
	while (now_ms() - t0 < 500)
		rig_step(&g);
	CU_ASSERT(g.relay_wakeups - w0 <= 2);
	CU_ASSERT(cpu_s() - c0 < 0.1);
	CU_ASSERT_EQUAL(g.a[0].tx, stuck);
	qmig_relay_get_stats(g.src, &st1);
	CU_ASSERT_EQUAL(st1.mem_total, st0.mem_total);
	CU_ASSERT_EQUAL(st1.channels_open, 1);
	/* Reading again: the whole stream arrives intact. */
	g.b[0].stop_reading = false;
	t0 = now_ms();
	while (!all_done(&g, down) && now_ms() - t0 < 120000)
		rig_step(&g);
	CU_ASSERT(all_done(&g, down));
	CU_ASSERT(!g.b[0].bad);
	CU_ASSERT_EQUAL(g.b[0].rx, offered);
	qmig_relay_get_stats(g.dst, &st);
	CU_ASSERT_EQUAL(st.bytes_up, offered);
	rig_close(&g);
}

static void test_backpressure_plain(void)
{
	backpressure(false);
}

static void test_backpressure_tls(void)
{
	backpressure(true);
}

/* A side dies mid-stream (closed with unread data, as a killed QEMU
 * leaves it): both relays report the channel broken, with an error, and
 * the other QEMU's connection is closed. */
static void peer_dies(bool tls, bool dst_dies)
{
	struct rig g;
	int64_t t0;

	CU_ASSERT_FATAL(rig_open(&g, tls, 0) == 0);
	CU_ASSERT_FATAL(connect_src(&g, 3, 512 * MiB, 100) == 0);
	t0 = now_ms();
	g.down_want[0] = 512 * MiB;
	while ((g.nb < 1 || g.b[0].rx < 4 * MiB) && now_ms() - t0 < 20000)
		rig_step(&g);
	CU_ASSERT_FATAL(g.nb == 1 && g.b[0].rx >= 4 * MiB);
	if (dst_dies) {
		/* Stop reading first, so that unread data is left behind. */
		g.b[0].stop_reading = true;
		for (int i = 0; i < 5; i++)
			rig_step(&g);
		close(g.b[0].fd);
		g.b[0].fd = -1;
	} else {
		g.a[0].stop_reading = true;
		for (int i = 0; i < 5; i++)
			rig_step(&g);
		close(g.a[0].fd);
		g.a[0].fd = -1;
	}
	t0 = now_ms();
	while ((count_ev(&g, 0, QMIG_RELAY_EV_ERROR) < 1 ||
		count_ev(&g, 1, QMIG_RELAY_EV_ERROR) < 1 ||
		(dst_dies ? !(g.a[0].eof || g.a[0].err) : !(g.b[0].eof || g.b[0].err))) &&
	       now_ms() - t0 < 20000)
		rig_step(&g);
	CU_ASSERT_EQUAL(count_ev(&g, 0, QMIG_RELAY_EV_ERROR), 1);
	CU_ASSERT_EQUAL(count_ev(&g, 1, QMIG_RELAY_EV_ERROR), 1);
	CU_ASSERT_EQUAL(count_ev(&g, 0, QMIG_RELAY_EV_CLOSED), 0);
	CU_ASSERT_EQUAL(count_ev(&g, 1, QMIG_RELAY_EV_CLOSED), 0);
	for (int s = 0; s < 2; s++)
		for (int i = 0; i < g.nev[s]; i++)
			if (g.ev[s][i].type == QMIG_RELAY_EV_ERROR) {
				CU_ASSERT(g.ev[s][i].error < 0);
				CU_ASSERT(g.ev[s][i].message[0] != 0);
				CU_ASSERT(g.ev[s][i].bytes_up > 0);
			}
	/* The survivor's QEMU saw its connection end. */
	CU_ASSERT(dst_dies ? (g.a[0].eof || g.a[0].err) : (g.b[0].eof || g.b[0].err));
	rig_close(&g);
}

static void test_dst_dies_plain(void)
{
	peer_dies(false, true);
}

static void test_src_dies_plain(void)
{
	peer_dies(false, false);
}

static void test_dst_dies_tls(void)
{
	peer_dies(true, true);
}

/* The far relay is not there: the channel fails with a clear error and
 * the source QEMU's connection is closed. */
static void test_no_far_relay(void)
{
	struct qmig_relay_opts s = QMIG_RELAY_OPTS_INIT;
	struct qmig_relay_event ev;
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct qmig_relay *r;
	char msg[256] = "", b;
	int fd, lfd, got = 0;
	int64_t t0;

	/* A port nobody listens on: bound, never listening. */
	lfd = qmig_tcp_listen("127.0.0.1", 0, 1, msg, sizeof(msg));
	CU_ASSERT_FATAL(lfd >= 0);
	s.side = QMIG_RELAY_SOURCE;
	s.host = "127.0.0.1";
	s.port = (unsigned)qmig_tcp_local_port(lfd);
	close(lfd);
	CU_ASSERT_FATAL(qmig_relay_new(&r, &s, msg, sizeof(msg)) == 0);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", qmig_relay_unix_path(r));
	CU_ASSERT_FATAL(connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
	t0 = now_ms();
	while (!got && now_ms() - t0 < 10000) {
		struct pollfd p = {.fd = qmig_relay_get_fd(r), .events = POLLIN};

		poll(&p, 1, 100);
		qmig_relay_process(r);
		while (qmig_relay_next_event(r, &ev))
			if (ev.type == QMIG_RELAY_EV_ERROR)
				got = 1;
	}
	CU_ASSERT(got);
	CU_ASSERT_EQUAL(ev.error, -ECONNREFUSED);
	CU_ASSERT_PTR_NOT_NULL(strstr(ev.message, "connect"));
	CU_ASSERT(recv(fd, &b, 1, 0) <= 0);
	close(fd);
	qmig_relay_free(r);
}

/* Bad options are refused with a message; TLS with a missing directory
 * names the file. */
static void test_bad_opts(void)
{
	struct qmig_relay_opts o = QMIG_RELAY_OPTS_INIT;
	struct qmig_relay *r = NULL;
	char msg[256] = "";

	CU_ASSERT_EQUAL(qmig_relay_new(&r, &o, msg, sizeof(msg)), -EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(msg, "side"));
	o.side = QMIG_RELAY_SOURCE;
	CU_ASSERT_EQUAL(qmig_relay_new(&r, &o, msg, sizeof(msg)), -EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(msg, "host"));
	o.side = QMIG_RELAY_DEST;
	o.unix_path = "/nonexistent/x.sock";
	o.host = "127.0.0.1";
	o.tls_dir = "/nonexistent-tls";
	CU_ASSERT(qmig_relay_new(&r, &o, msg, sizeof(msg)) < 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(msg, "/nonexistent-tls/ca-cert.pem"));
	o.version = 99;
	CU_ASSERT_EQUAL(qmig_relay_new(&r, &o, msg, sizeof(msg)), -EINVAL);
	CU_ASSERT_PTR_NULL(r);
	qmig_relay_free(NULL);
}

/* A TLS peer whose certificate does not name the host asked for. */
static void test_tls_wrong_name(void)
{
	struct qmig_relay_opts d = QMIG_RELAY_OPTS_INIT, s = QMIG_RELAY_OPTS_INIT;
	struct rig g;
	char msg[256];
	int64_t t0;

	CU_ASSERT_FATAL(rig_open(&g, true, 0) == 0);
	qmig_relay_free(g.src);
	(void)d;
	s.side = QMIG_RELAY_SOURCE;
	s.host = "127.0.0.1";
	s.port = qmig_relay_port(g.dst);
	s.tls_dir = tlsdir;
	s.tls_hostname = "other.example";
	CU_ASSERT_FATAL(qmig_relay_new(&g.src, &s, msg, sizeof(msg)) == 0);
	CU_ASSERT_FATAL(connect_src(&g, 1, 1 * MiB, 100) == 0);
	t0 = now_ms();
	while ((count_ev(&g, 0, QMIG_RELAY_EV_ERROR) < 1 ||
		count_ev(&g, 1, QMIG_RELAY_EV_ERROR) < 1) && now_ms() - t0 < 10000)
		rig_step(&g);
	CU_ASSERT_EQUAL(count_ev(&g, 0, QMIG_RELAY_EV_ERROR), 1);
	CU_ASSERT_EQUAL(count_ev(&g, 1, QMIG_RELAY_EV_ERROR), 1);
	CU_ASSERT_EQUAL(g.nb, 0); /* never connected to the destination QEMU */
	for (int k = 0; k < 2; k++)
		for (int i = 0; i < g.nev[k]; i++)
			if (g.ev[k][i].type == QMIG_RELAY_EV_ERROR)
				CU_ASSERT(strstr(g.ev[k][i].message, k ? ":" : "certificate") != NULL);
	rig_close(&g);
}

/* A channel opened ahead: ready (and connected to the destination QEMU)
 * before the source QEMU connects, then it carries QEMU's stream. */
static void preconnect(bool tls)
{
	uint64_t down[] = {1 * MiB + 3};
	struct rig g;
	int64_t t0;

	CU_ASSERT_FATAL(rig_open2(&g, tls, 0, 1) == 0);
	g.down_want[0] = down[0];
	t0 = now_ms();
	while ((count_ev(&g, 0, QMIG_RELAY_EV_OPEN) < 1 || g.nb < 1) && now_ms() - t0 < 10000)
		rig_step(&g);
	CU_ASSERT_FATAL(count_ev(&g, 0, QMIG_RELAY_EV_OPEN) == 1 && g.nb == 1);
	CU_ASSERT_EQUAL(g.na, 0);
	CU_ASSERT_FATAL(connect_src(&g, 5, 6 * MiB + 1, 100) == 0);
	g.b[0].rx_seed = 5;
	t0 = now_ms();
	while (!all_done(&g, down) && now_ms() - t0 < 30000)
		rig_step(&g);
	CU_ASSERT(all_done(&g, down));
	CU_ASSERT(!g.b[0].bad && !g.a[0].bad);
	CU_ASSERT_EQUAL(count_ev(&g, 0, QMIG_RELAY_EV_OPEN), 1);
	CU_ASSERT_EQUAL(count_ev(&g, 0, QMIG_RELAY_EV_ERROR), 0);
	rig_close(&g);
}

static void test_preconnect_plain(void)
{
	preconnect(false);
}

static void test_preconnect_tls(void)
{
	preconnect(true);
}

/* preconnect to a far relay that is not there: EV_ERROR, before any QEMU. */
static void test_preconnect_unreachable(void)
{
	struct qmig_relay_opts s = QMIG_RELAY_OPTS_INIT;
	struct qmig_relay_event ev = {0};
	struct qmig_relay *r;
	char msg[256] = "";
	int lfd, got = 0;
	int64_t t0;

	lfd = qmig_tcp_listen("127.0.0.1", 0, 1, msg, sizeof(msg));
	CU_ASSERT_FATAL(lfd >= 0);
	s.side = QMIG_RELAY_SOURCE;
	s.host = "127.0.0.1";
	s.port = (unsigned)qmig_tcp_local_port(lfd);
	s.preconnect = 1;
	close(lfd);
	CU_ASSERT_FATAL(qmig_relay_new(&r, &s, msg, sizeof(msg)) == 0);
	t0 = now_ms();
	while (!got && now_ms() - t0 < 10000) {
		struct pollfd p = {.fd = qmig_relay_get_fd(r), .events = POLLIN};

		poll(&p, 1, 100);
		qmig_relay_process(r);
		while (!got && qmig_relay_next_event(r, &ev))
			got = ev.type == QMIG_RELAY_EV_ERROR;
	}
	CU_ASSERT(got);
	CU_ASSERT_EQUAL(ev.error, -ECONNREFUSED);
	qmig_relay_free(r);
	s.side = QMIG_RELAY_DEST;
	s.unix_path = "/tmp/x.sock";
	CU_ASSERT_EQUAL(qmig_relay_new(&r, &s, msg, sizeof(msg)), -EINVAL);
}

/* The shared token bucket: a rate is kept within a few percent. */
static void test_limiter(void)
{
	struct qmig_relay_limiter *l;
	struct qmig_relay_opts d = QMIG_RELAY_OPTS_INIT;
	struct rig g;
	uint64_t down[] = {0}, rate = 40 * MiB;
	int64_t t0, ms;
	char msg[256];

	(void)d;
	(void)msg;
	CU_ASSERT_FATAL(qmig_relay_limiter_new(&l, rate) == 0);
	CU_ASSERT_FATAL(rig_open(&g, false, 0) == 0);
	/* The source relay again, with the limiter. */
	{
		struct qmig_relay_opts s = QMIG_RELAY_OPTS_INIT;

		qmig_relay_free(g.src);
		s.side = QMIG_RELAY_SOURCE;
		s.host = "127.0.0.1";
		s.port = qmig_relay_port(g.dst);
		s.limiter = l;
		CU_ASSERT_FATAL(qmig_relay_new(&g.src, &s, msg, sizeof(msg)) == 0);
	}
	CU_ASSERT_FATAL(connect_src(&g, 9, 20 * MiB, 100) == 0);
	t0 = now_ms();
	while (!all_done(&g, down) && now_ms() - t0 < 20000)
		rig_step(&g);
	ms = now_ms() - t0;
	CU_ASSERT(all_done(&g, down));
	/* 20 MiB at 40 MiB/s: 500 ms, less the 50 ms burst. */
	CU_ASSERT(ms >= 420);
	rig_close(&g);
	qmig_relay_limiter_free(l);
}

/* Two migrations sharing one limiter: one with a single channel, one with
 * three, both with more to send than the limit lets through. Each gets
 * about half of the rate (a share per relay, not per channel), and both
 * together stay within it. */
static void test_limiter_fair(void)
{
	struct qmig_relay_limiter *l;
	struct rig g[2];
	const uint64_t rate = 2 * MiB;
	uint64_t at0[2] = {0}, at1[2] = {0};
	int64_t t0, t1 = 0, t2 = 0;
	char msg[256];

	CU_ASSERT_FATAL(qmig_relay_limiter_new(&l, rate) == 0);
	for (int k = 0; k < 2; k++) {
		struct qmig_relay_opts s = QMIG_RELAY_OPTS_INIT;

		CU_ASSERT_FATAL(rig_open(&g[k], false, 0) == 0);
		qmig_relay_free(g[k].src);
		s.side = QMIG_RELAY_SOURCE;
		s.host = "127.0.0.1";
		s.port = qmig_relay_port(g[k].dst);
		s.limiter = l;
		CU_ASSERT_FATAL(qmig_relay_new(&g[k].src, &s, msg, sizeof(msg)) == 0);
		for (int c = 0; c < (k ? 3 : 1); c++)
			CU_ASSERT_FATAL(connect_src(&g[k], 20 + (unsigned)c, 256 * MiB, 0) == c);
	}
	/* Half a second for every channel to open and the bucket to settle,
	 * then 2 s measured. The rate is low enough for both to be held by the
	 * limiter, not by this loop, on a loaded machine and under ASan. */
	t0 = now_ms();
	while (now_ms() - t0 < 10000 && !t2) {
		uint64_t got[2] = {0};

		for (int k = 0; k < 2; k++) {
			rig_step(&g[1 - k]);
			for (int c = 0; c < g[k].nb; c++)
				got[k] += g[k].b[c].rx;
		}
		if (!t1 && g[0].nb == 1 && g[1].nb == 3 && got[0] && got[1] && now_ms() - t0 >= 500) {
			t1 = now_ms();
			memcpy(at0, got, sizeof(got));
		} else if (t1 && now_ms() - t1 >= 2000) {
			t2 = now_ms();
			memcpy(at1, got, sizeof(got));
		}
	}
	CU_ASSERT_FATAL(t2 > 0);
	{
		double a = (double)(at1[0] - at0[0]), b = (double)(at1[1] - at0[1]);
		double secs = (t2 - t1) / 1000.0, share = a / (a + b);

		fprintf(stderr, "\n  shared limit %llu MiB/s: 1 channel %.2f MiB/s, 3 channels "
			"%.2f MiB/s (share %.2f) ", (unsigned long long)(rate / MiB),
			a / secs / MiB, b / secs / MiB, share);
		CU_ASSERT(share > 0.4 && share < 0.6);
		/* Within the limit (plus the 50 ms burst), and moving. */
		CU_ASSERT((a + b) / secs <= rate * 1.1);
		CU_ASSERT((a + b) / secs >= rate * 0.4);
	}
	for (int k = 0; k < 2; k++) {
		for (int c = 0; c < g[k].na; c++)
			g[k].a[c].tx_want = g[k].a[c].tx; /* stop writing */
		rig_close(&g[k]);
	}
	qmig_relay_limiter_free(l);
}

static int suite_init(void)
{
	static const char *const hosts[] = {"localhost", "127.0.0.1"};
	char msg[256] = "";

	snprintf(base, sizeof(base), "/tmp/qmig-test-relay-XXXXXX");
	if (!mkdtemp(base))
		return -1;
	snprintf(tlsdir, sizeof(tlsdir), "%s/tls", base);
	if (qmig_tls_init(tlsdir, hosts, 2, NULL, msg, sizeof(msg)) < 0) {
		fprintf(stderr, "tls init: %s\n", msg);
		return -1;
	}
	return 0;
}

static int suite_cleanup(void)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", base);
	return system(cmd) == 0 ? 0 : -1;
}

UNIT_SUITE(relay, suite_init, suite_cleanup,
	   {"plain: 64 MiB up, 8 MiB down", test_plain_large},
	   {"plain: four channels in order", test_plain_channels},
	   {"TLS: 32 MiB up, 4 MiB down", test_tls_large},
	   {"TLS: four channels in order", test_tls_channels},
	   {"back-pressure (plain): fixed memory, no spinning", test_backpressure_plain},
	   {"back-pressure (TLS): fixed memory, no spinning", test_backpressure_tls},
	   {"destination dies mid-stream (plain)", test_dst_dies_plain},
	   {"source dies mid-stream (plain)", test_src_dies_plain},
	   {"destination dies mid-stream (TLS)", test_dst_dies_tls},
	   {"far relay absent: connect error", test_no_far_relay},
	   {"bad options refused", test_bad_opts},
	   {"TLS: wrong host name refused", test_tls_wrong_name},
	   {"rate limiter", test_limiter},
	   {"rate limiter shared fairly by two relays", test_limiter_fair},
	   {"preconnect (plain): ready before QEMU", test_preconnect_plain},
	   {"preconnect (TLS): ready before QEMU", test_preconnect_tls},
	   {"preconnect: far relay absent", test_preconnect_unreachable})
