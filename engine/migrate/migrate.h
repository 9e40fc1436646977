/* Internal to engine/migrate/ (no other folder includes it): the phases,
 * the plan, postcopy, the destination of a cross-version launch. */
#ifndef QMIG_MIGRATE_INT_H
#define QMIG_MIGRATE_INT_H

#include "core/core.h"

/* phases.c */
int qm_phase_step(struct qmig_migration *m);
void qm_side_event(const char *event, struct json_object *data, int64_t sec, int64_t usec,
		   void *user_data);

/* plan.c */
int qm_plan_build(struct qmig_migration *m);
int qm_plan_exec(struct qmig_migration *m, int upto_migrate);
void qm_plan_emit(struct qmig_migration *m);
int qm_restore_side(struct qmig_migration *m, struct side *s);

/* postcopy.c */
int qm_precopy_decide(struct qmig_migration *m, const struct qmig_migrate_info *mi);
int qm_postcopy_step(struct qmig_migration *m, const struct qmig_migrate_info *mi);

/* xver.c. The destination's launch spec in launch mode, once the source runs:
 * its own binary (dst_qemu_binary), the source's exact RAM size and, when
 * the destination QEMU has it, the source's concrete machine type (e.g.
 * pc-i440fx-7.2) so that a newer QEMU builds the same devices. The
 * storage behind the changed spec lives in X until the launch is done. */
struct qm_xver {
	const char *argv[40];
	char machine[128];
};
void qm_xver_dst_spec(struct qmig_migration *m, struct qmig_vm_spec *spec, struct qm_xver *x);

#endif
