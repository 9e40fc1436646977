/* The face of engine/journal/: the job journal that makes a dead job
 * recoverable, ownership, and every change beyond the plan (action.c).
 * Internal to engine/. */
#ifndef QMIG_JOURNAL_INT_H
#define QMIG_JOURNAL_INT_H

#include "core/core.h"

/* journal.c. qm_journal writes what is about to change (side, command,
 * arguments) with the whole job's state; every function that changes a
 * QEMU calls it first. Returns 0 or a negative errno (already logged). */
int qm_journal_init(struct qmig_migration *m);
int qm_journal(struct qmig_migration *m, const char *side, const char *command,
	       struct json_object *args);
void qm_journal_remove(struct qmig_migration *m);
void qm_set_owner(struct qmig_migration *m, enum qm_owner owner, const char *why);
/* Refuse a QEMU a dead job left behind: 0, or qm_fail with the job named. */
int qm_journal_check_orphans(struct qmig_migration *m);
/* Write text to path atomically and durably (temporary file 0600, fsync,
 * rename, fsync of the directory): a journal is whole or absent. */
int qm_write_atomic(const char *path, const char *text);
int qm_write_atomic_sync(const char *path, const char *text, int sync);
int qm_job_alive(int pid, int64_t start);
struct json_object *qm_journal_load(const char *path, int *err);
const char *qm_jget_str(struct json_object *o, const char *k);
int64_t qm_jget_int(struct json_object *o, const char *k, int64_t dflt);
struct json_object *qm_jget_obj(struct json_object *o, const char *k, enum json_type t);
/* Journaled QMP calls for the engine's own stop/cont. */
int qm_stop(struct qmig_migration *m, struct side *s, const char *why);
int qm_cont(struct qmig_migration *m, struct side *s, const char *why);


/* action.c. Every action by the engine, a policy or an operator passes
 * here before it changes the source: it is journaled and recorded. */
void qm_action(struct qmig_migration *m, const char *action, int64_t value, const char *why);
/* A parameter changed on a side after the plan: restored with the plan's. */
void qm_note_param(struct side *s, const char *name);

#endif
