/* The migration phases as an explicit state machine. Each phase is one
 * step function that either finishes (STEP_NEXT), waits for an fd or a
 * timer (STEP_WAIT), or fails (negative errno, via qm_fail). Any failure
 * leads to ROLLBACK, which undoes what the earlier phases did. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "migrate.h"
#include "converge/converge.h"
#include "guest/guest.h"
#include "journal/journal.h"
#include "link/link.h"
#include "storage/storage.h"
#include "verify/verify.h"
#include "qmp_reply.h"
#include "doctor/doctor.h"

#define MS 1000000LL
#define BOOT_TIMEOUT_NS (60000 * MS)
#define RESUME_TIMEOUT_NS (15000 * MS)
#define BEATS_TIMEOUT_NS (15000 * MS)
#define CANCEL_TIMEOUT_NS (15000 * MS)
#define CONFIRM_BEATS 3

/* Heartbeats come every millisecond: reading each as it comes would cost
 * the engine ~9% of a core. Until the switchover they are drained at each
 * step (the source's last beat is then bounded by its STOP event); from
 * the switchover on, the destination's are read as they arrive, so its
 * first beat is timed to the millisecond. */
static void watch_heartbeats(struct qmig_migration *m, enum qmig_phase p)
{
	if (m->side[DST].hb && !m->hb_watched &&
	    (p == QMIG_PHASE_SWITCHOVER || p == QMIG_PHASE_POSTCOPY || p == QMIG_PHASE_CONFIRM)) {
		qm_watch_fd(m, qm_probe_fd(m->side[DST].hb));
		m->hb_watched = 1;
	}
}

/* How much slower the guest ran while precopy went on, against its rate
 * before: the units of non-writing work it counts (pace=cpu), between the
 * beats that carried them; otherwise its heartbeat rate from the migrate
 * command to the switchover (beats keep wall-clock time, so this sees only
 * a guest starved of whole milliseconds). */
static void measure_slowdown(struct qmig_migration *m)
{
	struct qmig_guest_stats hs;
	double secs, rate;

	if (m->slow_done || !m->side[SRC].hb || m->slow_rate0 <= 0 || !m->t_migrate_ns)
		return;
	m->slow_done = 1;
	qm_probe_process(m->side[SRC].hb);
	qm_probe_get(m->side[SRC].hb, &hs);
	if (m->slow_work) {
		secs = (hs.last_ns - m->slow_ns0) / 1e9;
		if (secs < 0.2)
			return;
		rate = (double)(hs.work - m->slow_beats0) / secs;
	} else {
		secs = ((m->side[SRC].stop_mono_ns ? m->side[SRC].stop_mono_ns : qm_now_ns()) -
			m->t_migrate_ns) / 1e9;
		if (secs < 0.2)
			return; /* too short to say */
		rate = (hs.beats - m->slow_beats0) / secs;
	}
	m->res.guest_slowdown = rate >= m->slow_rate0 ? 0 : 1 - rate / m->slow_rate0;
}

static void set_phase(struct qmig_migration *m, enum qmig_phase p)
{
	struct json_object *rec = json_object_new_object();

	if (p == QMIG_PHASE_SWITCHOVER || p == QMIG_PHASE_POSTCOPY || p == QMIG_PHASE_CONFIRM)
		measure_slowdown(m);
	watch_heartbeats(m, p);

	json_object_object_add(rec, "from", json_object_new_string(qmig_phase_name(m->phase)));
	json_object_object_add(rec, "phase", json_object_new_string(qmig_phase_name(p)));
	m->phase = p;
	m->sub = QM_SUB_BEGIN;
	m->t_phase_ns = qm_now_ns();
	m->wait_until_ns = 0;
	/* The journal follows the phases that last (qmigrate status shows them)
	 * or decide a recovery; the short ones in between are recorded by the
	 * next write anyway (plan steps, owner), each write costing ms on a
	 * loaded disk. */
	if (p == QMIG_PHASE_PRECOPY || p == QMIG_PHASE_POSTCOPY || p == QMIG_PHASE_ROLLBACK)
		qm_journal(m, NULL, "phase", NULL);
	qm_emit(m, "phase", rec, NULL);
}

/* Wait a little (for an fd or this many ms, whichever comes first). */
static int wait_ms(struct qmig_migration *m, int ms)
{
	m->wait_until_ns = qm_now_ns() + ms * MS;
	return STEP_WAIT;
}

void qm_side_event(const char *event, struct json_object *data, int64_t sec, int64_t usec,
		   void *user_data)
{
	struct side *s = user_data;
	struct json_object *rec = json_object_new_object();
	struct qm_rd rd;
	int64_t us;

	/* The QMP core bounds QEMU's timestamps; still, no overflow here
	 * whatever a caller passes (QEMU sends -1/-1 when it has no clock). */
	if (__builtin_mul_overflow(sec, 1000000, &us) || __builtin_add_overflow(us, usec, &us) ||
	    us < 0)
		us = 0;
	qm_rd_init(&rd, event);

	/* Every QEMU event goes into the record stream with QEMU's own
	 * timestamp: traces and benchmarks time the migration by them. */
	json_object_object_add(rec, "side", json_object_new_string(s->name));
	json_object_object_add(rec, "event", json_object_new_string(event));
	json_object_object_add(rec, "qemu_us", json_object_new_int64(us));
	if (data)
		json_object_object_add(rec, "data", json_object_get(data));
	qm_emit(s->m, "event", rec, NULL);

	if (!strcmp(event, "STOP")) {
		s->stop_us = us;
		s->stop_mono_ns = qm_realtime_to_mono_ns(us);
		watch_heartbeats(s->m, QMIG_PHASE_SWITCHOVER);
	} else if (!strcmp(event, "RESUME")) {
		s->resume_us = us;
		if (s == &s->m->side[DST])
			qm_set_owner(s->m, OWNER_DESTINATION, "the destination guest resumed");
	} else if (!strcmp(event, "MIGRATION")) {
		/* A status of the wrong shape is not a status: query-migrate,
		 * polled anyway, has the last word. */
		const char *st = data ? qm_rd_opt_str(&rd, data, "status", NULL) : NULL;

		if (st)
			snprintf(s->mig_status, sizeof(s->mig_status), "%s", st);
	} else if (!strcmp(event, "MIGRATION_PASS")) {
		uint64_t pass = data ? qm_rd_opt_u64(&rd, data, "pass", s->passes) : s->passes;

		if (!rd.err)
			s->passes = pass;
	}
	if (rd.err)
		qm_log(s->m, QMIG_LOG_WARN, "%s: %s (ignored)", s->name, rd.msg);
}

/* The connection's log goes through the handle (never into a caller that
 * abandoned it); the reason a connection could not open is kept for the
 * one error line that names the side. */
static void side_log(enum qmig_log_level lvl, const char *msg, void *user_data)
{
	struct side *s = user_data;

	if (s->opening && lvl == QMIG_LOG_ERROR)
		snprintf(s->open_err, sizeof(s->open_err), "%s", msg);
	else
		qm_log(s->m, lvl, "%s", msg);
}

static int open_qmp(struct qmig_migration *m, struct side *s, const char *path)
{
	struct qmig_qmp_conn_opts co = QMIG_QMP_CONN_OPTS_INIT;
	struct qmig_qmp_event_cb cb = {qm_side_event, s, NULL};
	int r;

	co.timeout_ms = m->o.qmp_timeout_ms;
	co.log = (struct qmig_log_cb){side_log, s, NULL};
	s->opening = 1;
	s->open_err[0] = 0;
	r = qmig_qmp_conn_open(&s->qmp, path, &co);
	s->opening = 0;
	if (r < 0 && s->open_err[0])
		return qm_fail(m, r, "%s: %s", s->name, s->open_err);
	if (r < 0)
		return qm_fail(m, r, "%s: cannot open QMP socket %s: %s", s->name, path,
			       strerror(-r));
	qmig_qmp_conn_set_event_cb(s->qmp, &cb);
	qm_watch_fd(m, qmig_qmp_conn_fd(s->qmp));
	return 0;
}

static int open_serial(struct qmig_migration *m, struct side *s, const char *path)
{
	int r;

	if (!path)
		return 0;
	r = qm_probe_open(&s->hb, m->guest_ops, path);
	if (r == -ENOTSUP)
		return qm_fail(m, r, "%s: the guest's serial socket %s was given, but no guest "
			       "plug-in reads it", s->name, path);
	if (r < 0)
		return qm_fail(m, r, "%s: cannot read the guest's serial socket %s: %s", s->name,
			       path, strerror(-r));
	return 0;
}

static int launch_side(struct qmig_migration *m, struct side *s, int incoming,
		       const char *netns)
{
	struct qmig_vm_spec spec = m->o.guest;
	struct qm_xver xv;
	char msg[512] = "";
	int r;

	spec.incoming = incoming;
	spec.netns = netns;
	/* Only the postcopy destination uses userfaultfd; the source gets no
	 * capability at all. */
	spec.userfaultfd = m->o.postcopy && incoming;
	if (incoming)
		qm_xver_dst_spec(m, &spec, &xv); /* versions.c: binary, machine type, RAM */
	/* Both sides run on the accelerator chosen (and smoke-tested) for the source. */
	if (incoming && m->side[SRC].vm)
		spec.accel = qmig_vm_accel(m->side[SRC].vm);
	spec.detach = 0;
	spec.runtime_dir = NULL;
	spec.log = (struct qmig_log_cb){m->o.log.fn, m->o.log.user_data, NULL};
	r = qmig_vm_launch(&s->vm, &spec, msg, sizeof(msg));
	if (r < 0)
		return qm_fail(m, r, "%s: QEMU did not start: %s", s->name,
			       *msg ? msg : strerror(-r));
	{
		unsigned int uid, gid;

		qmig_vm_ids(s->vm, &uid, &gid);
		qm_log(m, QMIG_LOG_INFO, "%s: QEMU pid %d (uid %u), QMP %s", s->name,
		       qmig_vm_pid(s->vm), uid, qmig_vm_qmp_path(s->vm));
	}
	if (spec.guest != QMIG_GUEST_NONE)
		qm_probe_open(&s->hb, m->guest_ops, qmig_vm_serial_path(s->vm));
	return open_qmp(m, s, qmig_vm_qmp_path(s->vm));
}

/* Objects a crashed job left (qmigrate-*): the next run neither trips
 * over them nor takes a dirty QEMU's settings for the originals. */
static int check_leftovers(struct qmig_migration *m, struct side *s)
{
	struct json_object *ret = NULL;
	int r;

	r = qmig_cmd_qom_list(s->qmp, "/objects", &ret);
	for (size_t i = 0; r == 0 && json_object_is_type(ret, json_type_array) &&
			   i < json_object_array_length(ret); i++) {
		const char *name = qm_jget_str(json_object_array_get_idx(ret, i), "name");

		if (name && !strncmp(name, "qmigrate-", 9)) {
			qm_fail(m, -EBUSY, "%s: object '%s' was left by an earlier qmigrate job: run "
					   "'qmigrate recover' (or object-del it) first", s->name, name);
			break;
		}
	}
	json_object_put(ret);
	return m->error;
}

static int check_states(struct qmig_migration *m)
{
	struct qmig_vm_status st;
	struct qmig_migrate_info mi;
	int r;

	r = qmig_cmd_query_status(m->side[SRC].qmp, &st);
	if (r < 0)
		return qm_qmp_fail(m, &m->side[SRC], r, "query-status");
	if (!strcmp(st.status, "inmigrate"))
		return qm_fail(m, -EINVAL, "source: QEMU is waiting for an incoming migration "
					   "(-incoming); is --src-qmp the right socket?");
	m->side[SRC].was_running = st.running;
	m->side[SRC].state_known = 1;
	m->offline = !st.running;
	if (m->offline)
		qm_log(m, QMIG_LOG_INFO, "source: guest is %s: offline migration, it stays paused",
		       st.status);
	r = qmig_cmd_query_migrate(m->side[SRC].qmp, &mi);
	if (r < 0)
		return qm_qmp_fail(m, &m->side[SRC], r, "query-migrate");
	if (!strcmp(mi.status, "active") || !strcmp(mi.status, "setup") ||
	    !strncmp(mi.status, "postcopy", 8))
		return qm_fail(m, -EBUSY, "source: a migration is already %s", mi.status);
	r = qmig_cmd_query_status(m->side[DST].qmp, &st);
	if (r < 0)
		return qm_qmp_fail(m, &m->side[DST], r, "query-status");
	if (strcmp(st.status, "inmigrate"))
		return qm_fail(m, -EINVAL,
			       "destination: QEMU is '%s', not waiting for a migration: start it "
			       "with -incoming defer",
			       st.status);
	if (check_leftovers(m, &m->side[SRC]) < 0 || check_leftovers(m, &m->side[DST]) < 0)
		return m->error;
	return 0;
}

/* The configuration, first in every trace, so a run can be reproduced. */
static void emit_config(struct qmig_migration *m)
{
	struct json_object *c = json_object_new_object();
	const struct qmig_migrate_opts *o = &m->o;

#define ADD_S(k, v) json_object_object_add(c, k, (v) ? json_object_new_string(v) : NULL)
#define ADD_I(k, v) json_object_object_add(c, k, json_object_new_int64((int64_t)(v)))
	json_object_object_add(c, "version", json_object_new_string(QMIG_VERSION));
	json_object_object_add(c, "mode", json_object_new_string(o->src_qmp ? "attach" : "launch"));
	ADD_S("src_qmp", o->src_qmp);
	ADD_S("dst_qmp", o->dst_qmp);
	if (!o->src_qmp) {
		ADD_S("guest", o->guest.guest == QMIG_GUEST_TINY    ? "tiny"
			       : o->guest.guest == QMIG_GUEST_LINUX ? "linux" : "none");
		ADD_I("mem_bytes", o->guest.mem_bytes);
		ADD_I("wss_bytes", o->guest.wss_bytes);
		ADD_I("dirty_rate", o->guest.dirty_rate);
		ADD_S("accel", o->guest.accel);
		ADD_S("guest_args", o->guest.guest_append);
	}
	ADD_S("dst_addr", o->dst_addr);
	ADD_I("max_bandwidth", o->max_bandwidth);
	ADD_I("downtime_limit_ms", o->downtime_limit_ms);
	ADD_I("multifd_channels", o->multifd_channels);
	ADD_I("postcopy", o->postcopy);
	ADD_I("postcopy_after_passes", o->postcopy_after_passes);
	ADD_I("postcopy_after_ms", o->postcopy_after_ms);
	ADD_I("pause_after_ms", o->pause_after_ms);
	ADD_I("sample_ms", o->sample_ms);
	ADD_I("verify_memory", o->verify_memory);
	ADD_S("tls_dir", o->tls_dir);
	ADD_S("transport", o->transport == QMIG_TRANSPORT_RELAY ? "relay" : "direct");
	json_object_object_add(c, "caps", json_object_new_array());
	for (const char *const *p = o->caps; p && *p; p++)
		json_object_array_add(json_object_object_get(c, "caps"), json_object_new_string(*p));
	json_object_object_add(c, "params", json_object_new_array());
	for (const char *const *p = o->params; p && *p; p++)
		json_object_array_add(json_object_object_get(c, "params"), json_object_new_string(*p));
#undef ADD_S
#undef ADD_I
	qm_emit(m, "config", c, NULL);
}

static int step_prepare(struct qmig_migration *m)
{
	struct qmig_guest_stats hs;
	int r;

	if (m->sub == QM_SUB_BEGIN) {
		m->self_check = -1;
		if (qm_journal_check_orphans(m) < 0)
			return m->error;
		if (m->o.src_qmp) {
			if (open_qmp(m, &m->side[SRC], m->o.src_qmp) < 0 ||
			    open_qmp(m, &m->side[DST], m->o.dst_qmp) < 0 ||
			    open_serial(m, &m->side[SRC], m->o.src_serial) < 0 ||
			    open_serial(m, &m->side[DST], m->o.dst_serial) < 0)
				return m->error;
		} else {
			if (launch_side(m, &m->side[SRC], 0, m->o.src_netns) < 0 ||
			    launch_side(m, &m->side[DST], 1, m->o.dst_netns) < 0)
				return m->error;
		}
		r = check_states(m);
		if (r < 0)
			return r;
		qm_journal(m, NULL, "attached", NULL);
		m->sub = QM_SUB_PREPARE_ATTACHED;
	}
	/* A guest we launched must be up (heartbeating) before it moves. */
	if (m->side[SRC].hb && !m->o.dry_run) {
		qm_probe_get(m->side[SRC].hb, &hs);
		/* A guest we launched to write memory first writes its whole
		 * working set once, so the migration moves real pages. */
		if (hs.beats < CONFIRM_BEATS ||
		    (m->side[SRC].vm && m->o.guest.dirty_rate && hs.generation < 2)) {
			if (qm_now_ns() - m->t_phase_ns > BOOT_TIMEOUT_NS)
				return qm_fail(m, -ETIMEDOUT,
					       "source: the guest did not boot and write its "
					       "working set within 60 s (see its serial log)");
			return wait_ms(m, m->side[SRC].vm ? 20 : 2);
		}
	}
	return STEP_NEXT;
}

/* The doctor's checks before anything changes: refusals stop the
 * migration unless forced; the QEMU 7.2 TCG dirty-bitmap bug is a refusal
 * too unless postcopy or --verify=memory (which catches it) is on. */
static int run_doctor(struct qmig_migration *m)
{
	struct qmig_doctor_opts d = QMIG_DOCTOR_OPTS_INIT;
	struct qmig_finding *f = NULL;
	const char *refused = NULL;
	size_t n = 0;

	/* The plan reserves the port itself, with the same allocator. */
	d.skip_ports = 1;
	d.same_host = !m->o.src_qmp || m->o.dst_netns || !strncmp(m->o.dst_addr, "127.", 4) ||
		      !strcmp(m->o.dst_addr, "localhost") || !strcmp(m->o.dst_addr, "::1");
	if (qmig_doctor_run(m->side[SRC].qmp, m->side[DST].qmp, &d, &f, &n) < 0)
		return 0;
	for (size_t i = 0; i < n; i++) {
		struct json_object *rec = json_object_new_object();
		int refuse = f[i].severity == QMIG_FINDING_REFUSE ||
			     (!strcmp(f[i].id, "tcg-dirty-bitmap-256k") && !m->o.postcopy &&
			      !m->o.verify_memory);

		json_object_object_add(rec, "severity", json_object_new_string(
			refuse ? "REFUSE" : qmig_finding_severity_name(f[i].severity)));
		json_object_object_add(rec, "id", json_object_new_string(f[i].id));
		json_object_object_add(rec, "problem", json_object_new_string(f[i].problem));
		json_object_object_add(rec, "fix", json_object_new_string(f[i].fix));
		qm_emit(m, "finding", rec, NULL);
		qm_log(m, refuse ? QMIG_LOG_ERROR : QMIG_LOG_WARN, "%s: %s (fix: %s)", f[i].id,
		       f[i].problem, f[i].fix);
		if (refuse && !refused)
			refused = f[i].problem;
	}
	if (refused && !m->o.force)
		qm_fail(m, -EPERM, "%.380s (qmigrate doctor explains; --force overrides)", refused);
	qmig_findings_free(f);
	return m->error;
}

static void measure_begin(struct qmig_migration *m);

static int step_negotiate(struct qmig_migration *m)
{
	int64_t t0 = qm_now_ns(), t1, t2;
	struct json_object *rec;

	/* The capability and parameter lists come from their own queries,
	 * which name every one this QEMU has; the full schema (35 ms a side
	 * under TCG) is probed only when a request needs it (qm_side_schema). */
	for (int i = 0; i < 2; i++) {
		struct side *s = &m->side[i];
		int r = qmig_cmd_query_migrate_capabilities(s->qmp, &s->orig_caps);

		if (r < 0)
			return qm_qmp_fail(m, s, r, "query-migrate-capabilities");
		r = qmig_cmd_query_migrate_parameters(s->qmp, &s->orig_params);
		if (r < 0)
			return qm_qmp_fail(m, s, r, "query-migrate-parameters");
	}
	measure_begin(m);
	t1 = qm_now_ns();
	if (run_doctor(m) < 0)
		return m->error;
	t2 = qm_now_ns();
	if (qm_plan_build(m) < 0)
		return m->error;
	/* The originals and the whole plan, before the first change. */
	qm_journal(m, NULL, "planned", NULL);
	/* Where negotiate's time went (bench/peers.sh itemises it). */
	rec = json_object_new_object();
	json_object_object_add(rec, "caps_ms", json_object_new_double((t1 - t0) / 1e6));
	json_object_object_add(rec, "doctor_ms", json_object_new_double((t2 - t1) / 1e6));
	json_object_object_add(rec, "plan_ms", json_object_new_double((qm_now_ns() - t2) / 1e6));
	qm_emit(m, "timing", rec, NULL);
	qm_plan_emit(m);
	if (m->o.dry_run) {
		snprintf(m->res.status, sizeof(m->res.status), "dry-run");
		snprintf(m->res.message, sizeof(m->res.message),
			 "dry run: %d QMP commands planned, nothing changed", m->plan.n);
		set_phase(m, QMIG_PHASE_FINISH);
		return wait_ms(m, 0);
	}
	return STEP_NEXT;
}

/* The guest's dirty rate by page sampling (calc-dirty-rate: it hashes
 * sampled pages, so it needs no dirty log and runs beside the migration
 * under TCG too), started as soon as the capabilities are read: its second
 * runs beside the doctor and the plan, so the policy has it a few samples
 * into the first pass at the latest, and it measures the guest undisturbed
 * (a TCG guest starved at the migration's start wrote 1-2 MiB/s in that
 * second under load, then rewrote its whole working set in every pass).
 * Not measured under a passive policy (unless asked). */
static int calc_dirty_rate(struct qmig_migration *m, int secs)
{
	uint64_t mem = 0;
	int r;

	/* Enough pages sampled for the policy's bounds (converge/policy.c). */
	qmig_cmd_query_memory_size(m->side[SRC].qmp, &mem);
	r = qmig_cmd_calc_dirty_rate_pages(m->side[SRC].qmp, secs, "page-sampling",
					   (int64_t)qm_dirty_sample_pages(mem));
	if (r == -EREMOTEIO) /* refused (an older QEMU): its default sampling */
		r = qmig_cmd_calc_dirty_rate(m->side[SRC].qmp, secs, "page-sampling");
	return r;
}

static void measure_begin(struct qmig_migration *m)
{
	struct side *src = &m->side[SRC];
	int secs = m->o.measure_dirty_s;

	if (secs == 0)
		secs = m->o.policy_plugin || (m->o.policy && strcmp(m->o.policy, "passive")) ? 1 : -1;
	if (secs < 0 || m->offline || m->o.dry_run || !qmig_schema_has_command(qm_side_schema(m, src),
								"calc-dirty-rate"))
		return;
	if (calc_dirty_rate(m, secs) < 0) {
		qm_log(m, QMIG_LOG_INFO, "source: calc-dirty-rate: %s (no dirty rate before the "
			  "first pass ends)", qmig_qmp_conn_error(src->qmp));
		return;
	}
	m->measure_secs = secs;
	m->measure_due_ns = qm_now_ns() + (int64_t)secs * 1000 * MS;
}

/* Called with each precopy sample: the measurement, once it is ready. */
static void measure_poll(struct qmig_migration *m)
{
	struct qmig_dirty_rate dr;
	struct json_object *rec;
	int r;

	if (!m->measure_due_ns || qm_now_ns() < m->measure_due_ns)
		return;
	r = qmig_cmd_query_dirty_rate(m->side[SRC].qmp, &dr);
	if (r == 0 && strcmp(dr.status, "measured")) {
		if (qm_now_ns() - m->measure_due_ns < 5000 * MS)
			return; /* the next sample asks again */
		qm_log(m, QMIG_LOG_WARN, "source: calc-dirty-rate still %s 5 s late", dr.status);
	}
	m->measure_due_ns = 0;
	if (r < 0 || strcmp(dr.status, "measured") || dr.dirty_rate_mib < 0)
		return;
	m->res.premeasured_dirty_rate = (uint64_t)dr.dirty_rate_mib << 20;
	rec = json_object_new_object();
	json_object_object_add(rec, "dirty_rate",
			       json_object_new_int64((int64_t)m->res.premeasured_dirty_rate));
	json_object_object_add(rec, "mode", json_object_new_string("page-sampling"));
	json_object_object_add(rec, "calc_time_s", json_object_new_int(m->measure_secs));
	qm_emit(m, "dirty-rate", rec, NULL);
	/* Until QEMU measures its own (the end of the first pass), again: one
	 * second can catch a guest starved by a loaded host. */
	if (m->last.pass <= 1 && m->phase == QMIG_PHASE_PRECOPY)
		measure_begin(m);
}

static int step_start(struct qmig_migration *m)
{
	m->res.engine_setup_ms = (uint64_t)((qm_now_ns() - m->t_start_ns) / MS);
	if (qm_plan_exec(m, 1) < 0)
		return m->error;
	m->t_migrate_ns = qm_now_ns();
	m->next_sample_ns = m->t_migrate_ns;
	if (m->side[SRC].hb) {
		struct qmig_guest_stats hs;

		qm_probe_process(m->side[SRC].hb);
		qm_probe_get(m->side[SRC].hb, &hs);
		m->slow_work = hs.has_work;
		m->slow_beats0 = hs.has_work ? hs.work : hs.beats;
		m->slow_ns0 = hs.last_ns;
		if (hs.beats > 10 && hs.last_ns > hs.first_ns)
			m->slow_rate0 = (hs.has_work ? (double)(hs.work - hs.work_first) : hs.beats - 1.0) /
					((hs.last_ns - hs.first_ns) / 1e9);
	}
	return STEP_NEXT;
}

/* The source's stream completed: QEMU's own figures for the result. */
static void take_completed(struct qmig_migration *m, const struct qmig_migrate_info *mi)
{
	m->completed = 1;
	if (!m->t_done_ns)
		m->t_done_ns = qm_now_ns();
	m->res.postcopy_requests = mi->ram_postcopy_requests;
	m->res.total_ms = mi->total_time_ms;
	m->res.setup_ms = mi->setup_time_ms;
	m->res.downtime_ms = mi->downtime_ms;
	m->res.transferred_bytes = mi->ram_transferred;
	m->res.passes = mi->ram_dirty_sync_count;
}

/* Precopy and switchover share the monitor loop. */
static int step_monitor(struct qmig_migration *m)
{
	struct qmig_migrate_info mi;
	struct side *src = &m->side[SRC];
	int completed = !strcmp(src->mig_status, "completed");
	int r;

	/* storage.c: the source waits in pre-switchover for the disk mirrors
	 * to end; the MIGRATION event says so at once. */
	if (!strcmp(src->mig_status, "pre-switchover") && qm_storage_switchover(m) < 0)
		return m->error;
	if (!completed && qm_now_ns() < m->next_sample_ns)
		return STEP_WAIT;
	r = qmig_cmd_query_migrate(src->qmp, &mi);
	if (r < 0)
		return qm_qmp_fail(m, src, r, "query-migrate");
	m->next_sample_ns = qm_now_ns() + (int64_t)m->o.sample_ms * MS;
	measure_poll(m);
	qm_monitor_sample(m, &mi);
	if (!strncmp(mi.status, "postcopy", 8)) {
		m->res.postcopy_started = 1;
		qm_set_owner(m, OWNER_DESTINATION, "switched to postcopy");
		if (m->phase != QMIG_PHASE_POSTCOPY)
			set_phase(m, QMIG_PHASE_POSTCOPY);
		return qm_postcopy_step(m, &mi) < 0 ? m->error : STEP_WAIT;
	}
	if (!strcmp(mi.status, "completed")) {
		take_completed(m, &mi);
		m->next_sample_ns = 0;
		if (m->phase == QMIG_PHASE_PRECOPY)
			set_phase(m, QMIG_PHASE_SWITCHOVER);
		return STEP_NEXT;
	}
	if (!strcmp(mi.status, "failed") || !strcmp(mi.status, "cancelled"))
		return qm_fail(m, -ECONNABORTED, "source: migration %s%s%s", mi.status,
			       *mi.error_desc ? ": " : "", mi.error_desc);
	if (m->phase == QMIG_PHASE_PRECOPY &&
	    (qm_precopy_decide(m, &mi) < 0 || qm_policy_step(m) < 0 ||
	     qm_features_sample(m) < 0))
		return m->error;
	if (m->phase == QMIG_PHASE_PRECOPY && !m->res.paused_to_finish && !m->offline &&
	    (src->stop_us || !strcmp(mi.status, "device") ||
	     !strcmp(mi.status, "pre-switchover"))) {
		set_phase(m, QMIG_PHASE_SWITCHOVER);
		m->next_sample_ns = qm_now_ns() + MS;
	}
	return STEP_WAIT;
}

static int confirm_running(struct qmig_migration *m)
{
	struct side *dst = &m->side[DST];
	struct qmig_vm_status st;
	int r;

	r = qmig_cmd_query_status(dst->qmp, &st);
	if (r < 0)
		return qm_qmp_fail(m, dst, r, "query-status");
	if (st.running)
		qm_set_owner(m, OWNER_DESTINATION, "the destination guest runs");
	if (st.running || ((m->o.verify_memory || m->offline || qm_storage_holds_dst(m)) &&
			   strcmp(st.status, "inmigrate")))
		return STEP_NEXT;
	/* QEMU carries the source's run state over: a guest the engine paused
	 * to finish arrives paused, and it is the engine's to resume. */
	if (m->res.paused_to_finish && !strcmp(st.status, "paused")) {
		r = qm_cont(m, dst, "after pausing to finish");
		if (r < 0)
			return qm_qmp_fail(m, dst, r, "cont (after pausing to finish)");
		return wait_ms(m, 1);
	}
	if (qm_now_ns() - m->t_phase_ns > RESUME_TIMEOUT_NS)
		return qm_fail(m, -ETIMEDOUT, "destination: still '%s' 15 s after the migration "
					      "completed", st.status);
	/* Its RESUME event (events are on) wakes the loop at once: polling is
	 * only the backstop, and a query every few ms is work for a QEMU
	 * still loading the last of the stream. */
	return wait_ms(m, m->side[DST].resume_us ? 1 : 50);
}

/* A guest qmigrate knows to be one of its test guests: one it launched
 * with a test guest inside, or one whose serial socket it was given. Only
 * those are timed by heartbeats and stopped for a stamp check; any other
 * guest is left alone once it runs on the destination (a stop would be a
 * pause nobody counts, a pmemsave its memory in a file). */
static int test_guest(const struct qmig_migration *m)
{
	return m->side[DST].hb != NULL;
}

/* The stamps are the tiny guest's: our Linux guest checks its own pages
 * and says so on its serial line. */
static int stamp_guest(const struct qmig_migration *m)
{
	return test_guest(m) && !(m->side[DST].vm && m->o.guest.guest == QMIG_GUEST_LINUX);
}

static void set_method(struct qmig_migration *m, const char *how)
{
	snprintf(m->res.verify_method, sizeof(m->res.verify_method), "%s",
		 m->res.memory_verified == 1 && strcmp(how, "memory") ? "memory+" : "");
	snprintf(m->res.verify_method + strlen(m->res.verify_method),
		 sizeof(m->res.verify_method) - strlen(m->res.verify_method), "%s", how);
}

/* guest_downtime_ms stays -1: say why (the first reason found wins). */
static void downtime_unknown(struct qmig_migration *m, const char *why)
{
	if (m->res.guest_downtime_ms < 0 && !m->res.guest_downtime_reason[0])
		snprintf(m->res.guest_downtime_reason, sizeof(m->res.guest_downtime_reason), "%s",
			 why);
}

/* --verify=memory: the destination is paused, the source in postmigrate.
 * Only identical RAM lets the destination run. */
static int confirm_memory(struct qmig_migration *m)
{
	struct side *dst = &m->side[DST];
	struct qm_memcmp_report rep;
	int64_t t0 = qm_now_ns();
	int r;

	r = qm_memcmp_sides(m, m->side[SRC].qmp, dst->qmp, &rep);
	m->res.memory_verify_ms = (uint64_t)((qm_now_ns() - t0) / MS);
	m->res.pages_compared = rep.pages_checked;
	m->res.pages_differ = rep.pages_bad;
	m->res.n_first_differ = rep.nfirst;
	memcpy(m->res.first_differ_gpa, rep.first, sizeof(rep.first));
	if (r < 0)
		return qm_fail(m, r, "--verify=memory: could not compare: %s", rep.error);
	if (r == 1) {
		m->res.memory_verified = 0;
		m->res.verified = 0;
		return qm_fail(m, -EBADMSG,
			       "--verify=memory: %llu of %llu pages differ between source and "
			       "destination (first at guest-physical 0x%llx); the destination "
			       "was not started",
			       (unsigned long long)rep.pages_bad,
			       (unsigned long long)rep.pages_checked,
			       (unsigned long long)rep.first[0]);
	}
	m->res.memory_verified = 1;
	m->res.verified = 1;
	set_method(m, "memory");
	qm_log(m, QMIG_LOG_INFO, "--verify=memory: %llu pages identical (%llu ms)",
	       (unsigned long long)rep.pages_checked,
	       (unsigned long long)m->res.memory_verify_ms);
	/* An offline migration's guest stays paused. */
	r = m->offline ? 0 : qm_cont(m, dst, "after comparing memory");
	if (r < 0)
		return qm_qmp_fail(m, dst, r, "cont (after comparing memory)");
	return STEP_NEXT;
}

static int confirm_beats(struct qmig_migration *m)
{
	struct qmig_guest_stats src, dst;
	int64_t gap;

	qm_probe_get(m->side[DST].hb, &dst);
	if (dst.corrupt)
		return qm_fail(m, -EBADMSG, "destination: the guest reports corrupt memory: %s",
			       dst.corrupt_msg);
	if (dst.beats < CONFIRM_BEATS) {
		if (qm_now_ns() - m->t_phase_ns > BEATS_TIMEOUT_NS)
			return qm_fail(m, -ETIMEDOUT,
				       "destination: running but the guest sent %llu heartbeats "
				       "in 15 s; it does not run on",
				       (unsigned long long)dst.beats);
		return wait_ms(m, 5);
	}
	if (!m->side[SRC].hb) {
		downtime_unknown(m, "no heartbeats from the source guest (no --src-serial)");
		return STEP_NEXT;
	}
	qm_probe_get(m->side[SRC].hb, &src);
	/* Beats drained late were emitted no later than the vCPUs stopped. */
	if (m->side[SRC].stop_mono_ns && m->side[SRC].stop_mono_ns < src.last_ns)
		src.last_ns = m->side[SRC].stop_mono_ns;
	if (!src.beats) {
		downtime_unknown(m, "the source guest sent no heartbeats");
	} else if (dst.first_ns <= src.last_ns) {
		qm_log(m, QMIG_LOG_WARN, "heartbeats: the source's last beat (seq %llu) was "
			"read %lld us after the destination's first (seq %llu, %llu beats); "
			"no guest-observed downtime",
			(unsigned long long)src.last_seq,
			(long long)(src.last_ns - dst.first_ns) / 1000,
			(unsigned long long)dst.last_seq, (unsigned long long)dst.beats);
		downtime_unknown(m, "the heartbeats of the two sides overlap as read");
	} else {
		/* The memory comparison held the destination paused on purpose:
		 * that is verification time, not migration downtime. */
		gap = (dst.first_ns - src.last_ns) / MS - (int64_t)m->res.memory_verify_ms -
		      (int64_t)m->res.disk_verify_ms;
		m->res.guest_downtime_ms = gap > 0 ? gap : 0;
	}
	return STEP_NEXT;
}

/* The verdict of a test guest's own heartbeats (our Linux guest checks
 * each page before rewriting it and says CORRUPT on its serial line). */
static void verdict_by_beats(struct qmig_migration *m)
{
	struct qmig_guest_stats hs;

	if (!m->side[DST].hb || m->offline)
		return;
	qm_probe_get(m->side[DST].hb, &hs);
	if (hs.beats >= CONFIRM_BEATS && !hs.corrupt) {
		m->res.verified = 1;
		set_method(m, "heartbeats");
	}
}

/* The stamps checked from the host: stop the destination, dump the working
 * set, check every word, resume. A second pause after the guest has run on
 * the destination: only when the guest cannot check itself (below). */
static int confirm_stamps_stopped(struct qmig_migration *m)
{
	struct side *dst = &m->side[DST];
	struct qmig_verify_report rep;
	int64_t t0 = qm_now_ns();
	int r, r2;

	r = m->offline ? 0 : qm_stop(m, dst, "to verify the test guest's memory stamps");
	if (r < 0)
		return qm_qmp_fail(m, dst, r, "stop (to verify memory)");
	r = qm_guest_verify(m->guest_ops, dst->qmp, dst->vm ? qmig_vm_runtime_dir(dst->vm) : NULL,
			    &rep);
	r2 = m->offline ? 0 : qm_cont(m, dst, "after verifying the memory stamps");
	m->res.verify_ms = (uint64_t)((qm_now_ns() - t0) / MS);
	if (r2 < 0)
		return qm_qmp_fail(m, dst, r2, "cont (after verifying memory)");
	if (r == 1) {
		m->res.verified = 0;
		set_method(m, "stamps");
		return qm_fail(m, -EBADMSG,
			       "destination: %llu of %llu guest pages are wrong, first at "
			       "0x%llx: %s",
			       (unsigned long long)rep.pages_bad,
			       (unsigned long long)rep.pages_checked,
			       (unsigned long long)rep.first_bad_gpa, rep.detail);
	}
	if (r < 0) {
		qm_log(m, QMIG_LOG_INFO, "destination: memory stamps not checked (%s)",
		       strerror(-r));
		verdict_by_beats(m);
		return STEP_NEXT;
	}
	qm_log(m, QMIG_LOG_INFO, "destination: %llu guest pages verified in %llu ms",
	       (unsigned long long)rep.pages_checked, (unsigned long long)m->res.verify_ms);
	m->res.verified = 1;
	set_method(m, "stamps");
	return STEP_NEXT;
}

#define GUEST_CHECK_TIMEOUT_NS (10000 * MS)

/* Does the guest check its own memory on request? Its plug-in says so from
 * what the guest said on its serial line (the tiny test guest does). */
static void probe_self_check(struct qmig_migration *m)
{
	if (m->self_check >= 0)
		return;
	if (!stamp_guest(m) || m->offline) {
		m->self_check = 0;
		return;
	}
	m->self_check = qm_probe_can_check(m->side[SRC].hb) || qm_probe_can_check(m->side[DST].hb);
}

/* Ask the guest, running on the destination, to check its memory (the
 * tiny guest's plug-in sends an NMI; it answers on its serial line). Sent
 * as soon as it runs, so the check overlaps the wait for its first
 * heartbeats. */
static int ask_guest_check(struct qmig_migration *m)
{
	struct side *dst = &m->side[DST];
	int r;

	m->verify_asked = 1;
	r = qm_probe_check_ask(dst->hb, dst->qmp);
	if (r < 0) {
		qm_log(m, QMIG_LOG_INFO, "destination: asking the guest to check itself: %s; "
			  "checking the stamps from the host",
		       r == -ENOTSUP ? strerror(-r) : qmig_qmp_conn_error(dst->qmp));
		return r;
	}
	m->t_verify_ns = qm_now_ns();
	return 0;
}

/* The default check of the tiny guest, with no second pause: the guest,
 * already running on the destination, is asked (an NMI) to check the stamp
 * and two more words of every page of its working set against its header,
 * and answers on its serial line (a few ms of guest time for 64 MiB). What
 * the destination's memory holds is what the guest reads: a page the
 * stream left stale (QEMU 7.2's TCG dirty-bitmap bug) is found. The header
 * itself must be at least as new as the source's last heartbeat. */
static int confirm_guest_check(struct qmig_migration *m)
{
	struct side *dst = &m->side[DST];
	struct qmig_verify_report rep;
	struct qmig_guest_stats hs, ss;
	int r;

	if (!m->t_verify_ns && (m->verify_asked || ask_guest_check(m) < 0))
		return confirm_stamps_stopped(m);
	qm_probe_process(dst->hb);
	qm_probe_get(dst->hb, &hs);
	if (hs.corrupt)
		return qm_fail(m, -EBADMSG, "destination: the guest reports corrupt memory: %s",
			       hs.corrupt_msg);
	r = qm_probe_check_answer(dst->hb, &rep);
	if (r == 0) {
		if (qm_now_ns() - m->t_verify_ns < GUEST_CHECK_TIMEOUT_NS)
			return wait_ms(m, 2);
		qm_log(m, QMIG_LOG_WARN, "destination: the guest did not answer the check "
			 "request in 10 s; checking the stamps from the host");
		return confirm_stamps_stopped(m);
	}
	m->res.verify_ms = (uint64_t)((qm_now_ns() - m->t_verify_ns) / MS);
	set_method(m, "stamps");
	if (r < 0) {
		m->res.verified = 0;
		return qm_fail(m, -EBADMSG, "destination: unreadable answer from the guest: %s",
			       rep.detail);
	}
	if (rep.pages_bad) {
		m->res.verified = 0;
		return qm_fail(m, -EBADMSG,
			       "destination: %llu of %llu guest pages are wrong, first at 0x%llx: %s",
			       (unsigned long long)rep.pages_bad,
			       (unsigned long long)rep.pages_checked,
			       (unsigned long long)rep.first_bad_gpa, rep.detail);
	}
	if (m->side[SRC].hb) {
		qm_probe_get(m->side[SRC].hb, &ss);
		if (ss.beats && rep.seq < ss.last_seq) {
			m->res.verified = 0;
			return qm_fail(m, -EBADMSG,
				       "destination: the guest's header is older than the source's "
				       "last heartbeat (seq %llu < %llu): stale memory",
				       (unsigned long long)rep.seq, (unsigned long long)ss.last_seq);
		}
	}
	qm_log(m, QMIG_LOG_INFO, "destination: the guest checked %llu pages%s%s "
		  "(answer in %llu ms)", (unsigned long long)rep.pages_checked,
	       *rep.detail ? " " : "", rep.detail, (unsigned long long)m->res.verify_ms);
	m->res.verified = 1;
	return STEP_NEXT;
}

static int confirm_stamps(struct qmig_migration *m)
{
	probe_self_check(m);
	if (m->offline)
		return confirm_stamps_stopped(m); /* paused throughout: no second pause */
	if (m->self_check == 1)
		return confirm_guest_check(m);
	/* Another test guest (our Linux guest checks its own pages and says
	 * CORRUPT on its serial line): its heartbeats are the verdict. */
	verdict_by_beats(m);
	return STEP_NEXT;
}

/* What "verified" means depends on what qmigrate knows of the guest:
 * its own test guests are checked by heartbeats and stamps; any other
 * guest by running on the destination and, with --verify=memory, by the
 * RAM comparison, and never stopped again once it runs. */
static int step_confirm(struct qmig_migration *m)
{
	int r;

	if (m->sub == QM_SUB_BEGIN) {
		r = confirm_running(m);
		if (r != STEP_NEXT)
			return r;
		m->sub = QM_SUB_CONFIRM_RUNNING;
		if (m->side[SRC].stop_us && m->side[DST].resume_us > m->side[SRC].stop_us)
			m->res.switchover_ms =
				(m->side[DST].resume_us - m->side[SRC].stop_us) / 1000;
		m->res.engine_total_ms = (uint64_t)((qm_now_ns() - m->t_migrate_ns) / MS);
		if (qm_storage_verify(m) < 0) /* storage.c: compare the disks, then cont */
			return m->error;
		if (m->o.verify_memory) {
			r = confirm_memory(m);
			if (r != STEP_NEXT)
				return r;
			m->t_phase_ns = qm_now_ns();
		}
	}
	if (m->o.no_verify) {
		downtime_unknown(m, "not measured: --verify=none");
		return STEP_NEXT;
	}
	if (!test_guest(m)) {
		if (m->res.memory_verified != 1 && !m->offline) {
			m->res.verified = 1;
			set_method(m, "running");
		}
		downtime_unknown(m, "no heartbeats: not a qmigrate test guest (see --src-serial, "
				    "--dst-serial)");
		return STEP_NEXT;
	}
	if (m->offline)
		downtime_unknown(m, "offline migration: the guest was paused throughout");
	if (m->sub == QM_SUB_CONFIRM_RUNNING && !m->offline && stamp_guest(m) && !m->t_verify_ns) {
		probe_self_check(m);
		if (m->self_check == 1)
			(void)ask_guest_check(m); /* a failure: confirm_stamps checks from the host */
	}
	if (m->sub == QM_SUB_CONFIRM_RUNNING && !m->offline) {
		r = confirm_beats(m);
		if (r != STEP_NEXT)
			return r;
	}
	m->sub = QM_SUB_CONFIRM_BEATS;
	if (!stamp_guest(m)) {
		verdict_by_beats(m);
		return STEP_NEXT;
	}
	return confirm_stamps(m);
}

static void finish_source(struct qmig_migration *m)
{
	struct side *src = &m->side[SRC];
	int r;

	if (!src->qmp)
		return;
	if (m->o.keep_source) {
		qm_restore_side(m, src);
		return;
	}
	src->quitting = 1;
	r = qmig_cmd_quit(src->qmp);
	if (r < 0 && r != -ECONNRESET)
		qm_log(m, QMIG_LOG_WARN, "source: quit: %s", strerror(-r));
}

/* "downtime 12 ms as seen by the guest, 8 ms by QEMU", or why the guest's
 * view is missing. */
static void downtime_text(const struct qmig_migration *m, char *buf, size_t len)
{
	if (m->res.guest_downtime_ms >= 0)
		snprintf(buf, len, "downtime %lld ms as seen by the guest, %llu ms by QEMU",
			 (long long)m->res.guest_downtime_ms,
			 (unsigned long long)m->res.downtime_ms);
	else
		snprintf(buf, len, "downtime %llu ms by QEMU; as seen by the guest: %s",
			 (unsigned long long)m->res.downtime_ms, m->res.guest_downtime_reason);
}

static int step_finish(struct qmig_migration *m)
{
	int dry = m->o.dry_run;
	char dt[200];

	/* storage.c: the destination's images durable before the job may
	 * complete (a failure: completed-with-errors, the source kept). */
	if (!dry && qm_storage_durable(m) < 0)
		return m->error;
	if (!dry) {
		/* storage.c: the destination's images flushed, exports, NBD
		 * server; when that flush failed, the source's disks are the
		 * only durable copy: the source is kept, paused. */
		if (qm_storage_finish(m) > 0)
			m->o.keep_source = 1;
		finish_source(m);
		/* The destination now runs the guest: hand it back as we found it
		 * (capabilities, parameters, no TLS object of ours). */
		if (m->side[DST].vm && !m->o.keep_dest && m->side[DST].qmp)
			qmig_cmd_quit(m->side[DST].qmp);
		else
			qm_restore_side(m, &m->side[DST]);
	}
	qmig_port_free(m->port);
	m->port = NULL;
	if (!dry) {
		double secs = m->res.total_ms ? m->res.total_ms / 1000.0
			      : (m->t_done_ns - m->t_migrate_ns) / 1e9;

		snprintf(m->res.status, sizeof(m->res.status), "completed");
		m->res.throttle_pct_max = m->throttle_max;
		if (secs > 0)
			m->res.throughput_mbps = m->res.transferred_bytes * 8 / 1e6 / secs;
		downtime_unknown(m, "not measured");
		if (!m->res.verify_method[0])
			set_method(m, "none");
		downtime_text(m, dt, sizeof(dt));
		snprintf(m->res.message, sizeof(m->res.message), "migrated in %llu ms (%s), %s%s%s%s",
			 (unsigned long long)m->res.engine_total_ms, dt,
			 m->res.verified == 1 ? "destination verified (" : m->o.no_verify
			 ? "verification skipped" : "destination running",
			 m->res.verified == 1 ? m->res.verify_method : "",
			 m->res.verified == 1 && !strcmp(m->res.verify_method, "running")
			 ? ": not a test guest" : "", m->res.verified == 1 ? ")" : "");
	}
	return STEP_NEXT;
}

/* ---- rollback ------------------------------------------------------------ */

/* 1 while the source's migration is still winding down after a cancel. */
static int source_still_migrating(struct qmig_migration *m)
{
	struct qmig_migrate_info mi;

	if (!m->side[SRC].qmp || qmig_cmd_query_migrate(m->side[SRC].qmp, &mi) < 0)
		return 0;
	return !strcmp(mi.status, "active") || !strcmp(mi.status, "setup") ||
	       !strcmp(mi.status, "cancelling") || !strcmp(mi.status, "device") ||
	       !strcmp(mi.status, "pre-switchover");
}

/* Only ever called while the source owns the guest: qm_cont refuses
 * otherwise. */
static void resume_source(struct qmig_migration *m)
{
	struct side *src = &m->side[SRC];
	struct qmig_vm_status st;
	int r;

	if (!src->qmp || qmig_cmd_query_status(src->qmp, &st) < 0)
		return;
	if (st.running || !src->was_running)
		return;
	r = qm_cont(m, src, "rollback");
	if (r < 0)
		qm_log(m, QMIG_LOG_ERROR, "source: could not resume the guest (%s): %s",
		       st.status, r == -EPERM ? "the destination owns it"
					      : qmig_qmp_conn_error(src->qmp));
	else
		qm_log(m, QMIG_LOG_INFO, "source: guest resumed (was %s)", st.status);
}

/* Two running copies of one guest must never exist: stop a destination
 * we do not own, kill one we launched. A destination still loading the
 * stream gets a stop too: on an incoming QEMU it clears autostart, so it
 * will not start the guest by itself once the load ends. */
static void stop_destination(struct qmig_migration *m)
{
	struct side *dst = &m->side[DST];

	if (dst->vm) {
		qmig_vm_kill(dst->vm);
		return;
	}
	if (dst->qmp && m->t_migrate_ns) {
		struct qmig_vm_status st;

		if (qmig_cmd_query_status(dst->qmp, &st) < 0)
			return;
		if (st.running || !strcmp(st.status, "inmigrate"))
			qm_stop(m, dst, st.running ? "a second running copy" : "no autostart");
		if (st.running)
			qm_log(m, QMIG_LOG_WARN, "destination: stopped; it must not run "
						 "beside the resumed source");
	}
}

static void rollback_result(struct qmig_migration *m)
{
	struct side *src = &m->side[SRC];

	m->res.error = m->error;
	m->res.failed_phase = m->failed_phase;
	snprintf(m->res.status, sizeof(m->res.status), "%s",
		 m->error == -ECANCELED ? "cancelled" : "failed");
	snprintf(m->res.message, sizeof(m->res.message), "%.400s; %s", m->err,
		 !src->qmp ? "the source could not be checked"
		 : m->res.rolled_back && !src->state_known ? "the source guest was not touched"
		 : m->res.rolled_back ? (src->was_running ? "the source guest is running"
							  : "the source guest is paused as before")
				      : "the source guest could NOT be restored");
}

/* Has the destination taken the guest over? The RESUME event and
 * postcopy say so as they happen; a failure can come before they are
 * seen, so ask: a completed stream with a destination that runs (or
 * cannot be asked) means it may have run, and the source must never be
 * resumed then. */
static void check_handover(struct qmig_migration *m)
{
	struct side *src = &m->side[SRC], *dst = &m->side[DST];
	struct qmig_migrate_info mi;
	struct qmig_vm_status st;

	if (m->owner != OWNER_SOURCE || !m->t_migrate_ns || m->res.postcopy_started)
		return;
	if (!m->completed && src->qmp && qmig_cmd_query_migrate(src->qmp, &mi) == 0 &&
	    !strcmp(mi.status, "completed"))
		take_completed(m, &mi); /* seen only now: its figures too */
	if (!m->completed)
		return;
	if (!dst->qmp || qmig_cmd_query_status(dst->qmp, &st) < 0)
		qm_set_owner(m, OWNER_DESTINATION, "completed, destination unreachable");
	else if (st.running)
		qm_set_owner(m, OWNER_DESTINATION, "the destination guest runs");
}

/* A failure after the hand-over: the destination keeps the guest, the
 * source is never resumed; finish as after a migration. */
static int rollback_after_handover(struct qmig_migration *m)
{
	struct side *dst = &m->side[DST];
	struct qmig_vm_status st;

	if (qm_storage_finish(m) > 0) /* storage.c: as in step_finish */
		m->o.keep_source = 1;
	finish_source(m);
	/* A destination that cannot be asked cannot be restored either: the
	 * journal stays for qmigrate recover. */
	if (!dst->vm && (!dst->qmp || qmig_cmd_query_status(dst->qmp, &st) < 0))
		m->keep_journal = 1;
	else if (!dst->vm)
		qm_restore_side(m, dst);
	qmig_port_free(m->port);
	m->port = NULL;
	m->res.error = m->error;
	m->res.failed_phase = m->failed_phase;
	downtime_unknown(m, "not measured: the migration ended with errors");
	snprintf(m->res.status, sizeof(m->res.status), "completed-with-errors");
	snprintf(m->res.message, sizeof(m->res.message),
		 "%.330s; the destination had taken over the guest and keeps it, the source "
		 "was not resumed%s", m->err,
		 m->keep_journal ? " (its settings could not be restored: run 'qmigrate "
				   "recover' once its QMP socket answers)" : "");
	return STEP_NEXT;
}

/* Rollback, in resumable steps like every phase: cancel and wait for the
 * source to stop migrating (at most 15 s), put both sides back, then
 * wait for the resumed guest's heartbeats (at most 5 s). */
static int step_rollback(struct qmig_migration *m)
{
	struct side *src = &m->side[SRC];
	struct qmig_vm_status st;
	struct qmig_guest_stats hs;

	if (m->sub == QM_SUB_BEGIN)
		check_handover(m);
	if (m->owner == OWNER_DESTINATION && (m->completed || !m->res.postcopy_started))
		return rollback_after_handover(m);
	if (m->res.postcopy_started) {
		/* The guest's memory is split between the two QEMUs: resuming
		 * the source or killing the destination would lose it. */
		qmig_port_free(m->port);
		m->port = NULL;
		m->res.error = m->error;
		m->res.failed_phase = m->failed_phase;
		downtime_unknown(m, "not measured: postcopy failed");
		snprintf(m->res.status, sizeof(m->res.status), "failed");
		snprintf(m->res.message, sizeof(m->res.message), "%.500s", m->err);
		return STEP_NEXT;
	}
	switch (m->sub) {
	case QM_SUB_BEGIN:
		if (src->qmp && m->t_migrate_ns)
			qmig_cmd_migrate_cancel(src->qmp);
		m->sub = QM_SUB_ROLLBACK_CANCELLING;
		/* fall through */
	case QM_SUB_ROLLBACK_CANCELLING:
		if (m->t_migrate_ns && source_still_migrating(m)) {
			if (qm_now_ns() - m->t_phase_ns < CANCEL_TIMEOUT_NS)
				return wait_ms(m, 10);
			qm_log(m, QMIG_LOG_WARN, "source: migration still not cancelled after 15 s");
		}
		qm_storage_rollback(m); /* storage.c: mirrors, NBD nodes, exports, server */
		stop_destination(m);
		/* A RESUME that raced the stop: the destination has run. */
		if (m->owner == OWNER_DESTINATION) {
			if (m->side[DST].qmp)
				qm_cont(m, &m->side[DST], "it had run before the stop");
			m->completed = 1;
			return rollback_after_handover(m);
		}
		resume_source(m);
		qm_restore_side(m, src);
		if (m->side[DST].qmp && !m->side[DST].vm)
			qm_restore_side(m, &m->side[DST]);
		qmig_port_free(m->port);
		m->port = NULL;
		/* A source whose state was never read was never changed either. */
		m->res.rolled_back = src->qmp && qmig_cmd_query_status(src->qmp, &st) == 0 &&
				     (!src->state_known || st.running == src->was_running);
		m->sub = QM_SUB_ROLLBACK_DONE;
		if (!(m->res.rolled_back && src->state_known && src->was_running && src->hb))
			break;
		qm_probe_get(src->hb, &hs);
		m->rb_beats0 = hs.beats;
		m->rb_t0 = qm_now_ns();
		m->sub = QM_SUB_ROLLBACK_HEARTBEATS;
		/* fall through */
	case QM_SUB_ROLLBACK_HEARTBEATS:
		/* Trust the guest, not QEMU: a resumed test guest must heartbeat. */
		qm_probe_get(src->hb, &hs);
		if (hs.beats < m->rb_beats0 + 2) {
			if (qm_now_ns() - m->rb_t0 < 5000 * MS)
				return wait_ms(m, 10);
			m->res.rolled_back = 0;
			qm_log(m, QMIG_LOG_ERROR, "source: running, but the guest sends no heartbeats");
		}
		break;
	case QM_SUB_ROLLBACK_DONE:
		break;
	}
	downtime_unknown(m, "not measured: the migration was rolled back");
	rollback_result(m);
	return STEP_NEXT;
}

/* ---- the loop ------------------------------------------------------------ */

typedef int (*step_fn)(struct qmig_migration *m);

static const struct {
	step_fn step;
	enum qmig_phase next;
} phases[] = {
	[QMIG_PHASE_INIT] = {NULL, QMIG_PHASE_PREPARE},
	[QMIG_PHASE_PREPARE] = {step_prepare, QMIG_PHASE_NEGOTIATE},
	[QMIG_PHASE_NEGOTIATE] = {step_negotiate, QMIG_PHASE_START},
	[QMIG_PHASE_START] = {step_start, QMIG_PHASE_PRECOPY},
	[QMIG_PHASE_PRECOPY] = {step_monitor, QMIG_PHASE_CONFIRM},
	[QMIG_PHASE_POSTCOPY] = {step_monitor, QMIG_PHASE_CONFIRM},
	[QMIG_PHASE_SWITCHOVER] = {step_monitor, QMIG_PHASE_CONFIRM},
	[QMIG_PHASE_CONFIRM] = {step_confirm, QMIG_PHASE_FINISH},
	[QMIG_PHASE_FINISH] = {step_finish, QMIG_PHASE_DONE},
	[QMIG_PHASE_ROLLBACK] = {step_rollback, QMIG_PHASE_FAILED},
};

static int finish(struct qmig_migration *m)
{
	struct json_object *rec = qmig_result_to_json(&m->res);

	m->finished = 1;
	qm_tls_remove_copies(m);
	qm_relay_stop(m); /* its per-channel record, before the result */
	/* A postcopy left paused keeps its journal for qmigrate recover, and
	 * so does a hand-over whose destination could not be restored; not
	 * in launch mode, where the QEMUs end with the job. */
	if (!m->o.src_qmp || (!(m->res.postcopy_started && strcmp(m->res.status, "completed") &&
				strcmp(m->res.status, "completed-with-errors")) &&
			      !m->keep_journal))
		qm_journal_remove(m);
	m->next_sample_ns = 0;
	m->wait_until_ns = 0;
	qm_emit(m, "result", rec, NULL);
	return 1;
}

int qm_phase_step(struct qmig_migration *m)
{
	int r;

	for (;;) {
		if (m->phase == QMIG_PHASE_DONE || m->phase == QMIG_PHASE_FAILED)
			return finish(m);
		if (m->phase < QMIG_PHASE_CONFIRM && !m->error) {
			if (m->cancel_requested && m->owner == OWNER_DESTINATION) {
				qm_log(m, QMIG_LOG_WARN, "cannot cancel: the destination already "
							 "runs the guest");
				m->cancel_requested = 0;
			} else if (m->cancel_requested && m->res.postcopy_started) {
				qm_log(m, QMIG_LOG_WARN, "cannot cancel during postcopy: the "
							 "destination already runs the guest");
				m->cancel_requested = 0;
			} else if (m->cancel_requested)
				qm_fail(m, -ECANCELED, "cancelled");
			/* --timeout bounds precopy; postcopy has --recover-timeout. */
			else if (qm_now_ns() > m->deadline_ns && m->owner == OWNER_SOURCE &&
				 !m->res.postcopy_started)
				qm_fail(m, -ETIMEDOUT, "timed out after %d s in %s",
					m->o.timeout_ms / 1000, qmig_phase_name(m->phase));
		}
		if (m->error && m->phase != QMIG_PHASE_ROLLBACK) {
			set_phase(m, QMIG_PHASE_ROLLBACK);
			continue;
		}
		if (!phases[m->phase].step) {
			if (m->phase == QMIG_PHASE_INIT)
				emit_config(m);
			set_phase(m, phases[m->phase].next);
			continue;
		}
		m->wait_until_ns = 0;
		r = phases[m->phase].step(m);
		if (r < 0) {
			if (!m->error)
				qm_fail(m, r, "%s: %s", qmig_phase_name(m->phase), strerror(-r));
			continue;
		}
		if (r == STEP_WAIT)
			return 0;
		set_phase(m, phases[m->phase].next);
	}
}
