/* Internal to engine/save/ (save*.c, restore.c, cpr*.c):
 * small blocking helpers shared by save, restore and update. Nothing here
 * is exported. */
#ifndef QMIG_SAVE_INT_H
#define QMIG_SAVE_INT_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "qmig_commands.h"
#include "qmig_save.h"
#include "doctor/doctor.h"
#include "guest/guest.h"

/* save_file.c: the header block and the stream's checksum. */
int qm_sf_sha256(int fd, uint64_t off, uint64_t len, char hex[65]);
int qm_sf_write_header(int fd, const struct qmig_save_header *h);
/* 0, or a negative errno with msg naming path and what is wrong. */
int qm_sf_parse_header(int fd, const char *path, struct qmig_save_header *h, char *msg,
		       size_t len);

int64_t qm_sr_now_ns(void);
void qm_sr_log(const struct qmig_log_cb *log, enum qmig_log_level lvl, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* The machine type: qm_machine_type() in doctor/doctor.h. */
/* query-version: "10.0.2" and major*10000+minor*100+micro. */
int qm_sr_qemu_version(struct qmig_qmp_conn *c, char *buf, size_t len, unsigned *num);

/* Poll query-migrate until completed, failed or cancelled, at most
 * timeout_ms. 0 completed (mi filled), -EIO failed (msg has QEMU's
 * error-desc), -ETIMEDOUT, or the QMP error. */
int qm_sr_wait_migration(struct qmig_qmp_conn *c, int timeout_ms, struct qmig_migrate_info *mi,
			 char *msg, size_t msg_len);
/* The same, returning -ECANCELED as soon as *cancel is nonzero. */
int qm_sr_wait_migration_c(struct qmig_qmp_conn *c, int timeout_ms, const volatile int *cancel,
			   struct qmig_migrate_info *mi, char *msg, size_t msg_len);

/* Capabilities and parameters changed for one job, and their old values,
 * so that they can be put back. */
struct qm_sr_saved {
	struct json_object *caps;    /* {"name": old bool} */
	struct json_object *params;  /* {"name": old value} */
};
/* Set capability name to on, remembering the old value. */
int qm_sr_set_cap(struct qmig_qmp_conn *c, struct qm_sr_saved *sv, const char *name, int on);
/* Set an integer parameter, remembering the old value. */
int qm_sr_set_param(struct qmig_qmp_conn *c, struct qm_sr_saved *sv, const char *name,
		    int64_t value);
int qm_sr_set_param_str(struct qmig_qmp_conn *c, struct qm_sr_saved *sv, const char *name,
			const char *value);
/* Put everything back (parameters first, then capabilities in reverse). */
void qm_sr_restore(struct qmig_qmp_conn *c, struct qm_sr_saved *sv);
void qm_sr_saved_free(struct qm_sr_saved *sv);

/* Wait for n heartbeats with none saying corrupt: 1 yes, 0 corrupt, -ETIMEDOUT. */
int qm_sr_beats(struct qm_probe *hb, unsigned n, int timeout_ms, char *msg, size_t len);

/* Stop (if running), check the tiny guest's stamps, and leave it stopped.
 * 1 verified, 0 bad pages (msg says which), -ENOMSG not our tiny guest,
 * other negative errno: could not check. */
int qm_sr_check_stamps(struct qmig_qmp_conn *c, const char *dir, uint64_t *pages, char *msg,
		       size_t len);

/* A job journal in the format of engine/journal/journal.c (qmig_recover_job()
 * reads it): the old/saving QEMU is the "source", the new QEMU (update) or
 * the file (save, no QMP) the "destination". */
struct qm_sr_journal {
	char path[4096];          /* "" when there is none */
	char job[32];
	int64_t pid_start;
	const char *kind;         /* "save", "update" */
	const char *mode;         /* "attach", "launch" */
	const char *phase;
	const char *owner;        /* "source", "destination" */
	int migrate_started;
	int keep_source;
	struct json_object *src, *dst; /* sides, owned */
};
/* Job id (NULL: the pid) and directory (NULL: no journal). */
int qm_sr_journal_init(struct qm_sr_journal *j, const char *dir, const char *job_id,
		       const char *kind, const char *mode);
/* A side's record: qmp path, QEMU pid (<=0 none), runtime dir, whether the
 * guest ran, the original capabilities/parameters (whole objects) and the
 * names about to change. Replaces the previous one. */
void qm_sr_journal_side(struct qm_sr_journal *j, int dst, const char *qmp, int pid,
			const char *dir, int was_running, struct json_object *orig_caps,
			struct json_object *orig_params, const char *const *set_caps,
			const char *const *set_params, int incoming_started);
/* Write it (atomically, 0600) with the step about to be taken. */
int qm_sr_journal_write(struct qm_sr_journal *j, const char *side, const char *step);
void qm_sr_journal_remove(struct qm_sr_journal *j);

#endif
