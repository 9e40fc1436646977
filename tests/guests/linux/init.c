/* /init of the Linux test guest: mounts what it needs, optionally brings
 * up virtio-net with an HTTP server (busybox httpd), then writes its
 * working set at a set rate with integrity stamps (stamp.h) and prints
 * heartbeats on the serial console:
 *   READY linux wss=<bytes> rate=<bytes/s>
 *   HB seq=<n> gen=<g> pages=<p> rate=<bytes/s>       every qmig.hb ms
 *   CORRUPT page=<i> expected_gen=<g> found_gen=<g'>   when a page is wrong
 * Parameters from the kernel command line: qmig.wss= qmig.rate= qmig.hb=
 * qmig.net=1. Built static; it is PID 1 and never exits. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "stamp.h"

struct shared {          /* between the writer and the heartbeat process */
	volatile uint64_t gen, pages, rate, corrupt;
};

static int con = 2;

static void say(const char *fmt, ...)
{
	char buf[256];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n > 0 && write(con, buf, (size_t)n) < 0)
		return;
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t param(const char *cmdline, const char *key, uint64_t dflt)
{
	const char *p = strstr(cmdline, key);

	return p ? strtoull(p + strlen(key), NULL, 0) : dflt;
}

static void run(const char *const argv[])
{
	pid_t pid = fork();
	int st;

	if (pid == 0) {
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	if (pid > 0)
		waitpid(pid, &st, 0);
}

/* virtio-net and what it needs are modules in Debian's kernel. With no
 * modprobe (nor modules.dep) here, load them in passes until each one's
 * symbols are there: an unresolved symbol fails with ENOENT. */
static void load_modules(void)
{
	static const char *const mods[] = {"virtio_ring", "virtio", "virtio_pci_legacy_dev",
					   "virtio_pci_modern_dev", "virtio_pci", "failover",
					   "net_failover", "virtio_net"};
	enum { N = sizeof(mods) / sizeof(mods[0]) };
	int done[N] = {0}, err[N] = {0};
	char path[64];

	for (int pass = 0; pass < N; pass++) {
		for (int i = 0; i < N; i++) {
			int fd;

			if (done[i])
				continue;
			snprintf(path, sizeof(path), "/lib/modules/%s.ko", mods[i]);
			fd = open(path, O_RDONLY | O_CLOEXEC);
			if (fd >= 0 && (syscall(SYS_finit_module, fd, "", 0) == 0 || errno == EEXIST))
				done[i] = 1;
			else
				err[i] = errno;
			if (fd >= 0)
				close(fd);
		}
	}
	for (int i = 0; i < N; i++)
		if (!done[i])
			say("init: module %s: %s\n", mods[i], strerror(err[i]));
}

static void start_network(void)
{
	static const char *const lo[] = {"/bin/busybox", "ip", "link", "set", "lo", "up", NULL};
	static const char *const up[] = {"/bin/busybox", "ip", "link", "set", "eth0", "up", NULL};
	static const char *const addr[] = {"/bin/busybox", "ip", "addr", "add", "10.0.2.15/24",
					   "dev", "eth0", NULL};
	static const char *const route[] = {"/bin/busybox", "ip", "route", "add", "default",
					    "via", "10.0.2.2", NULL};
	static const char *const httpd[] = {"/bin/busybox", "httpd", "-p", "80", "-h", "/www",
					    NULL};

	load_modules();
	for (int i = 0; i < 50 && access("/sys/class/net/eth0", F_OK); i++)
		usleep(20000);
	run(lo);
	run(up);
	run(addr);
	run(route);
	run(httpd); /* daemonizes */
}

static void heartbeat(struct shared *sh, unsigned hb_ms)
{
	uint64_t seq = 0, next = now_ns();

	for (;;) {
		struct timespec ts;

		next += (uint64_t)hb_ms * 1000000ull;
		ts.tv_sec = (time_t)(next / 1000000000ull);
		ts.tv_nsec = (long)(next % 1000000000ull);
		clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
		say("HB seq=%llu gen=%llu pages=%llu rate=%llu\n", (unsigned long long)++seq,
		    (unsigned long long)sh->gen, (unsigned long long)sh->pages,
		    (unsigned long long)sh->rate);
	}
}

static void check_page(struct shared *sh, const uint64_t *w, uint64_t idx, uint64_t want)
{
	uint64_t found = want ? w[2] : 0;
	int bad;

	if (!want)
		bad = w[0] || w[1] || w[2];
	else
		bad = w[0] != QMIG_LG_PAGE_MAGIC || w[1] != idx || w[2] != want ||
		      w[3] != qmig_lg_word(idx, want, 3) || w[511] != qmig_lg_word(idx, want, 511);
	if (bad && sh->corrupt++ < 5)
		say("CORRUPT page=%llu expected_gen=%llu found_gen=%llu\n", (unsigned long long)idx,
		    (unsigned long long)want, (unsigned long long)found);
}

static void writer(struct shared *sh, uint64_t wss, uint64_t rate)
{
	uint64_t npages = wss / QMIG_LG_PAGE, t0 = now_ns(), last = t0, last_pages = 0;
	struct qmig_lg_ctl *ctl;
	uint64_t *mem;

	mem = mmap(NULL, (npages + 1) * QMIG_LG_PAGE, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	if (mem == MAP_FAILED) {
		say("init: cannot map %llu bytes: %s\n", (unsigned long long)wss, strerror(errno));
		return;
	}
	ctl = (struct qmig_lg_ctl *)(mem + npages * QMIG_LG_WORDS);
	*ctl = (struct qmig_lg_ctl){QMIG_LG_CTL_MAGIC, ~QMIG_LG_CTL_MAGIC, npages, rate, 0, 0};
	for (uint64_t n = 0;; n++) {
		uint64_t idx = n % npages, gen = n / npages + 1;
		uint64_t *w = mem + idx * QMIG_LG_WORDS;

		if (rate) {
			/* Pace by the clock: page n is due at n pages / rate. */
			uint64_t due = t0 + (uint64_t)((double)n * QMIG_LG_PAGE * 1e9 / (double)rate);

			while (now_ns() < due)
				usleep(200);
		} else {
			pause();
		}
		check_page(sh, w, idx, gen - 1);
		w[0] = QMIG_LG_PAGE_MAGIC;
		w[1] = idx;
		w[2] = gen;
		for (unsigned k = 3; k < QMIG_LG_WORDS; k++)
			w[k] = qmig_lg_word(idx, gen, k);
		ctl->written = n + 1;
		sh->gen = gen;
		sh->pages = n + 1;
		if (now_ns() - last >= 1000000000ull) {
			sh->rate = (n + 1 - last_pages) * QMIG_LG_PAGE * 1000000000ull / (now_ns() - last);
			last = now_ns();
			last_pages = n + 1;
		}
	}
}

int main(void)
{
	char cmdline[1024] = "";
	uint64_t wss, rate;
	unsigned hb;
	struct shared *sh;
	int fd;

	mount("proc", "/proc", "proc", 0, NULL);
	mount("sysfs", "/sys", "sysfs", 0, NULL);
	mount("devtmpfs", "/dev", "devtmpfs", 0, NULL);
	con = open("/dev/ttyS0", O_WRONLY | O_NOCTTY);
	if (con < 0)
		con = 2;
	fd = open("/proc/cmdline", O_RDONLY);
	if (fd >= 0) {
		ssize_t n = read(fd, cmdline, sizeof(cmdline) - 1);

		cmdline[n > 0 ? n : 0] = 0;
		close(fd);
	}
	wss = param(cmdline, "qmig.wss=", 64ull << 20);
	rate = param(cmdline, "qmig.rate=", 0);
	hb = (unsigned)param(cmdline, "qmig.hb=", 1);
	if (wss < 2 * QMIG_LG_PAGE)
		wss = 2 * QMIG_LG_PAGE;
	if (param(cmdline, "qmig.net=", 0))
		start_network();
	sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	say("READY linux wss=%llu rate=%llu\n", (unsigned long long)wss, (unsigned long long)rate);
	if (fork() == 0)
		heartbeat(sh, hb ? hb : 1);
	writer(sh, wss, rate);
	for (;;)
		pause();
}
