/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libqmigrate — the doctor: known QEMU migration bugs and the common
 * traps, found for a pair of QEMUs before a migration. Each finding names
 * the problem and the fix. The migration engine runs the same checks first
 * and turns REFUSE findings into refusals (and WARN ones into log lines).
 */
#ifndef QMIG_DOCTOR_H
#define QMIG_DOCTOR_H

#include <stddef.h>

#include "qmig_qmp.h"

#ifdef __cplusplus
extern "C" {
#endif

enum qmig_finding_severity { QMIG_FINDING_INFO, QMIG_FINDING_WARN, QMIG_FINDING_REFUSE };

struct qmig_finding {
	enum qmig_finding_severity severity;
	char id[48];        /* stable, e.g. "tcg-dirty-bitmap-256k" */
	char problem[320];
	char fix[256];
};

#define QMIG_DOCTOR_OPTS_VERSION 2

struct qmig_doctor_opts {
	unsigned int version;
	const char *listen_addr;    /* where the destination will listen (port check) */
	unsigned port_lo, port_hi;  /* 0: 49152-49215 */
	const char *port_lock_dir;
	const char *dst_netns;
	int same_host;              /* the destination runs here: check its files and memory */
	int skip_ports;             /* the caller reserves the port itself (the engine does) */
	/* version 2: where a failed run says why (may be NULL) */
	char *err;
	size_t err_len;
};

#define QMIG_DOCTOR_OPTS_INIT {.version = QMIG_DOCTOR_OPTS_VERSION, .same_host = 1}

/* dst may be NULL (source-only checks). *findings is malloc'd (free with
 * qmig_findings_free), *n may be 0. Returns 0, or a negative errno when a
 * QEMU could not be read: a reply of the wrong shape (-EPROTO), a broken
 * or silent connection; then opts->err says which QEMU and what, and
 * nothing is returned in *findings. A command QEMU refuses only skips the
 * check that needed it. */
int qmig_doctor_run(struct qmig_qmp_conn *src, struct qmig_qmp_conn *dst,
		    const struct qmig_doctor_opts *opts, struct qmig_finding **findings, size_t *n);
void qmig_findings_free(struct qmig_finding *f);
const char *qmig_finding_severity_name(enum qmig_finding_severity s);

#ifdef __cplusplus
}
#endif
#endif
