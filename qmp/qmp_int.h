/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Internal to qmp/: shared between the core, the connection and the
 * schema. Not installed; names start with qm_ so the version script keeps
 * them out of the shared library. */
#ifndef QM_QMP_INT_H
#define QM_QMP_INT_H

#include <stdarg.h>

#include "qmig_qmp.h"

/* Log through the core's callback, if any. */
void qm_qmp_log(struct qmig_qmp *qmp, enum qmig_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Install a log callback without running the old one's free (used by the
 * connection, which owns the callback until its open succeeds). */
void qm_qmp_take_log(struct qmig_qmp *qmp, const struct qmig_log_cb *log);

/* Number our commands from id on (before anything is sent). A real
 * connection starts at a random id, so that a reply left on the monitor
 * by an earlier client cannot carry the id of one of ours. */
void qm_qmp_set_next_id(struct qmig_qmp *qmp, uint64_t id);

/* The number of commands sent or held and not yet answered. */
size_t qm_qmp_pending(const struct qmig_qmp *qmp);

/* Forget a command we no longer wait for (its call timed out), so a late
 * reply is dropped quietly and eof does not count it. */
void qm_qmp_forget(struct qmig_qmp *qmp, uint64_t id);

/* Does the current message hold partial input (cut in half on eof)? */
int qm_qmp_mid_message(const struct qmig_qmp *qmp);

/* Set the connection's message for a failure found above it (a reply of
 * the wrong shape in commands.c); returns err. */
int qm_qmp_conn_fail(struct qmig_qmp_conn *c, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
