/* Internal to engine/: storage migration without shared disks (storage.c).
 *
 * The destination serves each disk over NBD (nbd-server-start, a writable
 * block-export-add per disk); the source opens each export as an NBD
 * client node (blockdev-add) and mirrors its disk into it (blockdev-mirror,
 * sync=full for --copy-storage-all, sync=top for --copy-storage-inc). RAM
 * moves once every mirror is READY, with pause-before-switchover; in that
 * pause each mirror is cancelled without force (a ready mirror then
 * completes: the copy is consistent), its client node deleted, and the
 * migration continued. Afterwards the destination's server is stopped.
 *
 * Every function runs on the engine's fiber: waits suspend the step, they
 * never block the embedder. Each returns 0 or m->error (after qm_fail). */
#ifndef QMIG_STORAGE_INT_H
#define QMIG_STORAGE_INT_H

#include <stdint.h>

struct qmig_migration;
struct json_object;

/* NEGOTIATE: which disks (query-block on both sides), checked (same
 * virtual size, destination writable, a backing file there for --inc),
 * the NBD port; the capability pause-before-switchover goes into want.
 * Nothing is changed. A no-op unless copy_storage is set. */
int qm_storage_plan(struct qmig_migration *m, struct json_object *want);
/* The plan's storage steps (server, exports, client nodes, mirrors),
 * added just before the migrate step. */
int qm_storage_plan_steps(struct qmig_migration *m);
/* Called by the plan before it sends migrate: wait until every mirror is
 * READY (progress as "disk" records), failing on a job error, a stall,
 * a cancel or the deadline. */
int qm_storage_ready(struct qmig_migration *m);
/* QEMU is in pre-switchover (the source is paused): end the mirrors
 * consistently, delete the client nodes, migrate-continue. Idempotent. */
int qm_storage_switchover(struct qmig_migration *m);
/* Keep the destination paused after the move, for qm_storage_verify? */
int qm_storage_holds_dst(const struct qmig_migration *m);
/* CONFIRM, destination paused, source in postmigrate: compare each disk
 * (qemu-img compare -U of both images), then cont the destination unless
 * --verify=memory still holds it. Sets res.disks_verified. A difference
 * fails the migration (the destination has not run). */
int qm_storage_verify(struct qmig_migration *m);
/* FINISH: remove the exports, stop the NBD server, check nothing is left. */
void qm_storage_finish(struct qmig_migration *m);
/* ROLLBACK (after the RAM migration was cancelled): yank and force-cancel
 * the mirrors, delete the client nodes, remove the exports, stop the
 * server; then check with query-block-jobs / query-named-block-nodes /
 * query-block-exports that nothing of ours is left. */
void qm_storage_rollback(struct qmig_migration *m);
/* A sample record gets the mirrors' bytes remaining (disk_remaining,
 * disk_total, disk_dirty_rate) while they run. */
void qm_storage_sample(struct qmig_migration *m, struct json_object *rec);
void qm_storage_free(struct qmig_migration *m);
/* qmigrate recover: remove what a dead job's storage migration left in
 * one QEMU (source: mirrors and NBD client nodes; destination: exports
 * and the NBD server), by the qmigrate- names. Returns the count. */
struct qmig_qmp_conn;
int qm_storage_scrub(struct qmig_qmp_conn *c, int source);

/* ---- shared by storage.c and storage_clean.c (not for other files) ---- */
#ifdef QM_STORAGE_INTERNAL

#include "qmig_commands.h"
#include "qmig_transport.h"

#define MS 1000000LL
#define QM_MAX_DISKS 16
#define STALL_NS (15000 * MS)      /* a mirror that moves nothing for this long failed */
#define CANCEL_WAIT_NS (30000 * MS) /* ending the mirrors in the switchover pause */
#define CLEAN_WAIT_NS (10000 * MS)  /* forced cancels and export removal in a rollback */
#define COMPARE_NS (300000 * MS)    /* qemu-img compare of one disk */
#define PROGRESS_NS (500 * MS)

struct qm_disk {
	char name[128];               /* the device, as query-block names it */
	char src_node[128], dst_node[128];
	char src_file[1024], dst_file[1024];
	char src_fmt[32], dst_fmt[32];
	uint64_t size;
	char job[64], nbd[64], exp[64]; /* ours: qmigrate-mirror-N, -nbd-N, -exp-N */
};

struct qm_storage {
	int n;
	struct qm_disk d[QM_MAX_DISKS];
	struct qmig_port *port;
	unsigned nbd_port;
	int srv_step;                 /* plan index of nbd-server-start, -1 none */
	int switched;                 /* the mirrors were ended for the switchover */
	int cleaned;
	int64_t t0_ns;                /* first mirror started */
	uint64_t last_len;            /* for the disk dirty rate */
	int64_t last_ns;
};

struct qmig_block_job *qm_storage_find_job(struct qmig_block_job *j, int n, const char *id);
/* A list of names, one a line (qmig_cmd_query_*_ids), holding one with this prefix? */
int qm_storage_has_prefix(const char *lines, const char *prefix);
/* Wait until each mirror is concluded; the first job error into err. */
int qm_storage_wait_concluded(struct qmig_migration *m, int64_t deadline, char *err, size_t len);
#endif /* QM_STORAGE_INTERNAL */

#endif
