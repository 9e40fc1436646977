/* Benchmark (not a test) of the QMP layer:
 *  1. the protocol core alone: query-migrate replies parsed per second, the
 *     reply being the exact bytes a QEMU 7.2 sent during a migration;
 *  2. the round trip of query-status against a real QEMU (-M none):
 *     median and p99 over N calls (default 2000).
 * usage: qmp_bench [N] */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "qmig_commands.h"
#include "qmig_qmp.h"

/* Captured from QEMU 7.2 (Debian), source side, during a precopy pass;
 * "%llu" stands where QEMU echoed our id. */
static const char reply_fmt[] =
    "{\"return\": {\"expected-downtime\": 300, \"status\": \"active\", \"setup-time\": 1, "
    "\"total-time\": 1661, \"ram\": {\"total\": 67641344, \"postcopy-requests\": 0, "
    "\"dirty-sync-count\": 1, \"multifd-bytes\": 0, \"pages-per-second\": 11000, "
    "\"downtime-bytes\": 0, \"page-size\": 4096, \"remaining\": 38473728, "
    "\"postcopy-bytes\": 0, \"mbps\": 0.79342574257425746, \"transferred\": 195272, "
    "\"dirty-sync-missed-zero-copy\": 0, \"precopy-bytes\": 195272, \"duplicate\": 7089, "
    "\"dirty-pages-rate\": 0, \"skipped\": 0, \"normal-bytes\": 131072, \"normal\": 32}}, "
    "\"id\": %llu}\r\n";

#define BATCH 64 /* commands in flight per round, as an engine might have */

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static void bench_core(void)
{
	static const char greeting[] = "{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 22, "
				       "\"minor\": 2, \"major\": 7}}, \"capabilities\": []}}\r\n";
	char *buf = malloc(BATCH * sizeof(reply_fmt) + BATCH * 24);
	struct qmig_qmp *q;
	struct qmig_qmp_msg m;
	uint64_t id, msgs = 0, bytes = 0;
	double t0, t, busy = 0;
	size_t len, n;

	if (!buf || qmig_qmp_new(&q, NULL) < 0)
		exit(1);
	qmig_qmp_feed(q, greeting, sizeof(greeting) - 1);
	qmig_qmp_output(q, &len);
	qmig_qmp_output_done(q, len);
	qmig_qmp_feed(q, "{\"return\": {}, \"id\": 1}", 23);
	t0 = now_s();
	do {
		/* Queue a batch of commands, then feed their replies in one go. */
		n = 0;
		for (int i = 0; i < BATCH; i++) {
			qmig_qmp_command(q, "query-migrate", NULL, 0, &id); /* raw QMP: the core's cost */
			n += (size_t)sprintf(buf + n, reply_fmt, (unsigned long long)id);
		}
		qmig_qmp_output(q, &len);
		qmig_qmp_output_done(q, len);
		/* Only parsing and taking the messages is timed. */
		t = now_s();
		if (qmig_qmp_feed(q, buf, n) < 0) {
			fprintf(stderr, "feed: %s\n", qmig_qmp_error(q));
			exit(1);
		}
		while (qmig_qmp_next(q, &m) == 1) {
			msgs += m.kind == QMIG_QMP_MSG_REPLY;
			qmig_qmp_msg_clear(&m);
		}
		busy += now_s() - t;
		bytes += n;
	} while (now_s() - t0 < 2.0);
	t = busy;
	printf("core: %llu query-migrate replies (%zu bytes each), %.2f s parsing: "
	       "%.0f messages/s, %.1f MB/s, %.2f us/message\n",
	       (unsigned long long)msgs, strlen(reply_fmt) - 2, t, msgs / t, bytes / t / 1e6,
	       t / msgs * 1e6);
	qmig_qmp_free(q);
	free(buf);
}

static pid_t qemu_pid = -1;
static char dir[64], sock[128];

static void cleanup(void)
{
	if (qemu_pid > 0) {
		kill(qemu_pid, SIGKILL);
		waitpid(qemu_pid, NULL, 0);
	}
	if (dir[0]) {
		unlink(sock);
		rmdir(dir);
	}
}

static void on_signal(int sig)
{
	cleanup();
	_exit(128 + sig);
}

static int start_qemu(void)
{
	char qmp[160];
	struct stat st;

	snprintf(dir, sizeof(dir), "/tmp/qmig-qmpbench.XXXXXX");
	if (!mkdtemp(dir))
		return -1;
	snprintf(sock, sizeof(sock), "%s/qmp.sock", dir);
	snprintf(qmp, sizeof(qmp), "unix:%s,server=on,wait=off", sock);
	qemu_pid = fork();
	if (qemu_pid == 0) {
		int null = open("/dev/null", O_RDWR);

		dup2(null, 0);
		dup2(null, 1);
		execlp("qemu-system-x86_64", "qemu-system-x86_64", "-M", "none", "-display", "none",
		       "-nodefaults", "-qmp", qmp, (char *)NULL);
		_exit(127);
	}
	for (int i = 0; i < 500 && stat(sock, &st) < 0; i++)
		usleep(10000);
	return stat(sock, &st);
}

static void bench_round_trip(int n)
{
	struct qmig_qmp_conn *c;
	struct qmig_vm_status st;
	double *lat = calloc((size_t)n, sizeof(double)), t, sum = 0;

	if (!lat || start_qemu() < 0 || qmig_qmp_conn_open(&c, sock, NULL) < 0) {
		fprintf(stderr, "round trip: cannot start or reach QEMU\n");
		exit(1);
	}
	for (int i = 0; i < 100; i++) /* warm up */
		qmig_cmd_query_status(c, &st);
	for (int i = 0; i < n; i++) {
		t = now_s();
		if (qmig_cmd_query_status(c, &st) < 0) {
			fprintf(stderr, "query-status: %s\n", qmig_qmp_conn_error(c));
			exit(1);
		}
		lat[i] = (now_s() - t) * 1e6;
		sum += lat[i];
	}
	qsort(lat, (size_t)n, sizeof(double), cmp_double);
	printf("round trip: query-status x %d against QEMU %u (-M none): median %.1f us, "
	       "p99 %.1f us, mean %.1f us, min %.1f us, max %.1f us\n",
	       n, qmig_qmp_qemu_version(qmig_qmp_conn_core(c)), lat[n / 2], lat[n * 99 / 100],
	       sum / n, lat[0], lat[n - 1]);
	qmig_qmp_conn_close(c);
	free(lat);
}

int main(int argc, char **argv)
{
	int n = argc > 1 ? atoi(argv[1]) : 2000;

	if (n < 1)
		n = 2000;
	atexit(cleanup);
	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);
	bench_core();
	bench_round_trip(n);
	return 0;
}
