/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libqmigrate — job journals and recovery.
 *
 * A migration given a journal directory (qmig_migrate_opts.journal_dir)
 * keeps DIR/JOB.journal up to date while it runs and removes it at the
 * end. When the process dies (kill -9, a crash, a power cut of the
 * management host) the journal remains: qmig_journal_list() finds it and
 * qmig_recover_job() reconnects to both QEMUs and finishes or rolls back
 * by the ownership rule: a guest that the destination has not yet run is
 * given back to the source (migration cancelled, source resumed if it was
 * running); one the destination has run stays there (the source is never
 * resumed). Capabilities, parameters and objects are restored on each
 * side, stale port locks and RAM dumps removed, the journal deleted.
 */
#ifndef QMIG_JOURNAL_H
#define QMIG_JOURNAL_H

#include <stddef.h>
#include <stdint.h>

#include "qmig_qmp.h"

#ifdef __cplusplus
extern "C" {
#endif

#define QMIG_JOURNAL_FORMAT 1

struct qmig_job_info {
	char job[32];
	int pid;
	int alive;          /* its process still runs (pid and start time match) */
	char phase[16];
	char owner[16];     /* "source" or "destination" */
	char mode[8];       /* "attach" or "launch" */
	char step[48];      /* the last step it was about to take */
	char src_qmp[256];
	char dst_qmp[256];
	int64_t updated_us; /* wall clock of the last write */
	char path[512];
};

/* Every journal in dir (none when dir does not exist). */
int qmig_journal_list(const char *dir, struct qmig_job_info **out, size_t *n);
void qmig_journal_list_free(struct qmig_job_info *jobs);

#define QMIG_RECOVER_OPTS_VERSION 1

struct qmig_recover_opts {
	unsigned int version;
	int qmp_timeout_ms;  /* per QMP command; 0: 10 s */
	int wait_ms;         /* longest wait for QEMU to cancel or finish; 0: 60 s */
	struct qmig_log_cb log;
};

#define QMIG_RECOVER_OPTS_INIT {.version = QMIG_RECOVER_OPTS_VERSION}

struct qmig_recover_result {
	char job[32];
	/* "rolled-back": the source has the guest (running if it was);
	 * "finished": the destination runs it, the source is paused or quit;
	 * "left-paused": postcopy that cannot go on; both sides stay paused
	 * and the journal is kept; "cleaned": no QEMU was left to act on;
	 * "unreachable": a QEMU listens but does not answer (busy), nothing
	 * was changed and the journal is kept (-EAGAIN): try again. */
	char outcome[16];
	char owner[16];
	int error;
	char message[1024];
};

/* Recover the dead job JOB in dir. -EBUSY: it is still running;
 * -ENOENT: no such journal. On a left-paused postcopy it returns -EAGAIN
 * and keeps the journal. */
int qmig_recover_job(const char *dir, const char *job, const struct qmig_recover_opts *opts,
		     struct qmig_recover_result *out);

#ifdef __cplusplus
}
#endif
#endif
