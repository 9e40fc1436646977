/* --verify=memory: compare the RAM of source and destination page by page
 * after QEMU says "completed", for any guest. Both sides are stopped (the
 * source in postmigrate, the destination kept paused). Each QEMU writes a
 * chunk of its guest-physical memory with pmemsave into a private file on
 * tmpfs; we compare the two chunks and remove them, so at most two chunks
 * exist at a time. QEMU may run as another user (runas): the directory is
 * ours and only searchable by others (0711), and each chunk's file is made
 * by us (never a link) and handed to the uid of the QEMU that writes it,
 * as its QMP socket's peer credentials tell. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "launch/launch.h"
#include "qm_wait.h"
#include "verify.h"
#include "journal/journal.h"

#define CHUNK (128ull << 20)
#define PAGE 4096ull
/* Below this size all of an x86 pc or q35 guest's RAM sits at guest-physical
 * 0 onwards; above it the machine type decides where the split below the
 * PCI hole falls, which QMP does not tell us. */
#define LOWMEM_ALWAYS 0xb0000000ull

/* An empty file for QEMU's pmemsave, owned by that QEMU's user. */
static int make_dump_file(struct qmig_qmp_conn *c, const char *path)
{
	uid_t uid;
	gid_t gid;
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600), r = 0;

	if (fd < 0)
		return -errno;
	if (qm_qemu_cred(c, &uid, &gid) == 0 && uid != geteuid() && fchown(fd, uid, gid) < 0)
		r = -errno;
	close(fd);
	return r;
}

static int map_file(const char *path, uint64_t len, const void **out)
{
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	struct stat st;
	void *p;

	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0 || (uint64_t)st.st_size != len) {
		close(fd);
		return -EIO;
	}
	p = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0);
	close(fd);
	if (p == MAP_FAILED)
		return -errno;
	*out = p;
	return 0;
}

static void note_bad(struct qm_memcmp_report *rep, uint64_t gpa)
{
	if (rep->nfirst < QM_MEMCMP_FIRST)
		rep->first[rep->nfirst++] = gpa;
	rep->pages_bad++;
}

static int compare_chunk(struct qmig_qmp_conn *src, struct qmig_qmp_conn *dst,
			 const char *dir, uint64_t gpa, uint64_t len, struct qm_memcmp_report *rep)
{
	char a[256], b[256];
	const void *pa = NULL, *pb = NULL;
	int r;

	snprintf(a, sizeof(a), "%s/src.ram", dir);
	snprintf(b, sizeof(b), "%s/dst.ram", dir);
	r = make_dump_file(src, a);
	if (!r)
		r = make_dump_file(dst, b);
	if (r < 0) {
		snprintf(rep->error, sizeof(rep->error), "creating the RAM dump files in %s: %s", dir,
			 strerror(-r));
		goto out;
	}
	r = qmig_cmd_pmemsave(src, gpa, len, a, -1);
	if (r < 0) {
		snprintf(rep->error, sizeof(rep->error), "source: pmemsave: %s",
			 qmig_qmp_conn_error(src));
		goto out;
	}
	r = qmig_cmd_pmemsave(dst, gpa, len, b, -1);
	if (r < 0) {
		snprintf(rep->error, sizeof(rep->error), "destination: pmemsave: %s",
			 qmig_qmp_conn_error(dst));
		goto out;
	}
	r = map_file(a, len, &pa);
	if (!r)
		r = map_file(b, len, &pb);
	if (r < 0) {
		snprintf(rep->error, sizeof(rep->error), "reading the RAM dumps: %s",
			 strerror(-r));
		goto out;
	}
	for (uint64_t off = 0; off < len; off += PAGE) {
		uint64_t n = len - off < PAGE ? len - off : PAGE;

		if (memcmp((const char *)pa + off, (const char *)pb + off, n))
			note_bad(rep, gpa + off);
		rep->pages_checked++;
		/* Let an embedder's loop breathe every 1 MiB compared. */
		if (!((off + PAGE) % (1u << 20)) && (r = qm_yield()) < 0)
			break;
	}
out:
	if (pa)
		munmap((void *)pa, len);
	if (pb)
		munmap((void *)pb, len);
	unlink(a);
	unlink(b);
	return r;
}

static int compare_range(struct qmig_qmp_conn *src, struct qmig_qmp_conn *dst,
			 const char *dir, uint64_t base, uint64_t size,
			 struct qm_memcmp_report *rep)
{
	for (uint64_t off = 0; off < size; off += CHUNK) {
		uint64_t len = size - off < CHUNK ? size - off : CHUNK;
		int r = compare_chunk(src, dst, dir, base + off, len, rep);

		if (r < 0)
			return r;
	}
	return 0;
}

int qm_memcmp_sides(struct qmig_migration *m, struct qmig_qmp_conn *src,
		    struct qmig_qmp_conn *dst, struct qm_memcmp_report *rep)
{
	/* Named after the job, so that a recovery finds what a dead job left. */
	char dir[96], tmpl[96];
	uint64_t ssize = 0, dsize = 0;
	const char *d;
	int r;

	snprintf(dir, sizeof(dir), "/dev/shm/qmigrate-verify-%s.XXXXXX", m->job);
	snprintf(tmpl, sizeof(tmpl), "/tmp/qmigrate-verify-%s.XXXXXX", m->job);
	memset(rep, 0, sizeof(*rep));
	r = qmig_cmd_query_memory_size(src, &ssize);
	if (!r)
		r = qmig_cmd_query_memory_size(dst, &dsize);
	if (r < 0) {
		snprintf(rep->error, sizeof(rep->error), "query-memory-size-summary failed");
		return r;
	}
	if (ssize != dsize) {
		snprintf(rep->error, sizeof(rep->error),
			 "RAM sizes differ: source %llu bytes, destination %llu",
			 (unsigned long long)ssize, (unsigned long long)dsize);
		return -EINVAL;
	}
	if (ssize >= LOWMEM_ALWAYS) {
		snprintf(rep->error, sizeof(rep->error),
			 "guests of 2.75 GiB or more are not supported yet (their RAM layout "
			 "depends on the machine type)");
		return -EOPNOTSUPP;
	}
	/* tmpfs keeps the dumps off the disk; /tmp where there is none. */
	d = mkdtemp(dir);
	if (!d)
		d = mkdtemp(tmpl);
	if (!d) {
		snprintf(rep->error, sizeof(rep->error), "no private directory for RAM dumps: %s",
			 strerror(errno));
		return -errno;
	}
	/* QEMU of another uid must reach its file, not list or add any. */
	if (chmod(d, 0711) < 0) {
		r = -errno;
		rmdir(d);
		snprintf(rep->error, sizeof(rep->error), "chmod %s: %s", d, strerror(-r));
		return r;
	}
	rep->ram_bytes = ssize;
	snprintf(m->dump_dir, sizeof(m->dump_dir), "%s", d);
	qm_journal(m, NULL, "dump-ram", NULL);
	r = compare_range(src, dst, d, 0, ssize, rep);
	rmdir(d);
	m->dump_dir[0] = 0;
	return r < 0 ? r : rep->pages_bad ? 1 : 0;
}
