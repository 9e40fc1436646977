/* Benchmark (not a test) of the relay alone, without QEMU: a writer and a
 * reader in this process move N MiB per channel, first over one direct
 * loopback TCP connection per channel (the baseline), then through the
 * two relay halves (unix -> TCP -> unix), plain and TLS, with 1 and 4
 * channels. Both halves are driven by one thread, as in the engine's loop for a
 * plain relay (with TLS the engine gives each half a thread).
 * Prints Mbit/s, CPU seconds per GiB (the whole process: writer, reader and
 * relay; and the relay's thread alone) and the ratio against the baseline
 * of the same run. RELAY_PROBE_SEG_KIB and RELAY_PROBE_NSEGS set the
 * relay's segments (default: the library's).
 * usage: relay_probe [MiB per run] [only]   (default 512; only: "plain",
 * "tls" or "direct" runs that path alone, for profiling) */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "qmig_relay.h"
#include "qmig_transport.h"

#define MAXCH 4

static double now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec / 1e9;
}

static double cpu(void)
{
	struct timespec t;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
	return t.tv_sec + t.tv_nsec / 1e9;
}

/* Both halves on one thread, as in the engine's loop. */
struct driver {
	struct qmig_relay *r[2];
	pthread_t th;
	volatile int stop;
	double cpu; /* this thread's CPU seconds, when it stopped */
};

static void *drive(void *arg)
{
	struct driver *h = arg;
	struct pollfd p[2];
	struct qmig_relay_event ev;
	struct timespec t;

	for (int i = 0; i < 2; i++)
		p[i] = (struct pollfd){.fd = qmig_relay_get_fd(h->r[i]), .events = POLLIN};
	while (!h->stop) {
		poll(p, 2, 20);
		for (int i = 0; i < 2; i++) {
			qmig_relay_process(h->r[i]);
			while (qmig_relay_next_event(h->r[i], &ev))
				if (ev.type == QMIG_RELAY_EV_ERROR)
					fprintf(stderr, "relay: %s\n", ev.message);
		}
	}
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
	h->cpu = t.tv_sec + t.tv_nsec / 1e9;
	return NULL;
}

/* Move total bytes from each w[i] to r[i]; returns seconds. */
static double pump(const int *w, const int *r, int n, size_t total)
{
	static char buf[1 << 20];
	size_t sent[MAXCH] = {0}, got[MAXCH] = {0};
	double t0 = now();
	int done = 0;

	while (done < n) {
		struct pollfd p[2 * MAXCH];

		for (int i = 0; i < n; i++) {
			p[2 * i] = (struct pollfd){.fd = w[i], .events = sent[i] < total ? POLLOUT : 0};
			p[2 * i + 1] = (struct pollfd){.fd = r[i], .events = got[i] < total ? POLLIN : 0};
		}
		if (poll(p, (nfds_t)(2 * n), 10000) <= 0) {
			fprintf(stderr, "relay_probe: stalled\n");
			exit(1);
		}
		for (int i = 0; i < n; i++) {
			if (p[2 * i].revents & POLLOUT) {
				size_t len = total - sent[i] < sizeof(buf) ? total - sent[i] : sizeof(buf);
				ssize_t k = send(w[i], buf, len, MSG_DONTWAIT | MSG_NOSIGNAL);

				if (k > 0)
					sent[i] += (size_t)k;
			}
			if (p[2 * i + 1].revents & POLLIN) {
				ssize_t k = recv(r[i], buf, sizeof(buf), MSG_DONTWAIT);

				if (k > 0 && (got[i] += (size_t)k) == total)
					done++;
			}
		}
	}
	return now() - t0;
}

static void report(const char *name, int n, size_t total, double secs, double cpus, double rcpu,
		   double base)
{
	double mbps = (double)total * n * 8 / secs / 1e6, gib = (double)total * n / (1 << 30);

	printf("  %-12s %d ch %8.0f Mbit/s %6.2f CPU s/GiB", name, n, mbps, cpus / gib);
	if (rcpu >= 0)
		printf(" (relay thread %.2f)", rcpu / gib);
	if (base > 0)
		printf("   %.2fx direct TCP", mbps / base);
	printf("\n");
}

static double direct(int n, size_t total)
{
	char msg[256];
	int lfd = qmig_tcp_listen("127.0.0.1", 0, 16, msg, sizeof(msg)), w[MAXCH], r[MAXCH];
	double c0, secs;

	if (lfd < 0) {
		fprintf(stderr, "%s\n", msg);
		exit(1);
	}
	for (int i = 0; i < n; i++) {
		w[i] = qmig_tcp_connect("127.0.0.1", (unsigned)qmig_tcp_local_port(lfd), 5000, msg,
					sizeof(msg));
		r[i] = qmig_tcp_accept(lfd, 5000);
		if (w[i] < 0 || r[i] < 0)
			exit(1);
	}
	c0 = cpu();
	secs = pump(w, r, n, total);
	report("direct TCP", n, total, secs, cpu() - c0, -1, 0);
	for (int i = 0; i < n; i++) {
		close(w[i]);
		close(r[i]);
	}
	close(lfd);
	return (double)total * n * 8 / secs / 1e6;
}

static void relayed(int n, size_t total, const char *tls_dir, double base)
{
	struct qmig_relay_opts d = QMIG_RELAY_OPTS_INIT, s = QMIG_RELAY_OPTS_INIT;
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct driver h = {0};
	char path[64], msg[256];
	int lfd, w[MAXCH], r[MAXCH];
	double c0, secs;

	snprintf(path, sizeof(path), "/tmp/qmig-relay-probe-%d.sock", (int)getpid());
	unlink(path);
	lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	if (bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) || listen(lfd, 16))
		exit(1);
	d.side = QMIG_RELAY_DEST;
	d.unix_path = path;
	d.host = "127.0.0.1";
	d.tls_dir = tls_dir;
	d.seg_kib = s.seg_kib = getenv("RELAY_PROBE_SEG_KIB") ? atoi(getenv("RELAY_PROBE_SEG_KIB")) : 0;
	d.nsegs = s.nsegs = getenv("RELAY_PROBE_NSEGS") ? atoi(getenv("RELAY_PROBE_NSEGS")) : 0;
	s.side = QMIG_RELAY_SOURCE;
	s.host = "127.0.0.1";
	s.tls_dir = tls_dir;
	if (qmig_relay_new(&h.r[1], &d, msg, sizeof(msg)) < 0) {
		fprintf(stderr, "%s\n", msg);
		exit(1);
	}
	s.port = qmig_relay_port(h.r[1]);
	if (qmig_relay_new(&h.r[0], &s, msg, sizeof(msg)) < 0) {
		fprintf(stderr, "%s\n", msg);
		exit(1);
	}
	pthread_create(&h.th, NULL, drive, &h);
	pthread_setname_np(h.th, "relay");
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", qmig_relay_unix_path(h.r[0]));
	for (int i = 0; i < n; i++) {
		w[i] = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (connect(w[i], (struct sockaddr *)&sa, sizeof(sa)) < 0)
			exit(1);
		r[i] = accept(lfd, NULL, NULL); /* in order, as QEMU needs */
	}
	c0 = cpu();
	secs = pump(w, r, n, total);
	h.stop = 1;
	pthread_join(h.th, NULL);
	report(tls_dir ? "relay TLS" : "relay", n, total, secs, cpu() - c0, h.cpu, base);
	for (int i = 0; i < n; i++) {
		close(w[i]);
		close(r[i]);
	}
	qmig_relay_free(h.r[0]);
	qmig_relay_free(h.r[1]);
	close(lfd);
	unlink(path);
}

int main(int argc, char **argv)
{
	static const char *const hosts[] = {"127.0.0.1"};
	size_t mib = argc > 1 ? strtoul(argv[1], NULL, 10) : 512;
	const char *only = argc > 2 ? argv[2] : "";
	char dir[64], msg[256], cmd[160];

	snprintf(dir, sizeof(dir), "/tmp/qmig-relay-probe-XXXXXX");
	if (!mkdtemp(dir) || qmig_tls_init(dir, hosts, 1, NULL, msg, sizeof(msg)) < 0) {
		fprintf(stderr, "relay_probe: certificates: %s\n", msg);
		return 1;
	}
	printf("relay alone (no QEMU), loopback, %zu MiB per run:\n", mib);
	for (int n = 1; n <= MAXCH; n += 3) {
		size_t total = (mib << 20) / (size_t)n;
		double base = *only && strcmp(only, "direct") ? 0 : direct(n, total);

		if (!*only || !strcmp(only, "plain"))
			relayed(n, total, NULL, base);
		if (!*only || !strcmp(only, "tls"))
			relayed(n, total, dir, base);
	}
	snprintf(cmd, sizeof(cmd), "rm -rf '%s' '%s.ca'", dir, dir); /* and the CA's key */
	return system(cmd) == 0 ? 0 : 1;
}
