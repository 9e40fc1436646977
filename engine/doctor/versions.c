/* What differs between QEMU versions and binaries: known bugs by release,
 * the machine types a binary has, and the destination of a launched
 * cross-version migration (see versions.h). */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <json-c/json.h>

#include "qm_wait.h"
#include "qmig_commands.h"
#include "doctor.h"

#define DEFAULT_QEMU "qemu-system-x86_64"
#define ASK_TIMEOUT_MS 20000 /* a loaded machine starts QEMU slowly */

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Run BIN with one argument, stdout into BUF (NUL-terminated, cut at
 * LEN-1), stderr discarded, never a shell. Returns the bytes kept or a
 * negative errno (-ETIMEDOUT: killed after ASK_TIMEOUT_MS). */
static int ask_binary(const char *bin, const char *arg1, const char *arg2, char *buf,
		      size_t len)
{
	int p[2], st = 0;
	size_t got = 0;
	int64_t deadline = now_ms() + ASK_TIMEOUT_MS;
	pid_t pid;

	if (pipe2(p, O_CLOEXEC) < 0)
		return -errno;
	pid = fork();
	if (pid < 0) {
		int e = -errno;

		close(p[0]);
		close(p[1]);
		return e;
	}
	if (pid == 0) {
		int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
		const char *argv[] = {bin, arg1, arg2, NULL};

		if (dup2(p[1], 1) < 0 || (devnull >= 0 && (dup2(devnull, 0) < 0 ||
							     dup2(devnull, 2) < 0)))
			_exit(127);
		execvp(bin, (char *const *)argv);
		_exit(127);
	}
	close(p[1]);
	for (;;) {
		struct pollfd pfd = {p[0], POLLIN, 0};
		int64_t left = deadline - now_ms();
		char scratch[4096];
		ssize_t r;

		if (left <= 0 || qm_wait_fd(pfd.fd, POLLIN, deadline * 1000000) <= 0) {
			kill(pid, SIGKILL);
			waitpid(pid, NULL, 0);
			close(p[0]);
			return -ETIMEDOUT;
		}
		if (got + 1 < len)
			r = read(p[0], buf + got, len - 1 - got);
		else
			r = read(p[0], scratch, sizeof(scratch)); /* drain what does not fit */
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		if (got + 1 < len)
			got += (size_t)r;
	}
	close(p[0]);
	buf[got] = 0;
	if (qm_wait_pid(pid, &st, 0) < 0) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		return -ECHILD;
	}
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		return -ENOEXEC;
	return (int)got;
}

unsigned qm_binary_version(const char *bin)
{
	char out[512];
	const char *v;
	unsigned a = 0, b = 0, c = 0;

	if (ask_binary(bin ? bin : DEFAULT_QEMU, "-version", NULL, out, sizeof(out)) < 0)
		return 0;
	v = strstr(out, "version ");
	if (!v || sscanf(v + 8, "%u.%u.%u", &a, &b, &c) < 2 || a > 99 || b > 99 || c > 99)
		return 0;
	return a * 10000 + b * 100 + c;
}

int qm_binary_has_machine(const char *bin, const char *type)
{
	char *out, *line, *save = NULL;
	size_t tl = strlen(type);
	int r, found = 0;

	out = malloc(64 * 1024);
	if (!out)
		return -ENOMEM;
	r = ask_binary(bin ? bin : DEFAULT_QEMU, "-machine", "help", out, 64 * 1024);
	if (r < 0) {
		free(out);
		return r;
	}
	/* "pc-i440fx-7.2        Standard PC ..." : the name is the first word. */
	for (line = strtok_r(out, "\n", &save); line && !found; line = strtok_r(NULL, "\n", &save))
		found = !strncmp(line, type, tl) && (line[tl] == ' ' || line[tl] == '\t' ||
						     !line[tl]);
	free(out);
	return found;
}

int qm_machine_type(struct qmig_qmp_conn *c, char *buf, size_t len)
{
	struct json_object *ret = NULL;
	const char *t;
	size_t n;
	int r;

	r = qmig_cmd_qom_get(c, "/machine", "type", &ret);
	if (r < 0)
		return r;
	t = json_object_is_type(ret, json_type_string) ? json_object_get_string(ret) : NULL;
	n = t ? strlen(t) : 0;
	if (n > 8 && !strcmp(t + n - 8, "-machine"))
		n -= 8;
	if (!n || n >= len) {
		json_object_put(ret);
		return -EPROTO;
	}
	memcpy(buf, t, n);
	buf[n] = 0;
	json_object_put(ret);
	return 0;
}

static void finding(struct qmig_finding *out, size_t max, size_t *n,
		    enum qmig_finding_severity sev, const char *id, const char *fix,
		    const char *problem)
{
	if (*n >= max)
		return;
	out[*n].severity = sev;
	snprintf(out[*n].id, sizeof(out[*n].id), "%s", id);
	snprintf(out[*n].fix, sizeof(out[*n].fix), "%s", fix);
	snprintf(out[*n].problem, sizeof(out[*n].problem), "%.319s", problem);
	(*n)++;
}

static int dst_has_machine(struct qmig_qmp_conn *dst, const char *type)
{
	struct json_object *ms = NULL;
	int found = 0;

	if (qmig_cmd_query_machines(dst, &ms) < 0)
		return -1;
	for (size_t i = 0; i < json_object_array_length(ms); i++) {
		struct json_object *mo = json_object_array_get_idx(ms, i), *v;

		if (json_object_object_get_ex(mo, "name", &v) &&
		    !strcmp(json_object_get_string(v) ? json_object_get_string(v) : "", type))
			found = 1;
	}
	json_object_put(ms);
	return found;
}

#define V(x) (x) / 10000, (x) / 100 % 100, (x) % 100

size_t qm_version_findings(struct qmig_qmp_conn *src, struct qmig_qmp_conn *dst,
			   struct qmig_finding *out, size_t max)
{
	unsigned sv = qmig_qmp_qemu_version(qmig_qmp_conn_core(src));
	unsigned dv = qmig_qmp_qemu_version(qmig_qmp_conn_core(dst));
	char mt[128], text[512];
	size_t n = 0;

	if (!sv || !dv)
		return 0;
	/* Backwards: a newer QEMU's default machine type does not exist in an
	 * older one, whose device models cannot load the newer state. */
	if (dv < sv && qm_machine_type(src, mt, sizeof(mt)) == 0 && dst_has_machine(dst, mt) == 0) {
		snprintf(text, sizeof(text),
			 "migrating from QEMU %u.%u.%u to the older QEMU %u.%u.%u is not supported "
			 "for this guest: it runs machine type %s, which QEMU %u.%u lacks, and an "
			 "older QEMU cannot load a newer machine's device state",
			 V(sv), V(dv), mt, dv / 10000, dv / 100 % 100);
		finding(out, max, &n, QMIG_FINDING_REFUSE, "qemu-downgrade",
			"migrate to a QEMU at least as new as the source, or start the source "
			"with a machine type both have (e.g. -machine pc-i440fx-7.2)", text);
	}
	/* QEMU issue 2720: QEMU 9.2 stopped reading the data that a multifd
	 * source before 9.0 sends with its SYNC packets; the stream desyncs and
	 * the migration fails. Fixed by commit b93d897ea2 (in 10.0; backported
	 * to some 9.2.x stable releases). */
	if (sv < 90000 && dv >= 90200 && dv < 100000) {
		snprintf(text, sizeof(text),
			 "multifd from QEMU %u.%u.%u (before 9.0) to QEMU %u.%u.%u may fail: QEMU "
			 "9.2 ignores the page data older sources send with multifd SYNC packets "
			 "(QEMU issue 2720, fixed by commit b93d897ea2)",
			 V(sv), V(dv));
		finding(out, max, &n, QMIG_FINDING_WARN, "multifd-sync-9.2",
			"migrate without --multifd, or to QEMU 10.0 or a 9.2.x with the fix", text);
	}
	return n;
}
