/* Storage migration, the ends (see storage_int.h): the switchover pause
 * and what follows it (the NBD clients closed, the disks compared, the
 * destination told to run), removing the NBD pieces after a migration or
 * in a rollback, and what `qmigrate recover` removes for a dead job. Runs
 * on the engine's fiber like storage.c: waits suspend the step. Calls go
 * one way, from here into storage.c. */
#define QM_STORAGE_INTERNAL
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "launch/launch.h"
#include "journal/journal.h"
#include "qm_wait.h"
#include "storage.h"

int qm_storage_holds_dst(const struct qmig_migration *m)
{
	return m->storage && m->storage->n && !m->o.no_verify;
}

/* The mirrors' NBD client nodes: the concluded jobs dismissed, the nodes
 * deleted (closing one flushes it: the destination writes its image out). */
static int end_clients(struct qmig_migration *m)
{
	struct qm_storage *st = m->storage;
	struct side *src = &m->side[SRC];
	int r;

	for (int i = 0; i < st->n; i++) {
		r = qmig_cmd_job_dismiss(src->qmp, st->d[i].job);
		if (r < 0)
			return qm_qmp_fail(m, src, r, "job-dismiss");
		r = qmig_cmd_blockdev_del(src->qmp, st->d[i].nbd);
		if (r < 0)
			return qm_qmp_fail(m, src, r, "blockdev-del");
	}
	return 0;
}

static void compare_out(const struct qmig_migration *m, int i, char *out, size_t len)
{
	snprintf(out, len, "/tmp/qmigrate-compare.%d.%s.%d", (int)getpid(), m->job, i);
}

/* ---- NBD options for qemu-io and qemu-img --------------------------------- */

/* Append key=value to an option string, the value's commas doubled. */
static void opt_add(char *buf, size_t len, const char *key, const char *val)
{
	size_t n = strlen(buf);

	n += (size_t)snprintf(buf + n, n < len ? len - n : 0, "%s%s=", *buf ? "," : "", key);
	for (; *val && n + 2 < len; val++) {
		buf[n++] = *val;
		if (*val == ',')
			buf[n++] = ',';
	}
	if (n < len)
		buf[n] = 0;
}

void qm_storage_tls_object(struct qmig_migration *m, char *buf, size_t len)
{
	*buf = 0;
	if (!m->o.tls_dir)
		return;
	snprintf(buf, len, "tls-creds-x509,id=qmigrate-nbd-tls,endpoint=client");
	opt_add(buf, len, "dir", m->o.tls_dir);
}

int qm_storage_nbd_opts(struct qmig_migration *m, char *buf, size_t len, const char *host,
			unsigned port, const char *export, int tls)
{
	char p[16];

	*buf = 0;
	snprintf(p, sizeof(p), "%u", port);
	opt_add(buf, len, "driver", "nbd");
	opt_add(buf, len, "server.type", "inet");
	opt_add(buf, len, "server.host", host);
	opt_add(buf, len, "server.port", p);
	opt_add(buf, len, "export", export);
	if (tls && m->o.tls_dir) {
		opt_add(buf, len, "tls-creds", "qmigrate-nbd-tls");
		opt_add(buf, len, "tls-hostname", m->o.tls_hostname ? m->o.tls_hostname
									: m->o.dst_addr);
	}
	return strlen(buf) + 1 < len ? 0 : -ENAMETOOLONG;
}

/* Start qemu-img compare of disk i: 0 (pid in *pid), or <0 with why.
 * Both images on this host: the files (-U: the QEMUs hold them open).
 * Two hosts (nbd_cmp): both read through NBD, the source's read-only
 * export on its loopback and the destination's export, from the source's
 * namespace: qemu-img reads chunk by chunk, its memory bounded. */
static int compare_spawn(struct qmig_migration *m, int i, pid_t *pid, char *why, size_t len)
{
	struct qm_storage *st = m->storage;
	const struct qm_disk *k = &st->d[i];
	char out[160], obj[1200], sopts[600], dopts[1800];
	const char *argv[] = {"qemu-img", "compare", "-U", "-q", "-f", k->src_fmt,
			      "-F", k->dst_fmt, k->src_file, k->dst_file, NULL, NULL, NULL};
	struct qm_spawn s = {0};
	int pidfd = -1, r;

	if (!*k->src_fmt)
		argv[4] = argv[5] = "-U"; /* let qemu-img probe */
	if (!*k->dst_fmt)
		argv[6] = argv[7] = "-U";
	if (st->nbd_cmp) {
		int a = 2;

		if (qm_storage_nbd_opts(m, sopts, sizeof(sopts), "127.0.0.1", st->src_nbd_port,
					k->name, 0) < 0 ||
		    qm_storage_nbd_opts(m, dopts, sizeof(dopts), m->o.dst_addr, st->nbd_port,
					k->name, 1) < 0) {
			snprintf(why, len, "NBD options too long");
			return -ENAMETOOLONG;
		}
		qm_storage_tls_object(m, obj, sizeof(obj));
		argv[a++] = "-q";
		if (*obj) {
			argv[a++] = "--object";
			argv[a++] = obj;
		}
		argv[a++] = "--image-opts";
		argv[a++] = sopts;
		argv[a++] = dopts;
		argv[a] = NULL;
		s.netns = m->o.src_netns;
	}
	compare_out(m, i, out, sizeof(out));
	s.argv = argv;
	s.out_path = out;
	s.read_any = 1; /* the images belong to the QEMUs' (unprivileged) users */
	r = qm_spawn(&s, pid, &pidfd, why, len);
	if (r < 0)
		return r;
	if (pidfd >= 0)
		close(pidfd);
	return 0;
}

/* The verdict of an exited comparison (wait status st): 0 identical, 1
 * differ, <0 could not compare (why). */
static int compare_verdict(struct qmig_migration *m, int i, int st, char *why, size_t len)
{
	char out[160];

	compare_out(m, i, out, sizeof(out));
	if (WIFEXITED(st) && WEXITSTATUS(st) <= 1) {
		unlink(out);
		return WEXITSTATUS(st);
	}
	{
		char *tail = qm_launch_read_tail(out, 200);

		snprintf(why, len, "qemu-img compare failed: %s", tail && *tail ? tail : "?");
		free(tail);
	}
	unlink(out);
	return -EIO;
}

/* Wait for it (until deadline), then its verdict. */
static int compare_reap(struct qmig_migration *m, int i, pid_t pid, int64_t deadline, char *why,
			size_t len)
{
	char out[160];
	int st = 0, r;

	r = qm_wait_pid(pid, &st, deadline);
	if (r == -ETIMEDOUT || r == -ECANCELED) {
		kill(pid, SIGKILL);
		qm_wait_pid(pid, &st, 0);
		compare_out(m, i, out, sizeof(out));
		unlink(out);
		snprintf(why, len, "qemu-img compare %s", r == -ETIMEDOUT ? "timed out" : "cancelled");
		return r;
	}
	if (r < 0) {
		compare_out(m, i, out, sizeof(out));
		unlink(out);
		snprintf(why, len, "qemu-img compare: %s", strerror(-r));
		return r;
	}
	return compare_verdict(m, i, st, why, len);
}

static int readable(const struct qm_storage *st, const struct qm_disk *k)
{
	if (st->nbd_cmp)
		return st->src_srv == 1; /* every export added */
	return !access(k->src_file, R_OK) && !access(k->dst_file, R_OK);
}

/* Both images are final once the mirrors have ended: the source is
 * paused for good, the destination has not run. A raw destination image
 * reads right through the page cache its QEMU wrote into; any other
 * format only once its QEMU has flushed it (metadata in the caches of the
 * destination's driver), which closing the NBD client does. So the
 * comparison need not wait for the RAM: it runs while QEMU sends the
 * device state and the destination loads it. */
void qm_storage_compare_start(struct qmig_migration *m, int flushed)
{
	struct qm_storage *st = m->storage;

	if (!qm_storage_holds_dst(m))
		return;
	if (!st->cmp_started)
		st->cmp_t0_ns = qm_now_ns();
	st->cmp_started = 1;
	for (int i = 0; i < st->n; i++) {
		char why[300] = "";

		if (st->cmp_spawned[i] || (!flushed && (st->nbd_cmp ||
							 strcmp(st->d[i].dst_fmt, "raw"))))
			continue;
		st->cmp_spawned[i] = 1;
		st->cmp_pid[i] = 0;
		if (readable(st, &st->d[i]) && compare_spawn(m, i, &st->cmp_pid[i], why, sizeof(why)) < 0) {
			qm_log(m, QMIG_LOG_WARN, "storage: disk '%s': %s", st->d[i].name, why);
			st->cmp_pid[i] = 0;
		}
	}
}

/* Reap the comparisons that ended: 1 all ended identical, 0 some still
 * running, -1 one differs or failed (qm_storage_verify reports it). */
static int compares_reaped(struct qm_storage *st)
{
	int left = 0;

	for (int i = 0; i < st->n; i++) {
		int w = 0;

		if (st->cmp_done[i]) {
			if (!WIFEXITED(st->cmp_status[i]) || WEXITSTATUS(st->cmp_status[i]))
				return -1;
			continue;
		}
		if (st->cmp_pid[i] <= 0) {
			left++;
			continue;
		}
		if (waitpid(st->cmp_pid[i], &w, WNOHANG) != st->cmp_pid[i]) {
			left++;
			continue;
		}
		st->cmp_done[i] = 1;
		st->cmp_status[i] = w;
		st->cmp_pid[i] = 0;
		if (!WIFEXITED(w) || WEXITSTATUS(w))
			return -1;
	}
	return !left;
}

/* ---- the destination's images made durable -------------------------------- */

static void flush_out(const struct qmig_migration *m, int i, char *out, size_t len)
{
	snprintf(out, len, "/tmp/qmigrate-flush.%d.%s.%d", (int)getpid(), m->job, i);
}

/* The NBD clients were opened with cache.no-flush, so nothing the
 * mirrors wrote is known to be on the destination's disks yet: only in
 * its page cache (and its QEMU's caches). Flushed now, off the guest's
 * downtime: per disk, qemu-io connects to the destination's export (from
 * the source's namespace, the mirrors' way, TLS as they had it) and sends
 * one NBD flush, which the destination's QEMU turns into a flush of the
 * disk's node (qcow2 metadata, then fdatasync). Without qemu-io, the
 * images being on this host: a child's fdatasync of each. */
void qm_storage_flush_start(struct qmig_migration *m)
{
	struct qm_storage *st = m->storage;

	if (!st || !st->noflush || st->flush_started)
		return;
	st->flush_started = 1;
	st->flush_t0_ns = qm_now_ns();
	for (int i = 0; i < st->n; i++) {
		char out[160], obj[1200], opts[1800], why[300] = "";
		const char *argv[] = {"qemu-io", "--image-opts", opts, "-c", "flush", NULL, NULL,
				      NULL};
		struct qm_spawn sp = {0};
		int pidfd = -1;

		st->flush_pid[i] = 0;
		if (qm_storage_nbd_opts(m, opts, sizeof(opts), m->o.dst_addr, st->nbd_port,
					st->d[i].name, 1) < 0)
			goto local;
		qm_storage_tls_object(m, obj, sizeof(obj));
		if (*obj) {
			argv[1] = "--object";
			argv[2] = obj;
			argv[3] = "--image-opts";
			argv[4] = opts;
			argv[5] = "-c";
			argv[6] = "flush";
		}
		flush_out(m, i, out, sizeof(out));
		sp.argv = argv;
		sp.out_path = out;
		sp.netns = m->o.src_netns;
		if (qm_spawn(&sp, &st->flush_pid[i], &pidfd, why, sizeof(why)) == 0) {
			if (pidfd >= 0)
				close(pidfd);
			continue;
		}
		qm_log(m, QMIG_LOG_DEBUG, "storage: qemu-io: %s", why);
local:
		st->flush_pid[i] = fork();
		if (st->flush_pid[i] == 0) { /* async-signal-safe calls only */
			int fd = open(st->d[i].dst_file, O_RDONLY | O_CLOEXEC | O_NOCTTY);

			_exit(fd >= 0 && fdatasync(fd) == 0 ? 0 : 3);
		}
		if (st->flush_pid[i] < 0)
			st->flush_pid[i] = 0;
	}
}

/* 0: every disk flushed (or nothing to flush); <0: one failed, timed out
 * or was not run (why logged). */
int qm_storage_flush_wait(struct qmig_migration *m, int64_t deadline)
{
	struct qm_storage *st = m->storage;
	int bad = 0;

	if (!st || !st->noflush || st->flush_end_ns)
		return st && st->flush_failed ? -EIO : 0;
	if (!st->flush_started)
		qm_storage_flush_start(m);
	for (int i = 0; i < st->n; i++) {
		char out[160], *tail = NULL;
		int w = 0, r;

		flush_out(m, i, out, sizeof(out));
		if (st->flush_pid[i] <= 0) {
			qm_log(m, QMIG_LOG_ERROR, "storage: disk '%s': the destination's image could "
			       "not be flushed (no process)", st->d[i].name);
			bad = 1;
			continue;
		}
		r = qm_wait_pid(st->flush_pid[i], &w, deadline);
		if (r == -ETIMEDOUT || r == -ECANCELED) {
			kill(st->flush_pid[i], SIGKILL);
			qm_wait_pid(st->flush_pid[i], &w, 0);
		}
		st->flush_pid[i] = 0;
		tail = qm_launch_read_tail(out, 300);
		unlink(out);
		/* qemu-io says "flush failed" (or cannot connect) on its output. */
		if (r < 0 || !WIFEXITED(w) || WEXITSTATUS(w) ||
		    (tail && (strstr(tail, "failed") || strstr(tail, "rror")))) {
			qm_log(m, QMIG_LOG_ERROR, "storage: disk '%s': the destination's image could "
			       "not be flushed: %s", st->d[i].name, r < 0 ? strerror(-r)
			       : tail && *tail ? tail : "exit status");
			bad = 1;
		}
		free(tail);
	}
	st->flush_end_ns = qm_now_ns();
	st->flush_failed = bad;
	return bad ? -EIO : 0;
}

static void flush_stop(struct qm_storage *st)
{
	int w;

	for (int i = 0; st && i < QM_MAX_DISKS; i++)
		if (st->flush_pid[i] > 0) {
			kill(st->flush_pid[i], SIGKILL);
			qm_wait_pid(st->flush_pid[i], &w, 0);
			st->flush_pid[i] = 0;
		}
}

int qm_storage_durable(struct qmig_migration *m)
{
	struct qm_storage *st = m->storage;

	if (!st || !st->n || !st->noflush || !st->switched)
		return 0;
	if (qm_storage_flush_wait(m, qm_now_ns() + COMPARE_NS) < 0)
		return qm_fail(m, -EIO, "storage: the destination's images could not be flushed "
			       "after the switchover, so they are not known to be durable; the "
			       "source QEMU is kept paused: its disks are complete up to the "
			       "switchover, keep them until the destination host has synced");
	return 0;
}

/* ---- the source's disks exported for the comparison (two hosts) --------- */

static int port_in(struct qmig_migration *m, struct qmig_port **port, const char *bind,
		   const char *netns)
{
	struct qmig_port_opts po = QMIG_PORT_OPTS_INIT;
	char msg[256] = "";

	po.lo = m->o.port_lo;
	po.hi = m->o.port_hi;
	po.bind_addr = bind;
	po.lock_dir = m->o.port_lock_dir;
	po.netns = netns;
	return qmig_port_alloc(port, &po, msg, sizeof(msg));
}

/* The source is paused for good (completed): an NBD server on its
 * loopback and a read-only export of each disk, so that both disks can be
 * read where the source is. The destination's export is still up. */
static void src_export(struct qmig_migration *m)
{
	struct qm_storage *st = m->storage;
	struct side *src = &m->side[SRC];
	struct json_object *a;
	int r;

	if (!st->nbd_cmp || st->src_srv)
		return;
	st->src_srv = -1;
	r = port_in(m, &st->src_port, "127.0.0.1", m->o.src_netns);
	if (r < 0) {
		qm_log(m, QMIG_LOG_WARN, "storage: no port for the source's NBD server: %s",
		       strerror(-r));
		return;
	}
	st->src_nbd_port = qmig_port_number(st->src_port);
	a = json_object_new_object();
	json_object_object_add(a, "port", json_object_new_int((int)st->src_nbd_port));
	json_object_object_add(a, "why", json_object_new_string(
		"read-only exports of the source's disks, to compare them (removed afterwards)"));
	qm_journal(m, src->name, "nbd-server-start", a);
	json_object_put(a);
	r = qmig_cmd_nbd_server_start_inet(src->qmp, "127.0.0.1", st->src_nbd_port);
	if (r < 0) {
		qm_log(m, QMIG_LOG_WARN, "source: nbd-server-start: %s", qmig_qmp_conn_error(src->qmp));
		return;
	}
	st->src_srv = 2; /* started, exports not all added yet */
	for (int i = 0; i < st->n; i++) {
		r = qmig_cmd_block_export_add_ro(src->qmp, st->d[i].exp, st->d[i].src_node,
						 st->d[i].name);
		if (r < 0) {
			qm_log(m, QMIG_LOG_WARN, "source: block-export-add %s: %s", st->d[i].name,
			       qmig_qmp_conn_error(src->qmp));
			return;
		}
	}
	st->src_srv = 1;
}

/* Our exports removed from one QEMU, then the NBD server stopped. */
static void exports_away(struct qmig_migration *m, struct side *s, int stop_server)
{
	struct qm_storage *st = m->storage;
	char ids[4096];
	int64_t deadline = qm_now_ns() + CLEAN_WAIT_NS;

	if (qmig_cmd_query_export_ids(s->qmp, ids, sizeof(ids)) == 0)
		for (int i = 0; i < st->n; i++) {
			char line[80];

			snprintf(line, sizeof(line), "%s\n", st->d[i].exp);
			if (strstr(ids, line))
				qmig_cmd_block_export_del(s->qmp, st->d[i].exp, 1);
		}
	/* Removal completes when the last client has gone. */
	while (qmig_cmd_query_export_ids(s->qmp, ids, sizeof(ids)) == 0 &&
	       qm_storage_has_prefix(ids, "qmigrate-exp-") && qm_now_ns() < deadline)
		if (qm_sleep_until(qm_now_ns() + 10 * MS) == -ECANCELED)
			break;
	if (stop_server) {
		int r = qmig_cmd_nbd_server_stop(s->qmp);

		if (r < 0 && r != -ECONNRESET)
			qm_log(m, QMIG_LOG_WARN, "%s: nbd-server-stop: %s", s->name,
			       qmig_qmp_conn_error(s->qmp));
	}
	if (qmig_cmd_query_export_ids(s->qmp, ids, sizeof(ids)) == 0 &&
	    qm_storage_has_prefix(ids, "qmigrate-exp-"))
		qm_log(m, QMIG_LOG_ERROR, "%s: an NBD export of ours is still there", s->name);
}

static void src_unexport(struct qmig_migration *m)
{
	struct qm_storage *st = m->storage;
	struct side *src = &m->side[SRC];

	if (st->src_srv > 0 && src->qmp && !src->gone)
		exports_away(m, src, 1);
	st->src_srv = 0;
	qmig_port_free(st->src_port);
	st->src_port = NULL;
}

/* A failed or cancelled migration, a lost connection: stop waiting. */
static int give_up(const struct qmig_migration *m)
{
	const struct side *src = &m->side[SRC], *dst = &m->side[DST];

	return m->error || m->cancel_requested || !strcmp(src->mig_status, "failed") ||
	       !strcmp(src->mig_status, "cancelled") || !strcmp(dst->mig_status, "failed");
}

/* The destination's images that this host has open (wb_fd) written out
 * by a child process (fdatasync: the page cache the mirrors' last copy
 * wrote into), so that the flush of the NBD clients' close finds little
 * left: that close holds the source QEMU's main loop, this holds nothing.
 * Returns the child's pid, or 0 when there is nothing to flush here. */
static pid_t flush_local_start(struct qm_storage *st)
{
	int any = 0;
	pid_t pid;

	for (int i = 0; i < st->n; i++)
		any |= st->wb_fd[i] >= 0;
	if (!any)
		return 0;
	pid = fork();
	if (pid == 0) { /* async-signal-safe calls only */
		for (int i = 0; i < st->n; i++)
			if (st->wb_fd[i] >= 0)
				fdatasync(st->wb_fd[i]);
		_exit(0);
	}
	return pid > 0 ? pid : 0;
}

/* The NBD clients (cache.no-flush: their close flushes nothing) deleted
 * once the destination may run: off the downtime. A failure is only
 * logged (the finish checks that nothing of ours is left). */
static int clients_after(struct qmig_migration *m)
{
	struct qm_storage *st = m->storage;

	struct side *src = &m->side[SRC];

	if (st->ts_deleted || m->error)
		return m->error;
	for (int i = 0; i < st->n; i++)
		if (qmig_cmd_job_dismiss(src->qmp, st->d[i].job) < 0 ||
		    qmig_cmd_blockdev_del(src->qmp, st->d[i].nbd) < 0)
			qm_log(m, QMIG_LOG_WARN, "source: the NBD client of disk '%s': %s",
			       st->d[i].name, qmig_qmp_conn_error(src->qmp));
	st->ts_deleted = qm_now_ns();
	return 0;
}

/* After migrate-continue, with the destination held (stop before its
 * migrate-incoming) for the comparison. With cache.no-flush on the NBD
 * clients, nothing of the engine's stands between the source's
 * "completed" and the destination's cont but the comparison: the
 * engine's flush of the destination's images starts now and runs on
 * (qm_storage_durable waits for it before the job completes), the NBD
 * clients are deleted after the cont. Without no-flush (no qemu-io here),
 * closing the clients flushes the destination's images, which must come
 * before the destination runs; that close holds the source QEMU's main
 * loop, which the device-state stage also needs, so it waits for the
 * source's "completed". Reaching a destination still loading, `cont`
 * only turns its autostart back on: it runs as soon as it has loaded, as
 * it would without storage; one loaded already runs now. So the
 * destination waits for the comparison only as long as that outlasts the
 * migration's end (disk_verify_ms, from the first time the engine saw it
 * loaded), never for the engine's own steps.
 * An early cont activates the destination's images in QEMU: ours are
 * active already (their exports), but one on shared storage must wait for
 * the source to let go of it, so with such a disk the cont waits for the
 * destination's "completed". Not when something else holds the
 * destination (--verify=memory, offline) or a disk cannot be compared
 * here. A comparison that differs or fails, or a migration that fails: no
 * cont, and qm_storage_verify has the last word with the destination
 * paused. Returns 0 or m->error. */
int qm_storage_after_continue(struct qmig_migration *m)
{
	struct qm_storage *st = m->storage;
	struct side *src = &m->side[SRC], *dst = &m->side[DST];
	struct json_object *a;
	int64_t deadline = qm_now_ns() + COMPARE_NS, loaded = 0;
	int early = !m->o.verify_memory && !m->offline, r;
	pid_t flusher;

	qm_storage_compare_start(m, 0);
	/* With no-flush, nothing needs the NBD clients closed before the
	 * destination runs: the engine's own flush starts once it was told to
	 * run (not before: on a small host its processes would compete with
	 * the QEMUs' device-state stage), the clients go after the cont.
	 * Without, their close flushes the destination's images and must come
	 * first: a child's fdatasync writes them out meanwhile. */
	flusher = st->noflush ? 0 : flush_local_start(st);
	while (strcmp(src->mig_status, "completed")) {
		if (!loaded && !strcmp(dst->mig_status, "completed"))
			loaded = qm_now_ns();
		if (give_up(m))
			break;
		if (qm_now_ns() > deadline)
			break;
		if (qm_sleep_until(qm_now_ns() + 2 * MS) == -ECANCELED)
			break;
	}
	st->ts_completed = qm_now_ns();
	if (flusher > 0) {
		int w;

		if (qm_wait_pid(flusher, &w, deadline) < 0) {
			kill(flusher, SIGKILL);
			qm_wait_pid(flusher, &w, 0);
		}
	}
	qm_storage_writeback_close(st);
	if (give_up(m))
		return m->error;
	if (!st->noflush) {
		if (end_clients(m) < 0)
			return m->error;
		st->ts_deleted = qm_now_ns();
	}
	src_export(m);
	/* A file of another format than raw holds what its QEMU has cached
	 * only once flushed: compared after the flush (read through NBD, the
	 * destination's QEMU answers from its caches: at once). */
	for (int i = 0; st->noflush && !st->nbd_cmp && i < st->n; i++)
		if (strcmp(st->d[i].dst_fmt, "raw")) {
			if (qm_storage_flush_wait(m, deadline) < 0)
				return m->error;
			break;
		}
	qm_storage_compare_start(m, 1);
	for (int i = 0; i < st->n; i++)
		if (!st->cmp_done[i] && st->cmp_pid[i] <= 0)
			early = 0; /* not compared here: qm_storage_verify says why */
	if (!early) {
		qm_storage_flush_start(m);
		return st->ts_deleted ? 0 : clients_after(m);
	}
	/* Journaled while the comparisons run, not after them. */
	a = json_object_new_object();
	json_object_object_add(a, "why", json_object_new_string("the disks compared equal"));
	qm_journal(m, dst->name, "cont", a);
	json_object_put(a);
	for (;;) {
		r = compares_reaped(st);
		if (r < 0) /* qm_storage_verify fails the migration */
			return st->ts_deleted ? 0 : clients_after(m);
		if (!loaded && !strcmp(dst->mig_status, "completed"))
			loaded = qm_now_ns();
		if (r == 1 && (!st->other_rw || loaded))
			break;
		if (give_up(m) || qm_now_ns() > deadline)
			return m->error;
		if (qm_sleep_until(qm_now_ns() + 2 * MS) == -ECANCELED)
			return m->error;
	}
	st->cmp_end_ns = st->ts_compared = qm_now_ns();
	r = qmig_cmd_cont(dst->qmp);
	if (r < 0)
		return qm_qmp_fail(m, dst, r, "cont (the disks compared equal)");
	st->ts_cont = qm_now_ns();
	st->early_cont = 1;
	/* What the destination waited, loaded, for the comparison (verification,
	 * not downtime: the guest-observed downtime leaves it out). */
	m->res.disk_verify_ms = loaded ? (uint64_t)((st->ts_cont - loaded) / MS) : 0;
	qm_storage_flush_start(m);
	return st->ts_deleted ? 0 : clients_after(m);
}

/* ---- the switchover pause ------------------------------------------------- */

/* Inside the pause every millisecond is downtime, so it holds only what
 * must precede the switchover: the cancel of each mirror (a ready mirror
 * then copies its last dirty blocks and completes) and the wait for it.
 * One journal record covers the whole pause. When the destination stays
 * paused afterwards (for the comparison), the client nodes are closed
 * after migrate-continue (see qm_storage_after_continue): their flush
 * still comes before the destination runs. */
int qm_storage_switchover(struct qmig_migration *m)
{
	struct qm_storage *st = m->storage;
	struct side *src = &m->side[SRC];
	struct json_object *a, *jobs;
	char err[300] = "";
	int64_t t0 = qm_now_ns(), t1, t2, t3, t4;
	int late, r;

	if (!st || !st->n || st->switched)
		return 0;
	st->switched = 1;
	st->ts_pause = t0;
	late = qm_storage_holds_dst(m);
	a = json_object_new_object();
	jobs = json_object_new_array();
	for (int i = 0; i < st->n; i++)
		json_object_array_add(jobs, json_object_new_string(st->d[i].job));
	json_object_object_add(a, "block-job-cancel", jobs);
	json_object_object_add(a, "force", json_object_new_boolean(0));
	json_object_object_add(a, "then", json_object_new_string(
		late ? "migrate-continue, blockdev-del" : "blockdev-del, migrate-continue"));
	qm_journal(m, src->name, "storage-switchover", a);
	json_object_put(a);
	for (int i = 0; i < st->n; i++) {
		r = qmig_cmd_block_job_cancel(src->qmp, st->d[i].job, 0);
		if (r < 0)
			return qm_qmp_fail(m, src, r, "block-job-cancel");
	}
	t1 = st->ts_cancel = qm_now_ns();
	r = qm_storage_wait_concluded(m, t0 + CANCEL_WAIT_NS, err, sizeof(err));
	t2 = st->ts_concluded = qm_now_ns();
	if (r < 0)
		return r == -ETIMEDOUT
			? qm_fail(m, r, "storage: the mirrors did not finish within %lld s of the "
				  "switchover", CANCEL_WAIT_NS / 1000 / MS)
			: qm_qmp_fail(m, src, r, "query-block-jobs");
	if (*err)
		return qm_fail(m, -EIO, "storage: a mirror ended with an error at the switchover "
				"(%s); the source keeps the guest", err);
	/* Without no-flush the clients' close must flush the destination's
	 * images before it runs: inside the pause. With it, after. */
	if (!late && !st->noflush) {
		if (end_clients(m) < 0)
			return m->error;
		st->ts_deleted = qm_now_ns();
	}
	if (!late)
		qm_storage_writeback_close(st); /* else kept for qm_storage_after_continue */
	r = qmig_cmd_migrate_continue(src->qmp, "pre-switchover");
	m->res.disk_cancel_ms = (uint64_t)((qm_now_ns() - t0) / MS);
	if (r < 0)
		return qm_qmp_fail(m, src, r, "migrate-continue");
	t3 = st->ts_continue = qm_now_ns();
	if (!late && clients_after(m) < 0) /* the flush: in qm_storage_verify */
		return m->error;
	if (late && qm_storage_after_continue(m) < 0)
		return m->error;
	t4 = qm_now_ns();
	qm_log(m, QMIG_LOG_INFO, "storage: mirrors ended consistently in %llu ms of the "
	       "switchover pause (cancel sent %lld ms, last copy %lld ms, continue %lld ms); "
	       "NBD clients closed %s%s", (unsigned long long)m->res.disk_cancel_ms,
	       (long long)((t1 - t0) / MS), (long long)((t2 - t1) / MS),
	       (long long)((t3 - t2) / MS), late ? "once the source completed" : "in the pause",
	       st->early_cont ? "; the disks compared equal, the destination told to run" : "");
	(void)t4;
	return 0;
}

void qm_storage_compare_stop(struct qmig_migration *m)
{
	struct qm_storage *st = m->storage;
	char out[160];
	int w;

	for (int i = 0; st && st->cmp_started && i < st->n; i++) {
		if (st->cmp_pid[i] > 0) {
			kill(st->cmp_pid[i], SIGKILL);
			qm_wait_pid(st->cmp_pid[i], &w, 0);
			st->cmp_pid[i] = 0;
		}
		compare_out(m, i, out, sizeof(out));
		unlink(out);
	}
}

int qm_storage_verify(struct qmig_migration *m)
{
	struct qm_storage *st = m->storage;
	int64_t t0 = qm_now_ns();
	int all = 1, r, held = !m->o.verify_memory && !m->offline;

	/* The destination runs (or is about to): the engine's flush of its
	 * images, when not started yet (no comparison held it). */
	if (st && st->switched)
		qm_storage_flush_start(m);
	if (!qm_storage_holds_dst(m))
		return 0;
	/* The journal before the wait: the comparison usually runs still, so
	 * the record's write is not one more wait of the paused guest. */
	if (st->early_cont)
		held = 0; /* told to run already (qm_storage_after_continue) */
	else if (held) {
		struct json_object *a = json_object_new_object();

		json_object_object_add(a, "why", json_object_new_string(
			"after comparing the disks"));
		qm_journal(m, m->side[DST].name, "cont", a);
		json_object_put(a);
	}
	for (int i = 0; i < st->n; i++) {
		struct qm_disk *k = &st->d[i];
		char why[300] = "";
		pid_t pid = st->cmp_started ? st->cmp_pid[i] : 0;

		if (!readable(st, k)) {
			qm_log(m, QMIG_LOG_WARN, "storage: disk '%s' not compared: %s", k->name,
			       st->nbd_cmp ? "the source's disk could not be exported over NBD"
					   : "its images are not both readable here");
			all = -1;
			continue;
		}
		if (st->cmp_started && st->cmp_done[i]) {
			r = compare_verdict(m, i, st->cmp_status[i], why, sizeof(why));
		} else {
			r = pid ? 0 : compare_spawn(m, i, &pid, why, sizeof(why));
			if (!r) {
				r = compare_reap(m, i, pid, t0 + COMPARE_NS, why, sizeof(why));
				st->cmp_pid[i] = 0;
			}
		}
		if (r == 1) {
			qm_storage_compare_stop(m);
			m->res.disks_verified = 0;
			m->res.verified = 0;
			m->res.disk_verify_ms = (uint64_t)((qm_now_ns() - t0) / MS);
			return qm_fail(m, -EBADMSG, "storage: disk '%s' differs between the source "
				       "(%s) and the destination (%s) after the mirror; the "
				       "destination was not started", k->name, k->src_file,
				       k->dst_file);
		}
		if (r < 0) {
			qm_log(m, QMIG_LOG_WARN, "storage: disk '%s' not compared: %s", k->name, why);
			all = -1;
		}
	}
	/* The time the destination waited for the comparison (it may have
	 * been over before the destination had loaded the device state). */
	if (!st->early_cont)
		m->res.disk_verify_ms = (uint64_t)((qm_now_ns() - t0) / MS);
	m->res.disks_verified = all;
	if (all == 1)
		qm_log(m, QMIG_LOG_INFO, "storage: %d disk%s identical on both sides (compared in "
		       "%llu ms, %llu of them with the destination waiting)", st->n,
		       st->n > 1 ? "s" : "", (unsigned long long)(((st->cmp_end_ns ? st->cmp_end_ns
		       : qm_now_ns()) - (st->cmp_started ? st->cmp_t0_ns : t0)) / MS),
		       (unsigned long long)m->res.disk_verify_ms);
	if (held) {
		r = qmig_cmd_cont(m->side[DST].qmp);
		if (r < 0)
			return qm_qmp_fail(m, &m->side[DST], r, "cont (after comparing the disks)");
	}
	return 0;
}

/* ---- cleanup ---------------------------------------------------------------- */

/* The destination: our exports away, then the server we started. */
static void clean_destination(struct qmig_migration *m)
{
	struct qm_storage *st = m->storage;
	struct side *dst = &m->side[DST];

	if (!dst->qmp || dst->gone)
		return;
	exports_away(m, dst, st->srv_step >= 0 && st->srv_step < m->plan.exec);
}

/* The source: no mirror job and no NBD node of ours left. */
static void check_source(struct qmig_migration *m)
{
	struct side *src = &m->side[SRC];
	struct qmig_block_job *j = NULL;
	char names[16384];
	int n = 0;

	if (!src->qmp || src->gone)
		return;
	if (qmig_cmd_query_block_jobs(src->qmp, &j, &n) == 0) {
		for (int i = 0; i < n; i++)
			if (!strncmp(j[i].id, "qmigrate-", 9))
				qm_log(m, QMIG_LOG_ERROR, "source: block job %s is still there (%s)",
				       j[i].id, j[i].status);
		free(j);
	}
	if (qmig_cmd_query_node_names(src->qmp, names, sizeof(names)) == 0 &&
	    qm_storage_has_prefix(names, "qmigrate-nbd-"))
		qm_log(m, QMIG_LOG_ERROR, "source: an NBD client node of ours is still there");
}

/* The switchover on the engine's clock, ms from the pre-switchover pause's
 * start (-1: did not happen), as one "disk" record: where the downtime
 * and the destination's wait go. */
static void emit_timeline(struct qmig_migration *m)
{
	struct qm_storage *st = m->storage;
	struct json_object *rec;
	const struct {
		const char *k;
		int64_t v;
	} t[] = {
		{"cancel_sent_ms", st->ts_cancel},    {"concluded_ms", st->ts_concluded},
		{"clients_deleted_ms", st->ts_deleted}, {"continued_ms", st->ts_continue},
		{"source_completed_ms", st->ts_completed}, {"compared_ms", st->ts_compared},
		{"cont_ms", st->ts_cont},              {"flushed_ms", st->flush_end_ns},
	};

	if (!st->ts_pause)
		return;
	rec = json_object_new_object();
	json_object_object_add(rec, "what", json_object_new_string("switchover"));
	json_object_object_add(rec, "no_flush", json_object_new_boolean(st->noflush));
	json_object_object_add(rec, "compared_via", json_object_new_string(
		st->nbd_cmp ? "nbd" : "files"));
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		json_object_object_add(rec, t[i].k, json_object_new_int64(
			t[i].v ? (t[i].v - st->ts_pause) / MS : -1));
	if (st->flush_end_ns && st->flush_t0_ns)
		json_object_object_add(rec, "flush_ms", json_object_new_int64(
			(st->flush_end_ns - st->flush_t0_ns) / MS));
	qm_emit(m, "disk", rec, NULL);
}

int qm_storage_finish(struct qmig_migration *m)
{
	struct qm_storage *st = m->storage;
	int keep = 0;

	if (!st || !st->n || st->cleaned || m->o.dry_run)
		return 0;
	st->cleaned = 1;
	qm_storage_compare_stop(m);
	qm_storage_writeback_close(st);
	/* Before the exports go: the flush may still be talking to them. */
	if (st->switched && qm_storage_flush_wait(m, qm_now_ns() + COMPARE_NS) < 0) {
		qm_log(m, QMIG_LOG_ERROR, "storage: the destination's images could not be made "
		       "durable (flush failed): the source QEMU is kept (paused), its disks are "
		       "complete up to the switchover; do not discard them before the "
		       "destination's disks are flushed (sync on the destination host)");
		keep = 1;
	} else if (st->noflush && st->flush_end_ns) {
		qm_log(m, QMIG_LOG_INFO, "storage: the destination's images flushed in %lld ms "
		       "after the switchover", (long long)((st->flush_end_ns - st->flush_t0_ns) / MS));
	}
	emit_timeline(m);
	src_unexport(m);
	clean_destination(m);
	check_source(m);
	qmig_port_free(st->port);
	st->port = NULL;
	return keep;
}

void qm_storage_rollback(struct qmig_migration *m)
{
	struct qm_storage *st = m->storage;
	struct side *src = &m->side[SRC];
	char names[16384];

	if (!st || !st->n || st->cleaned)
		return;
	st->cleaned = 1;
	qm_storage_compare_stop(m);
	flush_stop(st);
	qm_storage_writeback_close(st);
	src_unexport(m);
	if (src->qmp && !src->gone) {
		struct qmig_block_job *j = NULL;
		int n = 0, any = 0;

		if (qmig_cmd_query_block_jobs(src->qmp, &j, &n) == 0) {
			for (int i = 0; i < st->n; i++) {
				struct qmig_block_job *k = qm_storage_find_job(j, n, st->d[i].job);

				if (!k)
					continue;
				any = 1;
				if (!strcmp(k->status, "concluded"))
					continue;
				/* A client stuck on a dead link would hold the cancel
				 * until TCP gives up: cut it first. */
				qmig_cmd_yank_block_node(src->qmp, st->d[i].nbd);
				qm_journal(m, src->name, "block-job-cancel", NULL);
				qmig_cmd_block_job_cancel(src->qmp, st->d[i].job, 1);
			}
			free(j);
		}
		if (any && qm_storage_wait_concluded(m, qm_now_ns() + CLEAN_WAIT_NS, NULL, 0) < 0)
			qm_log(m, QMIG_LOG_WARN, "source: the mirrors did not stop within %lld s",
			       CLEAN_WAIT_NS / 1000 / MS);
		for (int i = 0; any && i < st->n; i++)
			qmig_cmd_job_dismiss(src->qmp, st->d[i].job);
		if (qmig_cmd_query_node_names(src->qmp, names, sizeof(names)) == 0)
			for (int i = 0; i < st->n; i++) {
				char line[80];

				snprintf(line, sizeof(line), "%s\n", st->d[i].nbd);
				if (strstr(names, line)) {
					qm_journal(m, src->name, "blockdev-del", NULL);
					if (qmig_cmd_blockdev_del(src->qmp, st->d[i].nbd) < 0)
						qm_log(m, QMIG_LOG_WARN, "source: blockdev-del %s: %s",
						       st->d[i].nbd, qmig_qmp_conn_error(src->qmp));
				}
			}
	}
	clean_destination(m);
	check_source(m);
	qmig_port_free(st->port);
	st->port = NULL;
}

void qm_storage_free(struct qmig_migration *m)
{
	if (!m->storage)
		return;
	qm_storage_compare_stop(m);
	flush_stop(m->storage);
	qm_storage_writeback_close(m->storage);
	qmig_port_free(m->storage->port);
	qmig_port_free(m->storage->src_port);
	free(m->storage);
	m->storage = NULL;
}

/* For `qmigrate recover` (a dead job: no bookkeeping, only names): what a
 * job of ours left in one QEMU, by the qmigrate- prefixes. The source:
 * mirrors yanked, force-cancelled and dismissed, NBD client nodes
 * deleted; both: our exports removed (the source's: read-only, for the
 * comparison across hosts) and, when there were any, the NBD server
 * stopped. Returns how many things it removed. */
int qm_storage_scrub(struct qmig_qmp_conn *c, int source)
{
	char names[16384], line[160];
	int64_t deadline = qm_now_ns() + CLEAN_WAIT_NS;
	int removed = 0;

	if (!c)
		return 0;
	if (source) {
		struct qmig_block_job *j = NULL;
		int n = 0, left;

		if (qmig_cmd_query_block_jobs(c, &j, &n) == 0) {
			for (int i = 0; i < n; i++) {
				if (strncmp(j[i].id, "qmigrate-mirror-", 16))
					continue;
				if (strcmp(j[i].status, "concluded")) {
					snprintf(line, sizeof(line), "qmigrate-nbd-%s", j[i].id + 16);
					qmig_cmd_yank_block_node(c, line);
					qmig_cmd_block_job_cancel(c, j[i].id, 1);
				}
				removed++;
			}
			free(j);
		}
		do { /* until none of ours is still running */
			left = 0;
			j = NULL;
			if (qmig_cmd_query_block_jobs(c, &j, &n) < 0)
				break;
			for (int i = 0; i < n; i++)
				if (!strncmp(j[i].id, "qmigrate-mirror-", 16)) {
					if (!strcmp(j[i].status, "concluded"))
						qmig_cmd_job_dismiss(c, j[i].id);
					else
						left++;
				}
			free(j);
		} while (left && qm_now_ns() < deadline &&
			 qm_sleep_until(qm_now_ns() + 20 * MS) != -ECANCELED);
		if (qmig_cmd_query_node_names(c, names, sizeof(names)) == 0)
			for (char *p = names, *e; *p; p = e + 1) {
				e = strchr(p, '\n');
				if (!e)
					break;
				*e = 0;
				if (!strncmp(p, "qmigrate-nbd-", 13) && qmig_cmd_blockdev_del(c, p) == 0)
					removed++;
			}
		/* and the read-only exports of the comparison across hosts */
	}
	if (qmig_cmd_query_export_ids(c, names, sizeof(names)) == 0) {
		int ours = 0;

		for (char *p = names, *e; *p; p = e + 1) {
			e = strchr(p, '\n');
			if (!e)
				break;
			*e = 0;
			if (!strncmp(p, "qmigrate-exp-", 13)) {
				qmig_cmd_block_export_del(c, p, 1);
				ours++;
			}
		}
		if (ours) {
			while (qmig_cmd_query_export_ids(c, names, sizeof(names)) == 0 &&
			       qm_storage_has_prefix(names, "qmigrate-exp-") && qm_now_ns() < deadline &&
			       qm_sleep_until(qm_now_ns() + 20 * MS) != -ECANCELED)
				;
			qmig_cmd_nbd_server_stop(c);
			removed += ours;
		}
	}
	return removed;
}
