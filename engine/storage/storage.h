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
#include <sys/types.h>

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
/* CONFIRM, destination paused, source in postmigrate: the result of each
 * disk's comparison (qemu-img compare -U of both images, started by the
 * switchover as soon as both images were final, or here), then cont the
 * destination unless --verify=memory still holds it. Sets
 * res.disks_verified; res.disk_verify_ms is the time the destination
 * waited here for it. A difference fails the migration (the destination
 * has not run). */
int qm_storage_verify(struct qmig_migration *m);
/* FINISH, first: wait for the engine's flush of the destination's images
 * (the NBD clients had cache.no-flush). 0, or qm_fail: the migration then
 * ends "completed-with-errors", the destination keeping the guest and the
 * source kept paused (qm_storage_finish returns 1). */
int qm_storage_durable(struct qmig_migration *m);
/* FINISH: wait for the destination's images to be flushed (NBD clients
 * with cache.no-flush), remove the exports, stop the NBD server(s), check
 * nothing is left. Returns 1 when the flush failed: the destination's
 * images are not known to be durable, so the source (its disks complete
 * and durable up to the switchover) must be kept, not quit; else 0. */
int qm_storage_finish(struct qmig_migration *m);
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
#define NOCONV_NS (3000 * MS)       /* no new low of the bytes left: not converging */

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
	/* Only without no-flush (no qemu-io here): the destination's images,
	 * when this host can open them: their dirty pages are written back
	 * while RAM moves, so that the flush in the source's stop (through the
	 * NBD client, into the destination's page cache) finds little left to
	 * write. -1: not open. */
	int wb_fd[QM_MAX_DISKS];
	/* The comparisons, started in the switchover once both images are
	 * final, run while QEMU sends the device state: pid or 0. */
	pid_t cmp_pid[QM_MAX_DISKS];
	int cmp_spawned[QM_MAX_DISKS];
	int cmp_done[QM_MAX_DISKS];   /* reaped early: its wait status in cmp_status */
	int cmp_status[QM_MAX_DISKS];
	int cmp_started;
	int64_t cmp_t0_ns, cmp_end_ns;
	int other_rw;                 /* a writable disk not copied (shared storage) */
	/* --copy-storage-synchronous where QEMU has block-job-change: the
	 * mirrors start in the background and turn write-blocking only when
	 * they stop converging (no new low of the bytes left for NOCONV_NS). */
	int can_change, blocking;
	uint64_t low_left;
	int64_t low_ns;
	uint64_t last_done;           /* for the mirrors' copy rate */
	double copy_rate, dirty_rate; /* bytes/s, smoothed over the samples */
	int early_cont;               /* the destination was told to run once loaded */
	/* The NBD client nodes are opened with cache.no-flush=on: QEMU's own
	 * flushes of them (the source's vm stop, the mirror's, the nodes'
	 * close) no longer wait for the destination's fdatasync inside the
	 * downtime. The engine flushes the destination's images itself once
	 * the mirrors have ended (flush_pid: qemu-io over the NBD export, or
	 * a child's fdatasync of the local images), and the job is completed
	 * (the source quit) only once that flush succeeded. */
	int noflush;
	int flush_started;
	pid_t flush_pid[QM_MAX_DISKS];
	int flush_failed;             /* a flush failed: the source is kept */
	int64_t flush_t0_ns, flush_end_ns;
	/* Disks compared through NBD (the images are not both on this host):
	 * a read-only export of each source disk on the source's own NBD
	 * server (127.0.0.1, src_port), read with the destination's export
	 * by qemu-img compare in the source's namespace. */
	int nbd_cmp;
	struct qmig_port *src_port;
	unsigned src_nbd_port;
	int src_srv;                  /* we started the source's NBD server */
	/* The switchover on the engine's clock (ns): cancel sent, mirrors
	 * concluded, migrate-continue answered, source completed, NBD clients
	 * deleted, disks compared, destination told to run, flushed. */
	int64_t ts_pause, ts_cancel, ts_concluded, ts_continue, ts_completed, ts_deleted, ts_compared,
		ts_cont;
};

struct qmig_block_job *qm_storage_find_job(struct qmig_block_job *j, int n, const char *id);
/* A list of names, one a line (qmig_cmd_query_*_ids), holding one with this prefix? */
int qm_storage_has_prefix(const char *lines, const char *prefix);
/* Wait until each mirror is concluded; the first job error into err. */
int qm_storage_wait_concluded(struct qmig_migration *m, int64_t deadline, char *err, size_t len);
/* Start the disks' comparisons in the background (storage_clean.c):
 * those whose destination image is raw at once (its page cache holds what
 * the mirror wrote), the others only once flushed (their metadata too). */
void qm_storage_compare_start(struct qmig_migration *m, int flushed);
/* After migrate-continue, the destination held: the NBD clients closed
 * once the source has completed, the comparisons, and `cont` the
 * destination when all are identical (storage_clean.c). */
int qm_storage_after_continue(struct qmig_migration *m);

/* The explicit flush of the destination's images (storage_clean.c):
 * started once the mirrors' NBD clients are gone; qm_storage_flush_wait
 * returns 0 when it is done and succeeded (or not needed), <0 if not. */
void qm_storage_flush_start(struct qmig_migration *m);
int qm_storage_flush_wait(struct qmig_migration *m, int64_t deadline);
/* The image-opts of an NBD export (comma-escaped), for qemu-io/qemu-img. */
int qm_storage_nbd_opts(struct qmig_migration *m, char *buf, size_t len, const char *host,
			unsigned port, const char *export, int tls);
/* The --object for the NBD client's TLS, or "" without --tls. */
void qm_storage_tls_object(struct qmig_migration *m, char *buf, size_t len);

/* Kill and reap comparisons still running (a rollback, the end). */
void qm_storage_compare_stop(struct qmig_migration *m);
/* Close the destination images opened for their writeback (storage.c). */
void qm_storage_writeback_close(struct qm_storage *st);
#endif /* QM_STORAGE_INTERNAL */

#endif
