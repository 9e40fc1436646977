/* The face of engine/doctor/ (versions.c; doctor.c's functions are public,
 * qmig_doctor.h): what differs between QEMU versions and binaries, the
 * known bugs of each release, for the doctor, the launcher and save/.
 * Internal to engine/. Capabilities and parameters are never decided here: those are
 * probed from each QEMU's own queries and schema. */
#ifndef QMIG_VERSIONS_H
#define QMIG_VERSIONS_H

#include <stddef.h>

#include "qmig_doctor.h"
#include "qmig_launch.h"

/* QEMU's version as major*10000 + minor*100 + micro, from `BIN -version`
 * (NULL: qemu-system-x86_64); 0 when it cannot be told. Only for known
 * bugs fixed in a given release, which no query reveals. */
unsigned qm_binary_version(const char *bin);

/* 1 when `BIN -machine help` lists TYPE (a name or an alias), 0 when it
 * does not, a negative errno when the binary could not be asked. */
int qm_binary_has_machine(const char *bin, const char *type);
/* The machine type a running QEMU was started with, as -machine takes it
 * (qom-get /machine type says "pc-i440fx-7.2-machine"). 0, or -errno
 * (-EPROTO: no such string, or longer than len). */
int qm_machine_type(struct qmig_qmp_conn *c, char *buf, size_t len);

/* Findings that depend on the pair of QEMU versions: the unsupported
 * direction (an older destination without the source's machine type) and
 * the known cross-version bugs. Fills at most MAX, returns how many. */
size_t qm_version_findings(struct qmig_qmp_conn *src, struct qmig_qmp_conn *dst,
			   struct qmig_finding *out, size_t max);

#endif
