/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Small blocking helpers for save, restore and update: QEMU's identity,
 * waiting for a migration to end, capabilities and parameters changed and
 * put back, heartbeats and stamps of the test guests.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "qm_wait.h"
#include "journal/journal.h"
#include "qmig_commands.h"
#include "qmig_journal.h"
#include "qmp_reply.h"
#include "save_int.h"

int64_t qm_sr_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void qm_sr_log(const struct qmig_log_cb *log, enum qmig_log_level lvl, const char *fmt, ...)
{
	char buf[1024];
	va_list ap;

	if (!log || !log->fn)
		return;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	log->fn(lvl, buf, log->user_data);
}

int qm_sr_qemu_version(struct qmig_qmp_conn *c, char *buf, size_t len, unsigned *num)
{
	struct qmig_qemu_version v;
	int r;

	r = qmig_cmd_query_version(c, &v);
	if (r < 0)
		return r;
	snprintf(buf, len, "%u.%u.%u", v.major, v.minor, v.micro);
	*num = v.major * 10000 + v.minor * 100 + v.micro;
	return 0;
}

int qm_sr_wait_migration(struct qmig_qmp_conn *c, int timeout_ms, struct qmig_migrate_info *mi,
			 char *msg, size_t msg_len)
{
	return qm_sr_wait_migration_c(c, timeout_ms, NULL, mi, msg, msg_len);
}

int qm_sr_wait_migration_c(struct qmig_qmp_conn *c, int timeout_ms, const volatile int *cancel,
			   struct qmig_migrate_info *mi, char *msg, size_t msg_len)
{
	int64_t end = qm_sr_now_ns() + (int64_t)timeout_ms * 1000000;
	int delay_us = 1000;

	for (;;) {
		int r = qmig_cmd_query_migrate(c, mi);

		/* A destination loading mapped-ram answers nothing until its
		 * main loop is free again: busy, not broken (a late reply is
		 * dropped by its id). */
		if (r == -ETIMEDOUT && qm_sr_now_ns() < end && !(cancel && *cancel))
			continue;
		if (r < 0) {
			snprintf(msg, msg_len, "query-migrate: %s", qmig_qmp_conn_error(c));
			return r;
		}
		/* A cancel asked for before completion was seen wins: the
		 * caller rolls back (a save's header is not written yet). */
		if (cancel && *cancel && strcmp(mi->status, "failed") &&
		    strcmp(mi->status, "cancelled")) {
			snprintf(msg, msg_len, "cancelled (status %s)", mi->status);
			return -ECANCELED;
		}
		if (!strcmp(mi->status, "completed"))
			return 0;
		if (!strcmp(mi->status, "failed") || !strcmp(mi->status, "cancelled")) {
			snprintf(msg, msg_len, "QEMU says the migration %s%s%s", mi->status,
				 mi->error_desc[0] ? ": " : "", mi->error_desc);
			return -EIO;
		}
		if (qm_sr_now_ns() > end) {
			snprintf(msg, msg_len,
				 "the migration did not finish within %d s (status %s)",
				 timeout_ms / 1000, mi->status);
			return -ETIMEDOUT;
		}
		/* Short saves finish in milliseconds; long ones need no tight loop. */
		qm_sleep_until(qm_wait_now_ns() + (int64_t)delay_us * 1000);
		if (delay_us < 50000)
			delay_us *= 2;
	}
}

int qm_sr_set_cap(struct qmig_qmp_conn *c, struct qm_sr_saved *sv, const char *name, int on)
{
	struct json_object *cur = NULL, *set;
	struct qm_rd rd;
	int r, old = 0;

	r = qmig_cmd_query_migrate_capabilities(c, &cur);
	if (r < 0)
		return r;
	qm_rd_init(&rd, "query-migrate-capabilities");
	old = qm_rd_opt_bool(&rd, qm_rd_as_obj(&rd, cur), name, 0);
	json_object_put(cur);
	if (rd.err)
		return -EPROTO;
	if (old == !!on)
		return 0;
	set = json_object_new_object();
	json_object_object_add(set, name, json_object_new_boolean(on));
	r = qmig_cmd_migrate_set_capabilities(c, set);
	json_object_put(set);
	if (r < 0)
		return r;
	if (!sv->caps)
		sv->caps = json_object_new_object();
	if (!json_object_object_get_ex(sv->caps, name, NULL))
		json_object_object_add(sv->caps, name, json_object_new_boolean(old));
	return 0;
}

static int set_param(struct qmig_qmp_conn *c, struct qm_sr_saved *sv, const char *name,
		     struct json_object *val)
{
	struct json_object *cur = NULL, *old = NULL, *set;
	int r;

	r = qmig_cmd_query_migrate_parameters(c, &cur);
	if (r < 0) {
		json_object_put(val);
		return r;
	}
	if (json_object_is_type(cur, json_type_object) &&
	    json_object_object_get_ex(cur, name, &old))
		json_object_get(old);
	json_object_put(cur);
	set = json_object_new_object();
	json_object_object_add(set, name, val);
	r = qmig_cmd_migrate_set_parameters(c, set);
	json_object_put(set);
	if (r < 0) {
		json_object_put(old);
		return r;
	}
	if (!sv->params)
		sv->params = json_object_new_object();
	if (old && !json_object_object_get_ex(sv->params, name, NULL))
		json_object_object_add(sv->params, name, old);
	else
		json_object_put(old);
	return 0;
}

int qm_sr_set_param(struct qmig_qmp_conn *c, struct qm_sr_saved *sv, const char *name,
		    int64_t value)
{
	return set_param(c, sv, name, json_object_new_int64(value));
}

int qm_sr_set_param_str(struct qmig_qmp_conn *c, struct qm_sr_saved *sv, const char *name,
			const char *value)
{
	return set_param(c, sv, name, json_object_new_string(value));
}

void qm_sr_restore(struct qmig_qmp_conn *c, struct qm_sr_saved *sv)
{
	if (!c)
		return;
	if (sv->params && json_object_object_length(sv->params))
		qmig_cmd_migrate_set_parameters(c, sv->params);
	/* Dependent capabilities (multifd under mapped-ram) go off together. */
	if (sv->caps && json_object_object_length(sv->caps))
		qmig_cmd_migrate_set_capabilities(c, sv->caps);
}

void qm_sr_saved_free(struct qm_sr_saved *sv)
{
	json_object_put(sv->caps);
	json_object_put(sv->params);
	sv->caps = sv->params = NULL;
}

int qm_sr_beats(struct qm_probe *hb, unsigned n, int timeout_ms, char *msg, size_t len)
{
	struct qmig_guest_stats st;
	int r = qm_probe_wait(hb, n, timeout_ms);

	qm_probe_get(hb, &st);
	if (st.corrupt) {
		snprintf(msg, len, "the guest reports corrupt memory: %s", st.corrupt_msg);
		return 0;
	}
	if (r < 0) {
		snprintf(msg, len, "the guest sent %llu heartbeats, not %u, within %d s (%s)",
			 (unsigned long long)st.beats, n, timeout_ms / 1000, strerror(-r));
		return r == -ETIMEDOUT ? -ETIMEDOUT : r;
	}
	return 1;
}

int qm_sr_check_stamps(struct qmig_qmp_conn *c, const char *dir, uint64_t *pages, char *msg,
		       size_t len)
{
	struct qmig_verify_report rep;
	struct qmig_vm_status st;
	int r;

	r = qmig_cmd_query_status(c, &st);
	if (r == 0 && st.running)
		r = qmig_cmd_stop(c);
	if (r < 0) {
		snprintf(msg, len, "cannot stop the guest to check it: %s", qmig_qmp_conn_error(c));
		return r;
	}
	r = qm_guest_verify(qm_guest_default(), c, dir, &rep);
	if (r < 0) {
		snprintf(msg, len, "memory stamps not checked: %s", strerror(-r));
		return r;
	}
	*pages = rep.pages_checked;
	if (r == 1) {
		snprintf(msg, len, "%llu of %llu guest pages are wrong, first at 0x%llx: %s",
			 (unsigned long long)rep.pages_bad, (unsigned long long)rep.pages_checked,
			 (unsigned long long)rep.first_bad_gpa, rep.detail);
		return 0;
	}
	return 1;
}

/* ---- the job journal --------------------------------------------------------- */

static int valid_id(const char *id)
{
	size_t n = strlen(id);

	return n && n < 32 &&
	       strspn(id, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
			  "0123456789-_") == n;
}

int qm_sr_journal_init(struct qm_sr_journal *j, const char *dir, const char *job_id,
		       const char *kind, const char *mode)
{
	memset(j, 0, sizeof(*j));
	j->kind = kind;
	j->mode = mode;
	j->phase = "prepare";
	j->owner = "source";
	if (job_id && !valid_id(job_id))
		return -EINVAL;
	if (job_id)
		snprintf(j->job, sizeof(j->job), "%s", job_id);
	else
		snprintf(j->job, sizeof(j->job), "%d", (int)getpid());
	j->pid_start = qm_proc_start_time((int)getpid());
	if (!dir)
		return 0;
	if (mkdir(dir, 0700) < 0 && errno != EEXIST)
		return -errno;
	if ((size_t)snprintf(j->path, sizeof(j->path), "%s/%s.journal", dir, j->job) >=
	    sizeof(j->path)) {
		j->path[0] = 0;
		return -ENAMETOOLONG;
	}
	return 0;
}

static struct json_object *names(const char *const *v)
{
	struct json_object *o = json_object_new_object();

	for (; v && *v; v++)
		json_object_object_add(o, *v, json_object_new_boolean(1));
	return o;
}

void qm_sr_journal_side(struct qm_sr_journal *j, int dst, const char *qmp, int pid, const char *dir,
			int was_running, struct json_object *orig_caps,
			struct json_object *orig_params, const char *const *set_caps,
			const char *const *set_params, int incoming_started)
{
	struct json_object *o = json_object_new_object();

	json_object_object_add(o, "qmp", qmp && *qmp ? json_object_new_string(qmp) : NULL);
	json_object_object_add(o, "qemu_pid", pid > 0 ? json_object_new_int(pid) : NULL);
	json_object_object_add(o, "runtime_dir", dir && *dir ? json_object_new_string(dir) : NULL);
	json_object_object_add(o, "was_running", json_object_new_boolean(was_running));
	json_object_object_add(o, "orig_caps",
			       orig_caps ? json_object_get(orig_caps) : json_object_new_object());
	json_object_object_add(o, "orig_params",
			       orig_params ? json_object_get(orig_params)
					   : json_object_new_object());
	json_object_object_add(o, "set_caps", names(set_caps));
	json_object_object_add(o, "set_params", names(set_params));
	json_object_object_add(o, "objects", json_object_new_array());
	json_object_object_add(o, "incoming_started", json_object_new_boolean(incoming_started));
	json_object_put(dst ? j->dst : j->src);
	if (dst)
		j->dst = o;
	else
		j->src = o;
}

int qm_sr_journal_write(struct qm_sr_journal *j, const char *side, const char *step)
{
	struct json_object *o, *st, *sides;
	struct timeval tv;
	int r;

	if (!j->path[0])
		return 0;
	gettimeofday(&tv, NULL);
	o = json_object_new_object();
	json_object_object_add(o, "format", json_object_new_int(QMIG_JOURNAL_FORMAT));
	json_object_object_add(o, "job", json_object_new_string(j->job));
	json_object_object_add(o, "kind", json_object_new_string(j->kind));
	json_object_object_add(o, "pid", json_object_new_int((int)getpid()));
	json_object_object_add(o, "pid_start", json_object_new_int64(j->pid_start));
	json_object_object_add(o, "updated_us",
			       json_object_new_int64((int64_t)tv.tv_sec * 1000000 + tv.tv_usec));
	json_object_object_add(o, "mode", json_object_new_string(j->mode));
	json_object_object_add(o, "phase", json_object_new_string(j->phase));
	json_object_object_add(o, "owner", json_object_new_string(j->owner));
	json_object_object_add(o, "migrate_started", json_object_new_boolean(j->migrate_started));
	json_object_object_add(o, "postcopy", json_object_new_boolean(0));
	json_object_object_add(o, "postcopy_started", json_object_new_boolean(0));
	json_object_object_add(o, "keep_source", json_object_new_boolean(j->keep_source));
	json_object_object_add(o, "port", json_object_new_int(0));
	st = json_object_new_object();
	json_object_object_add(st, "side", side ? json_object_new_string(side) : NULL);
	json_object_object_add(st, "command", json_object_new_string(step));
	json_object_object_add(o, "step", st);
	sides = json_object_new_object();
	json_object_object_add(sides, "source", json_object_get(j->src));
	json_object_object_add(sides, "destination", json_object_get(j->dst));
	json_object_object_add(o, "sides", sides);
	r = qm_write_atomic(j->path, json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
	json_object_put(o);
	return r;
}

void qm_sr_journal_remove(struct qm_sr_journal *j)
{
	if (j->path[0])
		unlink(j->path);
	j->path[0] = 0;
	json_object_put(j->src);
	json_object_put(j->dst);
	j->src = j->dst = NULL;
}
