/* Internal to engine/: the migration handle shared by the phase, plan and
 * monitor files. Nothing here is exported. */
#ifndef QMIG_MIGRATE_INT_H
#define QMIG_MIGRATE_INT_H

#include <stdarg.h>
#include <stdio.h>
#include <stdint.h>
#include <json-c/json.h>

#include "qmig_commands.h"
#include "qmig_doctor.h"
#include "qmig_migrate.h"
#include "qmig_transport.h"
#include "qmig_relay.h"
#include "storage_int.h"

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
	struct qmig_hb *hb;           /* heartbeats of our test guests */
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

struct qmig_migration {
	struct qmig_migrate_opts o;   /* strings duplicated below */
	char *strs[QM_NSTRS];
	enum qmig_phase phase, failed_phase;
	int sub;                      /* a phase's own progress */
	struct side side[2];
	struct plan plan;
	struct qmig_port *port;
	char uri[128];

	int epfd, tfd;
	struct qm_fiber *fiber;       /* process() runs drain + step on it (qm_wait.h) */
	int fiber_wfd;                /* a dup of the fd it waits on, in epfd (-1: none) */
	int64_t fiber_due_ns;         /* when its wait times out (0: not waiting) */
	int step_r;                   /* what the step returned */
	int kick;                     /* something a waiting fiber needs came in */
	int abandoned;                /* freed unfinished: left to `qmigrate recover` */
	FILE *trace;
	int hb_watched;
	int tiny;                     /* the guest is the tiny test guest: -1 unknown */
	int verify_asked;             /* inject-nmi sent (or tried) */
	unsigned verify_seen;         /* VERIFY lines before we asked for one */
	int64_t t_verify_ns;          /* when we asked (0: not yet) */
	int64_t measure_due_ns;       /* calc-dirty-rate running, due then (0: none) */
	int measure_secs;
	uint64_t slow_beats0;         /* source heartbeats when the migration began */
	double slow_rate0;            /* beats/s before it */
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
		int running;          /* its ring is in our epoll set */
		int fault;            /* qmig_relay_process() failed: -errno */
		char fault_msg[256];
		struct qmig_relay_event q[32];
		int qn, lost;
	} rh[2];                      /* [SRC]: source half, [DST]: destination half */
	int relay_init;
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
};

/* migrate.c */
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

/* plan.c */
int qm_plan_build(struct qmig_migration *m);
int qm_plan_exec(struct qmig_migration *m, int upto_migrate);
void qm_plan_emit(struct qmig_migration *m);
void qm_plan_clear(struct plan *p);
struct qmig_schema *qm_side_schema(struct qmig_migration *m, struct side *s);
int qm_alloc_port(struct qmig_migration *m);
/* "tcp:HOST:PORT", brackets around an IPv6 host. */
void qm_tcp_uri(char *buf, size_t len, const char *host, unsigned port);
int qm_plan_add(struct qmig_migration *m, enum side_id side, const char *cmd,
		struct json_object *args, const char *why);

/* postcopy.c */
void qm_action(struct qmig_migration *m, const char *action, int64_t value, const char *why);
int qm_precopy_decide(struct qmig_migration *m, const struct qmig_migrate_info *mi);
int qm_postcopy_step(struct qmig_migration *m, const struct qmig_migrate_info *mi);
int qm_restore_side(struct qmig_migration *m, struct side *s);
/* tls.c */
int qm_tls_check(struct qmig_migration *m);
int qm_tls_plan(struct qmig_migration *m, struct side *s, struct json_object *params);
void qm_tls_cleanup(struct qmig_migration *m, struct side *s);
void qm_tls_remove_copies(struct qmig_migration *m);

/* monitor.c */
int qm_monitor_sample(struct qmig_migration *m, struct qmig_migrate_info *info);

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

/* converge.c */
int qm_policy_open(struct qmig_migration *m);
void qm_policy_close(struct qmig_migration *m);
int qm_policy_plan(struct qmig_migration *m, struct json_object *want_caps);
int qm_policy_step(struct qmig_migration *m);
void qm_policy_sample_of(const struct qmig_migration *m, struct qmig_policy_sample *ps);

/* steer.c */
/* A parameter changed on a side after the plan: restored with the plan's. */
void qm_note_param(struct side *s, const char *name);
/* With each precopy sample: the verdict's hint (once) and the completion bound. */
int qm_converge_check(struct qmig_migration *m);
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
int64_t qm_proc_start_time(int pid);
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

/* relay_link.c */
static inline int qm_relay_on(const struct qmig_migration *m)
{
	return m->o.transport == QMIG_TRANSPORT_RELAY;
}
/* Plan time: the private directory and the QEMU-side URIs. */
int qm_relay_plan(struct qmig_migration *m);
/* The "uri" the destination QEMU listens on / the source migrates to. */
const char *qm_relay_in_uri(struct qmig_migration *m, char *buf, size_t len);
const char *qm_relay_out_uri(struct qmig_migration *m, char *buf, size_t len);
/* Certificates for the relay's own TLS (tls_dir / tls_dst_dir). */
int qm_relay_tls_check(struct qmig_migration *m);
/* Both halves listening (before migrate-incoming); next_gen: a fresh pair
 * for a postcopy recovery (new source socket; the destination half
 * connects to relay_in, which the caller may have renewed). */
int qm_relay_start(struct qmig_migration *m, int next_gen);
/* A new relay_in for migrate-recover. */
void qm_relay_renew_in(struct qmig_migration *m);
/* Postcopy recovery: 1 when a fresh pair of halves has its channel to the
 * far half open (the source may resume), 0 not yet (made or still
 * connecting; call again), negative errno on failure. */
int qm_relay_recover_ready(struct qmig_migration *m);
/* Move bytes, handle channel events (a broken channel fails the
 * migration unless postcopy recovers it). Called from every process(). */
void qm_relay_pump(struct qmig_migration *m);
/* When a relay half must run even without input (0: no need). */
int64_t qm_relay_due_ns(const struct qmig_migration *m);
/* Fill the relay fields of a sample. */
void qm_relay_sample(struct qmig_migration *m, struct qmig_sample *s);
/* The relay's record (per-channel bytes and times) for the trace. */
void qm_relay_emit(struct qmig_migration *m);
/* Close everything, remove the directory. Safe to call twice. */
void qm_relay_stop(struct qmig_migration *m);
/* And the thread's mutex and eventfds, with the handle. */
void qm_relay_release(struct qmig_migration *m);

/* phases.c */
int qm_phase_step(struct qmig_migration *m);
void qm_side_event(const char *event, struct json_object *data, int64_t sec, int64_t usec,
		   void *user_data);

#endif
