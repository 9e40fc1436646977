/* Internal to engine/save/cpr.c and cpr_new.c: one update (qmig_update),
 * shared by the hand-over and the new QEMU's start. Nothing here is
 * exported. */
#ifndef QMIG_CPR_INT_H
#define QMIG_CPR_INT_H

#include <sys/types.h>

#include "save_int.h"

#define QM_PATHLEN 200 /* paths of sockets: a sun_path holds 108 */
#define MS 1000000

struct upd {
	const struct qmig_update_opts *o;
	struct qmig_update_result *res;
	struct qmig_vm *vm;            /* launch mode: the old QEMU */
	struct qmig_qmp_conn *c;       /* the old QEMU */
	struct qmig_qmp_conn *nc;      /* the new QEMU */
	struct qmig_schema *schema;
	struct qm_probe *hb, *nhb;
	struct qm_sr_saved sv;
	char old_qmp[QM_PATHLEN];
	char old_serial[QM_PATHLEN];
	char old_dir[QM_PATHLEN];        /* launch mode: the old runtime dir */
	char dir[QM_PATHLEN];            /* our directory: channel sockets, new QEMU's files */
	char new_qmp[QM_PATHLEN + 16], new_serial[QM_PATHLEN + 16];
	ino_t qmp_ino, serial_ino;     /* inodes a new socket must not have (0: none) */
	char machine[64];
	char pidfile[QM_PATHLEN];      /* the old command line's -pidfile */
	int old_pid;
	pid_t new_pid;
	int new_pidfd;
	int new_reaped;
	int was_running;
	int owner_new;
	int attach;
	struct qm_sr_journal j;
	/* The old QEMU's open files its command line names as /proc/self/fd/N
	 * (a launched guest's kernel and initrd), reopened for the new one. */
	int inherit[8];
	int ninherit;
};

int qm_upd_fail(struct upd *u, int err, const char *status, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* cpr_new.c: a private directory for the channels and the new QEMU's
 * files; the new QEMU started from the old command line, bounded until
 * its cpr channel listens; whether it exited; its stderr's tail. */
int qm_upd_make_dir(struct upd *u);
int qm_upd_start_new(struct upd *u);
int qm_upd_new_exited(struct upd *u);
const char *qm_upd_new_stderr(struct upd *u, char *buf, size_t len);

#endif
