/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Internal to the launcher (engine/launch*.c): not exported. */
#ifndef QMIG_LAUNCH_INT_H
#define QMIG_LAUNCH_INT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "qmig_launch.h"

/* A growing, NULL-terminated argv of our own copies. */
struct qm_argv {
	char **v;
	size_t n, cap;
	int oom;
	/* by_fd: the guest's files are opened here and named to QEMU as
	 * /proc/self/fd/N, so a QEMU of another uid needs no path to them. */
	int by_fd;
	int fds[4];
	int nfds;
};

void qm_argv_add(struct qm_argv *a, const char *s);
void qm_argv_addf(struct qm_argv *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void qm_argv_free(struct qm_argv *a);

/* How the child is set up between fork and exec. */
struct qm_spawn {
	const char *const *argv;
	const char *out_path;   /* stdout and stderr go here (replaced; a regular file
				 * or nothing yet); NULL: /dev/null */
	const char *netns;      /* NULL, a name under /run/netns, or a path */
	int detach;             /* no death signal: outlive the caller */
	int change_id;
	int userfaultfd;
	int read_any;           /* keep CAP_DAC_READ_SEARCH (a tool of ours reading
				   images that belong to QEMU's user), not with change_id */
	unsigned int uid, gid;
	const gid_t *groups;    /* supplementary groups with change_id */
	int ngroups;
	const int *keep_fds;    /* fds QEMU inherits (by number) */
	int nkeep;
};

/* Fork and exec. On success *pid and *pidfd (-1 if the kernel has no
 * pidfd_open) are set. A failure between fork and exec is reported with
 * the step that failed in msg, and the child is reaped. */
int qm_spawn(const struct qm_spawn *s, pid_t *pid, int *pidfd, char *msg, size_t msg_len);
/* The uid and gid of the process at the other end of a QMP connection
 * (SO_PEERCRED): 0, or a negative errno. */
int qm_qemu_cred(struct qmig_qmp_conn *conn, uid_t *uid, gid_t *gid);
/* Wait up to timeout_ms for the child to exit; 1 exited (reaped, status
 * in *wstatus), 0 still running. */
int qm_wait_exit(pid_t pid, int pidfd, int timeout_ms, int *wstatus);
/* SIGTERM, a grace period, SIGKILL; always reaps. */
void qm_terminate(pid_t pid, int pidfd, int grace_ms, int *wstatus);

/* qmig_launch_defaults_set's accel ("" none). */
void qm_default_accel(char *buf, size_t len);
/* What boots a built-in guest of spec->guest, from the process's guest
 * plug-in (qmig_guest.h): 0, -ENOTSUP without one, or its error. */
int qm_guest_boot(const struct qmig_vm_spec *spec, struct qmig_guest_boot *b, char *msg,
		  size_t msg_len);

/* The accelerator for this spec ("tcg" or "kvm..."), running the KVM smoke
 * test when asked for "auto". why receives the reason for the choice. */
int qm_choose_accel(const struct qmig_vm_spec *spec, const char *dir, char *accel, size_t len,
		    char *why, size_t why_len);

/* QEMU's command line for a spec whose accelerator and RAM are settled. */
int qm_build_argv(struct qm_argv *a, const struct qmig_vm_spec *spec, const char *dir,
		  const char *accel, uint64_t mem_bytes, char *msg, size_t msg_len);

/* Runtime directories: remove one with all it holds; name its owner and
 * QEMU in it; remove those of ours whose owner and QEMU both died. */
void qm_launch_rm_tree(const char *dir);
void qm_launch_mark_owner(const char *dir, pid_t qemu);
void qm_launch_gc(const char *base);

/* Read up to max bytes of the tail of a file into a new string. */
char *qm_launch_read_tail(const char *path, size_t max);
int64_t qm_launch_mono_ns(void);
/* The process's guest plug-in (qmig_launch_defaults.guest_ops), or NULL. */
const struct qmig_guest_ops *qm_launch_guest_ops(void);


#endif
