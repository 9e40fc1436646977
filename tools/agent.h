/* The destination agent (qmigrate agent): shared between its files.
 * docs/PROTOCOL.md is the contract with the source side. */
#ifndef QMIG_TOOLS_AGENT_H
#define QMIG_TOOLS_AGENT_H

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>

#include <json-c/json.h>

#include "agent/agent.h"
#include "qmigrate.h"

#define AGENT_MAX_ALLOW 32
#define AGENT_MAX_JOBS 256

struct agent_cfg {
	const char *profiles_dir;
	const char *tls_dir;
	const char *state_dir;
	const char *allow[AGENT_MAX_ALLOW];
	int n_allow;
	int max_inbound;     /* concurrent inbound migrations */
	int max_conns;       /* concurrent control connections */
	int idle_ms;         /* a connection with nothing to do is closed after this */
	int queue_ms;        /* the longest a request waits for a place */
	uint64_t max_bw;     /* bytes/s per inbound migration, 0: no limit */
	unsigned port_lo, port_hi;
	const char *port_lock_dir;
	SSL_CTX *ctx;
	FILE *audit;
};

#define AGENT_MAX_DISKS 8
/* A disk the source copies (--copy-storage-all): an image the agent
 * creates in the profile's disk directory, given to its QEMU as DEVICE. */
struct agent_disk {
	char device[64];
	char path[300];
	uint64_t size;
};

/* One inbound migration, from prepare to confirm or abort. */
struct agent_job {
	char id[64];
	char token[80];
	char profile[64];
	char peer[256];
	char dir[256];       /* the destination's runtime directory */
	char qmp[300];       /* its QMP socket: the tunnel's end */
	char mon[300];       /* the agent's own monitor socket */
	char tls[256];       /* the credentials its QEMU reads ("": the agent's own) */
	char listen_addr[64];
	int guest_kind;
	int pid;
	unsigned port;
	int ran;             /* the destination guest has run: it owns the guest */
	int tunnel_busy;
	int tunnel_seen;     /* the source has opened the tunnel once */
	int64_t t_prepared;  /* monotonic ns */
	int64_t launch_ms;   /* how long launching its QEMU took */
	int tunnel_closed;   /* the tunnel ended: no more QMP from the source */
	int ndisks;          /* images created for a storage copy */
	struct agent_disk disks[AGENT_MAX_DISKS];
	int disks_made;      /* how many of them exist (ours to remove) */
	unsigned port_hi;    /* with disks: port + 1, for the NBD server */
	struct qmig_vm *vm;
	struct qmig_port *portlock, *nbdlock;
	struct qmig_qmp_conn *monc;
};

struct agent_waiter {
	struct agent_waiter *next;
	const char *job;
	const char *peer;
	int64_t since;       /* monotonic ns */
};

/* The whole agent's shared state. */
struct agent {
	struct agent_cfg cfg;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int conns;
	int inbound;          /* jobs holding a place */
	struct agent_waiter *queue; /* prepares waiting for a place, in order */
	struct agent_job *jobs[AGENT_MAX_JOBS];
};

/* agent_conn.c: serve one connection until it ends (closes c). */
void agent_serve(struct agent *a, struct qm_aconn *c);

/* agent_profile.c: what to launch, from a profile and a request. */
#define AGENT_MAX_ARGS 64
struct agent_launch {
	int guest;                   /* enum qmig_guest_kind */
	uint64_t mem;
	char accel[32];              /* "": the launch default */
	char qemu[256];              /* "": qemu-system-x86_64 from PATH */
	int userfaultfd;
	int nargs;
	char args[AGENT_MAX_ARGS][256];
	int ndisks;
	struct agent_disk disks[AGENT_MAX_DISKS];
	char disk_model[64];         /* the device model of each disk */
};
int agent_profile_build(const struct agent *a, const char *name, struct json_object *req,
			struct agent_launch *out, const char **err, char *msg, size_t len);
/* 1-63 of [A-Za-z0-9_-]: profile names and job ids (never a path). */
int agent_valid_name(const char *s);

/* agent_job.c */
/* Check req (a prepare) against the profile and launch the destination.
 * 0 with *out, or a negative errno with err (a code, docs/PROTOCOL.md)
 * and msg set. */
int agent_job_prepare(struct agent *a, struct json_object *req, const char *peer,
		      const char *listen_addr, struct agent_job **out, const char **err,
		      char *msg, size_t len);
/* Open the agent's own monitor of a prepared job's QEMU (RESUME events,
 * finish, the ownership rule); done after the prepare's reply, off the
 * source's path to its first byte. 0, or -errno with msg. */
int agent_job_watch(struct agent_job *j, char *msg, size_t len);
/* Drain the monitor's events (RESUME: ran). 0, or -errno when QEMU is gone. */
int agent_job_poll(struct agent_job *j);
int agent_job_mon_fd(const struct agent_job *j);
/* The destination runs? Verify a test guest's stamps. Fills rep. */
int agent_job_finish(struct agent *a, struct agent_job *j, struct json_object *rep, char *msg,
		     size_t len);
/* The ownership rule after an abort or a lost source: a destination that
 * never ran is killed and removed; one that ran is kept. why: for the log.
 * wait_stream: a stream still moving is let finish first (lost source). */
void agent_job_end(struct agent *a, struct agent_job *j, int confirmed, int wait_stream,
		   const char *why);
struct agent_job *agent_job_find(struct agent *a, const char *id);
/* A job of another agent process on this state directory (ssh --stdio):
 * its QMP socket when token and peer match its journal. */
int agent_job_lookup_tunnel(struct agent *a, const char *id, const char *token,
			    const char *peer, char *qmp, size_t len);
void agent_audit(struct agent *a, const char *peer, const char *op, const char *job,
		 const char *result, const char *detail);
void agent_journal(struct agent *a, const struct agent_job *j, const char *state);
/* Kill destinations of jobs a previous agent left behind that never ran;
 * remove queue entries of agents that are gone. Returns how many jobs
 * could not be settled (their QEMU runs but does not answer). */
int agent_reap_stale(struct agent *a);
/* pid is a live process whose command line holds word (never a bare pid:
 * it may have been reused). */
int agent_proc_has(int64_t pid, const char *word);
/* The agent that wrote this journal (or queue entry) still runs: its pid,
 * its start time and its command line all match; never ourselves. */
int agent_alive(struct json_object *journal);
/* STATE/queue/JOB.json while a prepare waits for a place (qmigrate status
 * --agent-state reads it); removed when it leaves the queue. */
void agent_queue_file(struct agent *a, const char *job, const char *peer, int add);
/* Profile names (JSON array). */
struct json_object *agent_profile_list(const struct agent *a);

#endif
