/* Helpers shared by the guest_*.c and launch_*.c integration tests
 * (header-only: each test is one program). */
#ifndef QMIG_TEST_GUEST_UTIL_H
#define QMIG_TEST_GUEST_UTIL_H

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <json-c/json.h>

#include "qmig_commands.h"
#include "qmig_guests.h"
#include "qmig_launch.h"
#include "qmig_migrate.h"

static int failed;

#define CHECK(cond, ...)                                                                 \
	do {                                                                             \
		if (!(cond)) {                                                           \
			fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond); \
			fprintf(stderr, __VA_ARGS__);                                    \
			fputc('\n', stderr);                                             \
			failed = 1;                                                      \
			goto out;                                                        \
		}                                                                        \
	} while (0)

static inline int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* The library reads no environment and knows no source tree: the test
 * guests of this tree (built by make), a Linux guest directory (NULL: the
 * default under the guests) and the meaning of accel "auto" (NULL: probe). */
static inline void use_tree_guests(const char *linux_dir, const char *accel)
{
	struct qmig_launch_defaults d = QMIG_LAUNCH_DEFAULTS_INIT;

	d.guest_dir = QMIG_BUILD_GUESTDIR;
	d.linux_dir = linux_dir;
	d.accel = accel;
	d.guest_ops = &qmig_test_guest_ops;
	if (qmig_launch_defaults_set(&d) < 0) {
		fprintf(stderr, "qmig_launch_defaults_set failed\n");
		exit(1);
	}
}

static inline void skip_without_qemu(void)
{
	use_tree_guests(NULL, getenv("QMIGRATE_ACCEL"));
	if (system("qemu-system-x86_64 --version >/dev/null 2>&1") != 0) {
		printf("skipped: qemu-system-x86_64 not installed\n");
		exit(77);
	}
}

/* A tiny-guest source and a destination waiting with -incoming, launched by
 * the library, and the attach-mode options that point at them. 0, or fails
 * with the launch's message in msg. */
static inline int launch_pair(struct qmig_vm **src, struct qmig_vm **dst, uint64_t mem,
			      uint64_t wss, uint64_t rate, struct qmig_migrate_opts *o,
			      char *msg, size_t len)
{
	struct qmig_vm_spec spec = QMIG_VM_SPEC_INIT;
	int r;

	spec.guest = QMIG_GUEST_TINY;
	spec.accel = "tcg";
	spec.mem_bytes = mem;
	spec.wss_bytes = wss;
	spec.dirty_rate = rate;
	r = qmig_vm_launch(src, &spec, msg, len);
	if (r < 0)
		return r;
	spec.incoming = 1;
	r = qmig_vm_launch(dst, &spec, msg, len);
	if (r < 0)
		return r;
	o->src_qmp = qmig_vm_qmp_path(*src);
	o->dst_qmp = qmig_vm_qmp_path(*dst);
	o->src_serial = qmig_vm_serial_path(*src);
	o->dst_serial = qmig_vm_serial_path(*dst);
	return 0;
}

/* The host virtual address of a guest-physical one, from HMP's gpa2hva
 * (through QMP's human-monitor-command): 0 if QEMU does not say. */
static inline uint64_t gpa2hva(struct qmig_qmp_conn *c, uint64_t gpa)
{
	struct json_object *args = json_object_new_object(), *ret = NULL;
	char cmd[64];
	const char *s, *p;
	uint64_t hva = 0;

	snprintf(cmd, sizeof(cmd), "gpa2hva 0x%llx", (unsigned long long)gpa);
	json_object_object_add(args, "command-line", json_object_new_string(cmd));
	if (qmig_qmp_conn_call(c, "human-monitor-command", args, &ret, -1) == 0 &&
	    (s = json_object_get_string(ret)) && (p = strstr(s, " is 0x")))
		hva = strtoull(p + 4, NULL, 16);
	json_object_put(args);
	json_object_put(ret);
	return hva;
}

/* Change guest memory behind QEMU's back: write into its address space
 * through /proc/PID/mem, as a bit flip or a lost write would. */
static inline int poke_guest(struct qmig_qmp_conn *c, int pid, uint64_t gpa, uint32_t val)
{
	char path[64];
	uint64_t hva = gpa2hva(c, gpa);
	int fd, r;

	if (!hva)
		return -ENOENT;
	snprintf(path, sizeof(path), "/proc/%d/mem", pid);
	fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	r = pwrite(fd, &val, sizeof(val), (off_t)hva) == (ssize_t)sizeof(val) ? 0 : -errno;
	close(fd);
	return r;
}

/* Wait (bounded) until the file contains needle; returns its line or NULL. */
static inline char *wait_in_file(const char *path, const char *needle, int timeout_ms)
{
	int64_t end = now_ns() + (int64_t)timeout_ms * 1000000;
	static char line[256];

	do {
		FILE *f = fopen(path, "r");

		if (f) {
			while (fgets(line, sizeof(line), f))
				if (strstr(line, needle)) {
					fclose(f);
					return line;
				}
			fclose(f);
		}
		usleep(10000);
	} while (now_ns() < end);
	return NULL;
}

#endif
