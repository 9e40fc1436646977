/* The save file's header is anyone's input: qmig_save_read_header() on
 * well-formed, odd and hostile headers (files written here), and the
 * shared-memory launch option that qmigrate update relies on. Saving and
 * restoring themselves run against real QEMU in
 * tests/integration/save_restore.sh and update.sh. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "unit.h"
#include "launch/launch.h"
#include "../../engine/qmig_save.h"

static char dir[64];

static int mk(void)
{
	snprintf(dir, sizeof(dir), "/tmp/qmig-unit-save.XXXXXX");
	return mkdtemp(dir) ? 0 : -1;
}

static int rm(void)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	return system(cmd) == 0 ? 0 : -1;
}

#define SHA "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

/* A file: header text (not NUL padded when raw), zeros to 64 KiB, stream. */
static const char *write_file(const char *name, const char *header, size_t header_len,
			      size_t stream_len)
{
	static char path[128];
	char *buf;
	size_t total = QMIG_SAVE_STREAM_OFFSET + stream_len;
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	buf = calloc(1, total);
	memcpy(buf, header, header_len);
	memset(buf + QMIG_SAVE_STREAM_OFFSET, 0x5a, stream_len);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	CU_ASSERT_FATAL(fd >= 0);
	CU_ASSERT_EQUAL(write(fd, buf, total), (ssize_t)total);
	close(fd);
	free(buf);
	return path;
}

/* A header with one member replaced (key: raw JSON text, or NULL none). */
static const char *hdr(char *buf, size_t len, const char *key, const char *val)
{
	struct {
		const char *k, *v;
	} m[] = {{"format", "1"},
		 {"method", "\"mapped-ram\""},
		 {"multifd_channels", "4"},
		 {"qemu", "\"10.0.2\""},
		 {"qemu_version", "100002"},
		 {"machine", "\"pc-i440fx-10.0\""},
		 {"ram_bytes", "268435456"},
		 {"stream_offset", "65536"},
		 {"stream_bytes", "1000"},
		 {"sha256", "\"" SHA "\""},
		 {"guest", "\"tiny\""},
		 {"was_running", "true"}};
	size_t n = (size_t)snprintf(buf, len, "QMIGRATE-SAVE 1\n{");

	for (size_t i = 0; i < sizeof(m) / sizeof(m[0]); i++) {
		const char *v = key && !strcmp(key, m[i].k) ? val : m[i].v;

		if (!v)
			continue;
		n += (size_t)snprintf(buf + n, len - n, "%s\"%s\":%s", n > 17 ? "," : "", m[i].k,
				      v);
	}
	snprintf(buf + n, len - n, "}\n");
	return buf;
}

/* hdr() first, then the file: an argument list has no order. */
static const char *write_hdr(const char *name, const char *key, const char *val, size_t stream)
{
	char b[2048];

	hdr(b, sizeof(b), key, val);
	return write_file(name, b, strlen(b), stream);
}

static int read_hdr(const char *path, struct qmig_save_header *h, char *msg, size_t len)
{
	memset(h, 0x77, sizeof(*h));
	msg[0] = 0;
	return qmig_save_read_header(path, h, msg, len);
}

static void test_header_good(void)
{
	struct qmig_save_header h;
	char msg[512];
	const char *p;

	CU_ASSERT_FATAL(mk() == 0);
	p = write_hdr("good", NULL, NULL, 1000);
	CU_ASSERT_EQUAL(read_hdr(p, &h, msg, sizeof(msg)), 0);
	CU_ASSERT_STRING_EQUAL(h.method, "mapped-ram");
	CU_ASSERT_EQUAL(h.multifd_channels, 4);
	CU_ASSERT_STRING_EQUAL(h.qemu, "10.0.2");
	CU_ASSERT_EQUAL(h.qemu_version, 100002);
	CU_ASSERT_STRING_EQUAL(h.machine, "pc-i440fx-10.0");
	CU_ASSERT_EQUAL(h.ram_bytes, 268435456);
	CU_ASSERT_EQUAL(h.stream_offset, 65536);
	CU_ASSERT_EQUAL(h.stream_bytes, 1000);
	CU_ASSERT_STRING_EQUAL(h.sha256, SHA);
	CU_ASSERT_STRING_EQUAL(h.guest, "tiny");
	CU_ASSERT(h.was_running);
	/* Unknown members are tolerated (a newer qmigrate may add some). */
	p = write_hdr("extra", "guest", "\"tiny\",\"new\":[1,{}]", 1000);
	CU_ASSERT_EQUAL(read_hdr(p, &h, msg, sizeof(msg)), 0);
	rm();
}

/* Each bad header is refused with a message naming the file, and *out is
 * left alone. */
static void refused(const char *name, const char *header, size_t len, size_t stream,
		    const char *want)
{
	struct qmig_save_header h, before;
	char msg[512];
	const char *p = write_file(name, header, len, stream);
	int r;

	r = read_hdr(p, &h, msg, sizeof(msg));
	memset(&before, 0x77, sizeof(before));
	CU_ASSERT(r < 0);
	CU_ASSERT(memcmp(&h, &before, sizeof(h)) == 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(msg, name));
	if (!strstr(msg, want))
		fprintf(stderr, "\n%s: message '%s' lacks '%s'\n", name, msg, want);
	CU_ASSERT_PTR_NOT_NULL(strstr(msg, want));
}

static void refused_hdr(const char *name, const char *key, const char *val, size_t stream,
			const char *want)
{
	char b[2048];

	hdr(b, sizeof(b), key, val);
	refused(name, b, strlen(b), stream, want);
}

static void test_header_hostile(void)
{
	char b[2048], big[QMIG_SAVE_HEADER_SIZE];
	char msg[256];
	struct qmig_save_header h;

	CU_ASSERT_FATAL(mk() == 0);
	refused("zeros", "", 0, 10, "did not complete");
	refused("magic", "QEVM\n{}", 7, 10, "not a file written by qmigrate save");
	refused("json", "QMIGRATE-SAVE 1\n{\"format\":", 26, 10, "not readable JSON");
	refused("array", "QMIGRATE-SAVE 1\n[1,2]", 21, 10, "not readable JSON");
	refused_hdr("format2", "format", "2", 1000, "format");
	refused_hdr("method", "method", "\"exec\"", 1000, "method");
	refused_hdr("missing", "sha256", NULL, 1000, "sha256");
	refused_hdr("type", "ram_bytes", "\"big\"", 1000, "ram_bytes");
	refused_hdr("negative", "stream_bytes", "-5", 1000,
		"stream_bytes");
	refused_hdr("nullval", "machine", "null", 1000, "machine");
	refused_hdr("offset", "stream_offset", "4100", 1000, "offset");
	refused_hdr("hugeoff", "stream_offset", "9223372036854775807", 1000, "offset");
	refused_hdr("channels", "multifd_channels", "100000", 1000,
		"channel");
	refused_hdr("sha", "sha256", "\"ZZ\"", 1000, "SHA-256");
	refused_hdr("machine", "machine", "\"pc;rm -rf /\"", 1000,
		"machine");
	refused_hdr("longqemu", "qemu", "\"10.0.2-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"", 1000, "qemu");
	refused_hdr("short", NULL, NULL, 999, "length");
	refused_hdr("long", NULL, NULL, 1001, "length");
	/* A whole block of JSON-looking bytes with no end. */
	memcpy(big, "QMIGRATE-SAVE 1\n{\"a\":\"", 22);
	memset(big + 22, 'x', sizeof(big) - 22);
	refused("noend", big, sizeof(big), 10, "not readable JSON");
	/* Deep nesting in a member we do not read. */
	{
		size_t n = (size_t)snprintf(big, sizeof(big), "QMIGRATE-SAVE 1\n{\"deep\":");

		while (n < 3000)
			big[n++] = '[';
		refused("deep", big, n, 10, "not readable JSON");
	}
	/* Not through a symbolic link, and a missing file says so. */
	snprintf(b, sizeof(b), "%s/link", dir);
	CU_ASSERT_EQUAL(symlink("good", b), 0);
	CU_ASSERT(qmig_save_read_header(b, &h, msg, sizeof(msg)) == -ELOOP);
	snprintf(b, sizeof(b), "%s/none", dir);
	CU_ASSERT(qmig_save_read_header(b, &h, msg, sizeof(msg)) == -ENOENT);
	CU_ASSERT(qmig_save_read_header(NULL, &h, msg, sizeof(msg)) == -EINVAL);
	rm();
}

static int argv_has(const struct qm_argv *a, const char *opt, const char *val)
{
	for (size_t i = 0; i + 1 < a->n; i++)
		if (!strcmp(a->v[i], opt) && strstr(a->v[i + 1], val))
			return 1;
	return 0;
}

/* qmigrate update's source: RAM in a shared memfd, aux-ram-share on. */
static void test_argv_shared(void)
{
	struct qmig_vm_spec spec = QMIG_VM_SPEC_INIT;
	struct qm_argv a = {0};
	char msg[256];

	spec.shared_mem = 1;
	CU_ASSERT_EQUAL_FATAL(qm_build_argv(&a, &spec, "/tmp/x", "tcg", 256ull << 20, msg,
					    sizeof(msg)), 0);
	CU_ASSERT(argv_has(&a, "-machine", "memory-backend=qmig-ram0,aux-ram-share=on"));
	CU_ASSERT(argv_has(&a, "-object",
			   "memory-backend-memfd,id=qmig-ram0,size=262144k,share=on"));
	CU_ASSERT(argv_has(&a, "-m", "262144k"));
	qm_argv_free(&a);
	spec.shared_mem = 0;
	CU_ASSERT_EQUAL_FATAL(qm_build_argv(&a, &spec, "/tmp/x", "tcg", 256ull << 20, msg,
					    sizeof(msg)), 0);
	CU_ASSERT(!argv_has(&a, "-object", "memory-backend-memfd"));
	qm_argv_free(&a);
}

UNIT_SUITE(save, NULL, NULL, {"header_good", test_header_good},
	   {"header_hostile", test_header_hostile}, {"argv_shared", test_argv_shared})
