/* The face of engine/converge/: the monitor's samples, the model and the
 * policies (predict.c, policy.c, sim.c), their live wiring (converge.c),
 * the verdict, the completion bound and the operator's steering
 * (steer.c). Internal to engine/. */
#ifndef QMIG_CONVERGE_INT_H
#define QMIG_CONVERGE_INT_H

#include "core/core.h"

/* monitor.c */
int qm_monitor_sample(struct qmig_migration *m, struct qmig_migrate_info *info);

/* policy.c: calc-dirty-rate's sample-pages per GiB for a guest this big
 * (the predictive policy's error bounds assume it). */
unsigned qm_dirty_sample_pages(uint64_t mem_bytes);

/* converge.c */
int qm_policy_open(struct qmig_migration *m);
void qm_policy_close(struct qmig_migration *m);
int qm_policy_plan(struct qmig_migration *m, struct json_object *want_caps);
int qm_policy_step(struct qmig_migration *m);
void qm_policy_sample_of(const struct qmig_migration *m, struct qmig_policy_sample *ps);

/* steer.c: with each precopy sample, the verdict's hint (once) and the
 * completion bound. */
int qm_converge_check(struct qmig_migration *m);

#endif
