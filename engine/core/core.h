/* The face of engine/core/, the bottom of the engine: the migration handle
 * that every part of a migration works on, and what they all use to speak
 * (emit.c) and to build the plan (steps.c). Nothing here is exported, and
 * nothing in core/ calls another folder of engine/ (docs/ARCHITECTURE.md). */
#ifndef QMIG_CORE_H
#define QMIG_CORE_H

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdint.h>
#include <json-c/json.h>

#include "qmig_commands.h"
#include "qmig_doctor.h"
#include "qmig_migrate.h"
#include "qmig_transport.h"
#include "qmig_relay.h"

struct qm_storage;
struct qm_probe;
struct qm_features;

enum side_id { SRC, DST };

#define QM_NSTRS 24
/* Object ids are unique per job (qmigrate-tls-JOB), so a crashed job's
 * leftovers never collide with, or get adopted by, the next one. */
#define QM_TLS_ID ((const char *)(m)->tls_id)

/* One QEMU, as the engine sees it. */
struct side {
	const char *name;             /* "source" / "destination" */
	struct qmig_migration *m;     /* back pointer, for event callbacks */
	struct qmig_vm *vm;           /* launched by us, or NULL (attached) */
	struct qmig_qmp_conn *qmp;
	struct qmig_schema *schema;
	struct qm_probe *hb;          /* the guest plug-in's probe of its serial line */
	int opening;                  /* in qmig_qmp_conn_open: its error is ours to report */
	char open_err[256];
	struct json_object *orig_caps;   /* before we touched anything */
	struct json_object *orig_params;
	struct json_object *set_caps;    /* what the plan changes, to undo */
	struct json_object *set_params;
	int was_running;
	char mig_status[32];          /* from MIGRATION events */
	int64_t stop_us, resume_us;   /* STOP/RESUME event timestamps (QEMU's clock) */
	int64_t stop_mono_ns;         /* the STOP on our monotonic clock */
	uint64_t passes;              /* from MIGRATION_PASS */
	int touched;                  /* the plan changed something here */
	int tls_object;               /* we added QM_TLS_ID */
	int incoming_started;
	int gone;                     /* its QMP connection was lost */
	int state_known;              /* was_running has been read */
	int quitting;                 /* we asked it to quit: a closed QMP is expected */
};

/* Who owns the guest: only the owner may ever be resumed. */
enum qm_owner { OWNER_SOURCE, OWNER_DESTINATION };

/* One QMP command of the plan, for one side. */
struct plan_step {
	enum side_id side;
	char *command;
	struct json_object *args;     /* may be NULL */
	const char *why;
};

struct plan {
	struct plan_step *steps;
	int n, cap;
	int exec;                     /* steps executed so far */
};

/* What a phase step tells the loop. */
enum step_result { STEP_WAIT = 0, STEP_NEXT = 1 };

/* Where a phase is inside itself (m->sub), for the phases that wait in
 * more than one place; set_phase() starts every phase at QM_SUB_BEGIN. */
enum qm_sub {
	QM_SUB_BEGIN = 0,
	/* prepare: both QEMUs opened (or launched) and checked */
	QM_SUB_PREPARE_ATTACHED = 1,
	/* confirm: the destination runs (disks, memory compared), then its
	 * heartbeats are in */
	QM_SUB_CONFIRM_RUNNING = 1,
	QM_SUB_CONFIRM_BEATS = 2,
	/* rollback: migrate-cancel sent; the resumed source's heartbeats
	 * awaited; done */
	QM_SUB_ROLLBACK_CANCELLING = 1,
	QM_SUB_ROLLBACK_HEARTBEATS = 2,
	QM_SUB_ROLLBACK_DONE = 3,
};

struct qmig_migration {
	struct qmig_migrate_opts o;   /* strings duplicated below */
	const struct qmig_guest_ops *guest_ops; /* the guest plug-in, or NULL */
	char *strs[QM_NSTRS];
	enum qmig_phase phase, failed_phase;
	enum qm_sub sub;              /* a phase's own progress */
	struct side side[2];
	struct plan plan;
	struct qmig_port *port;
	char uri[128];

	int epfd, tfd;
	int64_t tfd_due;              /* when tfd is armed to fire (0: disarmed) */
	struct qm_fiber *fiber;       /* process() runs drain + step on it (qm_wait.h) */
	int fiber_wfd;                /* a dup of the fd it waits on, in epfd (-1: none) */
	int64_t fiber_due_ns;         /* when its wait times out (0: not waiting) */
	int step_r;                   /* what the step returned */
	int kick;                     /* something a waiting fiber needs came in */
	int abandoned;                /* freed unfinished: left to `qmigrate recover` */
	FILE *trace;
	int hb_watched;
	int self_check;               /* the guest checks its own memory on request: -1 unknown */
	int verify_asked;             /* inject-nmi sent (or tried) */
	int64_t t_verify_ns;          /* when we asked (0: not yet) */
	int64_t measure_due_ns;       /* calc-dirty-rate running, due then (0: none) */
	int measure_secs;
	uint64_t slow_beats0;         /* source heartbeats (or units of the guest's
					 work) when the migration began */
	int64_t slow_ns0;             /* the host time of that beat */
	double slow_rate0;            /* beats (or units)/s before it */
	int slow_work;                /* the guest counts its work: slowdown from it */
	int slow_done;
	uint64_t rb_beats0;           /* rollback: source heartbeats when resumed */
	int64_t rb_t0;
	int64_t t_start_ns, t_migrate_ns, t_done_ns, t_phase_ns;
	int64_t deadline_ns, next_sample_ns, wait_until_ns;

	struct qmig_sample last;
	uint64_t last_transferred;
	int64_t last_sample_ns;
	double bw_ewma, drain_ewma;
	uint64_t pass_start_remaining;
	int64_t throttle_max;

	/* postcopy.c */
	int64_t pc_last_progress_ns;
	uint64_t pc_last_bytes;
	int rec_active, rec_attempt;
	int64_t rec_start_ns, rec_next_ns;
	int offline;                  /* the source guest was not running */

	/* converge.c */
	const struct qmig_policy_ops *policy;
	void *policy_state, *policy_dl;
	struct qmig_prediction pred;
	int64_t downtime_limit;       /* in force, for the model */
	uint64_t bandwidth_limit;
	int policy_armed;             /* auto-converge armed (capped) for the policy */

	int cancel_requested;
	int error;                    /* the failure being rolled back */
	int finished;
	int verify_state;
	int completed;                /* QEMU said "completed" */

	/* journal.c */
	enum qm_owner owner;
	char job[32];
	char tls_id[64];
	char authz_id[64];            /* tls.c: our authz-list on the destination, "" none */
	char authz_dn[256];           /* the source certificate's subject it allows */
	char tls_copy[2][160];        /* tls.c: credentials copied for a QEMU of another uid */
	char jpath[4096];             /* "" when there is no journal */
	char dump_dir[128];           /* a RAM dump directory that may exist */
	int64_t pid_start;
	int journal_failed;

	struct qmig_result res;
	char err[512];

	/* steer.c, monitor.c: the verdict, the completion bound, the operator. */
	int64_t completion_bound_ms;  /* 0: not set yet, -1: none */
	uint64_t wire_rate;           /* bytes/s, QEMU's mbps (else the EWMA) */
	enum qmig_verdict verdict;
	uint64_t low_remaining;       /* lowest remaining at a pass start so far */
	uint64_t low_pass;            /* the pass it was seen at */
	int hint_given;

	/* phases.c: the job ends with something only qmigrate recover can
	 * finish (a destination that could not be restored): keep the journal. */
	int keep_journal;
	/* relay_link.c: --transport relay. Both halves live in this handle
	 * (the agent that would run the destination half elsewhere does not
	 * exist yet), their rings in our epoll set, moved in process() outside
	 * the fiber. A fresh pair per postcopy recovery (relay_gen). */
	struct qm_relay_half {
		struct qmig_relay *r;
		int running;          /* moved: by its thread, or in our loop */
		int threaded;         /* on a thread of its own (TLS) */
		pthread_t thread;
		pthread_mutex_t mu;   /* r, the queue and fault, while running */
		int stop;             /* tell the thread to stop */
		int fault;            /* qmig_relay_process() failed: -errno */
		char fault_msg[256];
		struct qmig_relay_event q[32];
		int qn, lost;
	} rh[2];                      /* [SRC]: source half, [DST]: destination half */
	int relay_init;
	int relay_notify;             /* the halves' threads: events queued */
	char relay_dir[256];          /* private runtime directory, "" none */
	char relay_in[300];           /* the destination QEMU's socket now */
	char relay_out[300];          /* the source relay's socket now */
	int relay_gen;
	int relay_rec;                /* recovery: 1 halves made, waiting for the link */
	int relay_rec_ready, relay_rec_failed;
	uint64_t relay_bytes_prev;    /* earlier generations' bytes up */
	uint64_t relay_sample_bytes;  /* at the previous sample */
	int64_t relay_sample_ns;
	/* storage.c: disks mirrored over NBD (NULL: none). */
	struct qm_storage *storage;
	/* migrate/features.c: newer QEMU features, used when the QEMUs have
	 * them (NULL until the plan decides them; freed with the handle). */
	struct qm_features *feat;
};

/* emit.c: events, log lines, the first failure, clocks, the epoll set. */
int64_t qm_now_ns(void);
/* Make the next process() call run at once (a reply that a waiting step
 * needs was read by a call made outside process(), e.g. from steer.c). */
void qm_kick(struct qmig_migration *m);
int64_t qm_realtime_to_mono_ns(int64_t realtime_us);
void qm_emit(struct qmig_migration *m, const char *type, struct json_object *rec,
	     const struct qmig_sample *s);
void qm_log(struct qmig_migration *m, enum qmig_log_level lvl, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
int qm_fail(struct qmig_migration *m, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
int qm_qmp_fail(struct qmig_migration *m, struct side *s, int err, const char *what);
void qm_watch_fd(struct qmig_migration *m, int fd);
void qm_unwatch_fd(struct qmig_migration *m, int fd);

/* steps.c: the plan's list of steps, which every part adds its own to. */
int qm_plan_add(struct qmig_migration *m, enum side_id side, const char *cmd,
		struct json_object *args, const char *why);
void qm_plan_clear(struct plan *p);
/* The schema of one side, probed on first use; NULL if that failed. */
struct qmig_schema *qm_side_schema(struct qmig_migration *m, struct side *s);
int qm_alloc_port(struct qmig_migration *m);
/* "tcp:HOST:PORT", brackets around an IPv6 host. */
void qm_tcp_uri(char *buf, size_t len, const char *host, unsigned port);

/* --transport relay (the relay itself is link/'s). */
static inline int qm_relay_on(const struct qmig_migration *m)
{
	return m->o.transport == QMIG_TRANSPORT_RELAY;
}

/* proc.c. A live process's start time (clock ticks after boot, field 22
 * of /proc/PID/stat), or -1 if it is gone or a zombie, which is the same for
 * anyone asking whether a job or a QEMU still runs. A pid alone may have been
 * reused: compare the start time too. */
int64_t qm_proc_start_time(int pid);
/* Is name one of the comma-separated list "a,b,c" (NULL: none)? */
int qm_listed(const char *list, const char *name);

#endif
