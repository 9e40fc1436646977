/* Unit tests of the launcher's pieces that need no QEMU: the RAM-size
 * workaround, QEMU's argv for each guest, the tiny-guest verifier on
 * synthetic memory, and the heartbeat parser on a socket we feed. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "unit.h"
#include "launch/launch.h"
#include "qm_wait.h"
#include "qmig_guests.h"
#include "qmig_migrate.h"
#include "../guests/tiny/tiny_abi.h"

#define KIB 1024ull
#define MIB (1024ull * 1024)

/* ---- RAM size workaround -------------------------------------------- */

static void test_mem_workaround(void)
{
	uint64_t out = 0;

	CU_ASSERT_EQUAL(qmig_vm_mem_workaround(512 * MIB, "tcg", 70200, &out), 1);
	CU_ASSERT_EQUAL(out, 512 * MIB + 8 * KIB);
	CU_ASSERT_NOT_EQUAL(out % (256 * KIB), 0);
	/* unknown version counts as affected */
	CU_ASSERT_EQUAL(qmig_vm_mem_workaround(256 * MIB, "tcg", 0, &out), 1);
	CU_ASSERT_EQUAL(qmig_vm_mem_workaround(256 * MIB, NULL, 0, &out), 1);
	/* fixed in 9.0; KVM never affected; odd sizes untouched */
	CU_ASSERT_EQUAL(qmig_vm_mem_workaround(256 * MIB, "tcg", 90000, &out), 0);
	CU_ASSERT_EQUAL(out, 256 * MIB);
	CU_ASSERT_EQUAL(qmig_vm_mem_workaround(256 * MIB, "kvm", 70200, &out), 0);
	CU_ASSERT_EQUAL(out, 256 * MIB);
	CU_ASSERT_EQUAL(qmig_vm_mem_workaround(256 * MIB + 8 * KIB, "tcg", 70200, &out), 0);
	CU_ASSERT_EQUAL(out, 256 * MIB + 8 * KIB);
}

/* ---- argv ----------------------------------------------------------- */

static int argv_has(const struct qm_argv *a, const char *opt, const char *val)
{
	for (size_t i = 0; i + 1 < a->n; i++)
		if (!strcmp(a->v[i], opt) && (!val || strstr(a->v[i + 1], val)))
			return 1;
	return 0;
}

static void test_argv_tiny(void)
{
	struct qmig_vm_spec spec = QMIG_VM_SPEC_INIT;
	const char *extra[] = {"-name", "x", NULL};
	struct qm_argv a = {0};
	char msg[512] = "";
	int r;

	spec.guest = QMIG_GUEST_TINY;
	spec.wss_bytes = 32 * MIB;
	spec.dirty_rate = 50 * MIB;
	spec.incoming = 1;
	spec.paused = 1;
	spec.guest_append = "mode=hot";
	spec.extra_args = extra;
	r = qm_build_argv(&a, &spec, "/tmp/d,ir", "tcg", 128 * MIB + 8 * KIB, msg, sizeof(msg));
	if (r == -ENOENT) /* guest not built: argv still checked below where possible */
		return;
	CU_ASSERT_EQUAL_FATAL(r, 0);
	CU_ASSERT_STRING_EQUAL(a.v[0], "qemu-system-x86_64");
	CU_ASSERT(argv_has(&a, "-m", "131080k"));
	CU_ASSERT(argv_has(&a, "-accel", "tcg"));
	CU_ASSERT(argv_has(&a, "-qmp", "unix:/tmp/d,,ir/qmp.sock,server=on,wait=off"));
	CU_ASSERT(argv_has(&a, "-chardev", "logfile=/tmp/d,,ir/serial.log"));
	CU_ASSERT(argv_has(&a, "-serial", "chardev:ser0"));
	CU_ASSERT(argv_has(&a, "-append", "rate=52428800 hb=1 wss=33554432 mode=hot"));
	CU_ASSERT(argv_has(&a, "-incoming", "defer"));
	CU_ASSERT(argv_has(&a, "-name", "x"));
	CU_ASSERT(argv_has(&a, "-display", "none"));
	CU_ASSERT_STRING_EQUAL(a.v[a.n - 1], "x");
	CU_ASSERT_PTR_NULL(a.v[a.n]);
	{
		int has_s = 0;

		for (size_t i = 0; i < a.n; i++)
			has_s |= !strcmp(a.v[i], "-S");
		CU_ASSERT(has_s);
	}
	qm_argv_free(&a);
}

static void test_argv_linux(void)
{
	struct qmig_vm_spec spec = QMIG_VM_SPEC_INIT;
	struct qm_argv a = {0};
	char dir[] = "/tmp/qmig-unit-linux-XXXXXX", path[256], msg[512] = "";
	struct qmig_launch_defaults d = QMIG_LAUNCH_DEFAULTS_INIT;
	FILE *f;
	int r;

	CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(dir));
	d.guest_dir = QMIG_BUILD_GUESTDIR;
	d.guest_ops = &qmig_test_guest_ops;
	d.linux_dir = dir;
	CU_ASSERT_EQUAL_FATAL(qmig_launch_defaults_set(&d), 0);
	spec.guest = QMIG_GUEST_LINUX;
	spec.net = 1;
	spec.host_port = 18080;
	spec.wss_bytes = 64 * MIB;
	spec.dirty_rate = 0;
	r = qm_build_argv(&a, &spec, "/tmp/x", "tcg", 512 * MIB, msg, sizeof(msg));
	CU_ASSERT_EQUAL(r, -ENOENT);
	CU_ASSERT_PTR_NOT_NULL(strstr(msg, "make linux-guest"));
	qm_argv_free(&a);

	snprintf(path, sizeof(path), "%s/vmlinux", dir);
	f = fopen(path, "w");
	fclose(f);
	snprintf(path, sizeof(path), "%s/initramfs.cpio.gz", dir);
	f = fopen(path, "w");
	fclose(f);
	r = qm_build_argv(&a, &spec, "/tmp/x", "tcg", 512 * MIB, msg, sizeof(msg));
	CU_ASSERT_EQUAL_FATAL(r, 0);
	CU_ASSERT(argv_has(&a, "-initrd", "initramfs.cpio.gz"));
	CU_ASSERT(argv_has(&a, "-append", "console=ttyS0 quiet qmig.rate=0 qmig.hb=1 qmig.wss=67108864"));
	CU_ASSERT(argv_has(&a, "-netdev", "user,id=n0,hostfwd=tcp:127.0.0.1:18080-:80"));
	CU_ASSERT(argv_has(&a, "-device", "virtio-net-pci,netdev=n0,romfile="));
	qm_argv_free(&a);
	unlink(path);
	snprintf(path, sizeof(path), "%s/vmlinux", dir);
	unlink(path);
	rmdir(dir);
	d.linux_dir = NULL;
	qmig_launch_defaults_set(&d);
}

/* ---- the verifier on synthetic RAM ------------------------------------ */

#define NPAGES 400u
#define RAM_LEN (TINY_WS_GPA + NPAGES * TINY_PAGE)

static uint32_t *page_at(uint8_t *ram, uint32_t i)
{
	return (uint32_t *)(ram + TINY_WS_GPA + (uint64_t)i * TINY_PAGE);
}

static void fill_page(uint8_t *ram, uint32_t i, uint32_t gen)
{
	uint32_t *p = page_at(ram, i);

	for (uint32_t j = 0; j < TINY_WORDS; j++)
		p[j] = tiny_word(i, gen, j);
}

static struct tiny_hdr *hdr_of(uint8_t *ram)
{
	return (struct tiny_hdr *)(ram + TINY_HDR_GPA);
}

static void fill_all(uint8_t *ram)
{
	for (uint32_t i = 0; i < NPAGES; i++)
		fill_page(ram, i, tiny_expected_gen(hdr_of(ram), i));
}

/* A guest stopped at (gen, cursor), pages laid out by the rule. */
static uint8_t *make_ram(uint32_t gen, uint32_t cursor)
{
	uint8_t *ram = calloc(1, RAM_LEN);
	struct tiny_hdr *h = hdr_of(ram);

	h->magic0 = TINY_HDR_MAGIC0;
	h->magic1 = TINY_HDR_MAGIC1;
	h->abi_version = TINY_ABI_VERSION;
	h->mode = TINY_MODE_STAMP;
	h->ws_gpa = TINY_WS_GPA;
	h->n_pages = NPAGES;
	h->hot_base = TINY_HOT_BASE;
	h->gen = gen;
	h->cursor = cursor;
	h->inflight = TINY_NONE;
	fill_all(ram);
	return ram;
}

/* mode=hot after the first pass: hot set at (hot_gen, hot_cursor), cold
 * stream at (gen, cursor). */
static uint8_t *make_hot_ram(uint32_t gen, uint32_t cursor, uint32_t hot_gen, uint32_t hot_cursor)
{
	uint8_t *ram = make_ram(gen, cursor);
	struct tiny_hdr *h = hdr_of(ram);

	h->mode = TINY_MODE_HOT;
	h->hot_pages = 16;
	h->cold_pages = tiny_cold_count(NPAGES);
	h->hot_gen = hot_gen;
	h->hot_cursor = hot_cursor;
	memset(ram + TINY_WS_GPA, 0, NPAGES * TINY_PAGE);
	fill_all(ram);
	return ram;
}

static void test_verify_clean(void)
{
	struct qmig_verify_report rep;
	uint8_t *ram;

	ram = make_ram(1, 10); /* first pass: pages >= 10 still zero */
	CU_ASSERT_EQUAL(page_at(ram, 11)[0], 0);
	CU_ASSERT_EQUAL(qmig_tiny_verify_buf(ram, RAM_LEN, &rep), 0);
	CU_ASSERT_EQUAL(rep.pages_checked, NPAGES);
	CU_ASSERT_EQUAL(rep.pages_bad, 0);
	free(ram);
	ram = make_ram(7, 33);
	CU_ASSERT_EQUAL(qmig_tiny_verify_buf(ram, RAM_LEN, &rep), 0);
	CU_ASSERT_EQUAL(rep.generation, 7);
	free(ram);
}

static void test_verify_hot(void)
{
	struct qmig_verify_report rep;
	uint8_t *ram;
	struct tiny_hdr *h;

	/* the cold stream's pages: lanes 128..255 of each 256 */
	CU_ASSERT_EQUAL(tiny_cold_page(0), 128);
	CU_ASSERT_EQUAL(tiny_cold_page(127), 255);
	CU_ASSERT_EQUAL(tiny_cold_page(128), 384);
	CU_ASSERT_EQUAL(tiny_cold_count(256), 128);
	CU_ASSERT_EQUAL(tiny_cold_count(300), 128);
	CU_ASSERT_EQUAL(tiny_cold_count(400), 128 + 16);

	ram = make_hot_ram(5, 100, 40, 3);
	h = hdr_of(ram);
	CU_ASSERT_EQUAL(h->cold_pages, 128 + 16);
	CU_ASSERT_EQUAL(page_at(ram, 64)[2], 40);      /* hot, below hot_cursor */
	CU_ASSERT_EQUAL(page_at(ram, 70)[2], 39);      /* hot, at/after it */
	CU_ASSERT_EQUAL(page_at(ram, 10)[2], 1);       /* frozen since the first pass */
	CU_ASSERT_EQUAL(page_at(ram, 128 + 99)[2], 5); /* cold k = 99 < cursor */
	CU_ASSERT_EQUAL(page_at(ram, 384 + 10)[2], 4); /* cold k = 138 */
	CU_ASSERT_EQUAL(qmig_tiny_verify_buf(ram, RAM_LEN, &rep), 0);
	/* a hot page that missed its last rewrite: what the QEMU bug does */
	fill_page(ram, 64, 39);
	CU_ASSERT_EQUAL(qmig_tiny_verify_buf(ram, RAM_LEN, &rep), 1);
	CU_ASSERT_EQUAL(rep.first_bad_gpa, TINY_WS_GPA + 64ull * TINY_PAGE);
	fill_page(ram, 64, 40);
	h->hot_cursor = 16; /* impossible */
	CU_ASSERT_EQUAL(qmig_tiny_verify_buf(ram, RAM_LEN, &rep), 1);
	CU_ASSERT_EQUAL(rep.first_bad_gpa, TINY_HDR_GPA);
	free(ram);
	/* still growing: the plain rule over all pages */
	ram = make_hot_ram(1, 200, 2, 0);
	CU_ASSERT_EQUAL(page_at(ram, 300)[0], 0);
	CU_ASSERT_EQUAL(qmig_tiny_verify_buf(ram, RAM_LEN, &rep), 0);
	free(ram);
}

static void test_verify_bad(void)
{
	struct qmig_verify_report rep;
	uint8_t *ram = make_ram(4, 20);

	/* one flipped word in the body */
	page_at(ram, 37)[500] ^= 1;
	CU_ASSERT_EQUAL(qmig_tiny_verify_buf(ram, RAM_LEN, &rep), 1);
	CU_ASSERT_EQUAL(rep.pages_bad, 1);
	CU_ASSERT_EQUAL(rep.first_bad_gpa, TINY_WS_GPA + 37ull * TINY_PAGE);
	CU_ASSERT_PTR_NOT_NULL(strstr(rep.detail, "page 37"));
	CU_ASSERT_PTR_NOT_NULL(strstr(rep.detail, "word 500"));
	page_at(ram, 37)[500] ^= 1;
	CU_ASSERT_EQUAL(qmig_tiny_verify_buf(ram, RAM_LEN, &rep), 0);

	/* a stale page: below the cursor but still the old generation,
	 * exactly what a lost dirty page looks like */
	fill_page(ram, 5, 3);
	fill_page(ram, 50, 2);
	CU_ASSERT_EQUAL(qmig_tiny_verify_buf(ram, RAM_LEN, &rep), 1);
	CU_ASSERT_EQUAL(rep.pages_bad, 2);
	CU_ASSERT_EQUAL(rep.first_bad_gpa, TINY_WS_GPA + 5ull * TINY_PAGE);
	CU_ASSERT_PTR_NOT_NULL(strstr(rep.detail, "stamp says generation 3"));
	free(ram);

	/* a page that is all zero where a stamp should be */
	ram = make_ram(2, 0);
	memset(page_at(ram, 9), 0, TINY_PAGE);
	CU_ASSERT_EQUAL(qmig_tiny_verify_buf(ram, RAM_LEN, &rep), 1);
	CU_ASSERT_PTR_NOT_NULL(strstr(rep.detail, "no stamp"));
	free(ram);
}

static void test_verify_inflight(void)
{
	struct qmig_verify_report rep;
	uint8_t *ram = make_ram(3, 12);
	struct tiny_hdr *h = (struct tiny_hdr *)(ram + TINY_HDR_GPA);
	uint32_t *p = page_at(ram, 12);

	/* stopped half way through rewriting page 12 from gen 2 to gen 3 */
	h->inflight = 12;
	for (uint32_t j = 0; j < TINY_WORDS / 2; j++)
		p[j] = tiny_word(12, 3, j);
	CU_ASSERT_EQUAL(qmig_tiny_verify_buf(ram, RAM_LEN, &rep), 0);
	/* but a word of neither generation is still caught */
	p[900] = 0xdeadbeef;
	CU_ASSERT_EQUAL(qmig_tiny_verify_buf(ram, RAM_LEN, &rep), 1);
	CU_ASSERT_EQUAL(rep.first_bad_gpa, TINY_WS_GPA + 12ull * TINY_PAGE);
	/* once the cursor moved on, the page must be whole */
	p[900] = tiny_word(12, 2, 900);
	h->cursor = 13;
	CU_ASSERT_EQUAL(qmig_tiny_verify_buf(ram, RAM_LEN, &rep), 1);
	free(ram);
}

static void test_verify_header(void)
{
	struct qmig_verify_report rep;
	uint8_t *ram = make_ram(3, 12);
	struct tiny_hdr *h = (struct tiny_hdr *)(ram + TINY_HDR_GPA);

	h->cursor = NPAGES + 5;
	CU_ASSERT_EQUAL(qmig_tiny_verify_buf(ram, RAM_LEN, &rep), 1);
	CU_ASSERT_EQUAL(rep.first_bad_gpa, TINY_HDR_GPA);
	h->cursor = 12;
	h->n_pages = NPAGES + 1; /* more pages than the dump holds */
	h->hot_pages = NPAGES + 1;
	CU_ASSERT_EQUAL(qmig_tiny_verify_buf(ram, RAM_LEN, &rep), 1);
	h->magic0 = 0;
	CU_ASSERT_EQUAL(qmig_tiny_verify_buf(ram, RAM_LEN, &rep), -ENOMSG);
	CU_ASSERT_EQUAL(qmig_tiny_verify_buf(ram, 4096, &rep), -EINVAL);
	free(ram);
}

/* ---- heartbeat parser ------------------------------------------------- */

static void test_heartbeat(void)
{
	char dir[] = "/tmp/qmig-unit-hb-XXXXXX", path[128];
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct qmig_hb *hb = NULL;
	struct qmig_guest_stats st = QMIG_GUEST_STATS_INIT;
	const char *text = "READY tiny wss=1 rate=2 mem=3\n"
			   "HB seq=1 gen=1 pages=10 rate=100 work=5\n"
			   "garbage line\n"
			   "HB seq=2 gen=1 pages=20 rate=200 work=77\r\n"
			   "HB seq=5 gen=2 pa";
	int ls, cs;

	CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/s", dir);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%.100s", path);
	ls = socket(AF_UNIX, SOCK_STREAM, 0);
	CU_ASSERT_EQUAL_FATAL(bind(ls, (struct sockaddr *)&sa, sizeof(sa)), 0);
	CU_ASSERT_EQUAL_FATAL(listen(ls, 1), 0);
	CU_ASSERT_EQUAL_FATAL(qmig_hb_open(&hb, path), 0);
	cs = accept(ls, NULL, NULL);
	CU_ASSERT_FATAL(cs >= 0);
	CU_ASSERT_EQUAL(qmig_hb_process(hb), 0); /* nothing yet, must not block */
	CU_ASSERT(write(cs, text, strlen(text)) == (ssize_t)strlen(text));
	usleep(20000);
	CU_ASSERT_EQUAL(qmig_hb_process(hb), 0);
	qmig_hb_get(hb, &st);
	CU_ASSERT_EQUAL(st.beats, 2);
	CU_ASSERT(st.ready);
	CU_ASSERT_EQUAL(st.last_seq, 2);
	CU_ASSERT_EQUAL(st.guest_rate, 200);
	CU_ASSERT_EQUAL(st.corrupt, 0);
	CU_ASSERT(st.has_work); /* pace=cpu: units of work, first and last */
	CU_ASSERT_EQUAL(st.work_first, 5);
	CU_ASSERT_EQUAL(st.work, 77);

	/* the rest of the cut line, 30 ms later: a gap of about 30 ms and
	 * two beats the guest sent that never arrived */
	usleep(30000);
	{
		const char *more = "ges=50 rate=300\nCORRUPT page=7 gpa=0x807000 expected_gen=1 "
				   "found_gen=0\n";

		CU_ASSERT(write(cs, more, strlen(more)) == (ssize_t)strlen(more));
	}
	CU_ASSERT_EQUAL(qmig_hb_wait(hb, 1, 1000), 0);
	qmig_hb_process(hb);
	qmig_hb_get(hb, &st);
	CU_ASSERT_EQUAL(st.beats, 3);
	CU_ASSERT_EQUAL(st.generation, 2);
	CU_ASSERT_EQUAL(st.pages_written, 50);
	CU_ASSERT_EQUAL(st.seq_missed, 2);
	CU_ASSERT(st.max_gap_ns >= 30000000 && st.max_gap_ns < 500000000);
	CU_ASSERT(st.corrupt);
	CU_ASSERT_PTR_NOT_NULL(strstr(st.corrupt_msg, "page=7"));
	CU_ASSERT_PTR_NOT_NULL(strstr(st.last_msg, "CORRUPT page=7"));
	qmig_hb_reset_gap(hb);
	qmig_hb_get(hb, &st);
	CU_ASSERT_EQUAL(st.max_gap_ns, 0);
	CU_ASSERT_EQUAL(qmig_hb_wait(hb, 1, 50), -ETIMEDOUT);

	close(cs);
	usleep(10000);
	CU_ASSERT_EQUAL(qmig_hb_process(hb), -ECONNRESET);
	qmig_hb_free(hb);
	qmig_hb_free(NULL);
	close(ls);
	unlink(path);
	rmdir(dir);
	CU_ASSERT(qmig_hb_open(&hb, "/nonexistent/socket") < 0);
}

/* ---- spawning a tool ----------------------------------------------- */

/* Its output file is replaced only when it is a file: a device named there
 * (a caller asking for no output with "/dev/null") is refused, never
 * unlinked; NULL is the way to say no output. */
static void test_spawn_out(void)
{
	const char *argv[] = {"true", NULL};
	struct qm_spawn sp = {0};
	struct stat st;
	char msg[256], path[] = "/tmp/qmig-unit-spawn.XXXXXX";
	pid_t pid;
	int pidfd = -1, w = -1, fd;

	sp.argv = argv;
	sp.out_path = "/dev/null";
	CU_ASSERT(qm_spawn(&sp, &pid, &pidfd, msg, sizeof(msg)) == -EEXIST);
	CU_ASSERT(strstr(msg, "not a regular file") != NULL);
	CU_ASSERT(stat("/dev/null", &st) == 0 && S_ISCHR(st.st_mode));

	sp.out_path = NULL;
	CU_ASSERT_FATAL(qm_spawn(&sp, &pid, &pidfd, msg, sizeof(msg)) == 0);
	CU_ASSERT(qm_wait_pid(pid, &w, qm_wait_now_ns() + 10000000000LL) == 0);
	CU_ASSERT(WIFEXITED(w) && WEXITSTATUS(w) == 0);
	if (pidfd >= 0)
		close(pidfd);

	fd = mkstemp(path);
	CU_ASSERT_FATAL(fd >= 0);
	close(fd);
	sp.out_path = path;
	pidfd = -1;
	CU_ASSERT_FATAL(qm_spawn(&sp, &pid, &pidfd, msg, sizeof(msg)) == 0);
	CU_ASSERT(qm_wait_pid(pid, &w, qm_wait_now_ns() + 10000000000LL) == 0);
	if (pidfd >= 0)
		close(pidfd);
	CU_ASSERT(stat(path, &st) == 0 && S_ISREG(st.st_mode));
	unlink(path);
}

/* ---- the guest plug-in ------------------------------------------------- */

/* The test guests' plug-in through its table, as the engine calls it: a
 * probe on a serial socket, the tiny guest's self-check answers parsed
 * into a report; and the engine's checks of a table's version. */
static void test_guest_ops(void)
{
	const struct qmig_guest_ops *ops = &qmig_test_guest_ops;
	struct qmig_guest_ops bad = qmig_test_guest_ops;
	struct qmig_launch_defaults d = QMIG_LAUNCH_DEFAULTS_INIT;
	struct qmig_guest_stats st = QMIG_GUEST_STATS_INIT;
	struct qmig_verify_report rep;
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	char dir[] = "/tmp/qmig-unit-ops-XXXXXX", path[128];
	struct qmig_migration *m = NULL;
	struct qmig_migrate_opts o = QMIG_MIGRATE_OPTS_INIT;
	const char *clean = "HB seq=4 gen=1 pages=1 rate=1 tiny\n"
			    "VERIFY pages=10 bad=0 gen=3 seq=7 us=55\n";
	const char *dirty = "VERIFY pages=10 bad=1 gen=3 seq=8 us=5 first=2 expected=3 found=1\n";
	void *probe = NULL;
	int ls, cs;

	CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/s", dir);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%.100s", path);
	ls = socket(AF_UNIX, SOCK_STREAM, 0);
	CU_ASSERT_EQUAL_FATAL(bind(ls, (struct sockaddr *)&sa, sizeof(sa)), 0);
	CU_ASSERT_EQUAL_FATAL(listen(ls, 1), 0);
	CU_ASSERT_EQUAL_FATAL(ops->probe_open(&probe, path, ops->user_data), 0);
	cs = accept(ls, NULL, NULL);
	CU_ASSERT_FATAL(cs >= 0);

	/* No answer before one arrives; then a clean one with its seq. */
	CU_ASSERT_EQUAL(ops->check_answer(probe, &rep), 0);
	CU_ASSERT(write(cs, clean, strlen(clean)) == (ssize_t)strlen(clean));
	CU_ASSERT_EQUAL(qmig_hb_wait(probe, 1, 1000), 0);
	ops->probe_process(probe);
	ops->probe_get(probe, &st);
	CU_ASSERT(st.self_check); /* its heartbeats say "tiny" */
	memset(&rep, 0, sizeof(rep));
	CU_ASSERT_EQUAL(ops->check_answer(probe, &rep), 1);
	CU_ASSERT_EQUAL(rep.pages_checked, 10);
	CU_ASSERT_EQUAL(rep.pages_bad, 0);
	CU_ASSERT_EQUAL(rep.seq, 7);
	CU_ASSERT_STRING_EQUAL(rep.detail, "in 55 us");

	/* A bad page: where, and what the guest found. */
	CU_ASSERT(write(cs, dirty, strlen(dirty)) == (ssize_t)strlen(dirty));
	usleep(20000);
	ops->probe_process(probe);
	memset(&rep, 0, sizeof(rep));
	CU_ASSERT_EQUAL(ops->check_answer(probe, &rep), 1);
	CU_ASSERT_EQUAL(rep.pages_bad, 1);
	CU_ASSERT_EQUAL(rep.first_bad_gpa, TINY_WS_GPA + 2 * TINY_PAGE);
	CU_ASSERT_PTR_NOT_NULL(strstr(rep.detail, "page 2 should hold generation 3, it holds 1"));

	/* An answer that does not parse. */
	CU_ASSERT(write(cs, "VERIFY what\n", 12) == 12);
	usleep(20000);
	ops->probe_process(probe);
	CU_ASSERT_EQUAL(ops->check_answer(probe, &rep), -EBADMSG);
	CU_ASSERT_STRING_EQUAL(rep.detail, "VERIFY what");
	ops->probe_close(probe);
	close(cs);
	close(ls);
	unlink(path);
	rmdir(dir);

	/* Versions: 1 to the current one; the migration takes one before it
	 * starts. */
	bad.version = QMIG_GUEST_OPS_VERSION + 1;
	d.guest_ops = &bad;
	CU_ASSERT_EQUAL(qmig_launch_defaults_set(&d), -EINVAL);
	o.src_qmp = "/nonexistent/src.sock";
	o.dst_qmp = "/nonexistent/dst.sock";
	CU_ASSERT_EQUAL_FATAL(qmig_migration_new(&m, &o), 0);
	CU_ASSERT_EQUAL(qmig_migration_set_guest_ops(m, &bad), -EINVAL);
	CU_ASSERT_EQUAL(qmig_migration_set_guest_ops(m, ops), 0);
	CU_ASSERT_EQUAL(qmig_migration_set_guest_ops(m, NULL), 0);
	qmig_migration_free(m);
}

UNIT_SUITE(launch, NULL, NULL, {"mem_workaround", test_mem_workaround},
	   {"argv_tiny", test_argv_tiny}, {"argv_linux", test_argv_linux},
	   {"verify_clean", test_verify_clean}, {"verify_hot", test_verify_hot},
	   {"verify_bad", test_verify_bad},
	   {"verify_inflight", test_verify_inflight}, {"verify_header", test_verify_header},
	   {"heartbeat", test_heartbeat}, {"spawn_out", test_spawn_out},
	   {"guest_ops", test_guest_ops})
