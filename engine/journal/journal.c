/* The job journal: JOURNAL_DIR/JOB.journal, one JSON object rewritten
 * atomically (temporary file, fsync, rename, 0600) before every step that
 * changes a QEMU. It holds everything qmig_recover_job() needs when the
 * job's process is gone: both QMP sockets, the process (pid and start
 * time, so a reused pid is not taken for the job), the phase, who owns
 * the guest, the original capabilities and parameters of each side and
 * what the plan changes, object ids, the port, RAM dump directories, and
 * the step about to be taken. The format is in docs/ARCHITECTURE.md. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "journal.h"
#include "qmig_journal.h"

#define JOURNAL_MAX (1 << 20)

static int valid_job_id(const char *id)
{
	if (!*id || strlen(id) > 31)
		return 0;
	for (const char *p = id; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || *p == '-' || *p == '_'))
			return 0;
	return 1;
}

int qm_journal_init(struct qmig_migration *m)
{
	if (m->o.job_id && !valid_job_id(m->o.job_id))
		return -EINVAL;
	if (m->o.job_id)
		snprintf(m->job, sizeof(m->job), "%s", m->o.job_id);
	else
		snprintf(m->job, sizeof(m->job), "%d", (int)getpid());
	snprintf(m->tls_id, sizeof(m->tls_id), "qmigrate-tls-%s", m->job);
	snprintf(m->res.job_id, sizeof(m->res.job_id), "%s", m->job);
	snprintf(m->res.owner, sizeof(m->res.owner), "source");
	m->pid_start = qm_proc_start_time((int)getpid());
	if (!m->o.journal_dir || m->o.dry_run)
		return 0;
	if (mkdir(m->o.journal_dir, 0700) < 0 && errno != EEXIST)
		return -errno;
	if ((size_t)snprintf(m->jpath, sizeof(m->jpath), "%s/%s.journal", m->o.journal_dir,
			     m->job) >= sizeof(m->jpath))
		return -ENAMETOOLONG;
	return 0;
}

int qm_write_atomic(const char *path, const char *text)
{
	return qm_write_atomic_sync(path, text, 1);
}

static const char *owner_name(enum qm_owner o)
{
	return o == OWNER_DESTINATION ? "destination" : "source";
}

static struct json_object *jstr(const char *s)
{
	return s ? json_object_new_string(s) : NULL;
}

static struct json_object *side_json(struct qmig_migration *m, struct side *s, int i)
{
	struct json_object *o = json_object_new_object(), *objs = json_object_new_array();

	json_object_object_add(o, "qmp", jstr(s->vm ? qmig_vm_qmp_path(s->vm)
						    : i == SRC ? m->o.src_qmp : m->o.dst_qmp));
	json_object_object_add(o, "qemu_pid", s->vm ? json_object_new_int(qmig_vm_pid(s->vm))
						    : NULL);
	json_object_object_add(o, "runtime_dir", s->vm ? jstr(qmig_vm_runtime_dir(s->vm)) : NULL);
	json_object_object_add(o, "was_running", json_object_new_boolean(s->was_running));
	json_object_object_add(o, "orig_caps", json_object_get(s->orig_caps));
	json_object_object_add(o, "orig_params", json_object_get(s->orig_params));
	json_object_object_add(o, "set_caps", json_object_get(s->set_caps));
	json_object_object_add(o, "set_params", json_object_get(s->set_params));
	if (m->o.tls_dir)
		json_object_array_add(objs, json_object_new_string(m->tls_id));
	if (m->authz_id[0] && i == DST)
		json_object_array_add(objs, json_object_new_string(m->authz_id));
	json_object_object_add(o, "objects", objs);
	json_object_object_add(o, "incoming_started", json_object_new_boolean(s->incoming_started));
	return o;
}

/* sync: fsync the file and its directory, so the new text survives a
 * power loss too; without, the rename alone makes the change atomic for
 * whoever reads the file after the writer died. */
int qm_write_atomic_sync(const char *path, const char *text, int sync)
{
	char tmp[PATH_MAX + 8];
	size_t len = strlen(text), off = 0;
	int fd, r = 0;
	char *slash;

	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= sizeof(tmp))
		return -ENAMETOOLONG;
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	while (off < len) {
		ssize_t n = write(fd, text + off, len - off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			r = n < 0 ? -errno : -EIO;
			break;
		}
		off += (size_t)n;
	}
	if (!r && sync && fsync(fd) < 0)
		r = -errno;
	if (close(fd) < 0 && !r)
		r = -errno;
	if (!r && rename(tmp, path) < 0)
		r = -errno;
	if (r) {
		unlink(tmp);
		return r;
	}
	/* The rename itself must survive a crash too. */
	slash = sync ? strrchr(tmp, '/') : NULL;
	if (slash) {
		*slash = 0;
		fd = open(*tmp ? tmp : "/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd >= 0) {
			fsync(fd);
			close(fd);
		}
	}
	return 0;
}

int qm_journal(struct qmig_migration *m, const char *side, const char *command,
	       struct json_object *args)
{
	struct json_object *j, *step, *sides;
	struct timeval tv;
	int r;

	if (!m->jpath[0])
		return 0;
	gettimeofday(&tv, NULL);
	j = json_object_new_object();
	json_object_object_add(j, "format", json_object_new_int(QMIG_JOURNAL_FORMAT));
	json_object_object_add(j, "job", json_object_new_string(m->job));
	/* An abandoned job (its handle freed mid-flight) has no live process:
	 * `qmigrate recover` takes it over at once. */
	json_object_object_add(j, "pid", json_object_new_int(m->abandoned ? 0 : (int)getpid()));
	json_object_object_add(j, "pid_start", json_object_new_int64(m->pid_start));
	json_object_object_add(j, "updated_us",
			       json_object_new_int64((int64_t)tv.tv_sec * 1000000 + tv.tv_usec));
	json_object_object_add(j, "mode", json_object_new_string(m->o.src_qmp ? "attach"
									     : "launch"));
	json_object_object_add(j, "phase", json_object_new_string(qmig_phase_name(m->phase)));
	json_object_object_add(j, "owner", json_object_new_string(owner_name(m->owner)));
	json_object_object_add(j, "migrate_started", json_object_new_boolean(m->t_migrate_ns != 0));
	json_object_object_add(j, "postcopy", json_object_new_boolean(m->o.postcopy));
	json_object_object_add(j, "postcopy_started",
			       json_object_new_boolean(m->res.postcopy_started));
	json_object_object_add(j, "keep_source", json_object_new_boolean(m->o.keep_source));
	json_object_object_add(j, "port", json_object_new_int((int)m->res.port));
	json_object_object_add(j, "port_lock_dir", jstr(m->o.port_lock_dir));
	json_object_object_add(j, "dump_dir", m->dump_dir[0] ? jstr(m->dump_dir) : NULL);
	step = json_object_new_object();
	json_object_object_add(step, "side", jstr(side));
	json_object_object_add(step, "command", jstr(command));
	json_object_object_add(step, "arguments", json_object_get(args));
	json_object_object_add(j, "step", step);
	sides = json_object_new_object();
	json_object_object_add(sides, "source", side_json(m, &m->side[SRC], SRC));
	json_object_object_add(sides, "destination", side_json(m, &m->side[DST], DST));
	json_object_object_add(j, "sides", sides);
	/* No fsync: the journal lives in a runtime directory (/run,
	 * $XDG_RUNTIME_DIR: tmpfs, gone at boot like the QEMUs it describes);
	 * what it must survive is qmigrate's own death, and the rename is
	 * atomic for that. (On a disk, 28 fsyncs cost ~330 ms of a 1 s
	 * migration: bench/peers.sh.) */
	r = qm_write_atomic_sync(m->jpath, json_object_to_json_string_ext(j, JSON_C_TO_STRING_PLAIN),
				 0);
	json_object_put(j);
	if (r < 0 && !m->journal_failed) {
		m->journal_failed = 1;
		qm_log(m, QMIG_LOG_ERROR, "journal %s: %s", m->jpath, strerror(-r));
	}
	return r;
}

void qm_journal_remove(struct qmig_migration *m)
{
	if (m->jpath[0] && unlink(m->jpath) < 0 && errno != ENOENT)
		qm_log(m, QMIG_LOG_WARN, "journal %s: %s", m->jpath, strerror(errno));
	m->jpath[0] = 0;
}

void qm_set_owner(struct qmig_migration *m, enum qm_owner owner, const char *why)
{
	struct json_object *rec;

	if (m->owner == owner)
		return;
	m->owner = owner;
	snprintf(m->res.owner, sizeof(m->res.owner), "%s", owner_name(owner));
	rec = json_object_new_object();
	json_object_object_add(rec, "owner", json_object_new_string(owner_name(owner)));
	json_object_object_add(rec, "reason", json_object_new_string(why));
	qm_emit(m, "owner", rec, NULL);
	qm_log(m, QMIG_LOG_INFO, "the %s owns the guest now (%s)", owner_name(owner), why);
	qm_journal(m, NULL, "owner", NULL);
}

int qm_stop(struct qmig_migration *m, struct side *s, const char *why)
{
	struct json_object *a = json_object_new_object();

	json_object_object_add(a, "why", json_object_new_string(why));
	qm_journal(m, s->name, "stop", a);
	json_object_put(a);
	return qmig_cmd_stop(s->qmp);
}

int qm_cont(struct qmig_migration *m, struct side *s, const char *why)
{
	struct json_object *a;

	/* The rule every caller relies on: only the owner may run. */
	if (s == &m->side[SRC] && m->owner != OWNER_SOURCE) {
		qm_log(m, QMIG_LOG_ERROR, "source: not resumed (%s): the destination owns the guest",
		       why);
		return -EPERM;
	}
	a = json_object_new_object();
	json_object_object_add(a, "why", json_object_new_string(why));
	qm_journal(m, s->name, "cont", a);
	json_object_put(a);
	return qmig_cmd_cont(s->qmp);
}

/* Same socket, however it was spelled. */
static int same_path(const char *a, const char *b)
{
	char ra[PATH_MAX], rb[PATH_MAX];

	if (!a || !b)
		return 0;
	if (!strcmp(a, b))
		return 1;
	return realpath(a, ra) && realpath(b, rb) && !strcmp(ra, rb);
}

int qm_journal_check_orphans(struct qmig_migration *m)
{
	struct qmig_job_info *jobs = NULL;
	size_t n = 0;

	if (!m->o.journal_dir || !m->o.src_qmp || qmig_journal_list(m->o.journal_dir, &jobs, &n) < 0)
		return 0;
	for (size_t i = 0; i < n && !m->error; i++) {
		const char *which = same_path(jobs[i].src_qmp, m->o.src_qmp) ||
					    same_path(jobs[i].dst_qmp, m->o.src_qmp)
				    ? m->o.src_qmp
				    : same_path(jobs[i].src_qmp, m->o.dst_qmp) ||
					      same_path(jobs[i].dst_qmp, m->o.dst_qmp)
				    ? m->o.dst_qmp
				    : NULL;

		if (!which || !strcmp(jobs[i].job, m->job))
			continue;
		if (jobs[i].alive)
			qm_fail(m, -EBUSY, "%s is being migrated by job %s (pid %d)", which,
				jobs[i].job, jobs[i].pid);
		else
			qm_fail(m, -EBUSY,
				"%s was left behind by job %s, which died in phase %s with the %s "
				"owning the guest: run 'qmigrate recover --job %s' first",
				which, jobs[i].job, jobs[i].phase, jobs[i].owner, jobs[i].job);
	}
	qmig_journal_list_free(jobs);
	return m->error;
}

/* ---- reading journals ------------------------------------------------- */

struct json_object *qm_journal_load(const char *path, int *err)
{
	struct json_tokener *tok;
	struct json_object *j;
	struct stat st;
	char *buf;
	ssize_t n;
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);

	*err = 0;
	if (fd < 0) {
		*err = -errno;
		return NULL;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > JOURNAL_MAX ||
	    (st.st_uid != geteuid() && st.st_uid != 0)) {
		close(fd);
		*err = -EPERM;
		return NULL;
	}
	buf = malloc((size_t)st.st_size + 1);
	if (!buf) {
		close(fd);
		*err = -ENOMEM;
		return NULL;
	}
	n = read(fd, buf, (size_t)st.st_size);
	close(fd);
	if (n != st.st_size) {
		free(buf);
		*err = -EIO;
		return NULL;
	}
	tok = json_tokener_new_ex(32);
	j = tok ? json_tokener_parse_ex(tok, buf, (int)n) : NULL;
	if (tok)
		json_tokener_free(tok);
	free(buf);
	if (!j || !json_object_is_type(j, json_type_object)) {
		json_object_put(j);
		*err = -EBADMSG;
		return NULL;
	}
	return j;
}

const char *qm_jget_str(struct json_object *o, const char *k)
{
	struct json_object *v;

	if (!o || !json_object_object_get_ex(o, k, &v) || !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

int64_t qm_jget_int(struct json_object *o, const char *k, int64_t dflt)
{
	struct json_object *v;

	if (!o || !json_object_object_get_ex(o, k, &v) ||
	    !(json_object_is_type(v, json_type_int) || json_object_is_type(v, json_type_boolean)))
		return dflt;
	return json_object_get_int64(v);
}

struct json_object *qm_jget_obj(struct json_object *o, const char *k, enum json_type t)
{
	struct json_object *v;

	if (!o || !json_object_object_get_ex(o, k, &v) || !json_object_is_type(v, t))
		return NULL;
	return v;
}

int qm_job_alive(int pid, int64_t start)
{
	int64_t now = qm_proc_start_time(pid);

	return now >= 0 && now == start;
}

static void fill_info(struct qmig_job_info *ji, struct json_object *j)
{
	struct json_object *sides = qm_jget_obj(j, "sides", json_type_object);
	const char *s;

	snprintf(ji->job, sizeof(ji->job), "%s", (s = qm_jget_str(j, "job")) ? s : "?");
	ji->pid = (int)qm_jget_int(j, "pid", -1);
	ji->alive = qm_job_alive(ji->pid, qm_jget_int(j, "pid_start", -2));
	snprintf(ji->phase, sizeof(ji->phase), "%s", (s = qm_jget_str(j, "phase")) ? s : "?");
	snprintf(ji->owner, sizeof(ji->owner), "%s", (s = qm_jget_str(j, "owner")) ? s : "?");
	snprintf(ji->mode, sizeof(ji->mode), "%s", (s = qm_jget_str(j, "mode")) ? s : "?");
	s = qm_jget_str(qm_jget_obj(sides, "source", json_type_object), "qmp");
	snprintf(ji->src_qmp, sizeof(ji->src_qmp), "%s", s ? s : "");
	s = qm_jget_str(qm_jget_obj(sides, "destination", json_type_object), "qmp");
	snprintf(ji->dst_qmp, sizeof(ji->dst_qmp), "%s", s ? s : "");
	ji->updated_us = qm_jget_int(j, "updated_us", 0);
	s = qm_jget_str(qm_jget_obj(j, "step", json_type_object), "command");
	snprintf(ji->step, sizeof(ji->step), "%s", s ? s : "");
}

int qmig_journal_list(const char *dir, struct qmig_job_info **out, size_t *n)
{
	struct qmig_job_info *v = NULL;
	size_t cnt = 0, cap = 0;
	struct dirent *de;
	DIR *d;

	if (!dir || !out || !n)
		return -EINVAL;
	d = opendir(dir);
	if (!d) {
		if (errno != ENOENT)
			return -errno;
		*out = NULL;
		*n = 0;
		return 0;
	}
	while ((de = readdir(d))) {
		size_t len = strlen(de->d_name);
		char path[PATH_MAX];
		struct json_object *j;
		int err;

		if (len < 9 || strcmp(de->d_name + len - 8, ".journal") || de->d_name[0] == '.')
			continue;
		if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, de->d_name) >= sizeof(path))
			continue;
		j = qm_journal_load(path, &err);
		if (!j)
			continue;
		if (cnt == cap) {
			size_t nc = cap ? cap * 2 : 8;
			struct qmig_job_info *nv = realloc(v, nc * sizeof(*nv));

			if (!nv) {
				json_object_put(j);
				break;
			}
			v = nv;
			cap = nc;
		}
		memset(&v[cnt], 0, sizeof(v[cnt]));
		fill_info(&v[cnt], j);
		snprintf(v[cnt].path, sizeof(v[cnt].path), "%.500s", path);
		cnt++;
		json_object_put(j);
	}
	closedir(d);
	*out = v;
	*n = cnt;
	return 0;
}

void qmig_journal_list_free(struct qmig_job_info *jobs)
{
	free(jobs);
}
