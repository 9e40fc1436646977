/* The face of engine/verify/: what proves a migration right beyond QEMU's
 * word. Internal to engine/. */
#ifndef QMIG_VERIFY_INT_H
#define QMIG_VERIFY_INT_H

#include "core/core.h"

/* verify_mem.c: compare both sides' RAM. 0 identical, 1 pages differ,
 * negative errno when it could not compare (rep->error says why). */
#define QM_MEMCMP_FIRST 8
struct qm_memcmp_report {
	uint64_t ram_bytes, pages_checked, pages_bad;
	uint64_t first[QM_MEMCMP_FIRST];
	int nfirst;
	char error[256];
};
int qm_memcmp_sides(struct qmig_migration *m, struct qmig_qmp_conn *src,
		    struct qmig_qmp_conn *dst, struct qm_memcmp_report *rep);

#endif
