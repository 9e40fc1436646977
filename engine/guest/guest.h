/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The face of engine/guest/ to the other folders of the engine: the one
 * seam through which the engine reaches a guest plug-in (struct
 * qmig_guest_ops, qmig_guest.h). The engine knows no particular guest;
 * every call below is a no-op or -ENOTSUP without a plug-in. Not exported. */
#ifndef QM_GUEST_INT_H
#define QM_GUEST_INT_H

#include <stddef.h>

#include "qmig_guest.h"

/* A plug-in's probe of one guest's serial socket. */
struct qm_probe;

/* The process's plug-in (qmig_launch_defaults.guest_ops), or NULL. */
const struct qmig_guest_ops *qm_guest_default(void);

/* 0 and *out set; -ENOTSUP when ops has no probe; the plug-in's error. */
int qm_probe_open(struct qm_probe **out, const struct qmig_guest_ops *ops,
		  const char *serial_socket);
void qm_probe_free(struct qm_probe *p);
/* -1 for NULL. */
int qm_probe_fd(const struct qm_probe *p);
/* Read what is there without blocking; 0 for NULL. */
int qm_probe_process(struct qm_probe *p);
/* *out zeroed for NULL. */
void qm_probe_get(const struct qm_probe *p, struct qmig_guest_stats *out);
/* Wait (qm_wait_fd: suspends on a fiber) up to timeout_ms for n new beats:
 * 0, -ETIMEDOUT, -ECONNRESET. */
int qm_probe_wait(struct qm_probe *p, unsigned n, int timeout_ms);
/* Does the guest check its own memory on request (and the plug-in ask)? */
int qm_probe_can_check(const struct qm_probe *p);
/* check_ask / check_answer of the plug-in; -ENOTSUP without them. */
int qm_probe_check_ask(struct qm_probe *p, struct qmig_qmp_conn *conn);
int qm_probe_check_answer(struct qm_probe *p, struct qmig_verify_report *rep);

/* The plug-in's host check of a stopped guest; -ENOTSUP without one. */
int qm_guest_verify(const struct qmig_guest_ops *ops, struct qmig_qmp_conn *conn,
		    const char *dir, struct qmig_verify_report *rep);

#endif
