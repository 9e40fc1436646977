/* Newer QEMU migration features the engine uses when the QEMUs have them,
 * each probed from their schemas and query replies, never from a version
 * number (features.c). Internal to engine/. */
#ifndef QMIG_FEATURE_INT_H
#define QMIG_FEATURE_INT_H

#include <stdint.h>
#include <json-c/json.h>

struct qmig_migration;

enum qm_feature {
	QM_F_ZERO_PAGE,       /* zero-page-detection=multifd (parameter) */
	QM_F_COMPRESS,        /* multifd-compression (parameter, --compress) */
	QM_F_SWITCHOVER_ACK,  /* switchover-ack (capability, with return-path) */
	QM_F_CHANNELS,        /* the channels form of migrate / migrate-incoming */
	QM_F_AVAIL_BW,        /* avail-switchover-bandwidth (parameter, fed live) */
	QM_F_COUNT
};

struct qm_features {
	int decided;
	int used[QM_F_COUNT];
	int has[QM_F_COUNT][2];       /* [SRC], [DST]: the QEMU has it */
	char value[QM_F_COUNT][32];   /* what is set, "" none */
	char why[QM_F_COUNT][200];
	/* avail-switchover-bandwidth: the value last set (0: none yet), the
	 * highest smoothed bandwidth the monitor has seen. */
	uint64_t avail_bw_set;
	uint64_t avail_bw_peak;
	int avail_bw_updates;
};

/* The name users and records use ("zero-page-detection", ...). */
const char *qm_feature_name(enum qm_feature f);
/* Plan time, after the wanted capabilities are known: decide each feature
 * (adds switchover-ack and return-path to want when used). 0, or the
 * failure (qm_fail) for a request one side cannot do (--compress). */
int qm_features_plan(struct qmig_migration *m, struct json_object *want);
/* The parameters the features set on one side (0 source, 1 destination). */
void qm_features_params(struct qmig_migration *m, int side, struct json_object *set);
/* The arguments of migrate-incoming / migrate: the channels form when both
 * QEMUs take it, else {"uri": ...}. host NULL: uri is "unix:PATH". */
struct json_object *qm_features_addr_args(struct qmig_migration *m, const char *host,
					  unsigned port, const char *uri);
/* One "plan" record per feature: used or not, and why. */
void qm_features_emit(struct qmig_migration *m);
/* With each precopy sample: feed avail-switchover-bandwidth. 0 or the
 * failure. */
int qm_features_sample(struct qmig_migration *m);

#endif
