/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * qmig_update(): replace a running QEMU by a new QEMU process on the same
 * host with cpr-transfer (QEMU 10.0). Guest RAM lives in a shared memory
 * backend (memfd, share=on, and aux-ram-share=on for ROMs and device RAM);
 * the old QEMU hands the backend's file descriptors to the new one over
 * the cpr channel, so only device state crosses the main channel.
 *
 * The sequence (learned from QEMU's CPR documentation and migration.json):
 *  1. the new QEMU starts with the old one's command line (its binary
 *     replaced, its machine type pinned) plus two -incoming channels, main
 *     and cpr, both unix sockets; it blocks reading the cpr channel before
 *     it creates its monitors, so its QMP socket appears only afterwards;
 *  2. the old QEMU gets mode=cpr-transfer and `migrate` with both channels
 *     (it fails at once if the cpr socket is not yet listening);
 *  3. the old QEMU stops the guest, sends the cpr state (fds) and then the
 *     device state on main; the new QEMU resumes the guest.
 *
 * Ownership as for a migration: the old QEMU owns the guest until the new
 * one has run it (status running); a failure before that kills the new
 * QEMU and leaves the old one running as before. After it, the old QEMU is
 * never resumed: it is quit.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <json-c/json.h>

#include "qm_wait.h"
#include "cpr_int.h"
#include "launch/launch.h"
#include "qmig_commands.h"
#include "doctor/doctor.h"

#define CONFIRM_BEATS 20
#define BEATS_TIMEOUT_MS 15000
#define DEFAULT_TIMEOUT_MS 120000
#define NEW_START_MS 30000

/* ---- is the old QEMU able to do it? ----------------------------------- */

static struct json_object *qom_get(struct qmig_qmp_conn *c, const char *path, const char *prop)
{
	struct json_object *ret = NULL;

	if (qmig_cmd_qom_get(c, path, prop, &ret) < 0)
		return NULL;
	return ret;
}

/* The refusals, each with what would make it possible. */
static int check_source(struct upd *u)
{
	struct json_object *v;
	struct qmig_vm_status st;
	char be[128], path[160], ver[32];
	unsigned ov = 0, nv;
	int r, share, aux;

	r = qmig_schema_probe(&u->schema, u->c);
	if (r < 0)
		return qm_upd_fail(u, r, "failed", "query-qmp-schema: %s",
				   qmig_qmp_conn_error(u->c));
	qm_sr_qemu_version(u->c, ver, sizeof(ver), &ov);
	snprintf(u->res->old_qemu, sizeof(u->res->old_qemu), "%s", ver);
	if (!qmig_schema_has_enum_value(u->schema, "migrate-set-parameters", "mode",
					"cpr-transfer") ||
	    !qmig_schema_has_arg(u->schema, "migrate", "channels"))
		return qm_upd_fail(
		    u, -EOPNOTSUPP, "refused",
		    "the running QEMU (%s) has no cpr-transfer migration mode with "
		    "migrate channels (QEMU 10.0 and later): it cannot be updated in place; "
		    "use qmigrate migrate",
		    ver);
	r = qmig_cmd_query_status(u->c, &st);
	if (r < 0)
		return qm_upd_fail(u, r, "failed", "query-status: %s", qmig_qmp_conn_error(u->c));
	if (strcmp(st.status, "running") && strcmp(st.status, "paused"))
		return qm_upd_fail(
		    u, -EBUSY, "refused",
		    "the running QEMU is '%s', not running or paused (a migration under way "
		    "or done?)",
		    st.status);
	u->was_running = st.running;
	v = qom_get(u->c, "/machine", "memory-backend");
	snprintf(be, sizeof(be), "%s",
		 json_object_is_type(v, json_type_string) ? json_object_get_string(v) : "");
	json_object_put(v);
	/* A link property: the backend's QOM path, "" when RAM is not a backend. */
	if (strncmp(be, "/objects/", 9) || !be[9] ||
	    strspn(be + 9, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.") !=
		strlen(be + 9))
		return qm_upd_fail(
		    u, -EOPNOTSUPP, "refused",
		    "guest RAM is not a shared memory backend, so it cannot stay in place: "
		    "start QEMU with -machine memory-backend=ram0,aux-ram-share=on "
		    "-object memory-backend-memfd,id=ram0,size=SIZE,share=on");
	snprintf(path, sizeof(path), "%s", be);
	v = qom_get(u->c, path, "share");
	share = json_object_is_type(v, json_type_boolean) && json_object_get_boolean(v);
	json_object_put(v);
	if (!share)
		return qm_upd_fail(
		    u, -EOPNOTSUPP, "refused",
		    "guest RAM (%s) is not shared memory, so it cannot stay in place: "
		    "start QEMU with -machine memory-backend=ram0,aux-ram-share=on "
		    "-object memory-backend-memfd,id=ram0,size=SIZE,share=on",
		    be);
	v = qom_get(u->c, "/machine", "aux-ram-share");
	aux = json_object_is_type(v, json_type_boolean) && json_object_get_boolean(v);
	json_object_put(v);
	if (!aux)
		return qm_upd_fail(
		    u, -EOPNOTSUPP, "refused",
		    "the machine lacks aux-ram-share=on: ROMs and device RAM would have to "
		    "be copied; start QEMU with -machine ...,aux-ram-share=on");
	if (qm_machine_type(u->c, u->machine, sizeof(u->machine)) < 0)
		return qm_upd_fail(u, -EPROTO, "failed", "qom-get /machine type: no usable answer");
	nv = qm_binary_version(u->o->new_qemu);
	if (u->o->new_qemu && nv && ov && nv < ov)
		return qm_upd_fail(
		    u, -EPROTONOSUPPORT, "refused",
		    "%s is QEMU %u.%u.%u, older than the running %s: a stream is readable "
		    "only by the same or a newer QEMU",
		    u->o->new_qemu, nv / 10000, nv / 100 % 100, nv % 100, ver);
	if (u->o->new_qemu && qm_binary_has_machine(u->o->new_qemu, u->machine) == 0)
		return qm_upd_fail(u, -EPROTONOSUPPORT, "refused",
				   "%s does not have machine type %s, which the guest runs",
				   u->o->new_qemu, u->machine);
	return 0;
}
/* ---- the hand-over -------------------------------------------------------- */

static ino_t inode_of(const char *path)
{
	struct stat st;

	return path[0] && stat(path, &st) == 0 ? st.st_ino : 0;
}

/* Has the new QEMU's socket appeared (and is it not the old one's)? */
static int new_sock_ready(const char *path, ino_t old_ino)
{
	ino_t i = inode_of(path);

	return i && i != old_ino;
}

static int migrate_cpr(struct upd *u)
{
	struct json_object *args = json_object_new_object(), *chs = json_object_new_array();
	const char *types[2] = {"main", "cpr"};
	char sock[QM_PATHLEN + 16];
	int r;

	for (int i = 0; i < 2; i++) {
		struct json_object *ch = json_object_new_object(), *addr = json_object_new_object();

		snprintf(sock, sizeof(sock), "%s/%s.sock", u->dir, types[i]);
		json_object_object_add(addr, "transport", json_object_new_string("socket"));
		json_object_object_add(addr, "type", json_object_new_string("unix"));
		json_object_object_add(addr, "path", json_object_new_string(sock));
		json_object_object_add(ch, "channel-type", json_object_new_string(types[i]));
		json_object_object_add(ch, "addr", addr);
		json_object_array_add(chs, ch);
	}
	json_object_object_add(args, "channels", chs);
	r = qmig_cmd_migrate_args(u->c, args);
	json_object_put(args);
	return r;
}

/* Until the old QEMU says completed; meanwhile pick up the new serial
 * socket as soon as it exists, so that the first beat is timed. */
static int wait_handover(struct upd *u, struct qmig_migrate_info *mi)
{
	int64_t end = qm_sr_now_ns() +
		      (int64_t)(u->o->timeout_ms ? u->o->timeout_ms : DEFAULT_TIMEOUT_MS) * MS;
	char err[512];
	int r;

	for (;;) {
		if (!u->nhb && u->new_serial[0] && new_sock_ready(u->new_serial, u->serial_ino))
			qm_probe_open(&u->nhb, qm_guest_default(), u->new_serial);
		if (u->hb)
			qm_probe_process(u->hb);
		if (u->nhb)
			qm_probe_process(u->nhb);
		r = qmig_cmd_query_migrate(u->c, mi);
		if (r < 0)
			return qm_upd_fail(u, r, "failed", "old QEMU: query-migrate: %s",
					   qmig_qmp_conn_error(u->c));
		if (!strcmp(mi->status, "completed")) {
			if (u->hb) /* the last beats before the stop */
				qm_probe_process(u->hb);
			return 0;
		}
		if (!strcmp(mi->status, "failed") || !strcmp(mi->status, "cancelled"))
			return qm_upd_fail(u, -EIO, "failed",
					   "old QEMU: the update %s%s%s (new QEMU: %s)", mi->status,
					   mi->error_desc[0] ? ": " : "", mi->error_desc,
					   qm_upd_new_stderr(u, err, sizeof(err)));
		if (qm_upd_new_exited(u))
			return qm_upd_fail(u, -EIO, "failed",
					   "the new QEMU exited during the update: %s",
					   qm_upd_new_stderr(u, err, sizeof(err)));
		if (qm_sr_now_ns() > end) {
			qmig_cmd_migrate_cancel(u->c);
			return qm_upd_fail(u, -ETIMEDOUT, "failed",
					   "the update did not finish (status %s)", mi->status);
		}
		if (u->o->cancel && *u->o->cancel)
			return qm_upd_fail(u, -ECANCELED, "cancelled", "cancelled (status %s)",
					   mi->status);
		qm_sleep_until(qm_wait_now_ns() + 1000000);
	}
}

/* Connect to the new QEMU and wait until it runs the guest. */
static int confirm_new(struct upd *u)
{
	struct qmig_qmp_conn_opts co = QMIG_QMP_CONN_OPTS_INIT;
	int64_t end = qm_sr_now_ns() + (int64_t)NEW_START_MS * MS;
	struct qmig_vm_status st;
	char err[512];
	int r;

	co.timeout_ms = u->o->qmp_timeout_ms ? u->o->qmp_timeout_ms : 10000;
	while (!new_sock_ready(u->new_qmp, u->qmp_ino) ||
	       qmig_qmp_conn_open(&u->nc, u->new_qmp, &co) < 0) {
		if (!u->nhb && u->new_serial[0] && new_sock_ready(u->new_serial, u->serial_ino))
			qm_probe_open(&u->nhb, qm_guest_default(), u->new_serial);
		if (qm_upd_new_exited(u))
			return qm_upd_fail(u, -EIO, "failed", "the new QEMU exited: %s",
					   qm_upd_new_stderr(u, err, sizeof(err)));
		if (qm_sr_now_ns() > end)
			return qm_upd_fail(u, -ETIMEDOUT, "failed",
					   "the new QEMU's QMP socket %s did not "
					   "answer",
					   u->new_qmp);
		qm_sleep_until(qm_wait_now_ns() + 2000000);
	}
	snprintf(u->res->new_qmp, sizeof(u->res->new_qmp), "%s", u->new_qmp);
	qm_sr_qemu_version(u->nc, u->res->new_qemu, sizeof(u->res->new_qemu), &(unsigned){0});
	if (!u->was_running) {
		/* A paused guest: the new QEMU holds all of it once it answers. */
		u->owner_new = 1;
		u->j.owner = "destination";
		u->j.phase = "confirm";
		qm_sr_journal_write(&u->j, "destination", "verify");
		return 0;
	}
	if (!u->nhb && u->new_serial[0])
		qm_probe_open(&u->nhb, qm_guest_default(), u->new_serial);
	for (;;) {
		r = qmig_cmd_query_status(u->nc, &st);
		if (r < 0)
			return qm_upd_fail(u, r, "failed", "new QEMU: query-status: %s",
					   qmig_qmp_conn_error(u->nc));
		if (st.running) {
			u->owner_new = 1;
			u->j.owner = "destination";
			u->j.phase = "confirm";
			qm_sr_journal_write(&u->j, "destination", "verify");
			return 0;
		}
		if (strcmp(st.status, "inmigrate") && strcmp(st.status, "paused") &&
		    strcmp(st.status, "prelaunch") && strcmp(st.status, "finish-migrate"))
			return qm_upd_fail(u, -EIO, "failed", "the new QEMU is '%s', not running",
					   st.status);
		if (qm_sr_now_ns() > end)
			return qm_upd_fail(u, -ETIMEDOUT, "failed",
					   "the new QEMU did not run the guest "
					   "(status %s)",
					   st.status);
		qm_sleep_until(qm_wait_now_ns() + 1000000);
	}
}

/* Heartbeats across the hand-over, then the stamps (stop, check, cont). */
static int verify_new(struct upd *u)
{
	struct qmig_guest_stats os, ns;
	const char *dir = u->attach ? NULL : u->dir;
	char msg[400];
	int r;

	u->res->verified = -1;
	snprintf(u->res->verify_method, sizeof(u->res->verify_method), "none");
	if (u->o->no_verify)
		return 0;
	if (u->nhb && u->was_running) {
		r = qm_sr_beats(u->nhb, CONFIRM_BEATS, BEATS_TIMEOUT_MS, msg, sizeof(msg));
		if (r <= 0) {
			u->res->verified = 0;
			return qm_upd_fail(u, r ? r : -EBADMSG, "completed-with-errors",
					   "new QEMU: %s", msg);
		}
		qm_probe_get(u->nhb, &ns);
		if (u->hb) {
			uint64_t first_seq;

			qm_probe_get(u->hb, &os);
			first_seq = ns.last_seq + 1 - ns.beats - ns.seq_missed;
			if (os.beats && ns.first_ns > os.last_ns)
				u->res->guest_downtime_ms = (ns.first_ns - os.last_ns) / MS;
			if (first_seq > os.last_seq + 1)
				qm_sr_log(
				    &u->o->log, QMIG_LOG_WARN,
				    "heartbeats %llu to %llu were not seen (emitted before the "
				    "new serial socket was read): downtime is an upper bound",
				    (unsigned long long)os.last_seq + 1,
				    (unsigned long long)first_seq - 1);
		}
		u->res->verified = 1;
		snprintf(u->res->verify_method, sizeof(u->res->verify_method), "heartbeats");
	}
	r = qm_sr_check_stamps(u->nc, dir, &u->res->pages_checked, msg, sizeof(msg));
	if (r == 0) {
		u->res->verified = 0;
		return qm_upd_fail(u, -EBADMSG, "completed-with-errors", "new QEMU: %s", msg);
	}
	if (r < 0 && r != -ENOMSG)
		return qm_upd_fail(u, r, "completed-with-errors", "new QEMU: %s", msg);
	if (r == 1) {
		u->res->verified = 1;
		snprintf(u->res->verify_method, sizeof(u->res->verify_method), "stamps");
	}
	if (u->was_running && (r = qmig_cmd_cont(u->nc)) < 0)
		return qm_upd_fail(u, r, "completed-with-errors", "new QEMU: cont: %s",
				   qmig_qmp_conn_error(u->nc));
	if (u->nhb && u->was_running) {
		r = qm_sr_beats(u->nhb, CONFIRM_BEATS, BEATS_TIMEOUT_MS, msg, sizeof(msg));
		if (r <= 0) {
			u->res->verified = 0;
			return qm_upd_fail(u, r ? r : -EBADMSG, "completed-with-errors",
					   "new QEMU: %s", msg);
		}
	} else if (u->res->verified < 0) {
		u->res->verified = 1;
		snprintf(u->res->verify_method, sizeof(u->res->verify_method), "running");
	}
	return 0;
}

/* Before the new QEMU ran the guest: it goes, the old one runs on. */
static void rollback(struct upd *u)
{
	struct qmig_migrate_info mi;
	struct qmig_vm_status st;
	char msg[200];

	if (u->new_pid > 0 && !u->new_reaped) {
		qm_terminate(u->new_pid, u->new_pidfd, 2000, &(int){0});
		u->new_reaped = 1;
	}
	if (!u->c)
		return;
	if (qmig_cmd_query_migrate(u->c, &mi) == 0 && strcmp(mi.status, "completed") &&
	    strcmp(mi.status, "failed") && strcmp(mi.status, "cancelled") &&
	    strcmp(mi.status, "none")) {
		qmig_cmd_migrate_cancel(u->c);
		qm_sr_wait_migration(u->c, 30000, &mi, msg, sizeof(msg));
	}
	qm_sr_restore(u->c, &u->sv);
	if (u->was_running && qmig_cmd_query_status(u->c, &st) == 0 && !st.running &&
	    qmig_cmd_cont(u->c) < 0)
		qm_sr_log(&u->o->log, QMIG_LOG_ERROR, "old QEMU: cont: %s",
			  qmig_qmp_conn_error(u->c));
}

static int setup_source(struct upd *u)
{
	struct qmig_qmp_conn_opts co = QMIG_QMP_CONN_OPTS_INIT;
	char msg[512] = "";
	struct ucred cr;
	socklen_t cl = sizeof(cr);
	int r;

	co.timeout_ms = u->o->qmp_timeout_ms ? u->o->qmp_timeout_ms : 10000;
	if (!u->attach) {
		struct qmig_vm_spec spec = u->o->guest;

		spec.shared_mem = 1;
		spec.log = u->o->log;
		spec.log.free = NULL;
		r = qmig_vm_launch(&u->vm, &spec, msg, sizeof(msg));
		if (r < 0)
			return qm_upd_fail(
			    u, r, "failed",
			    "cannot launch the guest set up for cpr-transfer (RAM in a "
			    "shared memfd, aux-ram-share=on: QEMU 10.0 and later): %s",
			    msg);
		snprintf(u->old_qmp, sizeof(u->old_qmp), "%s", qmig_vm_qmp_path(u->vm));
		snprintf(u->old_dir, sizeof(u->old_dir), "%s", qmig_vm_runtime_dir(u->vm));
		if (qmig_vm_serial_path(u->vm))
			snprintf(u->old_serial, sizeof(u->old_serial), "%s",
				 qmig_vm_serial_path(u->vm));
	} else {
		snprintf(u->old_qmp, sizeof(u->old_qmp), "%s", u->o->src_qmp);
		if (u->o->src_serial)
			snprintf(u->old_serial, sizeof(u->old_serial), "%s", u->o->src_serial);
	}
	r = qmig_qmp_conn_open(&u->c, u->old_qmp, &co);
	if (r < 0)
		return qm_upd_fail(u, r, "failed", "cannot connect to QMP %s: %s", u->old_qmp,
				   strerror(-r));
	if (getsockopt(qmig_qmp_conn_fd(u->c), SOL_SOCKET, SO_PEERCRED, &cr, &cl) < 0 ||
	    cr.pid <= 0)
		return qm_upd_fail(u, -ESRCH, "failed",
				   "cannot tell the running QEMU's process from %s", u->old_qmp);
	u->old_pid = cr.pid;
	if (u->old_serial[0] && (r = qm_probe_open(&u->hb, qm_guest_default(), u->old_serial)) < 0)
		return qm_upd_fail(u, r, "failed", "serial socket %s: %s", u->old_serial,
				   strerror(-r));
	if (u->hb && !u->attach) {
		r = qm_sr_beats(u->hb, u->o->warmup_beats ? (unsigned)u->o->warmup_beats : 200,
				60000, msg, sizeof(msg));
		if (r <= 0)
			return qm_upd_fail(u, r ? r : -EBADMSG, "failed", "the launched guest: %s",
					   msg);
	}
	r = qmig_cmd_query_memory_size(u->c, &u->res->ram_bytes);
	if (r < 0)
		return qm_upd_fail(u, r, "failed", "query-memory-size-summary: %s",
				   qmig_qmp_conn_error(u->c));
	return 0;
}

static void new_paths(struct upd *u)
{
	snprintf(u->new_qmp, sizeof(u->new_qmp), "%s/qmp.sock", u->dir);
	if (u->old_serial[0])
		snprintf(u->new_serial, sizeof(u->new_serial), "%s/serial.sock", u->dir);
}

/* Before the first change: both QEMUs and the old mode, for a recovery. */
static int journal_start(struct upd *u)
{
	static const char *const params[] = {"mode", NULL};
	struct json_object *op = NULL;
	int r;

	if (!u->j.path[0])
		return 0;
	r = qmig_cmd_query_migrate_parameters(u->c, &op);
	if (r < 0)
		return qm_upd_fail(u, r, "failed", "query-migrate-parameters: %s",
				   qmig_qmp_conn_error(u->c));
	qm_sr_journal_side(&u->j, 0, u->old_qmp, u->old_pid, u->attach ? NULL : u->old_dir,
			   u->was_running, NULL, op, NULL, params, 0);
	qm_sr_journal_side(&u->j, 1, u->new_qmp, (int)u->new_pid, u->dir, 0, NULL, NULL, NULL, NULL,
			   1);
	json_object_put(op);
	u->j.phase = "start";
	r = qm_sr_journal_write(&u->j, "source", "migrate-set-parameters");
	return r < 0 ? qm_upd_fail(u, r, "failed", "journal %s: %s", u->j.path, strerror(-r)) : 0;
}

/* The old QEMU removes its pid file as it exits: wait for that (bounded),
 * then the file names the new QEMU. */
static void write_pidfile(struct upd *u)
{
	int64_t end = qm_sr_now_ns() + 5000 * (int64_t)MS;
	char buf[24];
	int fd, n;

	while (access(u->pidfile, F_OK) == 0 && qm_sr_now_ns() < end)
		qm_sleep_until(qm_wait_now_ns() + 2000000);
	fd = open(u->pidfile, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644);
	n = snprintf(buf, sizeof(buf), "%d\n", (int)u->new_pid);

	if (fd < 0 || write(fd, buf, (size_t)n) != n)
		qm_sr_log(&u->o->log, QMIG_LOG_WARN, "pid file %s: %s", u->pidfile,
			  strerror(errno));
	if (fd >= 0)
		close(fd);
}

static int run(struct upd *u)
{
	struct qmig_migrate_info mi;
	int64_t t0;
	int r;

	r = setup_source(u);
	if (!r)
		r = check_source(u);
	if (!r)
		r = qm_upd_make_dir(u);
	if (r)
		return r;
	new_paths(u);
	u->res->changed = 1;
	r = qm_upd_start_new(u);
	if (r)
		return r;
	r = journal_start(u);
	if (r)
		return r;
	r = qm_sr_set_param_str(u->c, &u->sv, "mode", "cpr-transfer");
	if (r < 0)
		return qm_upd_fail(u, r, "failed", "old QEMU: mode cpr-transfer: %s",
				   qmig_qmp_conn_error(u->c));
	u->j.phase = "precopy";
	u->j.migrate_started = 1;
	qm_sr_journal_write(&u->j, "source", "migrate");
	qm_sr_log(&u->o->log, QMIG_LOG_DEBUG, "journaled: migrate (cpr-transfer)");
	t0 = qm_sr_now_ns();
	r = migrate_cpr(u);
	if (r < 0)
		return qm_upd_fail(u, r, "failed", "old QEMU: migrate (cpr-transfer): %s",
				   qmig_qmp_conn_error(u->c));
	r = wait_handover(u, &mi);
	if (!r)
		r = confirm_new(u);
	if (r)
		return r;
	u->res->total_ms = (uint64_t)((qm_sr_now_ns() - t0) / MS);
	u->res->transferred_bytes = mi.ram_transferred;
	u->res->qemu_downtime_ms = mi.downtime_ms;
	/* The new QEMU runs the guest: the old one is never resumed. */
	r = verify_new(u);
	if (qmig_cmd_quit(u->c) < 0)
		qm_sr_log(&u->o->log, QMIG_LOG_WARN, "old QEMU: quit: %s",
			  qmig_qmp_conn_error(u->c));
	if (u->pidfile[0])
		write_pidfile(u);
	return r;
}

int qmig_update(const struct qmig_update_opts *o, struct qmig_update_result *out)
{
	struct upd u = {.o = o, .res = out, .new_pidfd = -1};
	int r;

	if (!o || !out || o->version < 1 || o->version > QMIG_UPDATE_OPTS_VERSION)
		return -EINVAL;
	memset(out, 0, sizeof(*out));
	out->guest_downtime_ms = -1;
	out->verified = -1;
	out->new_pid = -1;
	u.attach = o->src_qmp != NULL;
	r = qm_sr_journal_init(&u.j, o->journal_dir, o->job_id, "update",
			       u.attach ? "attach" : "launch");
	if (r < 0)
		r = qm_upd_fail(&u, r, "failed", "journal: %s", strerror(-r));
	else
		r = run(&u);
	if (r < 0 && !u.owner_new)
		rollback(&u);
	snprintf(out->owner, sizeof(out->owner), "%s", u.owner_new ? "new" : "old");
	if (!r) {
		snprintf(out->status, sizeof(out->status), "completed");
		snprintf(
		    out->message, sizeof(out->message),
		    "QEMU %s (pid %d) replaced by QEMU %s (pid %d), guest RAM (%llu MiB) kept in "
		    "place; %llu KiB of state moved",
		    out->old_qemu, u.old_pid, out->new_qemu, (int)u.new_pid,
		    (unsigned long long)(out->ram_bytes >> 20),
		    (unsigned long long)(out->transferred_bytes >> 10));
	} else if (!u.owner_new && u.c && strcmp(out->status, "refused")) {
		snprintf(out->message + strlen(out->message),
			 sizeof(out->message) - strlen(out->message),
			 "; the old QEMU keeps the guest%s", u.was_running ? " running" : "");
	}
	qm_sr_journal_remove(&u.j);
	qm_sr_saved_free(&u.sv);
	qm_probe_free(u.hb);
	qm_probe_free(u.nhb);
	qmig_schema_free(u.schema);
	/* Launch mode: the new QEMU goes at the end unless asked to stay. */
	if (!u.attach && u.nc && !o->keep_running)
		qmig_cmd_quit(u.nc);
	qmig_qmp_conn_close(u.nc);
	qmig_qmp_conn_close(u.c);
	if (u.new_pid > 0 && !u.new_reaped && !u.attach && !o->keep_running)
		qm_terminate(u.new_pid, u.new_pidfd, 5000, &(int){0});
	if (u.new_pidfd >= 0)
		close(u.new_pidfd);
	if (u.dir[0] && ((!u.attach && !o->keep_running) || (r < 0 && !u.owner_new)))
		qm_launch_rm_tree(u.dir);
	qmig_vm_free(u.vm);
	return r;
}
