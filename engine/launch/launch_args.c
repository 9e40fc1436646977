/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * QEMU's command line for a launch spec, where the guests' files are, and
 * the RAM-size workaround for QEMU < 9.0 under TCG.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <pthread.h>
#include <sys/wait.h>

#include "launch.h"

#define KIB 1024ull
#define MIB (1024ull * 1024)

void qm_argv_add(struct qm_argv *a, const char *s)
{
	char *c;

	if (a->oom)
		return;
	if (a->n + 2 > a->cap) {
		size_t cap = a->cap ? a->cap * 2 : 32;
		char **v = realloc(a->v, cap * sizeof(*v));

		if (!v) {
			a->oom = 1;
			return;
		}
		a->v = v;
		a->cap = cap;
	}
	c = strdup(s);
	if (!c) {
		a->oom = 1;
		return;
	}
	a->v[a->n++] = c;
	a->v[a->n] = NULL;
}

void qm_argv_addf(struct qm_argv *a, const char *fmt, ...)
{
	va_list ap;
	char *s;
	int r;

	va_start(ap, fmt);
	r = vasprintf(&s, fmt, ap);
	va_end(ap);
	if (r < 0) {
		a->oom = 1;
		return;
	}
	qm_argv_add(a, s);
	free(s);
}

void qm_argv_free(struct qm_argv *a)
{
	for (int i = 0; i < a->nfds; i++)
		close(a->fds[i]);
	for (size_t i = 0; i < a->n; i++)
		free(a->v[i]);
	free(a->v);
	memset(a, 0, sizeof(*a));
}

/* QEMU's option syntax doubles a comma inside a value. */
static const char *opt_escape(const char *in, char *buf, size_t len)
{
	size_t o = 0;

	for (; *in && o + 2 < len; in++) {
		buf[o++] = *in;
		if (*in == ',')
			buf[o++] = ',';
	}
	buf[o] = 0;
	return buf;
}

int qmig_vm_mem_workaround(uint64_t size, const char *accel, unsigned qemu_version,
			   uint64_t *out)
{
	/* KVM tracks dirty pages in the kernel and is not affected. An
	 * unknown version (0) counts as affected: the fix is in 9.0. */
	int tcg = !accel || !strncmp(accel, "tcg", 3) || !strcmp(accel, "auto");
	int affected = tcg && (qemu_version == 0 || qemu_version < 90000);

	if (affected && size && size % (256 * KIB) == 0) {
		*out = size + 8 * KIB;
		return 1;
	}
	*out = size;
	return 0;
}

/* A file QEMU reads: its path, or with by_fd an fd we opened, which QEMU
 * reopens through /proc/self/fd (no directory on the way to be searched
 * by QEMU's uid; the file itself must be readable by it). */
static void add_file(struct qm_argv *a, const char *opt, const char *path)
{
	int fd;

	qm_argv_add(a, opt);
	if (!a->by_fd || a->nfds == (int)(sizeof(a->fds) / sizeof(a->fds[0]))) {
		qm_argv_add(a, path);
		return;
	}
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		qm_argv_add(a, path); /* QEMU says why it cannot read it */
		return;
	}
	a->fds[a->nfds++] = fd;
	qm_argv_addf(a, "/proc/self/fd/%d", fd);
}

/* Process-wide launch defaults (qmig_launch_defaults_set): the library
 * reads no environment variable and has no path of the source tree in
 * it; the qmigrate CLI (or a test) says where the test guests are. */
static pthread_mutex_t defaults_lock = PTHREAD_MUTEX_INITIALIZER;
static char *def_guest_dir, *def_linux_dir, *def_accel;
static const struct qmig_guest_ops *def_guest_ops;

static int accel_ok(const char *a)
{
	return !a || !strcmp(a, "auto") || !strncmp(a, "tcg", 3) || !strncmp(a, "kvm", 3);
}

int qmig_launch_defaults_set(const struct qmig_launch_defaults *d)
{
	char *g = NULL, *l = NULL, *a = NULL;

	const struct qmig_guest_ops *ops = d && d->version >= 2 ? d->guest_ops : NULL;

	if (!d || d->version < 1 || d->version > QMIG_LAUNCH_DEFAULTS_VERSION ||
	    !accel_ok(d->accel))
		return -EINVAL;
	if (ops && (ops->version < 1 || ops->version > QMIG_GUEST_OPS_VERSION))
		return -EINVAL;
	if ((d->guest_dir && !(g = strdup(d->guest_dir))) ||
	    (d->linux_dir && !(l = strdup(d->linux_dir))) ||
	    (d->accel && strcmp(d->accel, "auto") && !(a = strdup(d->accel)))) {
		free(g);
		free(l);
		return -ENOMEM;
	}
	pthread_mutex_lock(&defaults_lock);
	free(def_guest_dir);
	free(def_linux_dir);
	free(def_accel);
	def_guest_dir = g;
	def_linux_dir = l;
	def_accel = a;
	def_guest_ops = ops;
	pthread_mutex_unlock(&defaults_lock);
	return 0;
}

const struct qmig_guest_ops *qm_launch_guest_ops(void)
{
	const struct qmig_guest_ops *ops;

	pthread_mutex_lock(&defaults_lock);
	ops = def_guest_ops;
	pthread_mutex_unlock(&defaults_lock);
	return ops;
}

/* A copy of one default ("" when unset). */
static void get_default(char *const *v, char *buf, size_t len)
{
	pthread_mutex_lock(&defaults_lock);
	snprintf(buf, len, "%s", *v ? *v : "");
	pthread_mutex_unlock(&defaults_lock);
}

void qm_default_accel(char *buf, size_t len)
{
	get_default(&def_accel, buf, len);
}

static void guest_dir(char *buf, size_t len)
{
	get_default(&def_guest_dir, buf, len);
	if (!*buf)
		snprintf(buf, len, "%s", QMIG_INSTALL_GUESTDIR);
}

/* The process's Linux guest directory: linux_dir, or linux/ under the
 * guest directory. */
static void linux_dir(char *path, size_t len)
{
	get_default(&def_linux_dir, path, len);
	if (!*path) {
		char dir[3072];

		guest_dir(dir, sizeof(dir));
		snprintf(path, len, "%s/linux", dir);
	}
}

int qm_guest_boot(const struct qmig_vm_spec *spec, struct qmig_guest_boot *b, char *msg,
		  size_t msg_len)
{
	const struct qmig_guest_ops *ops = qm_launch_guest_ops();
	char gdir[3072], ldir[4096];

	memset(b, 0, sizeof(*b));
	if (!ops || !ops->boot) {
		snprintf(msg, msg_len, "no guest plug-in to boot a built-in test guest (the "
			 "library knows none: register one, e.g. the qmigrate CLI's, with "
			 "qmig_launch_defaults.guest_ops)");
		return -ENOTSUP;
	}
	guest_dir(gdir, sizeof(gdir));
	linux_dir(ldir, sizeof(ldir));
	return ops->boot(spec, gdir, ldir, b, msg, msg_len, ops->user_data);
}

static int guest_args(struct qm_argv *a, const struct qmig_vm_spec *spec, char *msg,
		      size_t msg_len)
{
	struct qmig_guest_boot b;
	int r = qm_guest_boot(spec, &b, msg, msg_len);

	if (r < 0)
		return r;
	add_file(a, "-kernel", b.kernel);
	if (*b.initrd)
		add_file(a, "-initrd", b.initrd);
	qm_argv_add(a, "-append");
	qm_argv_add(a, b.append);
	/* The spec's net: the Linux guest's virtio-net NIC, user networking. */
	if (spec->net && spec->guest == QMIG_GUEST_LINUX) {
		qm_argv_add(a, "-netdev");
		if (spec->host_port > 0)
			qm_argv_addf(a, "user,id=n0,hostfwd=tcp:127.0.0.1:%d-:80", spec->host_port);
		else
			qm_argv_add(a, "user,id=n0");
		qm_argv_add(a, "-device");
		qm_argv_add(a, "virtio-net-pci,netdev=n0,romfile=");
	}
	return 0;
}

/* --disk: the image, made with qemu-img in the runtime directory (a
 * source and a destination get the same virtual size from one spec). */
static int make_disk(const struct qmig_vm_spec *spec, const char *dir, char *msg,
		     size_t msg_len)
{
	char img[4200], size[32], out[4200], back[4300];
	const char *argv[12];
	struct qm_spawn s = {0};
	int n = 0, pidfd = -1, st = 0, r;
	pid_t pid;

	snprintf(img, sizeof(img), "%s/disk.img", dir);
	snprintf(out, sizeof(out), "%s/qemu-img.out", dir);
	snprintf(size, sizeof(size), "%llu", (unsigned long long)spec->disk_bytes);
	argv[n++] = "qemu-img";
	argv[n++] = "create";
	argv[n++] = "-q";
	argv[n++] = "-f";
	if (spec->disk_backing) {
		const char *b = spec->disk_backing;
		size_t bl = strlen(b);

		argv[n++] = "qcow2";
		snprintf(back, sizeof(back), "%s", b);
		argv[n++] = "-b";
		argv[n++] = back;
		argv[n++] = "-F";
		argv[n++] = bl > 6 && !strcmp(b + bl - 6, ".qcow2") ? "qcow2" : "raw";
	} else {
		argv[n++] = "raw";
	}
	argv[n++] = img;
	argv[n++] = size;
	argv[n] = NULL;
	s.argv = argv;
	s.out_path = out;
	/* As QEMU's own user: the runtime directory is that user's (and closed
	 * to a root without capabilities), and QEMU must write the image. */
	s.change_id = spec->change_id;
	s.uid = spec->uid;
	s.gid = spec->gid;
	r = qm_spawn(&s, &pid, &pidfd, msg, msg_len);
	if (r < 0)
		return r;
	if (!qm_wait_exit(pid, pidfd, 60000, &st))
		qm_terminate(pid, pidfd, 0, &st);
	if (pidfd >= 0)
		close(pidfd);
	if (!WIFEXITED(st) || WEXITSTATUS(st)) {
		char *why = qm_launch_read_tail(out, 300);

		snprintf(msg, msg_len, "qemu-img create %s %s failed: %s", img, size,
			 why && *why ? why : "(no output)");
		free(why);
		return -EIO;
	}
	if (spec->change_id && chown(img, spec->uid, spec->gid) < 0) {
		snprintf(msg, msg_len, "chown %s: %s", img, strerror(errno));
		return -errno;
	}
	return 0;
}

int qm_build_argv(struct qm_argv *a, const struct qmig_vm_spec *spec, const char *dir,
		  const char *accel, uint64_t mem_bytes, char *msg, size_t msg_len)
{
	char esc[2048];
	int r = 0;

	qm_argv_add(a, spec->qemu_binary ? spec->qemu_binary : "qemu-system-x86_64");
	qm_argv_add(a, "-display");
	qm_argv_add(a, "none");
	qm_argv_add(a, "-nodefaults");
	qm_argv_add(a, "-no-user-config");
	qm_argv_add(a, "-accel");
	qm_argv_add(a, accel);
	qm_argv_add(a, "-m");
	qm_argv_addf(a, "%lluk", (unsigned long long)(mem_bytes / KIB));
	if (!spec->no_sandbox) {
		/* QEMU's own seccomp filter, as libvirt asks for it: no
		 * obsolete system calls, no setuid, no fork/exec, no
		 * scheduler or affinity changes. */
		qm_argv_add(a, "-sandbox");
		qm_argv_add(a, "on,obsolete=deny,elevateprivileges=deny,spawn=deny,"
			       "resourcecontrol=deny");
	}
	if (spec->shared_mem) { /* RAM a new QEMU can take over in place */
		qm_argv_add(a, "-machine");
		qm_argv_add(a, "memory-backend=qmig-ram0,aux-ram-share=on");
		qm_argv_add(a, "-object");
		qm_argv_addf(a, "memory-backend-memfd,id=qmig-ram0,size=%lluk,share=on",
			     (unsigned long long)(mem_bytes / KIB));
	}
	qm_argv_add(a, "-qmp");
	qm_argv_addf(a, "unix:%s/qmp.sock,server=on,wait=off", opt_escape(dir, esc, sizeof(esc)));
	if (spec->guest != QMIG_GUEST_NONE) {
		/* The log gets every byte even with no reader connected. */
		qm_argv_add(a, "-chardev");
		qm_argv_addf(a, "socket,id=ser0,path=%s/serial.sock,server=on,wait=off,"
				"logfile=%s/serial.log", esc, esc);
		qm_argv_add(a, "-serial");
		qm_argv_add(a, "chardev:ser0");
	}
	if (spec->guest != QMIG_GUEST_NONE)
		r = guest_args(a, spec, msg, msg_len);
	if (r < 0)
		return r;
	if (spec->disk_bytes) {
		r = make_disk(spec, dir, msg, msg_len);
		if (r < 0)
			return r;
		qm_argv_add(a, "-blockdev");
		qm_argv_addf(a, "driver=file,node-name=disk0-file,filename=%s/disk.img", esc);
		qm_argv_add(a, "-blockdev");
		qm_argv_addf(a, "driver=%s,node-name=disk0,file=disk0-file",
			     spec->disk_backing ? "qcow2" : "raw");
		qm_argv_add(a, "-device");
		qm_argv_add(a, "virtio-blk-pci,drive=disk0,id=vdisk0");
	}
	if (spec->incoming) {
		qm_argv_add(a, "-incoming");
		qm_argv_add(a, "defer");
	}
	if (spec->paused)
		qm_argv_add(a, "-S");
	for (const char *const *x = spec->extra_args; x && *x; x++)
		qm_argv_add(a, *x);
	return a->oom ? -ENOMEM : 0;
}
