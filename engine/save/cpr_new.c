/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * qmigrate update: the new QEMU. It gets the running QEMU's own command
 * line (/proc/PID/cmdline) with the new binary, our sockets moved to a new
 * private directory, no -incoming/-S/-daemonize/-pidfile of its own, the
 * machine type pinned, and the two -incoming channels (main, cpr). It
 * blocks on the cpr channel before it creates its monitors.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <json-c/json.h>

#include "qm_wait.h"
#include "cpr_int.h"
#include "launch/launch.h"

#define CMDLINE_MAX (256 * 1024)
#define NEW_START_MS 30000 /* a loaded machine starts QEMU slowly */

/* The update's one failure, with the status it ends in (cpr.c and here). */
int qm_upd_fail(struct upd *u, int err, const char *status, const char *fmt, ...)
{
	va_list ap;

	if (u->res->error)
		return u->res->error;
	va_start(ap, fmt);
	vsnprintf(u->res->message, sizeof(u->res->message), fmt, ap);
	va_end(ap);
	u->res->error = err;
	snprintf(u->res->status, sizeof(u->res->status), "%s", status);
	return err;
}

static int read_cmdline(int pid, struct qm_argv *out)
{
	char path[64], *buf;
	size_t len = 0;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/cmdline", pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	buf = malloc(CMDLINE_MAX + 1);
	if (!buf) {
		close(fd);
		return -ENOMEM;
	}
	while (len < CMDLINE_MAX && (n = read(fd, buf + len, CMDLINE_MAX - len)) > 0)
		len += (size_t)n;
	close(fd);
	if (!len || len >= CMDLINE_MAX) {
		free(buf);
		return len ? -E2BIG : -ESRCH;
	}
	buf[len] = 0;
	for (size_t i = 0; i < len; i += strlen(buf + i) + 1)
		qm_argv_add(out, buf + i);
	free(buf);
	return out->oom ? -ENOMEM : 0;
}

/* arg with the first of the old strings it holds replaced by its new one. */
static void add_moved(struct qm_argv *a, const char *arg, const char *const *old,
		      const char *const *new, int n)
{
	for (int i = 0; i < n; i++) {
		const char *p = old[i][0] ? strstr(arg, old[i]) : NULL;

		if (p) {
			qm_argv_addf(a, "%.*s%s%s", (int)(p - arg), arg, new[i],
				     p + strlen(old[i]));
			return;
		}
	}
	qm_argv_add(a, arg);
}

static void add_channel(struct qm_argv *a, const char *type, const char *sock)
{
	struct json_object *ch = json_object_new_object(), *addr = json_object_new_object();

	json_object_object_add(addr, "transport", json_object_new_string("socket"));
	json_object_object_add(addr, "type", json_object_new_string("unix"));
	json_object_object_add(addr, "path", json_object_new_string(sock));
	json_object_object_add(ch, "channel-type", json_object_new_string(type));
	json_object_object_add(ch, "addr", addr);
	qm_argv_add(a, "-incoming");
	qm_argv_add(a, json_object_to_json_string_ext(ch, JSON_C_TO_STRING_PLAIN |
							      JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(ch);
}

/* The old command line with: the new binary; in launch mode our files in
 * the new directory; no -incoming, -S or -daemonize of its own; the
 * machine type pinned; the two channels. */
/* "/proc/self/fd/N" in the old QEMU means its own fd N (qmigrate passes a
 * launched guest's kernel and initrd that way, so that an unprivileged QEMU
 * needs no path to them): open the same file through /proc/OLD/fd/N and
 * hand the new QEMU that fd. Other arguments are copied as they are. */
static int add_inherited(struct upd *u, struct qm_argv *a, const char *arg)
{
	const char *p = strstr(arg, "/proc/self/fd/");
	char path[64];
	long n;
	int fd;

	if (!p)
		return 0;
	n = strtol(p + 14, NULL, 10);
	if (n < 0 || n > 65535 || u->ninherit == (int)(sizeof(u->inherit) / sizeof(u->inherit[0])))
		return -EINVAL;
	snprintf(path, sizeof(path), "/proc/%d/fd/%ld", u->old_pid, n);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	u->inherit[u->ninherit++] = fd;
	qm_argv_addf(a, "%.*s/proc/self/fd/%d", (int)(p - arg), arg, fd);
	return 1;
}

static int build_new_argv(struct upd *u, struct qm_argv *a)
{
	struct qm_argv old = {0};
	char from[2][QM_PATHLEN + 2], to[2][QM_PATHLEN + 16], sock[QM_PATHLEN + 16];
	const char *fp[2] = {from[0], from[1]}, *tp[2] = {to[0], to[1]};
	int r = read_cmdline(u->old_pid, &old);

	if (r < 0)
		return qm_upd_fail(u, r, "failed",
				   "cannot read the running QEMU's command line "
				   "(/proc/%d/cmdline): %s",
				   u->old_pid, strerror(-r));
	/* Our files move to the new directory: the old QEMU keeps its own
	 * sockets (QEMU unlinks a socket path before it binds it). */
	if (u->attach) {
		snprintf(from[0], sizeof(from[0]), "%s", u->old_qmp);
		snprintf(to[0], sizeof(to[0]), "%s", u->new_qmp);
		snprintf(from[1], sizeof(from[1]), "%s", u->old_serial);
		snprintf(to[1], sizeof(to[1]), "%s", u->new_serial);
	} else {
		snprintf(from[0], sizeof(from[0]), "%s/", u->old_dir);
		snprintf(to[0], sizeof(to[0]), "%s/", u->dir);
		from[1][0] = to[1][0] = 0;
	}
	qm_argv_add(a, u->o->new_qemu ? u->o->new_qemu : old.v[0]);
	for (size_t i = 1; i < old.n; i++) {
		const char *x = old.v[i];

		if (!strcmp(x, "-incoming") || !strcmp(x, "--incoming")) {
			i++;
			continue;
		}
		if (!strcmp(x, "-S") || !strcmp(x, "-daemonize") || !strcmp(x, "--daemonize"))
			continue;
		/* The old QEMU holds its pid file locked: the new one would stop
		 * at it. It is rewritten once the new QEMU runs the guest. */
		if ((!strcmp(x, "-pidfile") || !strcmp(x, "--pidfile")) && i + 1 < old.n) {
			snprintf(u->pidfile, sizeof(u->pidfile), "%s", old.v[++i]);
			continue;
		}
		r = add_inherited(u, a, x);
		if (r < 0) {
			qm_argv_free(&old);
			return qm_upd_fail(u, r, "failed",
					   "cannot reopen the running QEMU's file %s: %s", x,
					   strerror(-r));
		}
		if (r == 0)
			add_moved(a, x, fp, tp, 2);
	}
	qm_argv_free(&old);
	qm_argv_add(a, "-machine");
	qm_argv_add(a, u->machine);
	snprintf(sock, sizeof(sock), "%s/main.sock", u->dir);
	add_channel(a, "main", sock);
	snprintf(sock, sizeof(sock), "%s/cpr.sock", u->dir);
	add_channel(a, "cpr", sock);
	return a->oom ? qm_upd_fail(u, -ENOMEM, "failed", "out of memory") : 0;
}

int qm_upd_make_dir(struct upd *u)
{
	const char *base = getenv("XDG_RUNTIME_DIR");
	struct stat st;

	if (!base || !*base || strlen(base) > 60 || stat(base, &st) < 0 || !S_ISDIR(st.st_mode))
		base = "/tmp";
	snprintf(u->dir, sizeof(u->dir), "%s/qmig-vm-XXXXXX", base);
	if (!mkdtemp(u->dir)) {
		int e = errno;

		u->dir[0] = 0;
		return qm_upd_fail(u, -e, "failed", "cannot create a runtime directory in %s: %s",
				   base, strerror(e));
	}
	return 0;
}

int qm_upd_new_exited(struct upd *u)
{
	int ws;

	if (u->new_pid <= 0 || u->new_reaped)
		return u->new_reaped;
	if (qm_wait_exit(u->new_pid, u->new_pidfd, 0, &ws))
		u->new_reaped = 1;
	return u->new_reaped;
}

const char *qm_upd_new_stderr(struct upd *u, char *buf, size_t len)
{
	char path[QM_PATHLEN + 16], *t;

	snprintf(path, sizeof(path), "%s/qemu.stderr", u->dir);
	t = qm_launch_read_tail(path, 400);
	snprintf(buf, len, "%s", t && *t ? t : "(no message)");
	free(t);
	for (char *p = buf; *p; p++)
		if (*p == '\n' && p[1])
			*p = ' ';
	return buf;
}

/* Is a unix socket listening at path? /proc/net/unix marks listening
 * sockets with __SO_ACCEPTCON (0x10000) in Flags. The file exists a moment
 * before listen(), and a connect in between is refused; connecting to test
 * would take QEMU's one accept. -1: cannot tell (another namespace). */
static int unix_listening(const char *path)
{
	FILE *f = fopen("/proc/net/unix", "re");
	char line[512 + QM_PATHLEN];
	int found = 0;

	if (!f)
		return -1;
	while (!found && fgets(line, sizeof(line), f)) {
		unsigned long flags;
		char p[QM_PATHLEN + 2];
		size_t n;

		/* Num RefCount Protocol Flags Type St Inode Path */
		if (sscanf(line, "%*s %*s %*s %lx %*s %*s %*s %201s", &flags, p) != 2)
			continue;
		n = strlen(p);
		if (n && !strcmp(p, path) && (flags & 0x10000))
			found = 1;
	}
	fclose(f);
	return found;
}

int qm_upd_start_new(struct upd *u)
{
	struct qm_argv a = {0};
	struct qm_spawn sp = {0};
	char out[QM_PATHLEN + 16], cpr[QM_PATHLEN + 16], msg[512], err[512];
	int64_t end;
	int r;

	r = build_new_argv(u, &a);
	if (r < 0)
		goto out;
	snprintf(out, sizeof(out), "%s/qemu.stderr", u->dir);
	sp.argv = (const char *const *)a.v;
	sp.out_path = out;
	sp.netns = u->attach ? NULL : u->o->guest.netns;
	sp.detach = u->attach || u->o->keep_running;
	sp.keep_fds = u->inherit;
	sp.nkeep = u->ninherit;
	/* The new QEMU runs as the old one does (its QMP peer's credentials):
	 * each must reach the other's channel sockets and files. */
	{
		uid_t uid;
		gid_t gid;

		if (qm_qemu_cred(u->c, &uid, &gid) == 0 && uid != geteuid()) {
			sp.change_id = 1;
			sp.uid = uid;
			sp.gid = gid;
			if (chown(u->dir, uid, gid) < 0) {
				r = qm_upd_fail(u, -errno, "failed", "cannot hand %s to uid %u: %s",
						u->dir, (unsigned)uid, strerror(errno));
				goto out;
			}
		}
	}
	r = qm_spawn(&sp, &u->new_pid, &u->new_pidfd, msg, sizeof(msg));
	if (r < 0) {
		r = qm_upd_fail(u, r, "failed", "cannot start the new QEMU: %s", msg);
		goto out;
	}
	if (!sp.detach)
		qm_launch_mark_owner(u->dir, u->new_pid);
	u->res->new_pid = u->new_pid;
	qm_sr_log(&u->o->log, QMIG_LOG_INFO,
		  "new QEMU %d started (%s), waiting for its cpr channel", (int)u->new_pid, a.v[0]);
	/* migrate fails at once unless the cpr channel already listens. */
	snprintf(cpr, sizeof(cpr), "%s/cpr.sock", u->dir);
	end = qm_sr_now_ns() + (int64_t)NEW_START_MS * MS;
	while (access(cpr, F_OK) < 0 || (!sp.netns && unix_listening(cpr) == 0)) {
		if (qm_upd_new_exited(u)) {
			r = qm_upd_fail(u, -EIO, "failed",
					"the new QEMU exited before listening: %s",
					qm_upd_new_stderr(u, err, sizeof(err)));
			goto out;
		}
		if (qm_sr_now_ns() > end) {
			r = qm_upd_fail(u, -ETIMEDOUT, "failed",
					"the new QEMU did not open its cpr channel within %d s",
					NEW_START_MS / 1000);
			goto out;
		}
		qm_sleep_until(qm_wait_now_ns() + 2000000);
	}
out:
	while (u->ninherit)
		close(u->inherit[--u->ninherit]);
	qm_argv_free(&a);
	return r;
}
