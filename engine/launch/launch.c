/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * qmig_vm_launch and friends: a QEMU in a private runtime directory (mode
 * 0700) holding qmp.sock, serial.sock, serial.log and qemu.stderr. The
 * launch returns once the QMP socket accepts a connection; if QEMU exits
 * first, its own message (from qemu.stderr) goes to the caller and nothing
 * is left behind. Freeing the handle kills and reaps QEMU (unless it was
 * detached) and removes the directory.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "launch.h"
#include "qmig_commands.h"
#include "doctor/doctor.h"

#define QMP_WAIT_MS 10000
#define TERM_GRACE_MS 1000
#define STDERR_MAX (64 * 1024)
#define DEFAULT_MEM (256ull << 20)
#define MAX_PENDING_LOG 4

struct qmig_vm {
	pid_t pid;
	int pidfd;
	int reaped, wstatus;
	int detach;
	int own_dir; /* we made the directory, so all of it is ours */
	int has_serial;
	char dir[256];
	char qmp[300], serial[300], log[300], err_path[300];
	char accel[64];
	uint64_t mem_bytes;
	/* Who QEMU runs as: change_id set when not as ourselves. */
	int change_id;
	uid_t uid;
	gid_t gid;
	gid_t groups[32];
	int ngroups;
	char *stderr_text;
	struct qmig_log_cb log_cb;
	/* Log lines of the launch itself, delivered only once it succeeded
	 * (a failed call never runs the caller's callback). */
	int n_pending;
	enum qmig_log_level pending_lvl[MAX_PENDING_LOG];
	char pending[MAX_PENDING_LOG][512];
};

static void vm_log(struct qmig_vm *vm, enum qmig_log_level lvl, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void vm_log(struct qmig_vm *vm, enum qmig_log_level lvl, const char *fmt, ...)
{
	va_list ap;

	if (vm->n_pending >= MAX_PENDING_LOG)
		return;
	va_start(ap, fmt);
	vsnprintf(vm->pending[vm->n_pending], sizeof(vm->pending[0]), fmt, ap);
	va_end(ap);
	vm->pending_lvl[vm->n_pending++] = lvl;
}

static void remove_runtime_dir(struct qmig_vm *vm)
{
	if (!*vm->dir)
		return;
	if (vm->own_dir) {
		qm_launch_rm_tree(vm->dir); /* QEMU's files are ours too */
	} else {
		/* The caller's directory: only the files we named. */
		unlink(vm->qmp);
		unlink(vm->serial);
		unlink(vm->log);
		unlink(vm->err_path);
	}
}

static int in_groups(const struct qmig_vm *vm, gid_t gid)
{
	if (gid == vm->gid)
		return 1;
	for (int i = 0; i < vm->ngroups; i++)
		if (vm->groups[i] == gid)
			return 1;
	return 0;
}

/* Can QEMU's user search every directory above path? NULL, or the first
 * one it cannot (in buf). */
static const char *blocked_for(const struct qmig_vm *vm, const char *path, char *buf, size_t len)
{
	struct stat st;
	char *slash;

	snprintf(buf, len, "%s", path);
	while ((slash = strrchr(buf, '/'))) {
		mode_t need;

		if (slash == buf)
			slash[1] = 0;
		else
			*slash = 0;
		if (stat(buf, &st) < 0)
			return buf;
		need = st.st_uid == vm->uid ? S_IXUSR : in_groups(vm, st.st_gid) ? S_IXGRP : S_IXOTH;
		if (!(st.st_mode & need))
			return buf;
		if (slash == buf)
			break;
	}
	return NULL;
}

static int make_runtime_dir(struct qmig_vm *vm, const struct qmig_vm_spec *spec, char *msg,
			    size_t msg_len)
{
	char blocked[256];
	const char *base = getenv("XDG_RUNTIME_DIR");
	struct stat st;

	if (spec->runtime_dir) {
		/* Room for "/serial.sock" inside a sun_path. */
		if (strlen(spec->runtime_dir) > sizeof(((struct sockaddr_un *)0)->sun_path) - 16) {
			snprintf(msg, msg_len, "runtime directory path too long for a socket: %s",
				 spec->runtime_dir);
			return -ENAMETOOLONG;
		}
		snprintf(vm->dir, sizeof(vm->dir), "%s", spec->runtime_dir);
		if (mkdir(vm->dir, 0700) == 0)
			vm->own_dir = 1;
		else if (errno != EEXIST || stat(vm->dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
			int e = errno == EEXIST ? ENOTDIR : errno;

			snprintf(msg, msg_len, "cannot create %s: %s", vm->dir, strerror(e));
			*vm->dir = 0;
			return -e;
		}
	} else {
		char probe[128];

		if (!base || !*base || strlen(base) > 60 || stat(base, &st) < 0 ||
		    !S_ISDIR(st.st_mode))
			base = "/tmp";
		/* QEMU's user must reach its directory: root's own runtime
		 * directory (e.g. /run/user/0, 0700) will not do. */
		snprintf(probe, sizeof(probe), "%s/x", base);
		if (vm->change_id && blocked_for(vm, probe, blocked, sizeof(blocked)))
			base = "/tmp";
		qm_launch_gc(base);
		snprintf(vm->dir, sizeof(vm->dir), "%s/qmig-vm-XXXXXX", base);
		if (!mkdtemp(vm->dir)) {
			int e = errno;

			snprintf(msg, msg_len, "cannot create a runtime directory in %s: %s", base,
				 strerror(e));
			*vm->dir = 0;
			return -e;
		}
		vm->own_dir = 1;
	}
	if (vm->change_id && blocked_for(vm, vm->dir, blocked, sizeof(blocked))) {
		snprintf(msg, msg_len, "QEMU's user (uid %u) cannot reach %s: %s is closed to it",
			 (unsigned)vm->uid, vm->dir, blocked);
		return -EACCES;
	}
	if (vm->change_id && chown(vm->dir, vm->uid, vm->gid) < 0) {
		int e = errno;

		snprintf(msg, msg_len, "cannot hand %s to uid %u: %s", vm->dir, (unsigned)vm->uid,
			 strerror(e));
		return -e;
	}
	snprintf(vm->qmp, sizeof(vm->qmp), "%s/qmp.sock", vm->dir);
	snprintf(vm->serial, sizeof(vm->serial), "%s/serial.sock", vm->dir);
	snprintf(vm->log, sizeof(vm->log), "%s/serial.log", vm->dir);
	snprintf(vm->err_path, sizeof(vm->err_path), "%s/qemu.stderr", vm->dir);
	return 0;
}

static int qmp_accepts(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd, r;

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%.107s", path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return 0;
	r = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
	close(fd); /* frees the monitor for the real client at once */
	return r == 0;
}

static void exit_message(struct qmig_vm *vm, char *msg, size_t msg_len)
{
	char *err = qm_launch_read_tail(vm->err_path, 2000);
	char how[64];

	if (WIFEXITED(vm->wstatus))
		snprintf(how, sizeof(how), "exited with status %d", WEXITSTATUS(vm->wstatus));
	else if (WIFSIGNALED(vm->wstatus))
		snprintf(how, sizeof(how), "was killed by signal %d", WTERMSIG(vm->wstatus));
	else
		snprintf(how, sizeof(how), "exited");
	if (err && *err)
		snprintf(msg, msg_len, "%s", err);
	else
		snprintf(msg, msg_len, "QEMU %s before its QMP socket was ready", how);
	free(err);
}

/* QEMU opens its QMP socket, and may even send the greeting, before it
 * has built the machine (where a bad -kernel or device fails). A command
 * is answered only from the main loop, i.e. once the machine exists. */
static int qmp_answers(const char *path, int timeout_ms)
{
	struct qmig_qmp_conn_opts o = QMIG_QMP_CONN_OPTS_INIT;
	struct qmig_qmp_conn *c = NULL;
	struct qmig_vm_status st;
	int r;

	o.timeout_ms = timeout_ms;
	r = qmig_qmp_conn_open(&c, path, &o);
	if (r == 0)
		r = qmig_cmd_query_status(c, &st);
	qmig_qmp_conn_close(c); /* frees the monitor for the real client */
	return r == 0;
}

/* Bounded: until QMP answers, or QEMU exits (its message goes to msg),
 * or QMP_WAIT_MS. */
static int wait_ready(struct qmig_vm *vm, char *msg, size_t msg_len)
{
	int64_t end = qm_launch_mono_ns() + (int64_t)QMP_WAIT_MS * 1000000;

	for (;;) {
		int64_t left = (end - qm_launch_mono_ns()) / 1000000;

		if (qm_wait_exit(vm->pid, vm->pidfd, 0, &vm->wstatus)) {
			vm->reaped = 1;
			exit_message(vm, msg, msg_len);
			return -EIO;
		}
		if (left > 0 && access(vm->qmp, F_OK) == 0 && qmp_accepts(vm->qmp) &&
		    qmp_answers(vm->qmp, (int)left))
			return 0;
		if (qm_launch_mono_ns() > end) {
			snprintf(msg, msg_len, "QEMU did not open its QMP socket %s within %d s",
				 vm->qmp, QMP_WAIT_MS / 1000);
			return -ETIMEDOUT;
		}
		if (qm_wait_exit(vm->pid, vm->pidfd, 10, &vm->wstatus)) {
			vm->reaped = 1;
			exit_message(vm, msg, msg_len);
			return -EIO;
		}
	}
}

static void vm_destroy(struct qmig_vm *vm, int keep_running)
{
	if (!keep_running && vm->pid > 0 && !vm->reaped) {
		qm_terminate(vm->pid, vm->pidfd, TERM_GRACE_MS, &vm->wstatus);
		vm->reaped = 1;
	}
	if (vm->pidfd >= 0)
		close(vm->pidfd);
	if (!keep_running)
		remove_runtime_dir(vm);
	free(vm->stderr_text);
	free(vm);
}

static uint64_t settle_mem(struct qmig_vm *vm, const struct qmig_vm_spec *spec)
{
	uint64_t mem = spec->mem_bytes ? spec->mem_bytes : DEFAULT_MEM, out;

	mem = (mem + 8191) & ~8191ull; /* QEMU rounds -m up to 8 KiB itself */
	if (!spec->no_mem_workaround && qmig_vm_mem_workaround(mem, vm->accel, qm_binary_version(spec->qemu_binary), &out)) {
		vm_log(vm, QMIG_LOG_INFO,
		       "RAM %llu KiB is a multiple of 256 KiB: launching with %llu KiB, because "
		       "QEMU before 9.0 under TCG loses dirty pages during precopy on such RAM "
		       "blocks (QEMU commit 03bfc2188f); both sides get the same size",
		       (unsigned long long)(mem >> 10), (unsigned long long)(out >> 10));
		mem = out;
	}
	return mem;
}

/* "UID" or "UID:GID". */
static int numeric_ids(const char *s, uid_t *uid, gid_t *gid)
{
	unsigned long u, g;
	char *end;

	if (*s < '0' || *s > '9')
		return 0;
	u = strtoul(s, &end, 10);
	g = u;
	if (*end == ':' && end[1] >= '0' && end[1] <= '9')
		g = strtoul(end + 1, &end, 10);
	if (*end || u > 0x7fffffff || g > 0x7fffffff)
		return 0;
	*uid = (uid_t)u;
	*gid = (gid_t)g;
	return 1;
}

/* Who QEMU runs as: see runas in qmig_launch.h. */
static int resolve_user(struct qmig_vm *vm, const struct qmig_vm_spec *spec, char *msg,
			size_t msg_len)
{
	const char *name = spec->runas ? spec->runas : QMIG_RUNAS_DEFAULT;
	struct passwd pw, *res = NULL;
	char buf[4096];
	int n, r;

	if (spec->change_id) {
		vm->change_id = 1;
		vm->uid = spec->uid;
		vm->gid = spec->gid;
		return 0;
	}
	vm->uid = geteuid();
	vm->gid = getegid();
	if (geteuid() != 0 || !strcmp(name, "root") || !*name)
		return 0;
	if (numeric_ids(name, &vm->uid, &vm->gid)) {
		vm->change_id = vm->uid != 0;
		return 0;
	}
	r = getpwnam_r(name, &pw, buf, sizeof(buf), &res);
	if (r || !res) {
		if (spec->runas) {
			snprintf(msg, msg_len, "cannot run QEMU as '%s': no such user", name);
			return -ENOENT;
		}
		vm_log(vm, QMIG_LOG_WARN,
		       "no user '%s': QEMU runs as root (without capabilities); create it with "
		       "'make install' or tools/deps.sh, or choose one with --runas",
		       QMIG_RUNAS_DEFAULT);
		return 0;
	}
	vm->uid = pw.pw_uid;
	vm->gid = pw.pw_gid;
	vm->change_id = vm->uid != 0;
	/* Its groups (e.g. kvm), looked up here: the child only calls setgroups. */
	n = (int)(sizeof(vm->groups) / sizeof(vm->groups[0]));
	if (getgrouplist(name, pw.pw_gid, vm->groups, &n) < 0)
		n = 0;
	vm->ngroups = n;
	return 0;
}

static int launch(struct qmig_vm *vm, const struct qmig_vm_spec *spec, char *msg,
		  size_t msg_len)
{
	struct qm_argv a = {0};
	struct qm_spawn s = {0};
	struct qmig_vm_spec eff = *spec;
	char why[768];
	int r;

	r = resolve_user(vm, spec, msg, msg_len);
	if (r < 0)
		return r;
	r = make_runtime_dir(vm, spec, msg, msg_len);
	if (r < 0)
		return r;
	/* The KVM smoke test runs as the same user as QEMU will. */
	eff.change_id = vm->change_id;
	eff.uid = vm->uid;
	eff.gid = vm->gid;
	r = qm_choose_accel(&eff, vm->dir, vm->accel, sizeof(vm->accel), why, sizeof(why));
	if (r < 0) {
		snprintf(msg, msg_len, "%s", why);
		return r;
	}
	if (*why)
		vm_log(vm, QMIG_LOG_INFO, "%s", why);
	vm->mem_bytes = settle_mem(vm, spec);
	vm->has_serial = spec->guest != QMIG_GUEST_NONE;
	a.by_fd = vm->change_id;
	{
		/* Helpers run for it (qemu-img for --disk) run as QEMU will. */
		struct qmig_vm_spec as_qemu = *spec;

		as_qemu.change_id = vm->change_id;
		as_qemu.uid = vm->uid;
		as_qemu.gid = vm->gid;
		r = qm_build_argv(&a, &as_qemu, vm->dir, vm->accel, vm->mem_bytes, msg, msg_len);
	}
	if (r < 0)
		goto out;
	s.argv = (const char *const *)a.v;
	s.out_path = vm->err_path;
	s.netns = spec->netns;
	s.detach = spec->detach;
	s.change_id = vm->change_id;
	s.userfaultfd = spec->userfaultfd;
	s.uid = vm->uid;
	s.gid = vm->gid;
	s.groups = vm->groups;
	s.ngroups = vm->ngroups;
	s.keep_fds = a.fds;
	s.nkeep = a.nfds;
	r = qm_spawn(&s, &vm->pid, &vm->pidfd, msg, msg_len);
	if (r < 0)
		goto out;
	if (!spec->detach && vm->own_dir)
		qm_launch_mark_owner(vm->dir, vm->pid);
	r = wait_ready(vm, msg, msg_len);
out:
	qm_argv_free(&a);
	return r;
}

int qmig_vm_launch(struct qmig_vm **out, const struct qmig_vm_spec *spec, char *msg,
		   size_t msg_len)
{
	char dummy[8];
	struct qmig_vm *vm;
	int r;

	if (!msg || !msg_len) {
		msg = dummy;
		msg_len = sizeof(dummy);
	}
	*msg = 0;
	if (!out || !spec || spec->version != QMIG_VM_SPEC_VERSION) {
		snprintf(msg, msg_len, "bad launch spec (version %u, want %u)",
			 spec ? spec->version : 0, QMIG_VM_SPEC_VERSION);
		return -EINVAL;
	}
	vm = calloc(1, sizeof(*vm));
	if (!vm)
		return -ENOMEM;
	vm->pidfd = -1;
	vm->detach = spec->detach;
	r = launch(vm, spec, msg, msg_len);
	if (r < 0) {
		vm_destroy(vm, 0);
		return r;
	}
	vm->log_cb = spec->log;
	for (int i = 0; i < vm->n_pending; i++)
		if (vm->log_cb.fn)
			vm->log_cb.fn(vm->pending_lvl[i], vm->pending[i], vm->log_cb.user_data);
	vm->n_pending = 0;
	*out = vm;
	return 0;
}

void qmig_vm_free(struct qmig_vm *vm)
{
	if (!vm)
		return;
	if (vm->log_cb.free)
		vm->log_cb.free(vm->log_cb.user_data);
	vm_destroy(vm, vm->detach);
}

int qmig_vm_kill(struct qmig_vm *vm)
{
	if (!vm)
		return -EINVAL;
	if (!vm->reaped) {
		qm_terminate(vm->pid, vm->pidfd, 0, &vm->wstatus);
		vm->reaped = 1;
	}
	return 0;
}

int qmig_vm_exited(struct qmig_vm *vm, int *wstatus)
{
	if (!vm)
		return -EINVAL;
	if (!vm->reaped && qm_wait_exit(vm->pid, vm->pidfd, 0, &vm->wstatus))
		vm->reaped = 1;
	if (vm->reaped && wstatus)
		*wstatus = vm->wstatus;
	return vm->reaped;
}

int qmig_vm_pid(const struct qmig_vm *vm)
{
	return vm ? vm->pid : -1;
}

int qmig_vm_pidfd(const struct qmig_vm *vm)
{
	return vm ? vm->pidfd : -1;
}

const char *qmig_vm_qmp_path(const struct qmig_vm *vm)
{
	return vm ? vm->qmp : NULL;
}

/* NULL for caller-defined guests: they have no serial socket of ours. */
const char *qmig_vm_serial_path(const struct qmig_vm *vm)
{
	return vm && vm->has_serial ? vm->serial : NULL;
}

const char *qmig_vm_serial_log(const struct qmig_vm *vm)
{
	return vm && vm->has_serial ? vm->log : NULL;
}

const char *qmig_vm_runtime_dir(const struct qmig_vm *vm)
{
	return vm ? vm->dir : NULL;
}

void qmig_vm_ids(const struct qmig_vm *vm, unsigned int *uid, unsigned int *gid)
{
	if (uid)
		*uid = vm ? (unsigned int)vm->uid : 0;
	if (gid)
		*gid = vm ? (unsigned int)vm->gid : 0;
}

const char *qmig_vm_accel(const struct qmig_vm *vm)
{
	if (!vm)
		return NULL;
	return strncmp(vm->accel, "kvm", 3) ? "tcg" : "kvm";
}

uint64_t qmig_vm_mem_bytes(const struct qmig_vm *vm)
{
	return vm ? vm->mem_bytes : 0;
}

const char *qmig_vm_stderr(struct qmig_vm *vm)
{
	if (!vm)
		return NULL;
	free(vm->stderr_text);
	vm->stderr_text = qm_launch_read_tail(vm->err_path, STDERR_MAX);
	return vm->stderr_text ? vm->stderr_text : "";
}
