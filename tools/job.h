/* A running `qmigrate migrate` job: a control socket that `qmigrate status`,
 * `cancel`, `set` and `postcopy` talk to, since QEMU's QMP socket serves one
 * client at a time and the migrating process holds it.
 *
 * Protocol: the client connects, writes one request line (at most
 * JOB_LINE_MAX bytes with its newline), and reads one JSON line back; the
 * server closes after the reply. Requests:
 *   status
 *   cancel
 *   set NAME=VALUE      (NAME: downtime-limit, max-bandwidth)
 *   postcopy
 * The server side is non-blocking and lives in the caller's event loop:
 * poll job_fd() for POLLIN with job_timeout(), then call job_serve(). */
#ifndef QMIG_JOB_H
#define QMIG_JOB_H

#include <stddef.h>
#include <stdint.h>

#define JOB_LINE_MAX 256     /* longest request line, newline included */
#define JOB_MAX_CLIENTS 64   /* connections served at once; more wait in the backlog */
#define JOB_CLIENT_MS 2000   /* a client has this long to send its line and take the reply */

struct job;

enum job_req_kind { JOB_REQ_STATUS, JOB_REQ_CANCEL, JOB_REQ_SET, JOB_REQ_POSTCOPY };

struct job_request {
	enum job_req_kind kind;
	char name[32];   /* set: the parameter */
	char value[64];  /* set: its value, as written */
};

/* Parse one request line (without or with its trailing "\n" / "\r\n";
 * len bytes, no terminator needed). 0, or -EINVAL with err set (when err
 * is not NULL). Any bytes are safe here: this is the fuzzers' entry. */
int job_parse_request(const char *line, size_t len, struct job_request *out, char *err,
		      size_t errlen);

/* Answers a parsed request: returns the reply (a malloc'd JSON object text
 * without newline), or NULL for an out-of-memory reply. */
typedef char *(*job_answer_fn)(const struct job_request *req, void *user_data);

/* The directory of job sockets: /run/qmigrate/jobs as root, else
 * $XDG_RUNTIME_DIR/qmigrate-jobs or /tmp/qmigrate-jobs-UID. */
const char *job_dir(char *buf, size_t len);
/* job_dir(), created private (0700, ours) when missing: where control
 * sockets and job journals live. 0, or a negative errno with msg set. */
int job_prepare_dir(char *buf, size_t len, char *msg, size_t msglen);
/* Create the control socket for this process (JOBDIR/<pid>.sock, or path
 * when not NULL). The directory is created private (0700) or must already
 * be ours and private; the socket is 0600. Only root and our own uid are
 * served (SO_PEERCRED). */
int job_open(struct job **out, const char *path, job_answer_fn answer, void *user_data,
	     char *msg, size_t len);
void job_close(struct job *job);
/* One fd for the caller's poll (POLLIN), -1 for a NULL job. */
int job_fd(const struct job *job);
/* Milliseconds until a client's deadline, -1 for none. */
int job_timeout(const struct job *job);
/* Accept, read, answer and write whatever is ready; never blocks. */
void job_serve(struct job *job);
/* Statistics for tests: clients served, dropped (deadline, errors, refused). */
void job_stats(const struct job *job, uint64_t *served, uint64_t *dropped);

/* Client side: send req to the job with pid (0: the only running job), or
 * to the socket at path when path is not NULL, and return its one-line
 * JSON reply (malloc'd), or NULL with msg set. */
char *job_request(int pid, const char *req, char *msg, size_t len);
char *job_request_path(const char *path, const char *req, int timeout_ms, char *msg,
		       size_t len);

/* The JSON reply for a migration (tools/cmd_migrate.c): the answer
 * function the migrate command installs. */
struct qmig_migration;
struct job_migration {
	struct qmig_migration *m;
	char label[256];
};
char *job_answer_migration(const struct job_request *req, void *user_data);

#endif
