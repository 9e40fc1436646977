/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libqmigrate — one live migration, as a state machine you drive.
 *
 *   struct qmig_migrate_opts o = QMIG_MIGRATE_OPTS_INIT;
 *   o.src_qmp = "/run/vm1/qmp.sock"; o.dst_qmp = "/run/vm1-dst/qmp.sock";
 *   qmig_migration_new(&m, &o);
 *   qmig_migration_run(m);            (or your own loop, below)
 *   struct qmig_result r = QMIG_RESULT_INIT;
 *   qmig_migration_result(m, &r);
 *   qmig_migration_free(m);
 *
 * Embedding: poll qmig_migration_get_fd() for POLLIN with the timeout from
 * qmig_migration_get_timeout(), then call qmig_migration_process(); repeat
 * until it returns 1 (finished). Each step does short, bounded QMP
 * exchanges over local sockets and never waits for the migration itself
 * (nor, in a rollback, for QEMU to cancel or the guest to heartbeat).
 *
 * Whatever fails, the engine rolls back: the source guest ends running as
 * it was, a destination it launched is gone, its port is released and the
 * capabilities and parameters it changed are restored.
 */
#ifndef QMIG_MIGRATE_H
#define QMIG_MIGRATE_H

#include <stddef.h>
#include <stdint.h>

#include "qmig_qmp.h"
#include "qmig_launch.h"
#include "qmig_policy.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The phases, in order. ROLLBACK is entered from any phase on failure. */
enum qmig_phase {
	QMIG_PHASE_INIT,
	QMIG_PHASE_PREPARE,    /* launch or attach both QEMUs */
	QMIG_PHASE_NEGOTIATE,  /* probe schemas, plan, set capabilities and parameters */
	QMIG_PHASE_START,      /* port, migrate-incoming, migrate */
	QMIG_PHASE_PRECOPY,    /* monitor until QEMU switches over */
	QMIG_PHASE_POSTCOPY,   /* the destination runs, pulling the pages it lacks */
	QMIG_PHASE_SWITCHOVER, /* source stopped, last pages and devices moving */
	QMIG_PHASE_CONFIRM,    /* destination running and verified */
	QMIG_PHASE_FINISH,     /* source quit (or kept paused), cleanup */
	QMIG_PHASE_DONE,
	QMIG_PHASE_ROLLBACK,
	QMIG_PHASE_FAILED
};

const char *qmig_phase_name(enum qmig_phase phase);

/* Output structs begin with `size`, set by the caller (the _INIT macro):
 * the library writes no more than that many bytes and sets size to what it
 * wrote, so a caller built against an older, shorter struct stays safe
 * when the struct grows. A size of 0 (a struct not made with the macro) is
 * taken as this header's size. Structs the library hands out itself (the
 * sample of an event) carry their own size. */

/* One monitor sample (also sent as a JSON record). */
struct qmig_sample {
	size_t size;                /* QMIG_SAMPLE_INIT */
	int64_t t_ms;               /* since the migration started */
	uint64_t pass;              /* dirty-sync count: 1 is the first full pass */
	uint64_t transferred, remaining, total; /* bytes */
	uint64_t dirty_rate;        /* bytes/s, QEMU's dirty-pages-rate * page size */
	uint64_t bandwidth;         /* bytes/s, the engine's smoothed estimate */
	double percent;             /* of this pass, 0-100 */
	int64_t expected_downtime_ms;
	int64_t eta_ms;             /* engine estimate, -1 when it cannot converge */
	int64_t throttle_pct;
	char status[32];            /* QEMU's migration status */
	/* --transport relay: bytes/s the relay itself moved from source to
	 * destination since the last sample (every channel; an estimate
	 * independent of QEMU's), and its running total. 0 otherwise. */
	uint64_t relay_bandwidth;
	uint64_t relay_bytes;
};

#define QMIG_SAMPLE_INIT {.size = sizeof(struct qmig_sample)}

/* Every event is a JSON record with a "type" key ("phase", "plan",
 * "sample", "pass", "action", "log", "result"); sample is set for "sample". */
struct qmig_migration_event {
	const char *type;
	enum qmig_phase phase;
	const struct qmig_sample *sample;
	struct json_object *record;  /* borrowed for the duration of the call */
};

struct qmig_migration_event_cb {
	void (*fn)(const struct qmig_migration_event *ev, void *user_data);
	void *user_data;
	void (*free)(void *user_data);
};

#define QMIG_MIGRATE_OPTS_VERSION 6

/* How the migration stream travels (the transport option). */
enum qmig_transport_kind {
	QMIG_TRANSPORT_DIRECT = 0,  /* QEMU to QEMU over TCP */
	QMIG_TRANSPORT_RELAY = 1    /* QEMU - unix socket - qmigrate - TCP/TLS - qmigrate - QEMU */
};

struct qmig_migrate_opts {
	unsigned int version;

	/* Attach mode: the QMP sockets of two running QEMUs, the destination
	 * started with -incoming defer. */
	const char *src_qmp;
	const char *dst_qmp;

	/* Launch mode (when src_qmp is NULL): both QEMUs from one spec. */
	struct qmig_vm_spec guest;
	const char *src_netns;      /* run the source QEMU in this namespace */
	const char *dst_netns;      /* run the destination QEMU in this namespace */

	/* Channel. */
	const char *dst_addr;       /* address the source connects to (default 127.0.0.1) */
	const char *listen_addr;    /* address the destination listens on (default dst_addr) */
	unsigned port_lo, port_hi;  /* incoming port range (default 49152-49215) */
	const char *port_lock_dir;  /* NULL: the transport default */

	/* Tuning. 0 means the engine's default; see qmigrate(1). */
	uint64_t max_bandwidth;     /* bytes/s (default: effectively unlimited) */
	int64_t downtime_limit_ms;  /* 0: leave QEMU's */
	int multifd_channels;       /* 0: multifd off */
	const char *const *caps;    /* extra capabilities to enable, NULL-terminated */

	/* Behaviour. */
	int dry_run;                /* plan and emit "plan" records, change nothing */
	int keep_source;            /* leave the source paused instead of quitting it */
	int keep_dest;              /* launch mode: leave the destination running */
	int no_verify;              /* skip heartbeat/stamp checks of our test guests */
	int timeout_ms;             /* whole migration; 0: 10 minutes */
	int sample_ms;              /* monitor interval; 0: 100 ms */
	int qmp_timeout_ms;         /* per QMP command; 0: 10 s */

	struct qmig_migration_event_cb on_event;
	struct qmig_log_cb log;

	/* Attach mode: serial sockets of our test guests, for heartbeats. */
	const char *src_serial;
	const char *dst_serial;

	/* Compare every page of both sides' RAM before the destination runs
	 * (any guest; not with postcopy). The destination is kept paused
	 * until the comparison passes; its time is not counted as downtime. */
	int verify_memory;

	/* Postcopy: enable postcopy-ram on both sides and switch to it after
	 * this many passes (default 1: once the first full pass is done) or
	 * this many ms, whichever comes first. When the stream breaks (or
	 * stalls for postcopy_stall_ms) during postcopy, the engine pauses
	 * both sides and recovers on a fresh port, retrying with backoff for
	 * recover_timeout_ms (default 120 s) before it gives up. */
	int postcopy;
	int postcopy_after_passes;
	int postcopy_after_ms;
	int postcopy_stall_ms;      /* default 3000 */
	int recover_timeout_ms;

	/* Stop the guest after this many ms of precopy so that the migration
	 * completes non-live (0: never). */
	int pause_after_ms;

	/* Migration parameters as "name=value", NULL-terminated; the value's
	 * type follows the parameter's (number, boolean or string). */
	const char *const *params;

	/* TLS with QEMU's own tls-creds-x509 objects: the certificate directory
	 * (qmigrate tls init) for both sides, or one for each; checked with
	 * OpenSSL before anything is changed, objects removed afterwards. */
	const char *tls_dir;
	const char *tls_dst_dir;    /* NULL: tls_dir */
	const char *tls_hostname;   /* name the destination's certificate must carry;
				       NULL: dst_addr */
	const char *tls_authz;      /* id of an authz object on the destination, optional */

	/* Write every record (phase, plan, sample, pass, event, action,
	 * result), after one "config" record, to this new JSONL file (see
	 * trace_overwrite). */
	const char *trace_path;

	/* Convergence policy: a built-in by name (qmig_policy_names()), or a
	 * plug-in shared object; NULL both: passive. Limits it works within. */
	const char *policy;
	const char *policy_plugin;
	int64_t max_downtime_ms;    /* the most a policy may raise downtime-limit to */
	/* the longest pause-to-finish a policy may choose (predictive, 0: max_downtime_ms) */
	int64_t max_pause_ms;

	/* Measure the guest's dirty rate before migrating (calc-dirty-rate,
	 * page-sampling: the mode safe under TCG) for this many seconds, so
	 * the model predicts from the first pass on. 0: only when a policy
	 * other than passive is in use (then 1 s); -1: never. */
	int measure_dirty_s;

	/* Go ahead despite the doctor's refusals (they are logged and traced). */
	int force;

	/* Version 2 adds the fields from here on; a version-1 caller gets
	 * their defaults. */
	/* Launch mode: the destination's QEMU binary when it is not the
	 * source's (guest.qemu_binary); the destination then gets the source's
	 * machine type and RAM size. Must outlive the handle. */
	const char *dst_qemu_binary;
	/* Completion bound, in the manner of KubeVirt's completionTimeoutPerGiB:
	 * precopy must complete within this many seconds per GiB of guest RAM
	 * (never less than 60 s), else the migration is rolled back with a
	 * message naming what would make it converge. 0: the default, 150 s
	 * per GiB; -1: no bound (wait as long as QEMU would). */
	int completion_timeout_per_gib_s;
	/* The job journal: before every step that changes a QEMU
	 * the engine writes JOURNAL_DIR/JOB.journal (atomically, 0600) with
	 * the original values and who owns the guest, and removes it at the
	 * end; qmig_recover_job() finishes or rolls back a job that died.
	 * NULL: no journal. job_id NULL: the process id. */
	const char *journal_dir;
	const char *job_id;

	/* Version 3. trace_path is created (never through a symbolic link);
	 * an existing file is an error (-EEXIST) unless this is set, then it
	 * is replaced. */
	int trace_overwrite;
	/* Version 4 adds the fields from here on. */
	/* How the stream travels. QMIG_TRANSPORT_DIRECT: QEMU to QEMU over
	 * TCP (TLS by QEMU's own objects). QMIG_TRANSPORT_RELAY: each QEMU
	 * migrates over unix sockets in a private directory and qmigrate
	 * carries every channel over TCP between its two relay halves (TLS
	 * with tls_dir's certificates in the relay: QEMU itself then runs
	 * without TLS). Both halves run inside this handle's loop for now. */
	enum qmig_transport_kind transport;
	/* Relay: the network namespace the source half makes its TCP
	 * connections in, and the one the destination half listens in.
	 * NULL: src_netns and dst_netns (the QEMUs' own). */
	const char *relay_src_netns;
	const char *relay_dst_netns;
	/* Version 5 adds the fields from here on. */
	/* Storage without shared disks (engine/storage.c): the destination
	 * serves its disks over NBD, the source mirrors each local disk into
	 * them (blockdev-mirror), RAM moves once every mirror is in sync, and
	 * the mirrors are ended inside the pause-before-switchover pause.
	 * copy_storage: QMIG_COPY_STORAGE_ALL (the whole disk, sync=full) or
	 * _INC (only the top image, sync=top: the backing chain is already on
	 * the destination); 0 off. migrate_disks: "DEV,DEV" (device ids as
	 * query-block names them), NULL: every writable disk with a medium.
	 * Must outlive the handle. disk_bandwidth: bytes/s per mirror, 0
	 * unlimited. copy_storage_synchronous: mirror copy-mode write-blocking
	 * (guest writes wait for the destination; always converges). */
	int copy_storage;
	const char *migrate_disks;
	uint64_t disk_bandwidth;
	int copy_storage_synchronous;
	/* Version 6 adds the fields from here on. */
	/* Multifd compression: a multifd-compression method ("zstd", "zlib",
	 * ...) that both QEMUs' schemas list (QEMU lists only the methods it
	 * was built with); needs multifd_channels. NULL: QEMU's default. */
	const char *multifd_compression;
	/* Newer QEMU features the engine uses by itself when the QEMUs have
	 * them (probed from their schemas, never from version numbers; each
	 * decision is a "plan" record, command "feature"): the
	 * QMIG_FEATURE_* bits set here are not used. */
	unsigned int features_off;
};

#define QMIG_FEATURE_ZERO_PAGE_DETECTION 0x1u        /* =multifd, with multifd */
#define QMIG_FEATURE_CHANNELS 0x2u                   /* migrate's "channels" form */
#define QMIG_FEATURE_SWITCHOVER_ACK 0x4u             /* when a device needs it (VFIO) */
#define QMIG_FEATURE_AVAIL_SWITCHOVER_BANDWIDTH 0x8u /* fed the monitor's estimate */

#define QMIG_COPY_STORAGE_ALL 1
#define QMIG_COPY_STORAGE_INC 2

#define QMIG_MIGRATE_OPTS_INIT {.version = QMIG_MIGRATE_OPTS_VERSION, .guest = QMIG_VM_SPEC_INIT}

struct qmig_result {
	size_t size;                /* QMIG_RESULT_INIT */
	char status[24];            /* "completed", "failed", "cancelled", "dry-run" */
	int error;                  /* 0 or the negative errno that ended it */
	enum qmig_phase failed_phase;
	int rolled_back;            /* the source was restored */
	/* As QEMU reports them (may be 0 even when not: see the engine's own). */
	uint64_t total_ms, setup_ms, downtime_ms;
	/* The engine's own clock. */
	uint64_t engine_total_ms;   /* migrate command to destination confirmed */
	uint64_t engine_setup_ms;   /* engine start to the migrate command */
	int64_t switchover_ms;      /* source STOP to destination RESUME, -1 unknown */
	int64_t guest_downtime_ms;  /* largest heartbeat gap across the move, -1 unknown */
	uint64_t verify_ms;         /* time spent verifying (not downtime) */
	uint64_t transferred_bytes;
	uint64_t passes;
	double throughput_mbps;     /* transferred / QEMU total time */
	int verified;               /* 1 verified, 0 failed verification, -1 not checked */
	unsigned port;
	char message[512];          /* what happened, for people */
	/* --verify=memory */
	int memory_verified;        /* 1 identical, 0 pages differ, -1 not compared */
	uint64_t pages_compared, pages_differ;
	uint64_t first_differ_gpa[8];
	int n_first_differ;
	uint64_t memory_verify_ms;
	/* Postcopy and convergence. */
	int postcopy_started;       /* switched to postcopy */
	uint64_t postcopy_requests; /* pages the destination faulted for */
	int recoveries;             /* postcopy streams re-established */
	int recovery_attempts;
	int64_t throttle_pct_max;   /* highest CPU throttle seen */
	int paused_to_finish;       /* the engine stopped the guest to finish */
	/* CPU time spent inside qmig_migration_process(): the engine's own cost. */
	double engine_cpu_ms;
	/* The dirty rate measured before the migration, bytes/s (0: none). */
	uint64_t premeasured_dirty_rate;
	/* Test guests: heartbeats per second during precopy against before,
	 * as 1 - during/before (0.3: 30% slower); -1 when not measured. */
	double guest_slowdown;
	/* Who owns the guest at the end: "source" until the destination has
	 * run (RESUME, status running, or the switch to postcopy), then
	 * "destination". status "completed-with-errors": a failure after the
	 * hand-over; the destination keeps the guest, the source was not
	 * resumed. */
	char owner[16];
	/* What "verified" rests on: "stamps", "heartbeats", "memory",
	 * "running" (a guest that is not one of our test guests), "none". */
	char verify_method[16];
	/* Why guest_downtime_ms is -1 (no heartbeats from this guest, ...). */
	char guest_downtime_reason[96];
	char job_id[32];
	/* Storage copy: disks mirrored, their contents compared after the
	 * move (1 identical, 0 differ, -1 not compared), the bytes the
	 * mirrors moved, the time from the first mirror to all in sync, the
	 * time to end the mirrors inside the switchover pause (it adds to the
	 * downtime) and the comparison's time (not downtime). */
	int disks_migrated;
	int disks_verified;
	uint64_t disk_bytes;
	uint64_t disk_mirror_ms;
	uint64_t disk_cancel_ms;
	uint64_t disk_verify_ms;
};

#define QMIG_RESULT_INIT {.size = sizeof(struct qmig_result)}

struct qmig_migration;

/* On error *out is untouched, on_event/log free callbacks never run. */
int qmig_migration_new(struct qmig_migration **out, const struct qmig_migrate_opts *opts);
/* Frees at once and never rolls back. A migration freed before it finished
 * is abandoned: nothing more is sent to either QEMU, no callback runs
 * (except the free callbacks), and its journal (when journal_dir is set)
 * is marked abandoned for qmig_recover_job() / `qmigrate recover`, which
 * restores the guest by the ownership rule. Launched QEMUs are killed with
 * the handle. To roll back in-process instead: qmig_migration_cancel(), then
 * drive qmig_migration_process() until it returns 1, then free. */
void qmig_migration_free(struct qmig_migration *m);

/* The guest plug-in this migration uses (qmig_guest.h): heartbeats for the
 * guest-observed downtime, the guest's own memory check, the host's check.
 * Default: the process's (qmig_launch_defaults.guest_ops); NULL: none.
 * QEMUs launched for it (launch mode) boot their guest with the process's
 * plug-in. Borrowed. 0; -EINVAL a bad version; -EBUSY after the first
 * process(). */
int qmig_migration_set_guest_ops(struct qmig_migration *m, const struct qmig_guest_ops *ops);

/* One fd to poll for input (an epoll fd with a timer inside it). */
int qmig_migration_get_fd(const struct qmig_migration *m);
/* Milliseconds until the next step is due, -1 for none. */
int qmig_migration_get_timeout(const struct qmig_migration *m);
/* Do what is due, and never wait: a step that needs a QMP reply (or any
 * other wait) is suspended and continues in a later call, when the fd or
 * the timeout says so. 0 keep going, 1 finished (see result), <0 internal
 * error (-EBUSY: called from inside one of this handle's callbacks). */
int qmig_migration_process(struct qmig_migration *m);
/* Blocking helper built on the three calls above. Returns the result's error. */
int qmig_migration_run(struct qmig_migration *m);

/* Ask for a clean stop: cancel, roll back, result "cancelled". Safe from
 * any point, including the event callback. */
void qmig_migration_cancel(struct qmig_migration *m);

enum qmig_phase qmig_migration_phase(const struct qmig_migration *m);
/* The latest sample (zeros before precopy). */
void qmig_migration_last_sample(const struct qmig_migration *m, struct qmig_sample *out);
void qmig_migration_result(const struct qmig_migration *m, struct qmig_result *out);
/* The result as a JSON object (new reference); reads r->size bytes of r. */
struct json_object *qmig_result_to_json(const struct qmig_result *r);
const char *qmig_migration_error(const struct qmig_migration *m);

/* Steering a running migration (engine/steer.c), like virsh's
 * migrate-setmaxdowntime, migrate-setspeed and migrate-postcopy. Each
 * change is applied to the source QEMU at once, restored afterwards like
 * the plan's own, and recorded as an "action" record whose reason names
 * the operator. 0 or a negative errno with msg set (why it was refused). */
enum qmig_limit {
	QMIG_LIMIT_DOWNTIME_MS = 1, /* downtime-limit, ms */
	QMIG_LIMIT_BANDWIDTH        /* max-bandwidth, bytes/s */
};
int qmig_migration_set_limit(struct qmig_migration *m, enum qmig_limit which, int64_t value,
			     char *msg, size_t len);
/* Switch to postcopy now; refused unless postcopy was enabled (the
 * postcopy option) and the migration is in precopy. */
int qmig_migration_start_postcopy(struct qmig_migration *m, char *msg, size_t len);
/* NULL when qmig_migration_cancel() would be carried out now, else why it
 * would be ignored (after the hand-over, in postcopy, already ending). */
const char *qmig_migration_cancel_ignored(const struct qmig_migration *m);

/* The convergence verdict behind the latest sample: the model's, or
 * stalled when what is left at each pass start stopped falling. */
struct qmig_convergence {
	size_t size;                /* QMIG_CONVERGENCE_INIT */
	enum qmig_verdict verdict;
	uint64_t dirty_rate;        /* bytes/s the guest dirties */
	uint64_t wire_rate;         /* bytes/s on the wire (QEMU's own count) */
	int64_t time_left_ms;       /* -1 unless converging */
	int64_t bound_left_ms;      /* until the completion bound, -1 none */
	uint64_t stalled_passes;    /* passes since what is left last fell */
	char text[200];             /* the verdict and the numbers, for people */
};

#define QMIG_CONVERGENCE_INIT {.size = sizeof(struct qmig_convergence)}
void qmig_migration_convergence(const struct qmig_migration *m, struct qmig_convergence *out);

#ifdef __cplusplus
}
#endif
#endif
