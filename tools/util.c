#include <ctype.h>
#include <libgen.h>
#include <limits.h>
#include <unistd.h>
#include <errno.h>
#include <stdarg.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "job.h"

const char *prog_name = "qmigrate";
int cli_verbose;

void die(int code, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: ", prog_name);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(code);
}

void warnx(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: ", prog_name);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

void cli_log(enum qmig_log_level level, const char *msg, void *user_data)
{
	static const char *names[] = {"error", "warning", "info", "debug"};

	(void)user_data;
	if (level <= QMIG_LOG_WARN || cli_verbose >= (int)level - 1)
		fprintf(stderr, "%s: %s: %s\n", prog_name, names[level & 3], msg);
}

static int scale(const char *suf, uint64_t *mul, int bits)
{
	char s[8];
	size_t i;

	for (i = 0; suf[i] && i < sizeof(s) - 1; i++)
		s[i] = (char)tolower((unsigned char)suf[i]);
	s[i] = 0;
	if (suf[i])
		return -1;
	if (bits) {
		if (!strcmp(s, "bit") || !strcmp(s, "bps")) { *mul = 1; return 1; }
		if (!strcmp(s, "kbit")) { *mul = 1000; return 1; }
		if (!strcmp(s, "mbit")) { *mul = 1000000; return 1; }
		if (!strcmp(s, "gbit")) { *mul = 1000000000; return 1; }
	}
	if (!*s || !strcmp(s, "b")) { *mul = 1; return 0; }
	if (!strcmp(s, "k") || !strcmp(s, "kib") || !strcmp(s, "kb")) { *mul = 1ull << 10; return 0; }
	if (!strcmp(s, "m") || !strcmp(s, "mib") || !strcmp(s, "mb")) { *mul = 1ull << 20; return 0; }
	if (!strcmp(s, "g") || !strcmp(s, "gib") || !strcmp(s, "gb")) { *mul = 1ull << 30; return 0; }
	if (!strcmp(s, "t") || !strcmp(s, "tib") || !strcmp(s, "tb")) { *mul = 1ull << 40; return 0; }
	return -1;
}

static uint64_t parse_scaled(const char *what, const char *s, int allow_bits)
{
	char *end;
	double v;
	uint64_t mul;
	int isbits;

	errno = 0;
	v = strtod(s, &end);
	if (end == s || errno || v < 0)
		die(EXIT_USAGE, "%s: '%s' is not a size (examples: 4096, 512k, 256M, 1G%s)", what, s,
		    allow_bits ? ", 1gbit" : "");
	isbits = scale(end, &mul, allow_bits);
	if (isbits < 0)
		die(EXIT_USAGE, "%s: unknown unit '%s' in '%s'", what, end, s);
	v *= (double)mul;
	if (isbits)
		v /= 8;
	if (v > 1.8e19)
		die(EXIT_USAGE, "%s: '%s' is too large", what, s);
	return (uint64_t)v;
}

uint64_t parse_size(const char *what, const char *s)
{
	return parse_scaled(what, s, 0);
}

uint64_t parse_rate(const char *what, const char *s)
{
	return parse_scaled(what, s, 1);
}

enum qmig_guest_kind parse_guest_kind(const char *s)
{
	if (!strcmp(s, "tiny"))
		return QMIG_GUEST_TINY;
	if (!strcmp(s, "linux"))
		return QMIG_GUEST_LINUX;
	die(EXIT_USAGE, "--guest: '%s' is not tiny or linux", s);
}

const char *parse_accel(const char *s)
{
	if (strcmp(s, "auto") && strcmp(s, "tcg") && strcmp(s, "kvm"))
		die(EXIT_USAGE, "--accel: '%s' is not auto, tcg or kvm", s);
	return s;
}

void launch_defaults_from_env(void)
{
	struct qmig_launch_defaults d = QMIG_LAUNCH_DEFAULTS_INIT;
	const char *accel = getenv("QMIGRATE_ACCEL"), *e;
	char exe[PATH_MAX], tree[PATH_MAX + 32], cache[PATH_MAX + 64];
	ssize_t n;
	int r;

	d.guest_dir = getenv("QMIGRATE_GUEST_DIR");
	if (!d.guest_dir || !*d.guest_dir) {
		/* tools/qmigrate in a built source tree: its guests are beside it. */
		d.guest_dir = NULL;
		n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
		if (n > 0) {
			exe[n] = 0;
			snprintf(tree, sizeof(tree), "%s/../tests/guests", dirname(exe));
			snprintf(cache, sizeof(cache), "%s/tiny/tiny.elf", tree);
			if (access(cache, R_OK) == 0)
				d.guest_dir = tree;
		}
	}
	d.linux_dir = getenv("QMIGRATE_LINUX_DIR");
	if (!d.linux_dir || !*d.linux_dir) {
		if ((e = getenv("XDG_CACHE_HOME")) && *e)
			snprintf(cache, sizeof(cache), "%s/qmigrate/linux", e);
		else
			snprintf(cache, sizeof(cache), "%s/.cache/qmigrate/linux",
				 (e = getenv("HOME")) && *e ? e : "/root");
		d.linux_dir = cache;
	}
	d.accel = accel && *accel ? accel : NULL;
	d.guest_ops = &qmig_test_guest_ops; /* tests/guests/host: the test guests */
	r = qmig_launch_defaults_set(&d);
	if (r == -EINVAL)
		die(EXIT_USAGE, "QMIGRATE_ACCEL: '%s' is not auto, tcg or kvm", accel);
	if (r < 0)
		die(EXIT_FAIL, "launch defaults: %s", strerror(-r));
}

long parse_long(const char *what, const char *s, long min, long max)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (end == s || *end || errno || v < min || v > max)
		die(EXIT_USAGE, "%s: '%s' is not a number from %ld to %ld", what, s, min, max);
	return v;
}

void parse_port_range(const char *what, const char *s, unsigned *lo, unsigned *hi)
{
	const char *dash = strchr(s, '-');
	char buf[16];

	if (!dash || (size_t)(dash - s) >= sizeof(buf))
		die(EXIT_USAGE, "%s: '%s' is not LO-HI (e.g. 49152-49215)", what, s);
	memcpy(buf, s, (size_t)(dash - s));
	buf[dash - s] = 0;
	*lo = (unsigned)parse_long(what, buf, 1, 65535);
	*hi = (unsigned)parse_long(what, dash + 1, *lo, 65535);
}

void format_size(char *buf, size_t len, double b)
{
	const char *u[] = {"B", "KiB", "MiB", "GiB", "TiB"};
	int i = 0;

	while (b >= 1024 && i < 4) {
		b /= 1024;
		i++;
	}
	snprintf(buf, len, i ? "%.1f %s" : "%.0f %s", b, u[i]);
}

/* SIGINT, SIGTERM, SIGHUP: ask the library to cancel (it rolls back) rather
 * than die with the guest stopped (the blocking save/restore/update calls
 * poll this flag). */
volatile int cli_cancel_flag;

static void on_cancel_signal(int sig)
{
	(void)sig;
	cli_cancel_flag = 1;
}

void cli_catch_cancel(void)
{
	struct sigaction sa = {0};

	sa.sa_handler = on_cancel_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
}

const char *job_journal_dir(char *buf, size_t len)
{
	char msg[256];

	if (job_prepare_dir(buf, len, msg, sizeof(msg)) == 0)
		return buf;
	warnx("no job journal (qmigrate recover could not repair a crash): %s", msg);
	return NULL;
}
