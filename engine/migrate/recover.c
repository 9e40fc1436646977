/* qmig_recover_job: finish or roll back a job whose process died, from
 * its journal and what both QEMUs say now, by the ownership rule. This is
 * a blocking helper (bounded waits of its own), like qmig_migration_run:
 * it runs once, from a command line or an orchestrator's recovery path. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "qm_wait.h"
#include "journal/journal.h"
#include "storage/storage.h"
#include "qmig_journal.h"

#define POLL_MS 100

struct rside {
	const char *name;
	struct json_object *j;       /* the journal's view of this side */
	struct qmig_qmp_conn *qmp;   /* NULL: gone (or busy, below) */
	int busy;                    /* its socket listens but QEMU does not answer */
	struct qmig_vm_status st;
	struct qmig_migrate_info mi;
};

struct rec {
	const struct qmig_recover_opts *o;
	struct json_object *j;
	struct rside s[2];
	struct qmig_recover_result *res;
	size_t msg_len;
};

static void rlog(struct rec *r, enum qmig_log_level lvl, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void rlog(struct rec *r, enum qmig_log_level lvl, const char *fmt, ...)
{
	char buf[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (r->o->log.fn)
		r->o->log.fn(lvl, buf, r->o->log.user_data);
}

/* Append a sentence to the result's message. */
static void say(struct rec *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(struct rec *r, const char *fmt, ...)
{
	char *msg = r->res->message;
	size_t len = strlen(msg);
	va_list ap;

	if (len && len < sizeof(r->res->message) - 2) {
		msg[len++] = ' ';
		msg[len] = 0;
	}
	va_start(ap, fmt);
	vsnprintf(msg + len, sizeof(r->res->message) - len, fmt, ap);
	va_end(ap);
}

static void sleep_ms(int ms)
{
	qm_sleep_until(qm_wait_now_ns() + (int64_t)ms * 1000000);
}

static int64_t mono_ms(void)
{
	return qm_now_ns() / 1000000;
}

static void refresh(struct rside *s)
{
	if (!s->qmp)
		return;
	if (qmig_cmd_query_status(s->qmp, &s->st) < 0 ||
	    qmig_cmd_query_migrate(s->qmp, &s->mi) < 0) {
		qmig_qmp_conn_close(s->qmp);
		s->qmp = NULL;
	}
}

static int is_precopy(const char *st)
{
	return !strcmp(st, "setup") || !strcmp(st, "active") || !strcmp(st, "device") ||
	       !strcmp(st, "pre-switchover") || !strcmp(st, "cancelling") ||
	       !strcmp(st, "wait-unplug");
}

/* Put back the capabilities, parameters and objects the job changed. */
static void restore(struct rec *r, struct rside *s)
{
	struct json_object *orig_caps = qm_jget_obj(s->j, "orig_caps", json_type_object);
	struct json_object *orig_params = qm_jget_obj(s->j, "orig_params", json_type_object);
	struct json_object *set_caps = qm_jget_obj(s->j, "set_caps", json_type_object);
	struct json_object *set_params = qm_jget_obj(s->j, "set_params", json_type_object);
	struct json_object *objs = qm_jget_obj(s->j, "objects", json_type_array);
	struct json_object *v;

	if (!s->qmp)
		return;
	/* storage.c: a storage migration's mirrors, NBD nodes and exports. */
	if (qm_storage_scrub(s->qmp, s == &r->s[SRC]) > 0)
		say(r, "%s: the storage migration's leftovers were removed.", s->name);
	if (set_caps && orig_caps) {
		struct json_object *caps = json_object_new_object();

		json_object_object_foreach(set_caps, name, val)
		{
			(void)val;
			json_object_object_add(caps, name, json_object_new_boolean(
				json_object_object_get_ex(orig_caps, name, &v) &&
				json_object_get_boolean(v)));
		}
		if (qmig_cmd_migrate_set_capabilities(s->qmp, caps) < 0)
			say(r, "%s: could not restore capabilities: %s.", s->name,
			    qmig_qmp_conn_error(s->qmp));
		json_object_put(caps);
	}
	if (set_params && orig_params) {
		struct json_object *params = json_object_new_object();

		json_object_object_foreach(set_params, name, val)
		{
			(void)val;
			if (json_object_object_get_ex(orig_params, name, &v))
				json_object_object_add(params, name, json_object_get(v));
		}
		if (json_object_object_length(params) &&
		    qmig_cmd_migrate_set_parameters(s->qmp, params) < 0)
			say(r, "%s: could not restore parameters: %s.", s->name,
			    qmig_qmp_conn_error(s->qmp));
		json_object_put(params);
	}
	for (size_t i = 0; objs && i < json_object_array_length(objs); i++) {
		const char *id = json_object_get_string(json_object_array_get_idx(objs, i));

		/* Only ids of this job: qmigrate-...-JOB. */
		if (id && !strncmp(id, "qmigrate-", 9) && qmig_cmd_object_del(s->qmp, id) == 0)
			rlog(r, QMIG_LOG_INFO, "%s: object %s removed", s->name, id);
	}
}

/* A stale lock file of the job's port (the flock died with it). */
static void release_port(struct rec *r)
{
	int port = (int)qm_jget_int(r->j, "port", 0);
	const char *dir = qm_jget_str(r->j, "port_lock_dir");
	const char *xdg = getenv("XDG_RUNTIME_DIR");
	char def[PATH_MAX], path[PATH_MAX + 16];
	int fd;

	if (port <= 0)
		return;
	if (!dir) {
		/* The transport's default (transport/port.c). */
		if (geteuid() == 0)
			snprintf(def, sizeof(def), "/run/qmigrate/ports");
		else if (xdg && xdg[0] == '/')
			snprintf(def, sizeof(def), "%s/qmigrate-ports", xdg);
		else
			snprintf(def, sizeof(def), "/tmp/qmigrate-ports-%u", (unsigned)geteuid());
		dir = def;
	}
	snprintf(path, sizeof(path), "%s/%d.lock", dir, port);
	fd = open(path, O_RDWR | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return;
	/* Held: someone else has the port now. */
	if (flock(fd, LOCK_EX | LOCK_NB) == 0)
		unlink(path);
	close(fd);
}

static void rm_tree_flat(const char *dir)
{
	struct dirent *de;
	DIR *d = opendir(dir);
	char p[PATH_MAX];

	if (!d)
		return;
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..") &&
		    (size_t)snprintf(p, sizeof(p), "%s/%s", dir, de->d_name) < sizeof(p))
			unlink(p);
	closedir(d);
	rmdir(dir);
}

/* What a dead job left in /dev/shm and /tmp: RAM dump directories
 * qmigrate-verify-JOB.* (verify_mem.c) and copies of TLS credentials made
 * for a QEMU of another uid, qmigrate-tls-JOB-{src,dst}.* (tls.c). */
static void remove_dumps(struct rec *r, const char *job)
{
	static const char *const bases[] = {"/dev/shm", "/tmp", "/tmp"};
	static const char *const kinds[] = {"verify", "verify", "tls"};
	char prefix[64], p[PATH_MAX];

	for (int i = 0; i < 3; i++) {
		snprintf(prefix, sizeof(prefix), "qmigrate-%s-%s%s", kinds[i], job,
			 i == 2 ? "-" : ".");
		struct dirent *de;
		DIR *d = opendir(bases[i]);

		if (!d)
			continue;
		while ((de = readdir(d))) {
			struct stat st;

			if (strncmp(de->d_name, prefix, strlen(prefix)))
				continue;
			snprintf(p, sizeof(p), "%s/%s", bases[i], de->d_name);
			if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode) && st.st_uid == geteuid()) {
				rm_tree_flat(p);
				rlog(r, QMIG_LOG_INFO, "removed %s %s",
				     i == 2 ? "TLS credentials copied for QEMU" : "RAM dumps", p);
			}
		}
		closedir(d);
	}
}

/* Wait (bounded) while QEMU is still moving: a precopy being cancelled, a
 * postcopy running to its end, a completed stream still loading. */
static void settle(struct rec *r, int wait_ms)
{
	struct rside *src = &r->s[SRC], *dst = &r->s[DST];
	int64_t until = mono_ms() + wait_ms;
	int cancelled = 0;

	for (;;) {
		refresh(src);
		refresh(dst);
		if (src->qmp && is_precopy(src->mi.status)) {
			if (!cancelled && strcmp(src->mi.status, "cancelling")) {
				qmig_cmd_migrate_cancel(src->qmp);
				cancelled = 1;
				rlog(r, QMIG_LOG_INFO, "source: migration cancelled (was %s)",
				     src->mi.status);
			}
		} else if (src->qmp && !strncmp(src->mi.status, "postcopy-", 9) &&
			   strcmp(src->mi.status, "postcopy-paused")) {
			/* postcopy-active/recover: QEMU finishes it by itself. */
		} else if (dst->qmp && !strcmp(dst->mi.status, "postcopy-active") &&
			   !(src->qmp && !strcmp(src->mi.status, "postcopy-paused"))) {
		} else if (dst->qmp && !strcmp(dst->st.status, "inmigrate") && src->qmp &&
			   !strcmp(src->mi.status, "completed")) {
			/* The destination still loads the last of the device state. */
		} else {
			return;
		}
		if (mono_ms() > until) {
			rlog(r, QMIG_LOG_WARN, "QEMU still busy after %d ms", wait_ms);
			return;
		}
		sleep_ms(POLL_MS);
	}
}

static void finish_handover(struct rec *r)
{
	struct rside *src = &r->s[SRC], *dst = &r->s[DST];
	struct json_object *v;
	int was_running = json_object_object_get_ex(src->j, "was_running", &v) &&
			  json_object_get_boolean(v);

	restore(r, dst);
	if (!dst->qmp) {
		say(r, "The destination QEMU is gone although it had taken over the guest; the "
		       "source was NOT resumed (it holds the guest as it was before the "
		       "hand-over: resume it by hand only if you accept that divergence).");
	} else if (!dst->st.running && was_running && !strcmp(dst->st.status, "paused")) {
		/* The job paused it (a stamp check, a pause to finish) and died
		 * before resuming it: the owner of a running guest runs it. */
		if (qmig_cmd_cont(dst->qmp) < 0)
			say(r, "The destination owns the guest but could NOT be resumed (%s): %s.",
			    dst->st.status, qmig_qmp_conn_error(dst->qmp));
		else
			say(r, "The destination, which owns the guest, was resumed (it was %s).",
			    dst->st.status);
	} else {
		say(r, "The destination %s the guest.", dst->st.running ? "runs" : "holds (paused)");
	}
	if (src->qmp && qm_jget_int(r->j, "keep_source", 0)) {
		restore(r, src);
		say(r, "The source stays paused (%s), as --keep-source asked.", src->st.status);
	} else if (src->qmp) {
		qmig_cmd_quit(src->qmp);
		qmig_qmp_conn_close(src->qmp);
		src->qmp = NULL;
		say(r, "The source QEMU was quit, as after a normal migration.");
	}
	snprintf(r->res->outcome, sizeof(r->res->outcome), "finished");
	snprintf(r->res->owner, sizeof(r->res->owner), "destination");
}

static void roll_back(struct rec *r)
{
	struct rside *src = &r->s[SRC], *dst = &r->s[DST];
	struct json_object *v;
	int was_running = json_object_object_get_ex(src->j, "was_running", &v) &&
			  json_object_get_boolean(v);

	if (dst->qmp && !strcmp(dst->st.status, "inmigrate") &&
	    qm_jget_int(dst->j, "incoming_started", 0)) {
		/* Listening for a stream that will never come (QEMU cannot stop
		 * listening): an incoming QEMU is single-use anyway. */
		qmig_cmd_quit(dst->qmp);
		qmig_qmp_conn_close(dst->qmp);
		dst->qmp = NULL;
		say(r, "The destination QEMU, still waiting for the stream, was quit (start a new "
		       "one with -incoming defer).");
	} else if (dst->qmp) {
		restore(r, dst);
		if (dst->st.running) /* cannot happen: it would own the guest */
			say(r, "The destination is running!");
		else
			say(r, "The destination is left %s.", dst->st.status);
	}
	if (!src->qmp) {
		say(r, "The source QEMU is gone: nothing to give the guest back to.");
		snprintf(r->res->outcome, sizeof(r->res->outcome), "cleaned");
		return;
	}
	restore(r, src);
	if (was_running && !src->st.running) {
		if (qmig_cmd_cont(src->qmp) < 0)
			say(r, "The source could NOT be resumed: %s.", qmig_qmp_conn_error(src->qmp));
		else
			say(r, "The source guest was resumed (it was %s).", src->st.status);
	} else {
		say(r, "The source guest is %s as before.", src->st.running ? "running" : "paused");
	}
	snprintf(r->res->outcome, sizeof(r->res->outcome), "rolled-back");
	snprintf(r->res->owner, sizeof(r->res->owner), "source");
}

/* Gone means nobody listens on the socket any more. A QEMU that listens
 * but does not answer is busy (a dead job may have left it writing a
 * gigabyte for pmemsave, its main loop blocked): wait for it, up to
 * wait_ms, and never take it for gone, which would give up its guest. */
static void open_side(struct rec *r, struct rside *s, int wait_ms)
{
	struct qmig_qmp_conn_opts co = QMIG_QMP_CONN_OPTS_INIT;
	const char *path = qm_jget_str(s->j, "qmp");
	int64_t until = mono_ms() + wait_ms;
	int e;

	if (r->o->qmp_timeout_ms > 0)
		co.timeout_ms = r->o->qmp_timeout_ms;
	if (!path)
		return;
	for (;;) {
		e = qmig_qmp_conn_open(&s->qmp, path, &co);
		if (e == 0)
			break;
		s->qmp = NULL;
		if (e == -ENOENT || e == -ECONNREFUSED || e == -ENOTSOCK) {
			rlog(r, QMIG_LOG_INFO, "%s: %s: %s (QEMU gone)", s->name, path,
			     strerror(-e));
			return;
		}
		if (mono_ms() >= until) {
			s->busy = 1;
			rlog(r, QMIG_LOG_WARN, "%s: %s: %s (QEMU there, not answering)", s->name,
			     path, strerror(-e));
			return;
		}
		rlog(r, QMIG_LOG_INFO, "%s: %s: %s; waiting for QEMU to answer", s->name, path,
		     strerror(-e));
		sleep_ms(POLL_MS * 5);
	}
	refresh(s);
}

int qmig_recover_job(const char *dir, const char *job, const struct qmig_recover_opts *opts,
		     struct qmig_recover_result *out)
{
	struct qmig_recover_opts dflt = QMIG_RECOVER_OPTS_INIT;
	struct qmig_recover_result res = {0};
	struct rec r = {0};
	struct json_object *sides;
	char path[PATH_MAX];
	const char *owner, *sj;
	int err, ret = 0, dst_owns;

	if (!dir || !job || !out || (opts && (opts->version < 1 ||
					      opts->version > QMIG_RECOVER_OPTS_VERSION)))
		return -EINVAL;
	for (const char *p = job; *p; p++)
		if (*p == '/' || *p == '.')
			return -EINVAL;
	r.o = opts ? opts : &dflt;
	r.res = &res;
	snprintf(res.job, sizeof(res.job), "%s", job);
	if ((size_t)snprintf(path, sizeof(path), "%s/%s.journal", dir, job) >= sizeof(path))
		return -ENAMETOOLONG;
	r.j = qm_journal_load(path, &err);
	if (!r.j) {
		snprintf(res.message, sizeof(res.message), "%.900s: %s", path, strerror(-err));
		*out = res;
		return err;
	}
	if (qm_job_alive((int)qm_jget_int(r.j, "pid", -1), qm_jget_int(r.j, "pid_start", -2))) {
		snprintf(res.message, sizeof(res.message),
			 "job %s is still running (pid %lld): use 'qmigrate cancel --job %s'", job,
			 (long long)qm_jget_int(r.j, "pid", -1), job);
		json_object_put(r.j);
		*out = res;
		return -EBUSY;
	}
	sides = qm_jget_obj(r.j, "sides", json_type_object);
	r.s[SRC].name = "source";
	r.s[DST].name = "destination";
	r.s[SRC].j = qm_jget_obj(sides, "source", json_type_object);
	r.s[DST].j = qm_jget_obj(sides, "destination", json_type_object);
	owner = qm_jget_str(r.j, "owner");
	sj = qm_jget_str(r.j, "phase");
	rlog(&r, QMIG_LOG_INFO, "job %s died in phase %s, the %s owning the guest", job,
	     sj ? sj : "?", owner ? owner : "?");
	open_side(&r, &r.s[SRC], r.o->wait_ms > 0 ? r.o->wait_ms : 60000);
	open_side(&r, &r.s[DST], r.o->wait_ms > 0 ? r.o->wait_ms : 60000);
	if (r.s[SRC].busy || r.s[DST].busy) {
		/* Deciding without one side could give its guest up. */
		snprintf(res.outcome, sizeof(res.outcome), "unreachable");
		say(&r, "The %s QEMU listens on its QMP socket but does not answer; nothing was "
			"changed and the journal is kept: run qmigrate recover again.",
		    r.s[SRC].busy ? "source" : "destination");
		for (int i = 0; i < 2; i++)
			qmig_qmp_conn_close(r.s[i].qmp);
		json_object_put(r.j);
		res.error = -EAGAIN;
		*out = res;
		return -EAGAIN;
	}
	settle(&r, r.o->wait_ms > 0 ? r.o->wait_ms : 60000);

	/* The ownership rule: the destination owns the guest once it has run
	 * (the journal saw it, or it runs now, or postcopy began). */
	dst_owns = (owner && !strcmp(owner, "destination")) ||
		   (r.s[DST].qmp && r.s[DST].st.running) ||
		   (r.s[SRC].qmp && !strncmp(r.s[SRC].mi.status, "postcopy-", 9)) ||
		   /* The stream completed and the destination cannot be asked (on
		    * another host, behind an agent): it may run; as the engine's
		    * own rollback, never resume the source then. */
		   (r.s[SRC].qmp && !r.s[DST].qmp && !strcmp(r.s[SRC].mi.status, "completed"));
	if (!r.s[SRC].qmp && !r.s[DST].qmp) {
		snprintf(res.outcome, sizeof(res.outcome), "cleaned");
		say(&r, "Neither QEMU is reachable (%s mode: they ended with the job).",
		    (sj = qm_jget_str(r.j, "mode")) ? sj : "?");
	} else if ((r.s[SRC].qmp && !strcmp(r.s[SRC].mi.status, "postcopy-paused")) ||
		   (r.s[DST].qmp && !strcmp(r.s[DST].mi.status, "postcopy-paused"))) {
		snprintf(res.outcome, sizeof(res.outcome), "left-paused");
		snprintf(res.owner, sizeof(res.owner), "destination");
		say(&r, "Postcopy is paused: the guest's memory is split between the two QEMUs, "
			"so neither can run it alone; both stay paused. Restore the link, then run "
			"migrate-recover on the destination and migrate with resume=true on the "
			"source (or quit both: the guest is lost). The journal is kept.");
		ret = -EAGAIN;
	} else if (dst_owns) {
		finish_handover(&r);
	} else {
		roll_back(&r);
	}
	if (ret == 0) {
		release_port(&r);
		remove_dumps(&r, job);
		if (unlink(path) < 0 && errno != ENOENT)
			say(&r, "Could not remove the journal %s: %s.", path, strerror(errno));
	}
	for (int i = 0; i < 2; i++)
		qmig_qmp_conn_close(r.s[i].qmp);
	json_object_put(r.j);
	res.error = ret;
	*out = res;
	return ret;
}
