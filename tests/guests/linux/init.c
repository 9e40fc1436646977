/*
 * /init of qmigrate's small Linux test guest (static, PID 1).
 *
 * Parameters from /proc/cmdline:
 *   qmig.wss=<bytes>    working set (suffix k/m/g allowed; default 64M)
 *   qmig.rate=<bytes/s> write rate over the working set (0 = idle; default 4M)
 *   qmig.hb=<ms>        heartbeat period (default 100)
 *   qmig.net=1          virtio-net up as 10.0.2.15/24, busybox httpd on :80
 *   qmig.drate=<bytes/s> write stamped 4 KiB blocks to /dev/vda (virtio-blk) at
 *                       this rate, each checked before it is rewritten; a
 *                       checker thread reads every written block back, over
 *                       and over, at twice that rate
 *   qmig.dfill=<bytes>  first write this much of the disk at full speed
 *   qmig.dsize=<bytes>  the part of the disk used (default: all of it)
 *
 * Serial console /dev/ttyS0, one write(2) per line:
 *   READY linux wss=<bytes> rate=<bytes/s> [dblocks=<disk blocks in use>]
 *   HB seq=<n> gen=<g> pages=<p> rate=<bytes/s> [disk=<blocks> dchk=<blocks> dsweep=<n>]
 *   CORRUPT page=<i> expected_gen=<g> found_gen=<g'>
 *   CORRUPT disk block=<i> expected_gen=<g> found_gen=<g'>
 * Memory layout of the stamps: stamp.h.
 *
 * One writer thread and one heartbeat thread (SCHED_FIFO, so heartbeats stay
 * on time even when the writer cannot keep up); the main thread reaps.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <net/route.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "stamp.h"

#define MODULE_DIR "/lib/modules"
#define NSEC 1000000000ull
#define REPORTS_PER_GEN 64	/* CORRUPT lines per sweep, so the log stays readable */
#define MAX_DEBT_NS 50000000ull	/* writer backlog kept after a stall: 50 ms */
#define RESERVE (24ull << 20)	/* memory left to the kernel and httpd */

struct params {
	uint64_t wss;
	uint64_t rate;
	uint64_t hb_ms;
	int net;
	uint64_t drate, dfill, dsize;
};

static int con = -1;	/* serial console */
static struct qmig_lg_ctl *ctl;
static uint64_t *ws;	/* working set */

static void say(const char *fmt, ...)
{
	char buf[256];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof(buf))
		n = sizeof(buf) - 1;
	if (write(con, buf, n) < 0) {
		/* nowhere else to report to */
	}
}

static void __attribute__((noreturn)) fatal(const char *what)
{
	say("FATAL qmig-init: %s: %s\n", what, strerror(errno));
	sync();
	reboot(RB_POWER_OFF);
	for (;;)
		pause();
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * NSEC + ts.tv_nsec;
}

static void sleep_until(uint64_t t)
{
	struct timespec ts = { .tv_sec = t / NSEC, .tv_nsec = t % NSEC };

	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
		;
}

/* Mounts, and fds 0-2 valid: the kernel leaves them closed when the
 * initramfs has no /dev/console, and a later open must not become stdout. */
static void setup_fs(void)
{
	int fd;

	mkdir("/proc", 0755);
	mkdir("/sys", 0755);
	mkdir("/dev", 0755);
	mount("proc", "/proc", "proc", 0, NULL);
	mount("sysfs", "/sys", "sysfs", 0, NULL);
	mount("devtmpfs", "/dev", "devtmpfs", 0, NULL);

	con = open("/dev/ttyS0", O_WRONLY | O_NOCTTY);
	if (con < 0)
		con = open("/dev/console", O_WRONLY | O_NOCTTY);
	fd = open("/dev/null", O_RDWR);
	while (fd >= 0 && fd <= 2)
		fd = dup(fd);
	if (con >= 0 && con <= 2)
		con = fcntl(con, F_DUPFD, 3);
	dup2(con, 1);
	dup2(con, 2);
}

/* Raw output: lines end in "\n" alone, as the host parses them. */
static void setup_console(void)
{
	struct termios t;

	if (tcgetattr(con, &t) == 0) {
		t.c_oflag &= ~OPOST;
		tcsetattr(con, TCSANOW, &t);
	}
}

static uint64_t parse_size(const char *s)
{
	char *end;
	uint64_t v = strtoull(s, &end, 0);

	switch (*end) {
	case 'g': case 'G': v <<= 10; /* fall through */
	case 'm': case 'M': v <<= 10; /* fall through */
	case 'k': case 'K': v <<= 10; break;
	}
	return v;
}

static void parse_cmdline(struct params *p)
{
	char buf[4096], *tok, *save;
	ssize_t n;
	int fd;

	p->wss = 64ull << 20;
	p->rate = 4ull << 20;
	p->hb_ms = 100;
	p->net = 0;
	fd = open("/proc/cmdline", O_RDONLY);
	if (fd < 0)
		return;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return;
	buf[n] = '\0';
	for (tok = strtok_r(buf, " \t\n", &save); tok; tok = strtok_r(NULL, " \t\n", &save)) {
		if (!strncmp(tok, "qmig.wss=", 9))
			p->wss = parse_size(tok + 9);
		else if (!strncmp(tok, "qmig.rate=", 10))
			p->rate = parse_size(tok + 10);
		else if (!strncmp(tok, "qmig.hb=", 8))
			p->hb_ms = strtoull(tok + 8, NULL, 0);
		else if (!strncmp(tok, "qmig.net=", 9))
			p->net = atoi(tok + 9);
		else if (!strncmp(tok, "qmig.drate=", 11))
			p->drate = parse_size(tok + 11);
		else if (!strncmp(tok, "qmig.dfill=", 11))
			p->dfill = parse_size(tok + 11);
		else if (!strncmp(tok, "qmig.dsize=", 11))
			p->dsize = parse_size(tok + 11);
	}
	if (p->hb_ms == 0)
		p->hb_ms = 1;
}

static void set_sysctl(const char *path, const char *value)
{
	int fd = open(path, O_WRONLY);

	if (fd >= 0) {
		if (write(fd, value, strlen(value)) < 0) {
			/* keep the kernel's default */
		}
		close(fd);
	}
}

/* ---- network ---- */

static int by_name(const struct dirent **a, const struct dirent **b)
{
	return strcmp((*a)->d_name, (*b)->d_name);
}

/* The build numbers the modules in dependency order (01-failover.ko, ...). */
static void load_modules(void)
{
	struct dirent **ents;
	char path[512];
	int i, n, fd;

	n = scandir(MODULE_DIR, &ents, NULL, by_name);
	if (n < 0)
		fatal("scandir " MODULE_DIR);
	for (i = 0; i < n; i++) {
		const char *name = ents[i]->d_name;
		size_t len = strlen(name);

		if (len > 3 && !strcmp(name + len - 3, ".ko")) {
			snprintf(path, sizeof(path), MODULE_DIR "/%s", name);
			fd = open(path, O_RDONLY | O_CLOEXEC);
			if (fd < 0)
				fatal(path);
			if (syscall(SYS_finit_module, fd, "", 0) != 0 && errno != EEXIST)
				say("WARN qmig-init: finit_module %s: %s\n", name, strerror(errno));
			close(fd);
		}
		free(ents[i]);
	}
	free(ents);
}

static void set_addr(int s, const char *ifname, unsigned long req, const char *ip)
{
	struct ifreq ifr;
	struct sockaddr_in *sin = (struct sockaddr_in *)&ifr.ifr_addr;

	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, IFNAMSIZ, "%s", ifname);
	sin->sin_family = AF_INET;
	inet_pton(AF_INET, ip, &sin->sin_addr);
	if (ioctl(s, req, &ifr) < 0)
		fatal(ifname);
}

static void link_up(int s, const char *ifname)
{
	struct ifreq ifr;

	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, IFNAMSIZ, "%s", ifname);
	if (ioctl(s, SIOCGIFFLAGS, &ifr) < 0)
		fatal(ifname);
	ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
	if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0)
		fatal(ifname);
}

static void default_route(int s, const char *gw)
{
	struct rtentry rt;
	struct sockaddr_in *a;

	memset(&rt, 0, sizeof(rt));
	a = (struct sockaddr_in *)&rt.rt_dst;
	a->sin_family = AF_INET;
	a = (struct sockaddr_in *)&rt.rt_genmask;
	a->sin_family = AF_INET;
	a = (struct sockaddr_in *)&rt.rt_gateway;
	a->sin_family = AF_INET;
	inet_pton(AF_INET, gw, &a->sin_addr);
	rt.rt_flags = RTF_UP | RTF_GATEWAY;
	if (ioctl(s, SIOCADDRT, &rt) < 0 && errno != EEXIST)
		fatal("default route");
}

/* QEMU user networking's defaults: guest 10.0.2.15/24, gateway 10.0.2.2. */
static void setup_net(void)
{
	const char *argv[] = { "busybox", "httpd", "-f", "-p", "80", "-h", "/www", NULL };
	uint64_t deadline;
	pid_t pid;
	int s;

	deadline = now_ns() + 10 * NSEC;
	while (!if_nametoindex("eth0")) {
		if (now_ns() > deadline) {
			errno = ENODEV;
			fatal("eth0");
		}
		usleep(10000);
	}
	s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (s < 0)
		fatal("socket");
	link_up(s, "lo");
	set_addr(s, "eth0", SIOCSIFADDR, "10.0.2.15");
	set_addr(s, "eth0", SIOCSIFNETMASK, "255.255.255.0");
	link_up(s, "eth0");
	default_route(s, "10.0.2.2");
	close(s);

	pid = fork();
	if (pid < 0)
		fatal("fork");
	if (pid == 0) {
		execv("/bin/busybox", (char **)argv);
		say("FATAL qmig-init: exec busybox httpd: %s\n", strerror(errno));
		_exit(127);
	}
}

/* ---- working set ---- */

static uint64_t mem_available(void)
{
	char line[128];
	uint64_t kb = 0;
	FILE *f = fopen("/proc/meminfo", "r");

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "MemAvailable: %lu kB", &kb) == 1)
			break;
	fclose(f);
	return kb << 10;
}

/* Resident, in 4 KiB pages that stay where they are: no huge pages and no
 * compaction moving them, so a dump of guest RAM holds exactly one copy of
 * each page (a collapsed or migrated page would leave a stale copy behind). */
static void *map_pinned(uint64_t len, const char *what)
{
	void *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (m == MAP_FAILED)
		fatal(what);
	madvise(m, len, MADV_NOHUGEPAGE);
	if (mlock(m, len) < 0)
		fatal(what);
	return m;
}

/* A set larger than the guest's memory is cut down (and said so) rather
 * than OOM-killed. */
static void setup_memory(struct params *p)
{
	uint64_t avail = mem_available();

	set_sysctl("/proc/sys/vm/compact_unevictable_allowed", "0");
	set_sysctl("/proc/sys/vm/compaction_proactiveness", "0");
	ctl = map_pinned(QMIG_LG_PAGE, "control page");
	p->wss -= p->wss % QMIG_LG_PAGE;
	if (avail && p->wss + RESERVE > avail) {
		uint64_t cut = avail > RESERVE ? avail - RESERVE : 0;

		cut -= cut % QMIG_LG_PAGE;
		say("WARN qmig-init: wss %lu does not fit, using %lu\n", p->wss, cut);
		p->wss = cut;
	}
	if (p->wss)
		ws = map_pinned(p->wss, "working set");
	ctl->magic = QMIG_LG_CTL_MAGIC;
	ctl->magic_inv = ~QMIG_LG_CTL_MAGIC;
	ctl->npages = p->wss / QMIG_LG_PAGE;
	ctl->rate = p->rate;
}

/* Check that the page still holds generation gen-1, then write gen.
 * Returns 0, or -1 with *found set to what the page held. */
static int rewrite_page(uint64_t *w, uint64_t index, uint64_t gen, uint64_t *found)
{
	uint64_t old = gen - 1;
	int bad = 0;
	unsigned int k;

	if (old == 0) {
		for (k = 0; k < QMIG_LG_WORDS && !bad; k++)
			bad = w[k] != 0;
		*found = w[2];
	} else if (w[0] != QMIG_LG_PAGE_MAGIC || w[1] != index || w[2] != old) {
		bad = 1;
		*found = w[2];
	} else {
		for (k = 3; k < QMIG_LG_WORDS; k++)
			if (w[k] != qmig_lg_word(index, old, k)) {
				bad = 1;
				*found = qmig_lg_word_gen(w[k], k);
				break;
			}
	}
	w[0] = QMIG_LG_PAGE_MAGIC;
	w[1] = index;
	w[2] = gen;
	for (k = 3; k < QMIG_LG_WORDS; k++)
		w[k] = qmig_lg_word(index, gen, k);
	return bad ? -1 : 0;
}

static void write_next(uint64_t *reported)
{
	uint64_t written = ctl->written;
	uint64_t index = written % ctl->npages;
	uint64_t gen = written / ctl->npages + 1;
	uint64_t found;

	if (index == 0)
		*reported = 0;
	if (rewrite_page(ws + index * QMIG_LG_WORDS, index, gen, &found) < 0) {
		__atomic_store_n(&ctl->corrupt, ctl->corrupt + 1, __ATOMIC_RELAXED);
		if (++*reported <= REPORTS_PER_GEN)
			say("CORRUPT page=%lu expected_gen=%lu found_gen=%lu\n", index,
			    gen - 1, found);
		else if (*reported == REPORTS_PER_GEN + 1)
			say("WARN qmig-init: more corrupt pages in gen %lu not listed\n", gen);
	}
	/* The page first, then the counter: a host reading a stopped guest
	 * trusts `written` (stamp.h). */
	__atomic_store_n(&ctl->written, written + 1, __ATOMIC_RELEASE);
}

/* Paced by the clock: page n is due at start + n * PAGE / rate. After a
 * stall (a paused VM, a slow TCG) at most MAX_DEBT_NS of backlog is kept,
 * so the writer does not burst to catch up on time it never had. */
static void *writer(void *arg)
{
	const uint64_t rate = ctl->rate;
	uint64_t start = now_ns(), done = 0, reported = 0;

	(void)arg;
	for (;;) {
		uint64_t t = now_ns();
		uint64_t due = (unsigned __int128)(t - start) * rate / QMIG_LG_PAGE / NSEC;
		uint64_t max_debt = (unsigned __int128)MAX_DEBT_NS * rate / QMIG_LG_PAGE / NSEC + 1;
		uint64_t next;

		if (due > done + max_debt)
			done = due - max_debt;
		while (done < due) {
			write_next(&reported);
			done++;
		}
		/* Sleep to the next page's time, but at least 1 ms: a timer
		 * interrupt per page would cost more than the pages. */
		next = start + (unsigned __int128)(done + 1) * QMIG_LG_PAGE * NSEC / rate;
		if (next < t + 1000000)
			next = t + 1000000;
		sleep_until(next);
	}
	return NULL;
}

/* ---- disk ---- */

static int disk = -1;
static uint64_t dblocks;		/* blocks in use */
static uint64_t dwritten;		/* blocks written since boot (the one counter) */
static uint64_t dchecked, dsweeps;	/* blocks read back and verified, full sweeps */
static pthread_mutex_t dlock = PTHREAD_MUTEX_INITIALIZER;

static void disk_stamp(uint64_t *w, uint64_t index, uint64_t gen)
{
	w[0] = QMIG_LG_DISK_MAGIC;
	w[1] = index;
	w[2] = gen;
	for (unsigned int k = 3; k < QMIG_LG_WORDS; k++)
		w[k] = qmig_lg_word(index, gen, k) ^ QMIG_LG_DISK_SALT;
}

/* Does block w hold generation gen? *found says what it holds. */
static int disk_holds(const uint64_t *w, uint64_t index, uint64_t gen, uint64_t *found)
{
	unsigned int k;

	if (gen == 0) {
		for (k = 0; k < QMIG_LG_WORDS; k++)
			if (w[k]) {
				*found = w[0] == QMIG_LG_DISK_MAGIC ? w[2] : ~0ull;
				return 0;
			}
		return 1;
	}
	*found = w[0] == QMIG_LG_DISK_MAGIC && w[1] == index ? w[2] : ~0ull;
	if (*found != gen)
		return 0;
	for (k = 3; k < QMIG_LG_WORDS; k++)
		if (w[k] != (qmig_lg_word(index, gen, k) ^ QMIG_LG_DISK_SALT)) {
			*found = ~0ull;
			return 0;
		}
	return 1;
}

/* What block i holds now, by the counter (stamp.h's rule, for the disk). */
static uint64_t disk_gen_of(uint64_t i)
{
	uint64_t g = dwritten / dblocks + 1;

	return i < dwritten % dblocks ? g : g - 1;
}

static void disk_report(uint64_t i, uint64_t want, uint64_t found, const char *what)
{
	static unsigned int reported;

	if (++reported <= REPORTS_PER_GEN)
		say("CORRUPT disk block=%lu expected_gen=%lu found_gen=%ld (%s)\n", i, want,
		    found == ~0ull ? -1L : (long)found, what);
}

/* Rewrite the next block after checking it; n blocks at a time (the fill). */
static void disk_write_next(uint64_t *buf, uint64_t n)
{
	uint64_t i = dwritten % dblocks, found;

	if (n > dblocks - i)
		n = dblocks - i;
	pthread_mutex_lock(&dlock);
	if (pread(disk, buf, n * QMIG_LG_PAGE, i * QMIG_LG_PAGE) != (ssize_t)(n * QMIG_LG_PAGE))
		fatal("disk read");
	for (uint64_t b = 0; b < n; b++) {
		uint64_t g = disk_gen_of(i + b) + 1;
		uint64_t *w = buf + b * QMIG_LG_WORDS;

		if (!disk_holds(w, i + b, g - 1, &found))
			disk_report(i + b, g - 1, found, "before rewriting");
		disk_stamp(w, i + b, g);
	}
	if (pwrite(disk, buf, n * QMIG_LG_PAGE, i * QMIG_LG_PAGE) != (ssize_t)(n * QMIG_LG_PAGE))
		fatal("disk write");
	__atomic_store_n(&dwritten, dwritten + n, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&dlock);
}

static void setup_disk(struct params *p)
{
	uint64_t deadline = now_ns() + 10 * NSEC, size = 0, *buf;

	while ((disk = open("/dev/vda", O_RDWR | O_DIRECT | O_CLOEXEC)) < 0) {
		if (now_ns() > deadline)
			fatal("/dev/vda");
		usleep(10000);
	}
	if (ioctl(disk, _IOR(0x12, 114, size_t), &size) < 0) /* BLKGETSIZE64 */
		fatal("BLKGETSIZE64");
	if (p->dsize && p->dsize < size)
		size = p->dsize;
	dblocks = size / QMIG_LG_PAGE;
	if (!dblocks) {
		errno = ENOSPC;
		fatal("/dev/vda");
	}
	if (posix_memalign((void **)&buf, QMIG_LG_PAGE, 256 * QMIG_LG_PAGE))
		fatal("disk buffer");
	/* The fill: whole megabytes at a time, so a mirror has data to move. */
	for (uint64_t left = p->dfill / QMIG_LG_PAGE; left && dwritten < dblocks;) {
		uint64_t n = left < 256 ? left : 256;

		disk_write_next(buf, n);
		left -= n;
	}
	free(buf);
}

static void *disk_writer(void *arg)
{
	const uint64_t rate = *(uint64_t *)arg;
	uint64_t start = now_ns(), done = 0, *buf;

	if (posix_memalign((void **)&buf, QMIG_LG_PAGE, QMIG_LG_PAGE))
		fatal("disk buffer");
	for (;;) {
		uint64_t t = now_ns();
		uint64_t due = (unsigned __int128)(t - start) * rate / QMIG_LG_PAGE / NSEC;
		uint64_t max_debt = (unsigned __int128)MAX_DEBT_NS * rate / QMIG_LG_PAGE / NSEC + 1;
		uint64_t next;

		if (due > done + max_debt)
			done = due - max_debt;
		while (done < due) {
			disk_write_next(buf, 1);
			done++;
		}
		next = start + (unsigned __int128)(done + 1) * QMIG_LG_PAGE * NSEC / rate;
		if (next < t + 1000000)
			next = t + 1000000;
		sleep_until(next);
	}
	return NULL;
}

/* Read every written block back, over and over: after a move, a full sweep
 * proves the destination's disk holds what the guest wrote. */
static void *disk_checker(void *arg)
{
	const uint64_t rate = 2 * *(uint64_t *)arg;
	uint64_t start = now_ns(), done = 0, i = 0, *buf, found;

	if (posix_memalign((void **)&buf, QMIG_LG_PAGE, QMIG_LG_PAGE))
		fatal("disk buffer");
	for (;;) {
		uint64_t t = now_ns();
		uint64_t due = (unsigned __int128)(t - start) * rate / QMIG_LG_PAGE / NSEC;
		uint64_t max_debt = (unsigned __int128)MAX_DEBT_NS * rate / QMIG_LG_PAGE / NSEC + 1;

		if (due > done + max_debt)
			done = due - max_debt;
		while (done < due) {
			uint64_t used = dwritten < dblocks ? dwritten : dblocks, want;

			if (i >= used) {
				if (used)
					__atomic_store_n(&dsweeps, dsweeps + 1, __ATOMIC_RELAXED);
				i = 0;
				if (!used)
					break;
			}
			pthread_mutex_lock(&dlock);
			want = disk_gen_of(i);
			if (pread(disk, buf, QMIG_LG_PAGE, i * QMIG_LG_PAGE) != QMIG_LG_PAGE)
				fatal("disk read");
			pthread_mutex_unlock(&dlock);
			if (!disk_holds(buf, i, want, &found))
				disk_report(i, want, found, "read back");
			__atomic_store_n(&dchecked, dchecked + 1, __ATOMIC_RELAXED);
			i++;
			done++;
		}
		sleep_until(start + (unsigned __int128)(done + 1) * QMIG_LG_PAGE * NSEC / rate >
				    t + 1000000
			    ? start + (unsigned __int128)(done + 1) * QMIG_LG_PAGE * NSEC / rate
			    : t + 1000000);
	}
	return NULL;
}

/* ---- heartbeat ---- */

/* The rate is measured over the last 1-2 s of guest time. */
static void *heartbeat(void *arg)
{
	const uint64_t period = *(uint64_t *)arg * 1000000ull;
	const uint64_t npages = ctl->npages;
	uint64_t seq = 0, next = now_ns() + period;
	uint64_t t0 = now_ns(), p0 = 0, t1 = t0, p1 = 0;

	for (;;) {
		uint64_t t, p, gen, rate = 0;

		sleep_until(next);
		t = now_ns();
		p = __atomic_load_n(&ctl->written, __ATOMIC_ACQUIRE);
		gen = p ? (p - 1) / npages + 1 : 0; /* of the last page written */
		if (t > t0)
			rate = (unsigned __int128)(p - p0) * QMIG_LG_PAGE * NSEC / (t - t0);
		if (disk >= 0)
			say("HB seq=%lu gen=%lu pages=%lu rate=%lu disk=%lu dchk=%lu dsweep=%lu\n",
			    seq++, gen, p, rate, __atomic_load_n(&dwritten, __ATOMIC_RELAXED),
			    __atomic_load_n(&dchecked, __ATOMIC_RELAXED),
			    __atomic_load_n(&dsweeps, __ATOMIC_RELAXED));
		else
			say("HB seq=%lu gen=%lu pages=%lu rate=%lu\n", seq++, gen, p, rate);
		if (t - t1 >= NSEC) {
			t0 = t1;
			p0 = p1;
			t1 = t;
			p1 = p;
		}
		next += period;
		if (next < t)	/* we were stopped: no burst of stale beats */
			next = t + period;
	}
	return NULL;
}

static void start_thread(void *(*fn)(void *), void *arg, int fifo)
{
	pthread_attr_t attr;
	struct sched_param sp = { .sched_priority = 10 };
	pthread_t th;

	pthread_attr_init(&attr);
	if (fifo) {
		pthread_attr_setinheritsched(&attr, PTHREAD_EXPLICIT_SCHED);
		pthread_attr_setschedpolicy(&attr, SCHED_FIFO);
		pthread_attr_setschedparam(&attr, &sp);
	}
	errno = pthread_create(&th, &attr, fn, arg);
	if (errno && fifo)
		errno = pthread_create(&th, NULL, fn, arg);
	if (errno)
		fatal("pthread_create");
	pthread_attr_destroy(&attr);
}

int main(void)
{
	static struct params p;

	setup_fs();
	setup_console();
	parse_cmdline(&p);
	if (p.net || p.drate)
		load_modules();
	if (p.net)
		setup_net();
	if (p.drate)
		setup_disk(&p);
	setup_memory(&p);
	/* From here on the serial lines are ours: only emergencies from the
	 * kernel, whose console writes could land inside a line. */
	set_sysctl("/proc/sys/kernel/printk", "1");
	if (disk >= 0)
		say("READY linux wss=%lu rate=%lu dblocks=%lu\n", p.wss, p.rate, dblocks);
	else
		say("READY linux wss=%lu rate=%lu\n", p.wss, p.rate);
	if (p.wss && p.rate)
		start_thread(writer, NULL, 0);
	if (disk >= 0) {
		start_thread(disk_writer, &p.drate, 0);
		start_thread(disk_checker, &p.drate, 0);
	}
	start_thread(heartbeat, &p.hb_ms, 1);
	for (;;) {
		pid_t pid = wait(NULL);

		if (pid < 0 && errno == ECHILD)
			pause();
	}
}
