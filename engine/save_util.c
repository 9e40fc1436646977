/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Small blocking helpers for save, restore and update: QEMU's identity,
 * waiting for a migration to end, capabilities and parameters changed and
 * put back, heartbeats and stamps of the test guests.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "qmig_commands.h"
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

int qm_sr_machine_type(struct qmig_qmp_conn *c, char *buf, size_t len)
{
	struct json_object *a = json_object_new_object(), *ret = NULL;
	struct qm_rd rd;
	const char *t;
	size_t n;
	int r;

	if (!a)
		return -ENOMEM;
	json_object_object_add(a, "path", json_object_new_string("/machine"));
	json_object_object_add(a, "property", json_object_new_string("type"));
	r = qmig_qmp_conn_call(c, "qom-get", a, &ret, -1);
	json_object_put(a);
	if (r < 0)
		return r;
	qm_rd_init(&rd, "qom-get");
	t = json_object_is_type(ret, json_type_string) ? json_object_get_string(ret) : NULL;
	n = t ? strlen(t) : 0;
	/* The QOM type is "pc-i440fx-10.0-machine"; -machine takes the name. */
	if (n > 8 && !strcmp(t + n - 8, "-machine"))
		n -= 8;
	if (!n || n >= len) {
		json_object_put(ret);
		return -EPROTO;
	}
	memcpy(buf, t, n);
	buf[n] = 0;
	json_object_put(ret);
	return 0;
}

int qm_sr_qemu_version(struct qmig_qmp_conn *c, char *buf, size_t len, unsigned *num)
{
	struct json_object *ret = NULL, *q;
	struct qm_rd rd;
	int64_t ma, mi, mc;
	int r;

	r = qmig_qmp_conn_call(c, "query-version", NULL, &ret, -1);
	if (r < 0)
		return r;
	qm_rd_init(&rd, "query-version");
	q = qm_rd_obj(&rd, qm_rd_as_obj(&rd, ret), "qemu");
	ma = qm_rd_i64(&rd, q, "major");
	mi = qm_rd_i64(&rd, q, "minor");
	mc = qm_rd_i64(&rd, q, "micro");
	json_object_put(ret);
	if (rd.err || ma < 0 || ma > 999 || mi < 0 || mi > 99 || mc < 0 || mc > 99)
		return -EPROTO;
	snprintf(buf, len, "%lld.%lld.%lld", (long long)ma, (long long)mi, (long long)mc);
	*num = (unsigned)(ma * 10000 + mi * 100 + mc);
	return 0;
}

int qm_sr_wait_migration(struct qmig_qmp_conn *c, int timeout_ms, struct qmig_migrate_info *mi,
			 char *msg, size_t msg_len)
{
	int64_t end = qm_sr_now_ns() + (int64_t)timeout_ms * 1000000;
	int delay_us = 1000;

	for (;;) {
		int r = qmig_cmd_query_migrate(c, mi);

		if (r < 0) {
			snprintf(msg, msg_len, "query-migrate: %s", qmig_qmp_conn_error(c));
			return r;
		}
		if (!strcmp(mi->status, "completed"))
			return 0;
		if (!strcmp(mi->status, "failed") || !strcmp(mi->status, "cancelled")) {
			snprintf(msg, msg_len, "QEMU says the migration %s%s%s", mi->status,
				 mi->error_desc[0] ? ": " : "", mi->error_desc);
			return -EIO;
		}
		if (qm_sr_now_ns() > end) {
			snprintf(msg, msg_len, "the migration did not finish within %d s (status %s)",
				 timeout_ms / 1000, mi->status);
			return -ETIMEDOUT;
		}
		/* Short saves finish in milliseconds; long ones need no tight loop. */
		usleep((useconds_t)delay_us);
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

int qm_sr_beats(struct qmig_hb *hb, unsigned n, int timeout_ms, char *msg, size_t len)
{
	struct qmig_hb_stats st;
	int r = qmig_hb_wait(hb, n, timeout_ms);

	qmig_hb_get(hb, &st);
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
	r = qmig_tiny_verify(c, dir, &rep);
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
