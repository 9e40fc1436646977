/* Storage migration without shared disks: NBD on the destination,
 * blockdev-mirror on the source (see storage_int.h for the sequence).
 *
 * Written as straight-line code: it runs on the engine's fiber, so a wait
 * (qm_sleep_until, qm_wait_pid) suspends the step instead of blocking the
 * caller's loop. Everything this file creates in a QEMU is named
 * qmigrate-*, so the rollback can find it by asking QEMU (query-block-jobs,
 * query-named-block-nodes, query-block-exports) rather than by trusting
 * its own bookkeeping. QEMU's old block migration (the `block` capability)
 * is never used: it is gone since QEMU 9.1. */
#define QM_STORAGE_INTERNAL
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statfs.h>
#include <unistd.h>

#include "agent/agent.h"
#include "launch/launch.h"
#include "journal/journal.h"
#include "qm_wait.h"
#include "storage.h"

/* Images that other hosts see too: nothing to copy. */
static int shared_file(const char *file)
{
	static const long shared_fs[] = {
		0x6969,      /* NFS */
		0xff534d42,  /* CIFS */
		0xfe534d42,  /* SMB2 */
		0x00c36400,  /* Ceph */
		0x7461636f,  /* OCFS2 */
		0x01161970,  /* GFS2 */
		0x47504653,  /* GPFS */
		0x0bd00bd0,  /* Lustre */
	};
	struct statfs sf;

	if (!strncmp(file, "json:", 5) || strstr(file, "://") || !strncmp(file, "nbd:", 4) ||
	    !strncmp(file, "rbd:", 4) || !strncmp(file, "iscsi:", 6) ||
	    !strncmp(file, "gluster", 7))
		return 1;
	if (statfs(file, &sf) < 0)
		return 0;
	for (size_t i = 0; i < sizeof(shared_fs) / sizeof(shared_fs[0]); i++)
		if ((long)sf.f_type == shared_fs[i])
			return 1;
	return 0;
}

/* Does the tool start here (exec found it)? Its own exit status does not
 * matter: `TOOL --version`, killed if it takes more than 5 s. */
static int tool_runs(const char *tool)
{
	const char *argv[] = {tool, "--version", NULL};
	struct qm_spawn s = {0};
	char why[200];
	pid_t pid;
	int pidfd = -1, w;

	s.argv = argv;
	s.out_path = NULL; /* no output (never a path: it would be replaced) */
	if (qm_spawn(&s, &pid, &pidfd, why, sizeof(why)) < 0)
		return 0;
	if (pidfd >= 0)
		close(pidfd);
	if (qm_wait_pid(pid, &w, qm_now_ns() + 5000 * MS) < 0) {
		kill(pid, SIGKILL);
		qm_wait_pid(pid, &w, 0);
	}
	return 1;
}

/* The two QEMUs as two hosts: in different network namespaces (each its
 * own "host", the way the tests model two machines), or attached with a
 * destination address that is not this host's. Their image files are then
 * not both readable here: the disks are compared through NBD. */
static int two_hosts(const struct qmig_migration *m)
{
	const char *a = m->o.src_netns ? m->o.src_netns : "";
	const char *b = m->o.dst_netns ? m->o.dst_netns : "";

	if (strcmp(a, b))
		return 1;
	return m->o.src_qmp && !m->o.dst_netns && strncmp(m->o.dst_addr, "127.", 4) &&
	       strcmp(m->o.dst_addr, "localhost") && strcmp(m->o.dst_addr, "::1");
}

/* Both QEMUs on this host (as the doctor judges it). */
static int same_host(const struct qmig_migration *m)
{
	const char *a = m->o.dst_addr;

	return !m->o.src_qmp || m->o.dst_netns || !strncmp(a, "127.", 4) ||
	       !strcmp(a, "localhost") || !strcmp(a, "::1");
}

static const struct qmig_block_dev *find_dev(const struct qmig_block_dev *b, int n,
					     const char *name)
{
	for (int i = 0; i < n; i++)
		if (!strcmp(b[i].name, name))
			return &b[i];
	return NULL;
}

struct qmig_block_job *qm_storage_find_job(struct qmig_block_job *j, int n, const char *id)
{
	for (int i = 0; i < n; i++)
		if (!strcmp(j[i].id, id))
			return &j[i];
	return NULL;
}

int qm_storage_has_prefix(const char *lines, const char *prefix)
{
	size_t l = strlen(prefix);

	for (const char *p = lines; p && *p;) {
		if (!strncmp(p, prefix, l))
			return 1;
		p = strchr(p, '\n');
		p = p ? p + 1 : NULL;
	}
	return 0;
}

static int alloc_nbd_port(struct qmig_migration *m, struct qm_storage *st)
{
	struct qmig_port_opts po = QMIG_PORT_OPTS_INIT;
	char msg[256] = "";
	int r;

	po.lo = m->o.port_lo;
	po.hi = m->o.port_hi;
	po.bind_addr = m->o.listen_addr;
	po.lock_dir = m->o.port_lock_dir;
	po.netns = m->o.dst_netns;
	r = qmig_port_alloc(&st->port, &po, msg, sizeof(msg));
	if (r == -EADDRNOTAVAIL && !po.netns) {
		po.bind_addr = NULL;
		r = qmig_port_alloc(&st->port, &po, msg, sizeof(msg));
	}
	if (r < 0)
		return qm_fail(m, r, "storage: no port for the NBD server: %s",
			       *msg ? msg : strerror(-r));
	st->nbd_port = qmig_port_number(st->port);
	return 0;
}

static void emit_disks(struct qmig_migration *m, const char *what, uint64_t total,
		       uint64_t remaining, int ready)
{
	struct json_object *rec = json_object_new_object();
	struct qm_storage *st = m->storage;

	json_object_object_add(rec, "what", json_object_new_string(what));
	json_object_object_add(rec, "disks", json_object_new_int(st->n));
	json_object_object_add(rec, "ready", json_object_new_int(ready));
	json_object_object_add(rec, "total", json_object_new_int64((int64_t)total));
	json_object_object_add(rec, "remaining", json_object_new_int64((int64_t)remaining));
	json_object_object_add(rec, "t_ms", json_object_new_int64(
		st->t0_ns ? (qm_now_ns() - st->t0_ns) / MS : 0));
	qm_emit(m, "disk", rec, NULL);
}

/* ---- plan ----------------------------------------------------------------- */

static int pick_disks(struct qmig_migration *m, struct qm_storage *st,
		      const struct qmig_block_dev *src, int ns, const struct qmig_block_dev *dst,
		      int nd)
{
	const char *list = m->o.migrate_disks;
	int inc = m->o.copy_storage == QMIG_COPY_STORAGE_INC;

	/* A named disk that neither side has is a typo, not a no-op. */
	for (const char *p = list; p && *p;) {
		const char *e = strchr(p, ',');
		char one[128];

		snprintf(one, sizeof(one), "%.*s", (int)(e ? e - p : (long)strlen(p)), p);
		if (*one && !find_dev(src, ns, one))
			return qm_fail(m, -ENODEV, "--migrate-disks: the source has no disk '%s'",
				       one);
		p = e ? e + 1 : NULL;
	}

	for (int i = 0; i < ns; i++) {
		const struct qmig_block_dev *s = &src[i], *d;
		int named = qm_listed(list, s->name);
		struct qm_disk *k;

		if (list && !named) {
			st->other_rw |= s->inserted && !s->ro;
			continue;
		}
		if (!s->inserted || s->ro) {
			if (named)
				return qm_fail(m, -EINVAL, "--migrate-disks: disk '%s' is %s: nothing "
					       "to copy", s->name, s->inserted ? "read-only" : "empty");
			qm_log(m, QMIG_LOG_INFO, "storage: %s skipped (%s)", s->name,
			       s->inserted ? "read-only" : "no medium");
			continue;
		}
		d = find_dev(dst, nd, s->name);
		if (!d || !d->inserted)
			return qm_fail(m, -ENODEV, "storage: the destination has no disk '%s'%s: "
				       "start it with the same disks (an image of %llu bytes)",
				       s->name, d ? " with a medium" : "",
				       (unsigned long long)s->virtual_size);
		/* Shared storage: a network file system, or (on one host) both
		 * QEMUs on the same file. Copying a disk onto itself would
		 * destroy it; one on shared storage needs no copy. (Where this
		 * cannot tell, QEMU's image locking can: exporting a file the
		 * source holds open fails block-export-add, before any copy.) */
		if (*s->file && !strcmp(s->file, d->file) && same_host(m)) {
			if (named)
				return qm_fail(m, -EINVAL, "storage: disk '%s': source and "
					       "destination use the same image %s: that is shared "
					       "storage, nothing to copy", s->name, s->file);
			qm_log(m, QMIG_LOG_INFO, "storage: %s: both sides use %s: not copied",
			       s->name, s->file);
			st->other_rw = 1;
			continue;
		}
		if (!named && shared_file(s->file)) {
			qm_log(m, QMIG_LOG_INFO, "storage: %s is on shared storage (%s): not copied",
			       s->name, s->file);
			st->other_rw = 1;
			continue;
		}
		if (d->ro)
			return qm_fail(m, -EROFS, "storage: disk '%s': the destination's image %s is "
				       "read-only; the mirror must write it", s->name, d->file);
		if (d->virtual_size != s->virtual_size)
			return qm_fail(m, -EINVAL, "storage: disk '%s': the destination's image %s is "
				       "%llu bytes, the source's %llu: blockdev-mirror needs exactly "
				       "the same virtual size (qemu-img create -f %s IMAGE %llu, or "
				       "qemu-img resize)", s->name, d->file,
				       (unsigned long long)d->virtual_size,
				       (unsigned long long)s->virtual_size, d->format[0] ? d->format
				       : "raw", (unsigned long long)s->virtual_size);
		if (inc && !d->backing_depth)
			return qm_fail(m, -EINVAL, "storage: --copy-storage-inc: disk '%s': the "
				       "destination's image %s has no backing file, so what is below "
				       "the source's top image would be missing there; create it over "
				       "the same backing image, or use --copy-storage-all",
				       s->name, d->file);
		if (st->n == QM_MAX_DISKS)
			return qm_fail(m, -E2BIG, "storage: more than %d disks", QM_MAX_DISKS);
		k = &st->d[st->n];
		snprintf(k->name, sizeof(k->name), "%s", s->name);
		snprintf(k->src_node, sizeof(k->src_node), "%s", *s->node ? s->node : s->name);
		snprintf(k->dst_node, sizeof(k->dst_node), "%s", *d->node ? d->node : d->name);
		snprintf(k->src_file, sizeof(k->src_file), "%s", s->file);
		snprintf(k->dst_file, sizeof(k->dst_file), "%s", d->file);
		snprintf(k->src_fmt, sizeof(k->src_fmt), "%s", s->format);
		snprintf(k->dst_fmt, sizeof(k->dst_fmt), "%s", d->format);
		k->size = s->virtual_size;
		snprintf(k->job, sizeof(k->job), "qmigrate-mirror-%d", st->n);
		snprintf(k->nbd, sizeof(k->nbd), "qmigrate-nbd-%d", st->n);
		snprintf(k->exp, sizeof(k->exp), "qmigrate-exp-%d", st->n);
		st->n++;
	}
	return 0;
}

int qm_storage_plan(struct qmig_migration *m, struct json_object *want)
{
	struct qmig_block_dev *src = NULL, *dst = NULL;
	struct qm_storage *st;
	int ns = 0, nd = 0, r;

	if (!m->o.copy_storage)
		return 0;
	if (m->o.copy_storage != QMIG_COPY_STORAGE_ALL && m->o.copy_storage != QMIG_COPY_STORAGE_INC)
		return qm_fail(m, -EINVAL, "copy_storage %d is not ALL or INC", m->o.copy_storage);
	if (m->o.postcopy)
		return qm_fail(m, -EINVAL, "--copy-storage-* cannot work with postcopy: the "
					   "mirrors must end while the source still owns the guest");
	st = calloc(1, sizeof(*st));
	if (!st)
		return qm_fail(m, -ENOMEM, "storage: out of memory");
	st->srv_step = -1;
	for (int i = 0; i < QM_MAX_DISKS; i++)
		st->wb_fd[i] = -1;
	m->storage = st;
	r = qmig_cmd_query_block(m->side[SRC].qmp, &src, &ns);
	if (r < 0)
		return qm_qmp_fail(m, &m->side[SRC], r, "query-block");
	r = qmig_cmd_query_block(m->side[DST].qmp, &dst, &nd);
	if (r < 0) {
		free(src);
		return qm_qmp_fail(m, &m->side[DST], r, "query-block");
	}
	r = pick_disks(m, st, src, ns, dst, nd);
	free(src);
	free(dst);
	if (r < 0)
		return m->error;
	/* A destination on another host (through its agent): its image names
	 * mean nothing here, even where the same path exists. */
	for (int i = 0; qm_agent_remote_dst(m->o.dst_qmp) && i < st->n; i++)
		st->d[i].dst_file[0] = 0;
	if (!st->n) {
		qm_log(m, QMIG_LOG_WARN, "storage: no local writable disk to copy; RAM only");
		return 0;
	}
	for (int i = 0; i < 2; i++) {
		struct qmig_schema *sc = qm_side_schema(m, &m->side[i]);
		static const char *const need[] = {"blockdev-mirror", "blockdev-add",
						   "nbd-server-start", "block-export-add",
						   "job-dismiss", NULL};

		for (int k = 0; sc && need[k]; k++)
			if (!qmig_schema_has_command(sc, need[k]))
				return qm_fail(m, -EOPNOTSUPP, "storage: the %s QEMU has no %s",
					       m->side[i].name, need[k]);
	}
	if (m->o.copy_storage_synchronous) {
		struct qmig_schema *sc = qm_side_schema(m, &m->side[SRC]);

		st->can_change = sc && qmig_schema_has_command(sc, "block-job-change");
		st->blocking = !st->can_change;
		qm_log(m, QMIG_LOG_INFO, "storage: --copy-storage-synchronous: %s",
		       st->can_change ? "the mirrors copy in the background and turn "
					"write-blocking (block-job-change) if they stop converging"
				      : "write-blocking mirrors (this QEMU has no block-job-change)");
	}
	st->nbd_cmp = two_hosts(m) && !m->o.no_verify;
	/* cache.no-flush on the NBD clients only when the engine can flush
	 * the destination's images itself afterwards (qm_storage_flush_start). */
	st->noflush = tool_runs("qemu-io");
	if (!st->noflush && !st->nbd_cmp) { /* else every image must be here */
		st->noflush = 1;
		for (int i = 0; i < st->n; i++)
			st->noflush &= *st->d[i].dst_file && !access(st->d[i].dst_file, R_OK) &&
				       !shared_file(st->d[i].dst_file);
	}
	if (!st->noflush)
		qm_log(m, QMIG_LOG_INFO, "storage: no qemu-io here: the NBD clients flush the "
		       "destination's images themselves (inside the downtime)");
	json_object_object_add(want, "pause-before-switchover", json_object_new_boolean(1));
	if (alloc_nbd_port(m, st) < 0)
		return m->error;
	for (int i = 0; i < st->n; i++)
		qm_log(m, QMIG_LOG_INFO, "storage: %s (%llu bytes, %s) -> destination node %s",
		       st->d[i].name, (unsigned long long)st->d[i].size, st->d[i].src_file,
		       st->d[i].dst_node);
	return 0;
}

int qm_storage_plan_steps(struct qmig_migration *m)
{
	struct qm_storage *st = m->storage;
	struct json_object *a, *addr, *data;
	char port[16];
	int r;

	if (!st || !st->n)
		return 0;
	snprintf(port, sizeof(port), "%u", st->nbd_port);
	a = json_object_new_object();
	addr = json_object_new_object();
	data = json_object_new_object();
	json_object_object_add(data, "host", json_object_new_string(m->o.listen_addr));
	json_object_object_add(data, "port", json_object_new_string(port));
	json_object_object_add(addr, "type", json_object_new_string("inet"));
	json_object_object_add(addr, "data", data);
	json_object_object_add(a, "addr", addr);
	if (m->o.tls_dir) {
		json_object_object_add(a, "tls-creds", json_object_new_string(QM_TLS_ID));
		if (m->o.tls_authz)
			json_object_object_add(a, "tls-authz", json_object_new_string(m->o.tls_authz));
	}
	st->srv_step = m->plan.n;
	r = qm_plan_add(m, DST, "nbd-server-start", a,
			"serve the destination's disks to the source's mirrors (stopped afterwards)");
	for (int i = 0; !r && i < st->n; i++) {
		a = json_object_new_object();
		json_object_object_add(a, "type", json_object_new_string("nbd"));
		json_object_object_add(a, "id", json_object_new_string(st->d[i].exp));
		json_object_object_add(a, "node-name", json_object_new_string(st->d[i].dst_node));
		json_object_object_add(a, "name", json_object_new_string(st->d[i].name));
		json_object_object_add(a, "writable", json_object_new_boolean(1));
		r = qm_plan_add(m, DST, "block-export-add", a, "the disk the mirror writes into");
	}
	for (int i = 0; !r && i < st->n; i++) {
		a = json_object_new_object();
		addr = json_object_new_object();
		json_object_object_add(addr, "type", json_object_new_string("inet"));
		json_object_object_add(addr, "host", json_object_new_string(m->o.dst_addr));
		json_object_object_add(addr, "port", json_object_new_string(port));
		json_object_object_add(a, "driver", json_object_new_string("nbd"));
		json_object_object_add(a, "node-name", json_object_new_string(st->d[i].nbd));
		json_object_object_add(a, "server", addr);
		json_object_object_add(a, "export", json_object_new_string(st->d[i].name));
		if (m->o.tls_dir) {
			json_object_object_add(a, "tls-creds", json_object_new_string(QM_TLS_ID));
			json_object_object_add(a, "tls-hostname",
					       json_object_new_string(m->o.tls_hostname));
		}
		if (st->noflush) {
			struct json_object *c = json_object_new_object();

			json_object_object_add(c, "no-flush", json_object_new_boolean(1));
			json_object_object_add(a, "cache", c);
		}
		r = qm_plan_add(m, SRC, "blockdev-add", a,
				"the destination's disk, as an NBD client (deleted after the switchover)");
	}
	for (int i = 0; !r && i < st->n; i++) {
		a = json_object_new_object();
		json_object_object_add(a, "job-id", json_object_new_string(st->d[i].job));
		json_object_object_add(a, "device", json_object_new_string(st->d[i].src_node));
		json_object_object_add(a, "target", json_object_new_string(st->d[i].nbd));
		json_object_object_add(a, "sync", json_object_new_string(
			m->o.copy_storage == QMIG_COPY_STORAGE_INC ? "top" : "full"));
		if (m->o.disk_bandwidth)
			json_object_object_add(a, "speed",
					       json_object_new_int64((int64_t)m->o.disk_bandwidth));
		if (m->o.copy_storage_synchronous && !st->can_change)
			json_object_object_add(a, "copy-mode",
					       json_object_new_string("write-blocking"));
		/* Kept after it ends, so its error can be read, then dismissed. */
		json_object_object_add(a, "auto-dismiss", json_object_new_boolean(0));
		r = qm_plan_add(m, SRC, "blockdev-mirror", a,
				m->o.copy_storage == QMIG_COPY_STORAGE_INC
					? "copy the top image; RAM moves once it is in sync"
					: "copy the whole disk; RAM moves once it is in sync");
	}
	if (r < 0)
		return qm_fail(m, r, "plan: %s", strerror(-r));
	return 0;
}

/* ---- the mirrors ----------------------------------------------------------- */

/* Sum the mirrors' progress; a failed one is an error. */
static int mirrors_state(struct qmig_migration *m, uint64_t *total, uint64_t *remaining,
			 int *ready)
{
	struct qm_storage *st = m->storage;
	struct side *src = &m->side[SRC];
	struct qmig_block_job *j = NULL, *k;
	int n = 0, r;

	*total = *remaining = 0;
	*ready = 0;
	r = qmig_cmd_query_block_jobs(src->qmp, &j, &n);
	if (r < 0)
		return qm_qmp_fail(m, src, r, "query-block-jobs");
	for (int i = 0; i < st->n; i++) {
		k = qm_storage_find_job(j, n, st->d[i].job);
		if (!k) {
			free(j);
			return qm_fail(m, -EIO, "storage: the mirror of disk '%s' is gone",
				       st->d[i].name);
		}
		if (*k->error || !strcmp(k->status, "concluded") || !strcmp(k->status, "aborting")) {
			qm_fail(m, -EIO, "storage: the mirror of disk '%s' failed: %s", st->d[i].name,
				*k->error ? k->error : k->status);
			free(j);
			return m->error;
		}
		*total += k->len;
		*remaining += k->len > k->offset ? k->len - k->offset : 0;
		*ready += k->ready || !strcmp(k->status, "ready");
	}
	free(j);
	return 0;
}

/* The destination's images that this host can open (launch mode, both
 * QEMUs here): read-only, to start the writeback of what the mirrors wrote
 * into them (see wb_fd). Nothing depends on it but the time the source's
 * stop takes to flush; across hosts it is skipped. */
static void writeback_open(struct qmig_migration *m)
{
	struct qm_storage *st = m->storage;
	int n = 0;

	/* With no-flush the stop flushes nothing of the destination's: a
	 * writeback now would only load the disk the source's own flush (in
	 * the vm stop, inside the downtime) needs. */
	if (st->noflush)
		return;

	for (int i = 0; i < st->n; i++) {
		if (st->wb_fd[i] >= 0 || !*st->d[i].dst_file || shared_file(st->d[i].dst_file))
			continue;
		st->wb_fd[i] = open(st->d[i].dst_file, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
		n += st->wb_fd[i] >= 0;
	}
	if (n)
		qm_log(m, QMIG_LOG_DEBUG, "storage: %d destination image%s written back while RAM "
		       "moves", n, n > 1 ? "s" : "");
}

static void writeback_start(struct qm_storage *st)
{
	for (int i = 0; i < st->n; i++)
		if (st->wb_fd[i] >= 0)
			sync_file_range(st->wb_fd[i], 0, 0, SYNC_FILE_RANGE_WRITE);
}

void qm_storage_writeback_close(struct qm_storage *st)
{
	for (int i = 0; st && i < QM_MAX_DISKS; i++)
		if (st->wb_fd[i] >= 0) {
			close(st->wb_fd[i]);
			st->wb_fd[i] = -1;
		}
}

/* The mirrors' convergence (the storage part of the model, beside the
 * RAM's in predict.c): converging while the bytes left reach a new low (by
 * a MiB at least) every NOCONV_NS. With --copy-storage-synchronous on a QEMU with
 * block-job-change, mirrors that stop converging turn write-blocking: each
 * guest write then waits for the destination, so the bytes left can only
 * shrink. Returns 1 converging, 0 not, or m->error. */
static int mirrors_converge(struct qmig_migration *m, uint64_t left)
{
	struct qm_storage *st = m->storage;
	struct side *src = &m->side[SRC];
	int64_t now = qm_now_ns();
	struct json_object *rec;

	if (!st->low_ns || left + (1 << 20) <= st->low_left || left == 0) {
		st->low_left = left;
		st->low_ns = now;
		return 1;
	}
	if (now - st->low_ns < NOCONV_NS)
		return 1;
	if (!st->can_change || st->blocking)
		return 0;
	for (int i = 0; i < st->n; i++) {
		struct json_object *a = json_object_new_object();
		int r;

		json_object_object_add(a, "id", json_object_new_string(st->d[i].job));
		json_object_object_add(a, "type", json_object_new_string("mirror"));
		json_object_object_add(a, "copy-mode", json_object_new_string("write-blocking"));
		qm_journal(m, src->name, "block-job-change", a);
		r = qmig_cmd_block_job_change(src->qmp, a);
		json_object_put(a);
		if (r < 0)
			return qm_qmp_fail(m, src, r, "block-job-change");
	}
	st->blocking = 1;
	st->low_ns = now; /* give write-blocking its own NOCONV_NS */
	qm_log(m, QMIG_LOG_INFO, "storage: the mirrors do not converge (%llu bytes left, no "
	       "new low for %lld s): write-blocking from now on (--copy-storage-synchronous)",
	       (unsigned long long)left, NOCONV_NS / 1000 / MS);
	rec = json_object_new_object();
	json_object_object_add(rec, "what", json_object_new_string("write-blocking"));
	json_object_object_add(rec, "disks", json_object_new_int(st->n));
	json_object_object_add(rec, "remaining", json_object_new_int64((int64_t)left));
	json_object_object_add(rec, "reason", json_object_new_string(
		"the mirrors do not converge: guest writes now wait for the destination"));
	qm_emit(m, "disk", rec, NULL);
	return 0;
}

/* As long as the mirrors move; a cancel ends it at once. */
int qm_storage_ready(struct qmig_migration *m)
{
	struct qm_storage *st = m->storage;
	uint64_t total, remaining, last_done = 0;
	int64_t now, last_move, last_emit = 0;
	int ready, r;

	if (!st || !st->n)
		return 0;
	st->t0_ns = last_move = qm_now_ns();
	for (;;) {
		/* Already failing (the destination's QMP connection lost, read
		 * by process() while this step waited): roll back at once,
		 * without waiting for the mirror to notice. */
		if (m->error)
			return m->error;
		if (mirrors_state(m, &total, &remaining, &ready) < 0)
			return m->error;
		now = qm_now_ns();
		if (total - remaining != last_done) {
			last_done = total - remaining;
			last_move = now;
		}
		if (ready == st->n || now - last_emit >= PROGRESS_NS) {
			emit_disks(m, ready == st->n ? "ready" : "mirroring", total, remaining, ready);
			last_emit = now;
		}
		if (ready == st->n)
			break;
		if (mirrors_converge(m, remaining) < 0)
			return m->error;
		if (m->cancel_requested)
			return qm_fail(m, -ECANCELED, "cancelled");
		if (now - last_move > STALL_NS)
			return qm_fail(m, -ETIMEDOUT, "storage: the disk mirrors moved nothing for "
				       "%lld s (%llu of %llu bytes left): is the destination "
				       "reachable?", STALL_NS / 1000 / MS,
				       (unsigned long long)remaining, (unsigned long long)total);
		r = qm_sleep_until(now + 100 * MS);
		if (r == -ECANCELED)
			return qm_fail(m, r, "cancelled");
	}
	m->res.disks_migrated = st->n;
	m->res.disk_bytes = total;
	m->res.disk_mirror_ms = (uint64_t)((qm_now_ns() - st->t0_ns) / MS);
	/* --timeout bounds the RAM migration; the copy is bounded by its
	 * progress (a mirror that moves nothing for STALL_NS fails). */
	m->deadline_ns += qm_now_ns() - st->t0_ns;
	st->last_len = total;
	st->last_done = total - remaining;
	st->last_ns = qm_now_ns();
	writeback_open(m);
	qm_log(m, QMIG_LOG_INFO, "storage: %d disk%s in sync after %llu ms (%llu bytes); "
	       "moving RAM", st->n, st->n > 1 ? "s" : "",
	       (unsigned long long)m->res.disk_mirror_ms, (unsigned long long)total);
	return 0;
}

/* The storage part of the forecast, into the sample record and its
 * prediction: the mirrors' copy and dirty rates (smoothed), when they will
 * have nothing left (disk_time_left_ms, -1: never at these rates), what
 * the switchover pause must still copy (the bytes left at the rate of the
 * first full copy) and whether they converge: "disk_prediction" beside
 * the RAM's "prediction". */
static void storage_model(struct qmig_migration *m, struct json_object *rec, uint64_t total,
			  uint64_t remaining, int64_t now)
{
	struct qm_storage *st = m->storage;
	struct json_object *pred;
	uint64_t done = total - remaining;
	double dt = (double)(now - st->last_ns) / 1e9, bulk, left_s;
	int conv;

	if (dt > 0 && total >= st->last_len && done >= st->last_done) {
		double dirty = (double)(total - st->last_len) / dt;
		double copy = (double)(done - st->last_done) / dt;

		st->dirty_rate = st->dirty_rate ? 0.7 * st->dirty_rate + 0.3 * dirty : dirty;
		st->copy_rate = st->copy_rate ? 0.7 * st->copy_rate + 0.3 * copy : copy;
		json_object_object_add(rec, "disk_dirty_rate", json_object_new_int64((int64_t)dirty));
	}
	conv = mirrors_converge(m, remaining);
	if (conv < 0)
		return;
	left_s = !remaining ? 0 : st->copy_rate > st->dirty_rate
		? (double)remaining / (st->copy_rate - st->dirty_rate) : -1;
	bulk = m->res.disk_mirror_ms ? (double)m->res.disk_bytes * 1000.0 /
		(double)m->res.disk_mirror_ms : 0;
	json_object_object_add(rec, "disk_copy_rate", json_object_new_int64((int64_t)st->copy_rate));
	json_object_object_add(rec, "disk_converging", json_object_new_boolean(conv));
	json_object_object_add(rec, "disk_write_blocking", json_object_new_boolean(st->blocking));
	pred = json_object_new_object();
	json_object_object_add(pred, "time_left_ms", json_object_new_int64(
		left_s < 0 ? -1 : (int64_t)(left_s * 1000)));
	json_object_object_add(pred, "downtime_ms", json_object_new_int64(
		bulk > 0 ? (int64_t)((double)remaining * 1000.0 / bulk) : 0));
	json_object_object_add(pred, "converging", json_object_new_boolean(conv));
	json_object_object_add(rec, "disk_prediction", pred);
}

void qm_storage_sample(struct qmig_migration *m, struct json_object *rec)
{
	struct qm_storage *st = m->storage;
	uint64_t total, remaining;
	int64_t now = qm_now_ns();
	int ready;

	if (!st || !st->n || st->switched || m->error)
		return;
	/* A failed mirror fails the migration here too, before the switchover. */
	if (mirrors_state(m, &total, &remaining, &ready) < 0)
		return;
	json_object_object_add(rec, "disk_total", json_object_new_int64((int64_t)total));
	json_object_object_add(rec, "disk_remaining", json_object_new_int64((int64_t)remaining));
	/* Once in sync, a mirror's length grows by what the guest writes. */
	storage_model(m, rec, total, remaining, now);
	st->last_len = total;
	st->last_done = total - remaining;
	st->last_ns = now;
	writeback_start(st);
	if (total > m->res.disk_bytes)
		m->res.disk_bytes = total;
}

/* Wait until each job is concluded; errors into err (first one). */
int qm_storage_wait_concluded(struct qmig_migration *m, int64_t deadline, char *err, size_t len)
{
	struct qm_storage *st = m->storage;
	struct side *src = &m->side[SRC];

	for (;;) {
		struct qmig_block_job *j = NULL, *k;
		int n = 0, left = 0, r;

		r = qmig_cmd_query_block_jobs(src->qmp, &j, &n);
		if (r < 0)
			return r;
		for (int i = 0; i < st->n; i++) {
			k = qm_storage_find_job(j, n, st->d[i].job);
			if (!k)
				continue;
			if (strcmp(k->status, "concluded") && strcmp(k->status, "null"))
				left++;
			else if (*k->error && err && !*err)
				snprintf(err, len, "disk '%s': %s", st->d[i].name, k->error);
		}
		free(j);
		if (!left)
			return 0;
		if (qm_now_ns() > deadline)
			return -ETIMEDOUT;
		/* Inside the switchover pause every millisecond is downtime. */
		r = qm_sleep_until(qm_now_ns() + 2 * MS);
		if (r == -ECANCELED)
			return r;
	}
}
