/* The agent's inbound migrations: host profiles (the only source of a
 * command line: a request fills in values the profile allows), launching
 * the destination QEMU with -incoming defer, watching it with a monitor of
 * our own, and the ownership rule when the source goes away. */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/rand.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "agent.h"
#include "qmig_guests.h"
#include "journal/journal.h"
#include "qm_wait.h"

#define MS 1000000LL


void agent_audit(struct agent *a, const char *peer, const char *op, const char *job,
		 const char *result, const char *detail)
{
	struct json_object *o = json_object_new_object();
	struct timespec ts;
	char t[40];
	struct tm tm;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(t, sizeof(t), "%Y-%m-%dT%H:%M:%SZ", &tm);
	json_object_object_add(o, "audit", json_object_new_string(t));
	json_object_object_add(o, "peer", json_object_new_string(peer ? peer : "?"));
	json_object_object_add(o, "op", json_object_new_string(op ? op : "?"));
	if (job)
		json_object_object_add(o, "job", json_object_new_string(job));
	json_object_object_add(o, "result", json_object_new_string(result));
	if (detail && *detail)
		json_object_object_add(o, "detail", json_object_new_string(detail));
	pthread_mutex_lock(&a->lock);
	fprintf(a->cfg.audit, "%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
	fflush(a->cfg.audit);
	pthread_mutex_unlock(&a->lock);
	json_object_put(o);
}

/* STATE/jobs/ID.json, atomically: what a later agent (or an operator)
 * needs to apply the ownership rule if this process dies. */
void agent_journal(struct agent *a, const struct agent_job *j, const char *state)
{
	char path[PATH_MAX], tmp[PATH_MAX + 8];
	struct json_object *o;
	int fd;

	snprintf(path, sizeof(path), "%s/jobs/%s.json", a->cfg.state_dir, j->id);
	if (!strcmp(state, "ended")) {
		unlink(path);
		return;
	}
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	o = json_object_new_object();
	json_object_object_add(o, "job", json_object_new_string(j->id));
	json_object_object_add(o, "state", json_object_new_string(state));
	json_object_object_add(o, "profile", json_object_new_string(j->profile));
	json_object_object_add(o, "peer", json_object_new_string(j->peer));
	json_object_object_add(o, "pid", json_object_new_int(j->pid));
	json_object_object_add(o, "agent_pid", json_object_new_int((int)getpid()));
	json_object_object_add(o, "agent_start", json_object_new_int64(qm_proc_start_time((int)getpid())));
	json_object_object_add(o, "qmp", json_object_new_string(j->qmp));
	json_object_object_add(o, "monitor", json_object_new_string(j->mon));
	json_object_object_add(o, "dir", json_object_new_string(j->dir));
	if (j->disks_made) {
		struct json_object *arr = json_object_new_array();

		/* Ours (made with O_EXCL): removed with a destination that never ran. */
		for (int i = 0; i < j->disks_made; i++)
			json_object_array_add(arr, json_object_new_string(j->disks[i].path));
		json_object_object_add(o, "disks", arr);
	}
	/* The tunnel may be asked for by another agent process (ssh: one
	 * `qmigrate agent --stdio` per connection): the file is 0600 in a
	 * 0700 directory. */
	json_object_object_add(o, "token", json_object_new_string(j->token));
	json_object_object_add(o, "owner", json_object_new_string(j->ran ? "destination"
									 : "source"));
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd >= 0) {
		const char *s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
		int ok = write(fd, s, strlen(s)) == (ssize_t)strlen(s) && fsync(fd) == 0;

		close(fd);
		if (!ok || rename(tmp, path) < 0)
			unlink(tmp);
	}
	json_object_put(o);
}

int agent_alive(struct json_object *journal)
{
	int64_t pid = 0, start = -1;

	if (qm_aj_int(journal, "agent_pid", &pid) < 0 || pid <= 0)
		return 0;
	if (pid == getpid())
		return 0; /* ourselves: the journal is ours to settle */
	if (qm_aj_int(journal, "agent_start", &start) == 0)
		return qm_proc_start_time((int)pid) == start && agent_proc_has(pid, "agent");
	return agent_proc_has(pid, "agent");
}

void agent_queue_file(struct agent *a, const char *job, const char *peer, int add)
{
	char path[PATH_MAX], tmp[PATH_MAX + 8];
	struct json_object *o;
	struct timespec ts;
	int fd;

	snprintf(path, sizeof(path), "%s/queue", a->cfg.state_dir);
	mkdir(path, 0700);
	snprintf(path, sizeof(path), "%s/queue/%s.json", a->cfg.state_dir, job);
	if (!add) {
		unlink(path);
		return;
	}
	clock_gettime(CLOCK_REALTIME, &ts);
	o = json_object_new_object();
	json_object_object_add(o, "job", json_object_new_string(job));
	json_object_object_add(o, "state", json_object_new_string("queued"));
	json_object_object_add(o, "peer", json_object_new_string(peer));
	json_object_object_add(o, "agent_pid", json_object_new_int((int)getpid()));
	json_object_object_add(o, "agent_start", json_object_new_int64(qm_proc_start_time((int)getpid())));
	json_object_object_add(o, "since_ms", json_object_new_int64((int64_t)ts.tv_sec * 1000 +
								     ts.tv_nsec / 1000000));
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd >= 0) {
		const char *t = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
		int ok = write(fd, t, strlen(t)) == (ssize_t)strlen(t);

		close(fd);
		if (!ok || rename(tmp, path) < 0)
			unlink(tmp);
	}
	json_object_put(o);
}

static void gen_token(char *out, size_t len)
{
	unsigned char b[24];

	if (RAND_bytes(b, sizeof(b)) != 1)
		for (size_t i = 0; i < sizeof(b); i++)
			b[i] = (unsigned char)rand();
	for (size_t i = 0; i < sizeof(b) && 2 * i + 2 < len; i++)
		snprintf(out + 2 * i, 3, "%02x", b[i]);
}

static void on_event(const char *event, struct json_object *data, int64_t s, int64_t us,
		     void *ud)
{
	struct agent_job *j = ud;

	if (!strcmp(event, "RESUME"))
		j->ran = 1;
}

static int register_job(struct agent *a, struct agent_job *j)
{
	int r = -EBUSY;

	pthread_mutex_lock(&a->lock);
	for (int i = 0; i < AGENT_MAX_JOBS; i++) {
		if (a->jobs[i] && !strcmp(a->jobs[i]->id, j->id)) {
			r = -EEXIST;
			break;
		}
	}
	for (int i = 0; r == -EBUSY && i < AGENT_MAX_JOBS; i++) {
		if (!a->jobs[i]) {
			a->jobs[i] = j;
			r = 0;
		}
	}
	pthread_mutex_unlock(&a->lock);
	return r;
}

static void unregister_job(struct agent *a, struct agent_job *j)
{
	pthread_mutex_lock(&a->lock);
	for (int i = 0; i < AGENT_MAX_JOBS; i++)
		if (a->jobs[i] == j)
			a->jobs[i] = NULL;
	pthread_mutex_unlock(&a->lock);
}

struct agent_job *agent_job_find(struct agent *a, const char *id)
{
	struct agent_job *j = NULL;

	pthread_mutex_lock(&a->lock);
	for (int i = 0; id && i < AGENT_MAX_JOBS; i++)
		if (a->jobs[i] && !strcmp(a->jobs[i]->id, id))
			j = a->jobs[i];
	pthread_mutex_unlock(&a->lock);
	return j;
}

static void free_job(struct agent_job *j)
{
	qmig_qmp_conn_close(j->monc);
	qmig_port_free(j->portlock);
	qmig_port_free(j->nbdlock);
	qmig_vm_free(j->vm);
	free(j);
}

/* A destination QEMU of another user (launched unprivileged) cannot read
 * the agent's 0600 keys: it gets a copy of the server's files, owned by
 * its uid, in its own runtime directory (removed with it). 0, or -errno
 * with msg. */
static int give_creds(struct agent *a, struct agent_job *j, char *msg, size_t len)
{
	static const char *const names[] = {"ca-cert.pem", "server-cert.pem", "server-key.pem"};
	unsigned int uid = 0, gid = 0;

	j->tls[0] = 0;
	if (!a->cfg.tls_dir)
		return 0;
	qmig_vm_ids(j->vm, &uid, &gid);
	if (uid == geteuid())
		return 0;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		char from[PATH_MAX], to[PATH_MAX], buf[65536];
		ssize_t n;
		int in, out, r = 0;

		snprintf(from, sizeof(from), "%s/%s", a->cfg.tls_dir, names[i]);
		snprintf(to, sizeof(to), "%s/%s", j->dir, names[i]);
		in = open(from, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
		if (in < 0) {
			snprintf(msg, len, "credentials %s: %s", from, strerror(errno));
			return -errno;
		}
		n = read(in, buf, sizeof(buf));
		close(in);
		out = open(to, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (n <= 0 || n == (ssize_t)sizeof(buf) || out < 0 ||
		    fchown(out, uid, gid) < 0 || write(out, buf, (size_t)n) != n)
			r = n <= 0 || n == (ssize_t)sizeof(buf) ? -EINVAL : -errno;
		if (out >= 0)
			close(out);
		if (r < 0) {
			snprintf(msg, len, "copying %s for the destination QEMU (uid %u): %s", from,
				 uid, strerror(-r));
			return r;
		}
	}
	snprintf(j->tls, sizeof(j->tls), "%s", j->dir);
	return 0;
}

/* The ports of a job: one for the stream, and with disks the next one
 * too, for the destination's NBD server (the source's engine is given
 * both as its port range). 0, or -errno with msg. */
static int alloc_ports(struct agent *a, struct agent_job *j, const char *listen_addr, char *msg,
		       size_t len)
{
	struct qmig_port_opts po = QMIG_PORT_OPTS_INIT;
	int r;

	po.lo = a->cfg.port_lo;
	po.hi = a->cfg.port_hi;
	po.bind_addr = listen_addr;
	po.lock_dir = a->cfg.port_lock_dir;
	if (!j->ndisks) {
		r = qmig_port_alloc(&j->portlock, &po, msg, len);
		if (r == 0)
			j->port = j->port_hi = qmig_port_number(j->portlock);
		return r;
	}
	if (!po.lo && !po.hi) {
		po.lo = QMIG_PORT_LO_DEFAULT;
		po.hi = QMIG_PORT_HI_DEFAULT;
	}
	for (unsigned p = po.lo, hi = po.hi; p < hi; p++) {
		po.lo = po.hi = p;
		if (qmig_port_alloc(&j->portlock, &po, msg, len) < 0)
			continue;
		po.lo = po.hi = p + 1;
		if (qmig_port_alloc(&j->nbdlock, &po, msg, len) == 0) {
			j->port = p;
			j->port_hi = p + 1;
			return 0;
		}
		qmig_port_free(j->portlock);
		j->portlock = NULL;
	}
	snprintf(msg, len, "no two free neighbouring ports in the migration range (a stream and "
		 "an NBD server)");
	return -EADDRINUSE;
}

/* The uid and gid the destination QEMU will run as (the launcher's rule:
 * QMIG_RUNAS_DEFAULT when we are root and that user exists), so that it
 * can open the images made for it. */
static void qemu_ids(uid_t *uid, gid_t *gid)
{
	struct passwd pw, *res = NULL;
	char buf[4096];

	*uid = geteuid();
	*gid = getegid();
	if (geteuid() == 0 && getpwnam_r(QMIG_RUNAS_DEFAULT, &pw, buf, sizeof(buf), &res) == 0 &&
	    res) {
		*uid = pw.pw_uid;
		*gid = pw.pw_gid;
	}
}

/* The images of a storage copy: new, sparse, raw, of the source's size,
 * owned by QEMU's user; never an existing file. */
static int make_disks(struct agent_job *j, char *msg, size_t len)
{
	uid_t uid;
	gid_t gid;

	qemu_ids(&uid, &gid);
	for (; j->disks_made < j->ndisks; j->disks_made++) {
		struct agent_disk *d = &j->disks[j->disks_made];
		int fd = open(d->path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
		int e;

		if (fd < 0) {
			e = errno;
			snprintf(msg, len, "disk '%s': cannot create %s: %s", d->device, d->path,
				 strerror(e));
			return -e;
		}
		if (ftruncate(fd, (off_t)d->size) < 0 || fchown(fd, uid, gid) < 0) {
			e = errno;
			close(fd);
			unlink(d->path);
			snprintf(msg, len, "disk '%s': %s: %s", d->device, d->path, strerror(e));
			return -e;
		}
		close(fd);
	}
	return 0;
}

static void remove_disks(struct agent_job *j)
{
	for (int i = 0; i < j->disks_made; i++)
		unlink(j->disks[i].path);
	j->disks_made = 0;
}

int agent_job_prepare(struct agent *a, struct json_object *req, const char *peer,
		      const char *listen_addr, struct agent_job **out, const char **err,
		      char *msg, size_t len)
{
	struct qmig_vm_spec spec = QMIG_VM_SPEC_INIT;
	const char *name = qm_aj_str(req, "profile"), *id = qm_aj_str(req, "job");
	char monarg[400], tmpl[PATH_MAX], dargs[AGENT_MAX_DISKS][3][400];
	const char *argv[AGENT_MAX_ARGS + 3 + 6 * AGENT_MAX_DISKS];
	struct agent_launch *L;
	struct agent_job *j;
	int r, n = 0;

	if (!agent_valid_name(id)) {
		*err = "bad-request";
		snprintf(msg, len, "'job' must be 1-63 letters, digits, '-' or '_'");
		return -EINVAL;
	}
	L = malloc(sizeof(*L));
	if (!L)
		return -ENOMEM;
	r = agent_profile_build(a, name, req, L, err, msg, len);
	if (r < 0) {
		free(L);
		return r;
	}
	for (n = 0; n < L->nargs; n++)
		argv[n] = L->args[n];
	j = calloc(1, sizeof(*j));
	if (!j) {
		free(L);
		return -ENOMEM;
	}
	snprintf(j->id, sizeof(j->id), "%s", id);
	snprintf(j->profile, sizeof(j->profile), "%s", name);
	snprintf(j->peer, sizeof(j->peer), "%s", peer);
	snprintf(j->listen_addr, sizeof(j->listen_addr), "%s", listen_addr);
	j->guest_kind = L->guest;
	j->ndisks = L->ndisks;
	memcpy(j->disks, L->disks, sizeof(j->disks));
	gen_token(j->token, sizeof(j->token));
	r = register_job(a, j);
	if (r < 0) {
		*err = r == -EEXIST ? "job-exists" : "busy";
		snprintf(msg, len, r == -EEXIST ? "a job '%s' is already here" : "too many jobs (%s)",
			 id);
		free(j);
		free(L);
		return r;
	}
	/* The port first: a full range refuses before anything is started. */
	r = alloc_ports(a, j, listen_addr, msg, len);
	if (r < 0) {
		*err = "no-port";
		goto fail;
	}
	snprintf(tmpl, sizeof(tmpl), "%s/vm-XXXXXX", a->cfg.state_dir);
	if (!mkdtemp(tmpl)) {
		r = -errno;
		*err = "internal";
		snprintf(msg, len, "cannot create a directory in %s: %s", a->cfg.state_dir,
			 strerror(errno));
		goto fail;
	}
	if (strlen(tmpl) >= 90) { /* room for a socket name in a sun_path */
		rmdir(tmpl);
		r = -ENAMETOOLONG;
		*err = "internal";
		snprintf(msg, len, "the state directory's path is too long for sockets");
		goto fail;
	}
	memcpy(j->dir, tmpl, strlen(tmpl) + 1);
	snprintf(j->qmp, sizeof(j->qmp), "%s/qmp.sock", j->dir);
	snprintf(j->mon, sizeof(j->mon), "%s/agent.sock", j->dir);
	snprintf(monarg, sizeof(monarg), "unix:%s,server=on,wait=off", j->mon);
	argv[n++] = "-qmp";
	argv[n++] = monarg;
	/* The disks the source copies into: journaled first, so that a
	 * crash between their creation and the launch still removes them. */
	agent_journal(a, j, "launching");
	r = make_disks(j, msg, len);
	if (j->disks_made)
		agent_journal(a, j, "launching");
	if (r < 0) {
		*err = "internal";
		goto fail;
	}
	for (int i = 0; i < j->ndisks; i++) {
		snprintf(dargs[i][0], sizeof(dargs[i][0]),
			 "driver=file,node-name=qmig-disk%d-file,filename=%s", i, j->disks[i].path);
		snprintf(dargs[i][1], sizeof(dargs[i][1]),
			 "driver=raw,node-name=qmig-disk%d,file=qmig-disk%d-file", i, i);
		snprintf(dargs[i][2], sizeof(dargs[i][2]), "%s,drive=qmig-disk%d,id=%s",
			 L->disk_model, i, j->disks[i].device);
		argv[n++] = "-blockdev";
		argv[n++] = dargs[i][0];
		argv[n++] = "-blockdev";
		argv[n++] = dargs[i][1];
		argv[n++] = "-device";
		argv[n++] = dargs[i][2];
	}
	argv[n] = NULL;
	spec.qemu_binary = *L->qemu ? L->qemu : NULL;
	spec.accel = *L->accel ? L->accel : NULL;
	spec.guest = L->guest;
	spec.mem_bytes = L->mem;
	spec.incoming = 1;
	spec.detach = 1;       /* it outlives us once it owns the guest */
	spec.runtime_dir = j->dir;
	spec.extra_args = argv;
	spec.userfaultfd = L->userfaultfd;
	j->launch_ms = qm_wait_now_ns();
	r = qmig_vm_launch(&j->vm, &spec, msg, len);
	j->launch_ms = (qm_wait_now_ns() - j->launch_ms) / MS;
	if (r < 0) {
		*err = "launch-failed";
		goto fail;
	}
	j->pid = qmig_vm_pid(j->vm);
	r = give_creds(a, j, msg, len);
	if (r < 0) {
		*err = "internal";
		goto fail;
	}
	j->t_prepared = qm_wait_now_ns();
	agent_journal(a, j, "prepared");
	free(L);
	*out = j;
	return 0;
fail:
	free(L);
	if (j->vm) {
		qmig_vm_kill(j->vm);
	}
	if (*j->dir) {
		char cmd[PATH_MAX];

		/* Only our own files: QEMU's sockets, log, stderr. */
		DIR *d = opendir(j->dir);
		struct dirent *e;

		while (d && (e = readdir(d)))
			if (e->d_name[0] != '.') {
				snprintf(cmd, sizeof(cmd), "%s/%s", j->dir, e->d_name);
				unlink(cmd);
			}
		if (d)
			closedir(d);
	}
	qmig_vm_free(j->vm);
	j->vm = NULL;
	remove_disks(j);
	if (*j->dir)
		rmdir(j->dir);
	agent_journal(a, j, "ended");
	unregister_job(a, j);
	free_job(j);
	return r;
}

int agent_job_watch(struct agent_job *j, char *msg, size_t len)
{
	struct qmig_qmp_conn_opts co = QMIG_QMP_CONN_OPTS_INIT;
	struct qmig_qmp_event_cb ecb = {on_event, NULL, NULL};
	int r;

	r = qmig_qmp_conn_open(&j->monc, j->mon, &co);
	if (r < 0) {
		snprintf(msg, len, "the destination's monitor %s: %s", j->mon, strerror(-r));
		return r;
	}
	ecb.user_data = j;
	qmig_qmp_conn_set_event_cb(j->monc, &ecb);
	return 0;
}

int agent_job_lookup_tunnel(struct agent *a, const char *id, const char *token,
			    const char *peer, char *qmp, size_t len)
{
	char path[PATH_MAX];
	struct json_object *o;
	const char *t, *p, *q, *st;
	int r = -ENOENT;

	if (!agent_valid_name(id) || !token)
		return -EINVAL;
	snprintf(path, sizeof(path), "%s/jobs/%s.json", a->cfg.state_dir, id);
	o = json_object_from_file(path);
	t = qm_aj_str(o, "token");
	p = qm_aj_str(o, "peer");
	q = qm_aj_str(o, "qmp");
	st = qm_aj_str(o, "state");
	if (t && p && q && st && !strcmp(t, token) && !strcmp(p, peer) &&
	    !strcmp(st, "prepared") && strlen(q) < len) {
		memcpy(qmp, q, strlen(q) + 1);
		r = 0;
	}
	json_object_put(o);
	return r;
}

int agent_job_mon_fd(const struct agent_job *j)
{
	return j->monc ? qmig_qmp_conn_fd(j->monc) : -1;
}

int agent_job_poll(struct agent_job *j)
{
	int was = j->ran, r, st;

	if (!j->monc)
		return -ENOTCONN;
	r = qmig_qmp_conn_process(j->monc);
	if (j->vm && qmig_vm_exited(j->vm, &st))
		return -ECHILD;
	(void)was;
	return r < 0 ? r : 0;
}

int agent_job_finish(struct agent *a, struct agent_job *j, struct json_object *rep, char *msg,
		     size_t len)
{
	struct qmig_vm_status st;
	struct qmig_verify_report vr;
	int r;

	r = qmig_cmd_query_status(j->monc, &st);
	if (r < 0) {
		snprintf(msg, len, "the destination does not answer: %s",
			 qmig_qmp_conn_error(j->monc));
		return r;
	}
	if (st.running)
		j->ran = 1;
	json_object_object_add(rep, "status", json_object_new_string(st.status));
	if (!st.running) {
		snprintf(msg, len, "the destination guest is '%s', not running", st.status);
		return -EAGAIN;
	}
	agent_journal(a, j, "running");
	json_object_object_add(rep, "owner", json_object_new_string("destination"));
	if (j->guest_kind != QMIG_GUEST_TINY) {
		json_object_object_add(rep, "verified", json_object_new_boolean(1));
		json_object_object_add(rep, "verify_method", json_object_new_string("running"));
		return 0;
	}
	/* Our tiny guest stamps every page: check them all, here, where the
	 * memory is (stopped for the dump, a few ms per 100 MiB). */
	r = qmig_cmd_stop(j->monc);
	if (r == 0)
		r = qmig_tiny_verify(j->monc, j->dir, &vr);
	if (qmig_cmd_cont(j->monc) < 0) {
		snprintf(msg, len, "cont after the stamp check failed: %s",
			 qmig_qmp_conn_error(j->monc));
		return -EIO;
	}
	json_object_object_add(rep, "verify_method", json_object_new_string("stamps"));
	json_object_object_add(rep, "pages_checked", json_object_new_int64((int64_t)vr.pages_checked));
	if (r == 1) {
		json_object_object_add(rep, "verified", json_object_new_boolean(0));
		snprintf(msg, len, "%llu of %llu guest pages are wrong: %s",
			 (unsigned long long)vr.pages_bad, (unsigned long long)vr.pages_checked,
			 vr.detail);
		return -EBADMSG;
	}
	json_object_object_add(rep, "verified", r == 0 ? json_object_new_boolean(1) : NULL);
	return 0;
}

static void kill_and_clean(struct agent_job *j)
{
	char p[PATH_MAX];
	DIR *d;
	struct dirent *e;

	if (j->vm)
		qmig_vm_kill(j->vm);
	qmig_vm_free(j->vm);
	j->vm = NULL;
	d = opendir(j->dir);
	while (d && (e = readdir(d)))
		if (e->d_name[0] != '.') {
			snprintf(p, sizeof(p), "%s/%s", j->dir, e->d_name);
			unlink(p);
		}
	if (d)
		closedir(d);
	rmdir(j->dir);
	remove_disks(j);
}

void agent_job_end(struct agent *a, struct agent_job *j, int confirmed, int wait_stream,
		   const char *why)
{
	struct qmig_migrate_info mi;
	struct qmig_vm_status st;
	int64_t until = qm_wait_now_ns() + 600000 * MS;
	int keep = confirmed || j->ran;

	/* A stream still moving decides: QEMU either runs the guest (it owns
	 * it then) or exits when the stream fails. */
	while (!keep && wait_stream && j->monc && qm_wait_now_ns() < until) {
		if (agent_job_poll(j) < 0 || qmig_cmd_query_migrate(j->monc, &mi) < 0)
			break;
		if (qmig_cmd_query_status(j->monc, &st) == 0 && st.running)
			j->ran = 1;
		keep = j->ran;
		if (keep || (strcmp(mi.status, "active") && strcmp(mi.status, "device") &&
			     strncmp(mi.status, "postcopy", 8) && strcmp(mi.status, "completed")))
			break;
		qm_wait_fd(agent_job_mon_fd(j), POLLIN, qm_wait_now_ns() + 200 * MS);
	}
	if (!keep && j->monc && qmig_cmd_query_status(j->monc, &st) == 0 && st.running)
		keep = j->ran = 1;
	qmig_qmp_conn_close(j->monc);
	j->monc = NULL;
	if (keep) {
		/* Detached: it runs on without us. */
		agent_audit(a, j->peer, "end", j->id, "kept",
			    confirmed ? "confirmed: the destination owns the guest"
				      : "the destination had run: it keeps the guest");
		qmig_vm_free(j->vm);
		j->vm = NULL;
	} else {
		agent_audit(a, j->peer, "end", j->id, "removed", why);
		kill_and_clean(j);
	}
	agent_journal(a, j, "ended");
	unregister_job(a, j);
	free_job(j);
}

/* pid is a live (not zombie) process whose command line holds word: a
 * QEMU started with the journal's monitor socket, or the agent that wrote
 * the journal; never trust a bare pid, which may have been reused. */
int agent_proc_has(int64_t pid, const char *mon)
{
	char path[64], buf[8192];
	ssize_t n;
	int fd, ok = 0;

	if (pid <= 1 || !mon)
		return 0;
	if (pid > INT32_MAX || qm_proc_start_time((int)pid) < 0)
		return 0; /* gone, or a zombie */
	snprintf(path, sizeof(path), "/proc/%lld/cmdline", (long long)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	for (ssize_t i = 0; i < n; i++)
		if (!buf[i])
			buf[i] = ' ';
	if (n > 0) {
		buf[n] = 0;
		ok = strstr(buf, mon) != NULL;
	}
	return ok;
}

/* Queue entries of agents that are gone. */
static void reap_queue(struct agent *a)
{
	char path[PATH_MAX], f[PATH_MAX + 300];
	DIR *d;
	struct dirent *e;

	snprintf(path, sizeof(path), "%s/queue", a->cfg.state_dir);
	d = opendir(path);
	while (d && (e = readdir(d))) {
		struct json_object *o;

		if (e->d_name[0] == '.')
			continue;
		snprintf(f, sizeof(f), "%s/%s", path, e->d_name);
		o = json_object_from_file(f);
		if (!agent_alive(o)) {
			agent_audit(a, "-", "reap", qm_aj_str(o, "job"), "removed",
				    "queued at an agent that is gone");
			unlink(f);
		}
		json_object_put(o);
	}
	if (d)
		closedir(d);
}

/* A previous agent died: its journals say which destinations it left. One
 * that never ran and has no stream is killed; one that runs is kept. */
int agent_reap_stale(struct agent *a)
{
	int unsettled = 0;

	char path[PATH_MAX];
	DIR *d;
	struct dirent *e;

	snprintf(path, sizeof(path), "%s/jobs", a->cfg.state_dir);
	d = opendir(path);
	while (d && (e = readdir(d))) {
		struct qmig_qmp_conn_opts co = QMIG_QMP_CONN_OPTS_INIT;
		struct qmig_qmp_conn *q = NULL;
		struct qmig_vm_status st = {0};
		struct qmig_migrate_info mi = {0};
		struct json_object *o;
		const char *mon, *dir;
		int64_t pid = 0;
		char f[PATH_MAX + 300];
		int kill_it = 0, reachable;

		if (e->d_name[0] == '.' || !strstr(e->d_name, ".json"))
			continue;
		snprintf(f, sizeof(f), "%s/%s", path, e->d_name);
		o = json_object_from_file(f);
		/* Another agent on this state directory is alive (ssh: one per
		 * connection): the job is its own. */
		if (agent_alive(o)) {
			json_object_put(o);
			continue;
		}
		mon = qm_aj_str(o, "monitor");
		dir = qm_aj_str(o, "dir");
		qm_aj_int(o, "pid", &pid);
		co.timeout_ms = 2000;
		reachable = mon && qmig_qmp_conn_open(&q, mon, &co) == 0 &&
			    qmig_cmd_query_status(q, &st) == 0 && qmig_cmd_query_migrate(q, &mi) == 0;
		if (reachable) {
			/* Never ran, and no stream on its way: the source keeps the guest. */
			kill_it = !st.running && strcmp(st.status, "paused") &&
				  (!strcmp(mi.status, "none") || !strcmp(mi.status, "setup") ||
				   !strcmp(mi.status, "failed"));
			if (kill_it) {
				qmig_cmd_quit(q); /* works even when the journal has no pid yet */
				if (agent_proc_has(pid, mon))
					kill((pid_t)pid, SIGKILL);
			}
			agent_audit(a, "-", "reap", qm_aj_str(o, "job"), kill_it ? "removed" : "kept",
				    kill_it ? "left by a previous agent, never ran" : st.status);
		} else if (!agent_proc_has(pid, mon)) {
			/* QEMU is gone already (a failed stream ends it). */
			kill_it = 1;
			agent_audit(a, "-", "reap", qm_aj_str(o, "job"), "removed",
				    "left by a previous agent; its QEMU had exited");
		} else {
			/* Alive but its monitor does not answer: leave it to people. */
			agent_audit(a, "-", "reap", qm_aj_str(o, "job"), "unknown",
				    "its QEMU runs but its monitor does not answer; left as it is");
		}
		qmig_qmp_conn_close(q);
		if (!reachable && !kill_it) {
			json_object_put(o); /* the journal stays for the next try */
			unsettled++;
			continue;
		}
		if (kill_it) {
			struct json_object *arr = NULL;

			/* The images made for its storage copy (never a file it did
			 * not create: those are the only ones journaled). */
			if (qm_aj_arr(o, "disks", &arr) == 1)
				for (size_t i = 0; i < json_object_array_length(arr); i++) {
					struct json_object *x = json_object_array_get_idx(arr, i);

					if (json_object_is_type(x, json_type_string))
						unlink(json_object_get_string(x));
				}
		}
		if (dir && kill_it) {
			char p[PATH_MAX];
			DIR *dd = opendir(dir);
			struct dirent *de;

			while (dd && (de = readdir(dd)))
				if (de->d_name[0] != '.') {
					snprintf(p, sizeof(p), "%s/%s", dir, de->d_name);
					unlink(p);
				}
			if (dd)
				closedir(dd);
			rmdir(dir);
		}
		unlink(f);
		json_object_put(o);
	}
	if (d)
		closedir(d);
	reap_queue(a);
	return unsettled;
}
