/* Storage migration, the ends (see storage_int.h): comparing the disks
 * after the move, removing the NBD pieces after a migration or in a
 * rollback, and what `qmigrate recover` removes for a dead job. Runs on
 * the engine's fiber like storage.c: waits suspend the step. */
#define QM_STORAGE_INTERNAL
#include <errno.h>
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

/* qemu-img compare: 0 identical, 1 differ, <0 could not compare. */
static int compare_images(struct qmig_migration *m, const struct qm_disk *k, char *why,
			  size_t len)
{
	char out[128];
	const char *argv[] = {"qemu-img", "compare", "-U", "-q", "-f", k->src_fmt,
			      "-F", k->dst_fmt, k->src_file, k->dst_file, NULL};
	struct qm_spawn s = {0};
	int pidfd = -1, st = 0, r;
	pid_t pid;

	if (!*k->src_fmt)
		argv[4] = argv[5] = "-U"; /* let qemu-img probe */
	if (!*k->dst_fmt)
		argv[6] = argv[7] = "-U";
	snprintf(out, sizeof(out), "/tmp/qmigrate-compare.%d.%s", (int)getpid(), m->job);
	s.argv = argv;
	s.out_path = out;
	s.read_any = 1; /* the images belong to the QEMUs' (unprivileged) users */
	r = qm_spawn(&s, &pid, &pidfd, why, len);
	if (r < 0)
		return r;
	if (pidfd >= 0)
		close(pidfd);
	r = qm_wait_pid(pid, &st, qm_now_ns() + COMPARE_NS);
	if (r == -ETIMEDOUT || r == -ECANCELED) {
		kill(pid, SIGKILL);
		qm_wait_pid(pid, &st, 0);
		unlink(out);
		snprintf(why, len, "qemu-img compare %s", r == -ETIMEDOUT ? "timed out" : "cancelled");
		return r;
	}
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

int qm_storage_verify(struct qmig_migration *m)
{
	struct qm_storage *st = m->storage;
	int64_t t0 = qm_now_ns();
	int all = 1, r;

	if (!qm_storage_holds_dst(m))
		return 0;
	for (int i = 0; i < st->n; i++) {
		struct qm_disk *k = &st->d[i];
		char why[300] = "";

		if (access(k->src_file, R_OK) || access(k->dst_file, R_OK)) {
			qm_log(m, QMIG_LOG_WARN, "storage: disk '%s' not compared: its images are "
			       "not both readable here (%s, %s)", k->name, k->src_file, k->dst_file);
			all = -1;
			continue;
		}
		r = compare_images(m, k, why, sizeof(why));
		if (r == 1) {
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
	m->res.disk_verify_ms = (uint64_t)((qm_now_ns() - t0) / MS);
	m->res.disks_verified = all;
	if (all == 1)
		qm_log(m, QMIG_LOG_INFO, "storage: %d disk%s identical on both sides (%llu ms)",
		       st->n, st->n > 1 ? "s" : "", (unsigned long long)m->res.disk_verify_ms);
	if (!m->o.verify_memory && !m->offline) {
		r = qm_cont(m, &m->side[DST], "after comparing the disks");
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
	char ids[4096];
	int64_t deadline = qm_now_ns() + CLEAN_WAIT_NS;

	if (!dst->qmp || dst->gone)
		return;
	if (qmig_cmd_query_export_ids(dst->qmp, ids, sizeof(ids)) == 0)
		for (int i = 0; i < st->n; i++) {
			char line[80];

			snprintf(line, sizeof(line), "%s\n", st->d[i].exp);
			if (strstr(ids, line))
				qmig_cmd_block_export_del(dst->qmp, st->d[i].exp, 1);
		}
	/* Removal completes when the last client has gone. */
	while (qmig_cmd_query_export_ids(dst->qmp, ids, sizeof(ids)) == 0 &&
	       qm_storage_has_prefix(ids, "qmigrate-exp-") && qm_now_ns() < deadline)
		if (qm_sleep_until(qm_now_ns() + 10 * MS) == -ECANCELED)
			break;
	if (st->srv_step >= 0 && st->srv_step < m->plan.exec) {
		int r = qmig_cmd_nbd_server_stop(dst->qmp);

		if (r < 0 && r != -ECONNRESET)
			qm_log(m, QMIG_LOG_WARN, "destination: nbd-server-stop: %s",
			       qmig_qmp_conn_error(dst->qmp));
	}
	if (qmig_cmd_query_export_ids(dst->qmp, ids, sizeof(ids)) == 0 &&
	    qm_storage_has_prefix(ids, "qmigrate-exp-"))
		qm_log(m, QMIG_LOG_ERROR, "destination: an NBD export of ours is still there");
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

void qm_storage_finish(struct qmig_migration *m)
{
	struct qm_storage *st = m->storage;

	if (!st || !st->n || st->cleaned || m->o.dry_run)
		return;
	st->cleaned = 1;
	clean_destination(m);
	check_source(m);
	qmig_port_free(st->port);
	st->port = NULL;
}

void qm_storage_rollback(struct qmig_migration *m)
{
	struct qm_storage *st = m->storage;
	struct side *src = &m->side[SRC];
	char names[16384];

	if (!st || !st->n || st->cleaned)
		return;
	st->cleaned = 1;
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
	qmig_port_free(m->storage->port);
	free(m->storage);
	m->storage = NULL;
}

/* For `qmigrate recover` (a dead job: no bookkeeping, only names): what a
 * job of ours left in one QEMU, by the qmigrate- prefixes. The source:
 * mirrors yanked, force-cancelled and dismissed, NBD client nodes
 * deleted; the destination: our exports removed and, when there were
 * any, the NBD server stopped. Returns how many things it removed. */
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
		return removed;
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
