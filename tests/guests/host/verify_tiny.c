/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Verifying the tiny guest's memory from the host: dump its header page and
 * working set with pmemsave (stopped guest), then check every page against
 * the rule in tests/guests/tiny/tiny_abi.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "qmig_commands.h"
#include "qmig_guests.h"

#include "../tiny/tiny_abi.h"

#define MAX_PAGES (3u << 18) /* 3 GiB of 4 KiB pages */

static const char *header_problem(const struct tiny_hdr *h)
{
	if (h->abi_version != TINY_ABI_VERSION)
		return "unknown ABI version";
	if (h->ws_gpa != TINY_WS_GPA)
		return "working set not at 8 MiB";
	if (!h->n_pages || h->n_pages > MAX_PAGES)
		return "impossible page count";
	if (!h->gen)
		return "generation 0";
	if (h->inflight != TINY_NONE && h->inflight >= h->n_pages)
		return "impossible in-flight page";
	if (h->mode == TINY_MODE_STAMP)
		return h->cursor < h->n_pages ? NULL : "cursor past the working set";
	if (h->mode != TINY_MODE_HOT)
		return "unknown mode";
	if (h->hot_base != TINY_HOT_BASE || !h->hot_pages || h->hot_pages > TINY_HOT_MAX ||
	    h->hot_base + h->hot_pages > h->n_pages || h->cold_pages != tiny_cold_count(h->n_pages))
		return "impossible hot and cold sets";
	if (h->gen == 1)
		return h->cursor < h->n_pages ? NULL : "cursor past the working set";
	if (h->hot_gen < 2 || h->hot_cursor >= h->hot_pages)
		return "impossible hot cursor";
	if (h->cursor >= (h->cold_pages ? h->cold_pages : 1))
		return "cursor past the cold pages";
	return NULL;
}

static int header_ok(const struct tiny_hdr *h, struct qmig_verify_report *rep)
{
	const char *why = header_problem(h);

	if (!why)
		return 1;
	rep->pages_bad = 1;
	rep->first_bad_gpa = TINY_HDR_GPA;
	snprintf(rep->detail, sizeof(rep->detail),
		 "header page (gpa 0x%x): %s (mode %u gen %u cursor %u hot %u/%u/%u pages %u "
		 "inflight %u)",
		 TINY_HDR_GPA, why, h->mode, h->gen, h->cursor, h->hot_gen, h->hot_cursor,
		 h->hot_pages, h->n_pages, h->inflight);
	return 0;
}

/* -1 if page i holds generation gen exactly, else the first bad word. */
static int page_diff(const uint32_t *p, uint32_t i, uint32_t gen)
{
	uint32_t v;

	if (gen == 0) {
		for (uint32_t j = 0; j < TINY_WORDS; j++)
			if (p[j])
				return (int)j;
		return -1;
	}
	for (uint32_t j = 0; j < 4; j++)
		if (p[j] != tiny_word(i, gen, j))
			return (int)j;
	v = tiny_seed(i, gen) + 4 * TINY_GOLDEN;
	for (uint32_t j = 4; j < TINY_WORDS; j++, v += TINY_GOLDEN)
		if (p[j] != v)
			return (int)j;
	return -1;
}

/* The page being rewritten: each word is its old or its new value. */
static int page_diff_mixed(const uint32_t *p, uint32_t i, uint32_t old)
{
	for (uint32_t j = 0; j < TINY_WORDS; j++)
		if (p[j] != tiny_word(i, old, j) && p[j] != tiny_word(i, old + 1, j))
			return (int)j;
	return -1;
}

static void note_bad(struct qmig_verify_report *rep, const uint32_t *p, uint32_t i,
		     uint32_t gen, int word)
{
	char stamp[64];

	if (rep->pages_bad++)
		return;
	rep->first_bad_gpa = TINY_WS_GPA + (uint64_t)i * TINY_PAGE;
	if (p[0] == TINY_PAGE_MAGIC && p[1] == i && p[3] == tiny_check(i, p[2]))
		snprintf(stamp, sizeof(stamp), "its stamp says generation %u", p[2]);
	else if (p[0] == 0 && p[1] == 0 && p[2] == 0 && p[3] == 0)
		snprintf(stamp, sizeof(stamp), "it has no stamp");
	else
		snprintf(stamp, sizeof(stamp), "its stamp is broken (%08x %08x %08x %08x)", p[0],
			 p[1], p[2], p[3]);
	snprintf(rep->detail, sizeof(rep->detail),
		 "page %u (gpa 0x%llx): expected generation %u, %s; word %d is 0x%08x, "
		 "want 0x%08x",
		 i, (unsigned long long)rep->first_bad_gpa, gen, stamp, word, p[word],
		 tiny_word(i, gen, (uint32_t)word));
}

/* Give back the pages of a dump already checked (dump_fd >= 0): freeing a
 * large dump all at once at munmap time takes tens of milliseconds on a
 * loaded machine, in one piece; a hole punched per 1 MiB keeps every step
 * short. Failure only means the pages go at munmap. */
#define YIELD_PAGES 256
static void release(int dump_fd, uint64_t from, uint64_t to)
{
	if (dump_fd >= 0 && to > from)
		(void)fallocate(dump_fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)from,
				(off_t)(to - from));
}

static int check(const struct tiny_hdr *h, const void *ws, uint64_t ws_len,
		 struct qmig_verify_report *rep, int dump_fd)
{
	memset(rep, 0, sizeof(*rep));
	rep->generation = h->gen;
	if (!header_ok(h, rep))
		return 1;
	if (ws_len < (uint64_t)h->n_pages * TINY_PAGE) {
		rep->pages_bad = 1;
		rep->first_bad_gpa = TINY_WS_GPA + ws_len;
		snprintf(rep->detail, sizeof(rep->detail),
			 "the dump has %llu bytes of the working set, the header says %u pages",
			 (unsigned long long)ws_len, h->n_pages);
		return 1;
	}
	for (uint32_t i = 0; i < h->n_pages; i++) {
		const uint32_t *p = (const uint32_t *)((const char *)ws + (uint64_t)i * TINY_PAGE);
		uint32_t gen = tiny_expected_gen(h, i);
		int w;

		/* Let an embedder's loop breathe every 1 MiB checked (about 1 ms
		 * of CPU with the page faults of reading the dump). */
		if (i && !(i % YIELD_PAGES)) {
			release(dump_fd, (uint64_t)(i - YIELD_PAGES) * TINY_PAGE,
				(uint64_t)i * TINY_PAGE);
			if (qmig_guest_yield() < 0) {
				snprintf(rep->detail, sizeof(rep->detail), "abandoned");
				return -ECANCELED;
			}
		}

		/* Stopped mid-rewrite: the expected generation or the next. */
		if (i == h->inflight)
			w = page_diff_mixed(p, i, gen);
		else
			w = page_diff(p, i, gen);
		if (w >= 0)
			note_bad(rep, p, i, gen, w);
	}
	release(dump_fd, (uint64_t)(h->n_pages - h->n_pages % YIELD_PAGES) * TINY_PAGE,
		(uint64_t)h->n_pages * TINY_PAGE);
	rep->pages_checked = h->n_pages;
	return rep->pages_bad ? 1 : 0;
}

int qmig_tiny_verify_buf(const void *ram, uint64_t len, struct qmig_verify_report *report)
{
	struct tiny_hdr h;

	if (!ram || !report)
		return -EINVAL;
	if (len < TINY_WS_GPA)
		return -EINVAL;
	memcpy(&h, (const char *)ram + TINY_HDR_GPA, sizeof(h));
	if (h.magic0 != TINY_HDR_MAGIC0 || h.magic1 != TINY_HDR_MAGIC1)
		return -ENOMSG;
	return check(&h, (const char *)ram + TINY_WS_GPA, len - TINY_WS_GPA, report, -1);
}

/* The user QEMU runs as: its QMP socket's peer. */
static int qemu_cred(struct qmig_qmp_conn *conn, uid_t *uid, gid_t *gid)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);
	int fd = qmig_qmp_conn_fd(conn);

	if (fd < 0)
		return -EBADF;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
		return -errno;
	*uid = cred.uid;
	*gid = cred.gid;
	return 0;
}

/* pmemsave into a file only we could have created (mkstemp), handed to
 * QEMU's user (its QMP socket's peer credentials) when that is not us. */
static int dump(struct qmig_qmp_conn *conn, const char *dir, uint64_t gpa, uint64_t size,
		int *fd_out)
{
	char path[4096];
	struct stat st;
	uid_t uid = geteuid();
	gid_t gid = getegid();
	int fd, r, timeout_ms;

	snprintf(path, sizeof(path), "%s/qmig-verify-XXXXXX", dir);
	fd = mkostemp(path, O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (qemu_cred(conn, &uid, &gid) < 0 && stat(dir, &st) == 0) {
		uid = st.st_uid;
		gid = st.st_gid;
	}
	if (uid != geteuid() && fchown(fd, uid, gid) < 0) {
		r = -errno;
		goto fail;
	}
	/* QEMU writes about 1 GB/s here; allow a slow disk plenty. */
	timeout_ms = 10000 + (int)(size >> 25) * 1000;
	r = qmig_cmd_pmemsave(conn, gpa, size, path, timeout_ms);
	if (r < 0)
		goto fail;
	unlink(path);
	*fd_out = fd;
	return 0;
fail:
	unlink(path);
	close(fd);
	return r;
}

int qmig_tiny_verify(struct qmig_qmp_conn *conn, const char *dir,
		     struct qmig_verify_report *report)
{
	struct qmig_vm_status vs;
	struct tiny_hdr h;
	uint64_t size;
	void *map;
	int fd, r;

	if (!conn || !report)
		return -EINVAL;
	if (!dir || !*dir)
		dir = getenv("TMPDIR");
	if (!dir || !*dir)
		dir = "/tmp";
	r = qmig_cmd_query_status(conn, &vs);
	if (r < 0)
		return r;
	if (vs.running)
		return -EBUSY; /* a running guest's dump is not consistent */
	if (!strcmp(vs.status, "inmigrate"))
		return -EINPROGRESS; /* its memory is still arriving */
	r = dump(conn, dir, TINY_HDR_GPA, TINY_PAGE, &fd);
	if (r < 0)
		return r;
	if (pread(fd, &h, sizeof(h), 0) != (ssize_t)sizeof(h)) {
		close(fd);
		return -EIO;
	}
	close(fd);
	if (h.magic0 != TINY_HDR_MAGIC0 || h.magic1 != TINY_HDR_MAGIC1)
		return -ENOMSG; /* not the tiny guest, or it has not booted yet */
	if (!h.n_pages || h.n_pages > MAX_PAGES)
		return check(&h, NULL, 0, report, -1);
	size = (uint64_t)h.n_pages * TINY_PAGE;
	r = dump(conn, dir, TINY_WS_GPA, size, &fd);
	if (r < 0)
		return r;
	{
		struct stat st;

		if (fstat(fd, &st) < 0 || (uint64_t)st.st_size < size) {
			close(fd);
			return -EIO; /* a short dump would fault when mapped */
		}
	}
	map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
	if (map == MAP_FAILED) {
		r = -errno;
		close(fd);
		return r;
	}
	madvise(map, size, MADV_SEQUENTIAL);
	r = check(&h, map, size, report, fd);
	munmap(map, size);
	close(fd);
	return r;
}
