/* The bottom of the engine: what every part of a migration uses to speak
 * (events, log lines, the first failure), the clocks, the epoll set and
 * the phase names. It calls nothing else in engine/: a file anywhere in
 * the engine may call it, and it never calls back up. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <time.h>

#include "core.h"
#include "qm_abi.h"
#include "qm_wait.h"

static const char *const phase_names[] = {
	[QMIG_PHASE_INIT] = "init",           [QMIG_PHASE_PREPARE] = "prepare",
	[QMIG_PHASE_NEGOTIATE] = "negotiate", [QMIG_PHASE_START] = "start",
	[QMIG_PHASE_PRECOPY] = "precopy",     [QMIG_PHASE_POSTCOPY] = "postcopy",
	[QMIG_PHASE_SWITCHOVER] = "switchover",
	[QMIG_PHASE_CONFIRM] = "confirm",     [QMIG_PHASE_FINISH] = "finish",
	[QMIG_PHASE_DONE] = "done",           [QMIG_PHASE_ROLLBACK] = "rollback",
	[QMIG_PHASE_FAILED] = "failed",
};

const char *qmig_phase_name(enum qmig_phase p)
{
	if ((unsigned)p < sizeof(phase_names) / sizeof(phase_names[0]))
		return phase_names[p];
	return "unknown";
}

int64_t qm_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* QEMU stamps events with the wall clock; the engine times with the
 * monotonic one. Same host, so the offset between them converts. */
int64_t qm_realtime_to_mono_ns(int64_t realtime_us)
{
	struct timespec rt, mo;

	clock_gettime(CLOCK_REALTIME, &rt);
	clock_gettime(CLOCK_MONOTONIC, &mo);
	return realtime_us * 1000 - ((int64_t)rt.tv_sec * 1000000000 + rt.tv_nsec) +
	       ((int64_t)mo.tv_sec * 1000000000 + mo.tv_nsec);
}

void qm_emit(struct qmig_migration *m, const char *type, struct json_object *rec,
	     const struct qmig_sample *s)
{
	struct qmig_migration_event ev = {type, m->phase, s, rec};

	json_object_object_add(rec, "type", json_object_new_string(type));
	json_object_object_add(rec, "t_ms",
			       json_object_new_int64((qm_now_ns() - m->t_start_ns) / 1000000));
	if (m->trace) {
		fputs(json_object_to_json_string_ext(rec, JSON_C_TO_STRING_PLAIN |
							       JSON_C_TO_STRING_NOSLASHESCAPE),
		      m->trace);
		fputc('\n', m->trace);
		if (!strcmp(type, "result"))
			fflush(m->trace);
	}
	if (m->o.on_event.fn && !m->abandoned) /* never into a caller freeing us */
		m->o.on_event.fn(&ev, m->o.on_event.user_data);
	json_object_put(rec);
}

void qm_log(struct qmig_migration *m, enum qmig_log_level lvl, const char *fmt, ...)
{
	char buf[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (m->o.log.fn && !m->abandoned)
		m->o.log.fn(lvl, buf, m->o.log.user_data);
}

/* Record the first failure; later ones only go to the log. */
int qm_fail(struct qmig_migration *m, int err, const char *fmt, ...)
{
	char buf[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (!m->error) {
		m->error = err < 0 ? err : -EIO;
		m->failed_phase = m->phase;
		snprintf(m->err, sizeof(m->err), "%s", buf);
	}
	qm_log(m, QMIG_LOG_ERROR, "%s", buf);
	return m->error;
}

int qm_qmp_fail(struct qmig_migration *m, struct side *s, int err, const char *what)
{
	const char *cls = s->qmp ? qmig_qmp_conn_error_class(s->qmp) : NULL;
	const char *msg = s->qmp ? qmig_qmp_conn_error(s->qmp) : NULL;

	if (err == -EREMOTEIO && cls)
		return qm_fail(m, err, "%s: %s refused: %s: %s", s->name, what, cls,
			       msg ? msg : "");
	return qm_fail(m, err, "%s: %s: %s", s->name, what,
		       msg && *msg ? msg : strerror(-err));
}

void qm_watch_fd(struct qmig_migration *m, int fd)
{
	struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd};

	if (fd >= 0)
		epoll_ctl(m->epfd, EPOLL_CTL_ADD, fd, &ev);
}

void qm_unwatch_fd(struct qmig_migration *m, int fd)
{
	if (fd >= 0)
		epoll_ctl(m->epfd, EPOLL_CTL_DEL, fd, NULL);
}

/* Make the next process() call run at once: the timerfd fires now, and
 * process() re-arms it for the real due time. */
void qm_kick(struct qmig_migration *m)
{
	if (qm_fiber_waiting(m->fiber)) {
		struct itimerspec now = {.it_value.tv_nsec = 1};

		qm_fiber_kick(m->fiber);
		m->kick = 1;
		timerfd_settime(m->tfd, TFD_TIMER_ABSTIME, &now, NULL);
		m->tfd_due = 1;
	}
}

struct json_object *qmig_result_to_json(const struct qmig_result *caller)
{
	struct json_object *o = json_object_new_object();
	struct qmig_result full, *r = &full;

	qm_out_read(&full, sizeof(full), caller);

#define ADD_I(k, v) json_object_object_add(o, k, json_object_new_int64((int64_t)(v)))
	json_object_object_add(o, "status", json_object_new_string(r->status));
	ADD_I("total_ms", r->total_ms);
	ADD_I("setup_ms", r->setup_ms);
	ADD_I("downtime_ms", r->downtime_ms);
	ADD_I("engine_total_ms", r->engine_total_ms);
	ADD_I("engine_setup_ms", r->engine_setup_ms);
	ADD_I("switchover_ms", r->switchover_ms);
	json_object_object_add(o, "guest_downtime_ms", r->guest_downtime_ms < 0 ? NULL
					: json_object_new_int64(r->guest_downtime_ms));
	if (r->guest_downtime_ms < 0)
		json_object_object_add(o, "guest_downtime_reason",
				       json_object_new_string(r->guest_downtime_reason));
	ADD_I("verify_ms", r->verify_ms);
	ADD_I("transferred_bytes", r->transferred_bytes);
	ADD_I("passes", r->passes);
	json_object_object_add(o, "throughput_mbps", json_object_new_double(r->throughput_mbps));
	json_object_object_add(o, "verified", r->verified < 0 ? NULL
					      : json_object_new_boolean(r->verified));
	if (r->verify_method[0])
		json_object_object_add(o, "verify_method", json_object_new_string(r->verify_method));
	ADD_I("port", r->port);
	json_object_object_add(o, "engine_cpu_ms", json_object_new_double(r->engine_cpu_ms));
	ADD_I("premeasured_dirty_rate", r->premeasured_dirty_rate);
	json_object_object_add(o, "guest_slowdown", r->guest_slowdown < 0 ? NULL
					: json_object_new_double(r->guest_slowdown));
	json_object_object_add(o, "postcopy", json_object_new_boolean(r->postcopy_started));
	ADD_I("postcopy_requests", r->postcopy_requests);
	ADD_I("recoveries", r->recoveries);
	ADD_I("recovery_attempts", r->recovery_attempts);
	ADD_I("throttle_pct_max", r->throttle_pct_max);
	json_object_object_add(o, "paused_to_finish", json_object_new_boolean(r->paused_to_finish));
	json_object_object_add(o, "rolled_back", json_object_new_boolean(r->rolled_back));
	json_object_object_add(o, "owner", json_object_new_string(r->owner));
	json_object_object_add(o, "job", json_object_new_string(r->job_id));
	if (r->error) {
		ADD_I("error", r->error);
		json_object_object_add(o, "failed_phase",
				       json_object_new_string(qmig_phase_name(r->failed_phase)));
	}
	if (r->memory_verified >= 0) {
		struct json_object *first = json_object_new_array();

		for (int i = 0; i < r->n_first_differ; i++) {
			char gpa[24];

			snprintf(gpa, sizeof(gpa), "0x%llx", (unsigned long long)r->first_differ_gpa[i]);
			json_object_array_add(first, json_object_new_string(gpa));
		}
		json_object_object_add(o, "memory_verified",
				       json_object_new_boolean(r->memory_verified));
		ADD_I("pages_compared", r->pages_compared);
		ADD_I("pages_differ", r->pages_differ);
		json_object_object_add(o, "first_differ_gpa", first);
		ADD_I("memory_verify_ms", r->memory_verify_ms);
	}
	if (r->disks_migrated) {
		ADD_I("disks_migrated", r->disks_migrated);
		json_object_object_add(o, "disks_verified", r->disks_verified < 0 ? NULL
					: json_object_new_boolean(r->disks_verified));
		ADD_I("disk_bytes", r->disk_bytes);
		ADD_I("disk_mirror_ms", r->disk_mirror_ms);
		ADD_I("disk_cancel_ms", r->disk_cancel_ms);
		ADD_I("disk_verify_ms", r->disk_verify_ms);
	}
	json_object_object_add(o, "message", json_object_new_string(r->message));
#undef ADD_I
	return o;
}
