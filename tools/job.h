/* A running `qmigrate migrate` job: a control socket that `qmigrate status`
 * and `qmigrate cancel` talk to, since QEMU's QMP socket serves one
 * client at a time and the migrating process holds it. */
#ifndef QMIG_JOB_H
#define QMIG_JOB_H

#include <stddef.h>

struct job;
struct qmig_migration;

/* The directory of job sockets: /run/qmigrate/jobs as root, else
 * $XDG_RUNTIME_DIR/qmigrate-jobs or /tmp/qmigrate-jobs-UID. */
const char *job_dir(char *buf, size_t len);
/* Create this process's control socket, labelled with what it migrates. */
int job_open(struct job **out, const char *label, char *msg, size_t len);
void job_close(struct job *job);
int job_fd(const struct job *job);
/* Answer one request ("status" or "cancel") on the control socket. */
void job_serve(struct job *job, struct qmig_migration *m);
/* Client side: send req to the job with pid (0: the only running job)
 * and return its one-line JSON reply (malloc'd), or NULL with msg set. */
char *job_request(int pid, const char *req, char *msg, size_t len);

#endif
