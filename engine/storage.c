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
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include "launch_int.h"
#include "migrate_int.h"
#include "qm_wait.h"
#include "storage_int.h"

#define MS 1000000LL
#define QM_MAX_DISKS 16
#define STALL_NS (15000 * MS)      /* a mirror that moves nothing for this long failed */
#define CANCEL_WAIT_NS (30000 * MS) /* ending the mirrors in the switchover pause */
#define CLEAN_WAIT_NS (10000 * MS)  /* forced cancels and export removal in a rollback */
#define COMPARE_NS (300000 * MS)    /* qemu-img compare of one disk */
#define PROGRESS_NS (500 * MS)

struct qm_disk {
	char name[128];               /* the device, as query-block names it */
	char src_node[128], dst_node[128];
	char src_file[1024], dst_file[1024];
	char src_fmt[32], dst_fmt[32];
	uint64_t size;
	char job[64], nbd[64], exp[64]; /* ours: qmigrate-mirror-N, -nbd-N, -exp-N */
};

struct qm_storage {
	int n;
	struct qm_disk d[QM_MAX_DISKS];
	struct qmig_port *port;
	unsigned nbd_port;
	int srv_step;                 /* plan index of nbd-server-start, -1 none */
	int switched;                 /* the mirrors were ended for the switchover */
	int cleaned;
	int64_t t0_ns;                /* first mirror started */
	uint64_t last_len;            /* for the disk dirty rate */
	int64_t last_ns;
};

/* ---- helpers -------------------------------------------------------------- */

static int listed(const char *list, const char *name)
{
	size_t l = strlen(name);

	for (const char *p = list; p && *p;) {
		const char *e = strchr(p, ',');
		size_t n = e ? (size_t)(e - p) : strlen(p);

		if (n == l && !strncmp(p, name, n))
			return 1;
		p = e ? e + 1 : NULL;
	}
	return 0;
}

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

static struct qmig_block_job *find_job(struct qmig_block_job *j, int n, const char *id)
{
	for (int i = 0; i < n; i++)
		if (!strcmp(j[i].id, id))
			return &j[i];
	return NULL;
}

/* A line of names (qmig_cmd_query_*_ids) holding one with this prefix? */
static int has_prefix_line(const char *lines, const char *prefix)
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
		int named = listed(list, s->name);
		struct qm_disk *k;

		if (list && !named)
			continue;
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
			continue;
		}
		if (!named && shared_file(s->file)) {
			qm_log(m, QMIG_LOG_INFO, "storage: %s is on shared storage (%s): not copied",
			       s->name, s->file);
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
		r = qm_plan_add(m, SRC, "blockdev-add", a,
				"the destination's disk, as an NBD client (deleted at switchover)");
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
		if (m->o.copy_storage_synchronous)
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
		k = find_job(j, n, st->d[i].job);
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
	st->last_ns = qm_now_ns();
	qm_log(m, QMIG_LOG_INFO, "storage: %d disk%s in sync after %llu ms (%llu bytes); "
	       "moving RAM", st->n, st->n > 1 ? "s" : "",
	       (unsigned long long)m->res.disk_mirror_ms, (unsigned long long)total);
	return 0;
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
	if (now > st->last_ns && total >= st->last_len)
		json_object_object_add(rec, "disk_dirty_rate", json_object_new_int64(
			(int64_t)((double)(total - st->last_len) * 1e9 / (double)(now - st->last_ns))));
	st->last_len = total;
	st->last_ns = now;
	if (total > m->res.disk_bytes)
		m->res.disk_bytes = total;
}

/* Wait until each job is concluded; errors into err (first one). */
static int wait_concluded(struct qmig_migration *m, int64_t deadline, char *err, size_t len)
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
			k = find_job(j, n, st->d[i].job);
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

int qm_storage_switchover(struct qmig_migration *m)
{
	struct qm_storage *st = m->storage;
	struct side *src = &m->side[SRC];
	char err[300] = "";
	int64_t t0 = qm_now_ns(), t1, t2;
	int r;

	if (!st || !st->n || st->switched)
		return 0;
	st->switched = 1;
	for (int i = 0; i < st->n; i++) {
		struct json_object *a = json_object_new_object();

		json_object_object_add(a, "device", json_object_new_string(st->d[i].job));
		json_object_object_add(a, "force", json_object_new_boolean(0));
		qm_journal(m, src->name, "block-job-cancel", a);
		json_object_put(a);
		r = qmig_cmd_block_job_cancel(src->qmp, st->d[i].job, 0);
		if (r < 0)
			return qm_qmp_fail(m, src, r, "block-job-cancel");
	}
	t1 = qm_now_ns();
	r = wait_concluded(m, t0 + CANCEL_WAIT_NS, err, sizeof(err));
	t2 = qm_now_ns();
	if (r < 0)
		return r == -ETIMEDOUT
			? qm_fail(m, r, "storage: the mirrors did not finish within %lld s of the "
				  "switchover", CANCEL_WAIT_NS / 1000 / MS)
			: qm_qmp_fail(m, src, r, "query-block-jobs");
	if (*err)
		return qm_fail(m, -EIO, "storage: a mirror ended with an error at the switchover "
				"(%s); the source keeps the guest", err);
	for (int i = 0; i < st->n; i++) {
		r = qmig_cmd_job_dismiss(src->qmp, st->d[i].job);
		if (r < 0)
			return qm_qmp_fail(m, src, r, "job-dismiss");
		r = qmig_cmd_blockdev_del(src->qmp, st->d[i].nbd);
		if (r < 0)
			return qm_qmp_fail(m, src, r, "blockdev-del");
	}
	m->res.disk_cancel_ms = (uint64_t)((qm_now_ns() - t0) / MS);
	qm_journal(m, src->name, "migrate-continue", NULL);
	r = qmig_cmd_migrate_continue(src->qmp, "pre-switchover");
	if (r < 0)
		return qm_qmp_fail(m, src, r, "migrate-continue");
	qm_log(m, QMIG_LOG_INFO, "storage: mirrors ended consistently in %llu ms of the "
	       "switchover pause (cancel sent %lld ms, last copy %lld ms, NBD clients "
	       "deleted %lld ms)", (unsigned long long)m->res.disk_cancel_ms,
	       (long long)((t1 - t0) / MS), (long long)((t2 - t1) / MS),
	       (long long)((qm_now_ns() - t2) / MS));
	return 0;
}

/* ---- verification ---------------------------------------------------------- */

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
	       has_prefix_line(ids, "qmigrate-exp-") && qm_now_ns() < deadline)
		if (qm_sleep_until(qm_now_ns() + 10 * MS) == -ECANCELED)
			break;
	if (st->srv_step >= 0 && st->srv_step < m->plan.exec) {
		int r = qmig_cmd_nbd_server_stop(dst->qmp);

		if (r < 0 && r != -ECONNRESET)
			qm_log(m, QMIG_LOG_WARN, "destination: nbd-server-stop: %s",
			       qmig_qmp_conn_error(dst->qmp));
	}
	if (qmig_cmd_query_export_ids(dst->qmp, ids, sizeof(ids)) == 0 &&
	    has_prefix_line(ids, "qmigrate-exp-"))
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
	    has_prefix_line(names, "qmigrate-nbd-"))
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
				struct qmig_block_job *k = find_job(j, n, st->d[i].job);

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
		if (any && wait_concluded(m, qm_now_ns() + CLEAN_WAIT_NS, NULL, 0) < 0)
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
			       has_prefix_line(names, "qmigrate-exp-") && qm_now_ns() < deadline &&
			       qm_sleep_until(qm_now_ns() + 20 * MS) != -ECANCELED)
				;
			qmig_cmd_nbd_server_stop(c);
			removed += ours;
		}
	}
	return removed;
}
