/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * qmig_save(): a guest to a file, like virsh save (layout and ownership in
 * qmig_save.h).
 *
 * The file is opened by qmigrate (O_CREAT|O_EXCL|O_NOFOLLOW, 0600) and
 * handed to QEMU, which never opens the path itself: add-fd and
 * file:/dev/fdset/N for mapped-ram (each multifd channel duplicates the
 * set's descriptor and writes at its own offsets), getfd and fd:NAME for
 * the plain stream, the file offset already at the stream.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "qmig_commands.h"
#include "save_int.h"

#define MS 1000000
#define DEFAULT_TIMEOUT_MS (10 * 60 * 1000)
#define FDNAME "qmigrate-save"

struct save {
	const struct qmig_save_opts *o;
	struct qmig_save_result *res;
	struct qmig_vm *vm;
	struct qm_probe *hb;
	struct qmig_qmp_conn *c;
	struct qmig_schema *schema;
	struct qm_sr_saved sv;
	struct qmig_save_header h;
	int fd;
	int created;
	int stopped;   /* we stopped the guest */
	int64_t fdset; /* -1 none */
	int getfd;
	struct qm_sr_journal j;
};

static int sfail(struct save *s, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int sfail(struct save *s, int err, const char *fmt, ...)
{
	va_list ap;

	if (s->res->error)
		return s->res->error;
	va_start(ap, fmt);
	vsnprintf(s->res->message, sizeof(s->res->message), fmt, ap);
	va_end(ap);
	s->res->error = err;
	return err;
}

static int save_connect(struct save *s)
{
	struct qmig_qmp_conn_opts co = QMIG_QMP_CONN_OPTS_INIT;
	const struct qmig_save_opts *o = s->o;
	const char *qmp = o->src_qmp;
	char msg[512] = "";
	int r;

	co.timeout_ms = o->qmp_timeout_ms ? o->qmp_timeout_ms : 10000;
	if (!qmp) {
		struct qmig_vm_spec spec = o->guest;

		spec.log = o->log;
		spec.log.free = NULL;
		r = qmig_vm_launch(&s->vm, &spec, msg, sizeof(msg));
		if (r < 0)
			return sfail(s, r, "cannot launch the guest: %s", msg);
		qmp = qmig_vm_qmp_path(s->vm);
		if (qmig_vm_serial_path(s->vm) &&
		    qm_probe_open(&s->hb, qm_guest_default(), qmig_vm_serial_path(s->vm)) == 0) {
			/* Let the guest write its working set a while first. */
			r = qm_sr_beats(s->hb, o->warmup_beats ? (unsigned)o->warmup_beats : 200,
					60000, msg, sizeof(msg));
			if (r <= 0)
				return sfail(s, r ? r : -EBADMSG, "the launched guest: %s", msg);
		}
	}
	r = qmig_qmp_conn_open(&s->c, qmp, &co);
	if (r < 0)
		return sfail(s, r, "cannot connect to QMP %s: %s", qmp, strerror(-r));
	r = qmig_schema_probe(&s->schema, s->c);
	if (r < 0)
		return sfail(s, r, "query-qmp-schema: %s", qmig_qmp_conn_error(s->c));
	return 0;
}

/* What the header needs, and refusals before anything changes. */
static int save_identify(struct save *s)
{
	struct qmig_vm_status st;
	int r;

	r = qmig_cmd_query_status(s->c, &st);
	if (r < 0)
		return sfail(s, r, "query-status: %s", qmig_qmp_conn_error(s->c));
	if (strcmp(st.status, "running") && strcmp(st.status, "paused"))
		return sfail(s, -EBUSY,
			     "the source is '%s', not running or paused: nothing to save (a "
			     "migration may be under way or done)",
			     st.status);
	s->h.was_running = st.running;
	if (qm_sr_qemu_version(s->c, s->h.qemu, sizeof(s->h.qemu), &s->h.qemu_version) < 0)
		return sfail(s, -EPROTO, "query-version: no usable answer");
	if (qm_machine_type(s->c, s->h.machine, sizeof(s->h.machine)) < 0)
		return sfail(s, -EPROTO, "qom-get /machine type: no usable answer (%s)",
			     qmig_qmp_conn_error(s->c));
	r = qmig_cmd_query_memory_size(s->c, &s->h.ram_bytes);
	if (r < 0)
		return sfail(s, r, "query-memory-size-summary: %s", qmig_qmp_conn_error(s->c));
	snprintf(s->h.guest, sizeof(s->h.guest), "%s",
		 s->vm && s->o->guest.guest == QMIG_GUEST_TINY	  ? "tiny"
		 : s->vm && s->o->guest.guest == QMIG_GUEST_LINUX ? "linux"
								  : "none");
	if (!s->o->plain && qmig_schema_has_capability(s->schema, "mapped-ram") &&
	    qmig_schema_has_command(s->schema, "add-fd")) {
		snprintf(s->h.method, sizeof(s->h.method), "mapped-ram");
		if (s->o->multifd_channels >= 0 && qmig_schema_has_capability(s->schema, "multifd"))
			s->h.multifd_channels = s->o->multifd_channels ? s->o->multifd_channels : 4;
	} else {
		snprintf(s->h.method, sizeof(s->h.method), "stream");
	}
	s->h.stream_offset = QMIG_SAVE_STREAM_OFFSET;
	return 0;
}

/* The journal before the first change: what a recovery puts back. */
static int save_journal_start(struct save *s)
{
	static const char *const want_caps[] = {"mapped-ram", "multifd"};
	static const char *const want_params[] = {"max-bandwidth", "multifd-channels"};
	const char *caps[3] = {0}, *params[3] = {0};
	struct json_object *oc = NULL, *op = NULL;
	int r, nc = 0, np = 0;

	if (!s->j.path[0])
		return 0;
	/* Only what this QEMU has: a recovery sets back exactly these. */
	for (int i = 0; i < 2; i++) {
		if (qmig_schema_has_capability(s->schema, want_caps[i]))
			caps[nc++] = want_caps[i];
		if (qmig_schema_has_parameter(s->schema, want_params[i]))
			params[np++] = want_params[i];
	}
	r = qmig_cmd_query_migrate_capabilities(s->c, &oc);
	if (!r)
		r = qmig_cmd_query_migrate_parameters(s->c, &op);
	if (!r) {
		qm_sr_journal_side(&s->j, 0, s->vm ? qmig_vm_qmp_path(s->vm) : s->o->src_qmp,
				   s->vm ? qmig_vm_pid(s->vm) : 0,
				   s->vm ? qmig_vm_runtime_dir(s->vm) : NULL, s->h.was_running, oc,
				   op, caps, params, 0);
		s->j.phase = "negotiate";
		s->j.keep_source = s->o->keep_source;
		r = qm_sr_journal_write(&s->j, "source", "migrate-set-capabilities");
		if (r < 0)
			sfail(s, r, "journal %s: %s", s->j.path, strerror(-r));
	} else {
		sfail(s, r, "reading migration capabilities/parameters: %s",
		      qmig_qmp_conn_error(s->c));
	}
	json_object_put(oc);
	json_object_put(op);
	return r;
}

static int save_plan(struct save *s, char *uri, size_t len)
{
	int64_t qfd;
	int r = 0;

	r = save_journal_start(s);
	if (r < 0)
		return r;
	s->res->changed = 1;
	/* A save to a local file goes as fast as the disk takes it unless
	 * asked otherwise (QEMU 7.2's default limit is 128 MiB/s). */
	if (qmig_schema_has_parameter(s->schema, "max-bandwidth"))
		r = qm_sr_set_param(s->c, &s->sv, "max-bandwidth",
				    s->o->max_bandwidth ? (int64_t)s->o->max_bandwidth
							: INT64_C(1) << 40);
	if (!r && !strcmp(s->h.method, "mapped-ram")) {
		r = qm_sr_set_cap(s->c, &s->sv, "mapped-ram", 1);
		if (!r)
			r = qm_sr_set_cap(s->c, &s->sv, "multifd", s->h.multifd_channels > 0);
		if (!r && s->h.multifd_channels)
			r = qm_sr_set_param(s->c, &s->sv, "multifd-channels",
					    s->h.multifd_channels);
	} else if (!r) {
		/* The plain stream is one channel; multifd would need sockets. */
		r = qm_sr_set_cap(s->c, &s->sv, "multifd", 0);
		if (!r && qmig_schema_has_capability(s->schema, "mapped-ram"))
			r = qm_sr_set_cap(s->c, &s->sv, "mapped-ram", 0);
	}
	if (r < 0)
		return sfail(s, r, "setting migration capabilities/parameters: %s",
			     qmig_qmp_conn_error(s->c));
	if (!strcmp(s->h.method, "mapped-ram")) {
		r = qmig_cmd_add_fd(s->c, s->fd, -1, &s->fdset, &qfd);
		if (r < 0)
			return sfail(s, r, "add-fd: %s", qmig_qmp_conn_error(s->c));
		snprintf(uri, len, "file:/dev/fdset/%lld,offset=%llu", (long long)s->fdset,
			 (unsigned long long)s->h.stream_offset);
	} else {
		if (lseek(s->fd, (off_t)s->h.stream_offset, SEEK_SET) < 0)
			return sfail(s, -errno, "%s: lseek: %s", s->o->path, strerror(errno));
		r = qmig_cmd_getfd(s->c, s->fd, FDNAME);
		if (r < 0)
			return sfail(s, r, "getfd: %s", qmig_qmp_conn_error(s->c));
		s->getfd = 1;
		snprintf(uri, len, "fd:%s", FDNAME);
	}
	return 0;
}

static int save_run(struct save *s)
{
	struct qmig_migrate_info mi;
	char uri[128], msg[400];
	struct stat st;
	int64_t t0, t1;
	int r, rfd;

	r = save_plan(s, uri, sizeof(uri));
	if (r < 0)
		return r;
	/* As virsh save: the guest stops first, so the file is one instant. */
	s->j.phase = "start";
	qm_sr_journal_write(&s->j, "source", "stop");
	if (s->h.was_running) {
		r = qmig_cmd_stop(s->c);
		if (r < 0)
			return sfail(s, r, "stop: %s", qmig_qmp_conn_error(s->c));
		s->stopped = 1;
	}
	s->j.phase = "precopy";
	s->j.migrate_started = 1;
	qm_sr_journal_write(&s->j, "source", "migrate");
	t0 = qm_sr_now_ns();
	r = qmig_cmd_migrate(s->c, uri, 0);
	if (r < 0)
		return sfail(s, r, "migrate %s: %s", uri, qmig_qmp_conn_error(s->c));
	r = qm_sr_wait_migration_c(s->c, s->o->timeout_ms ? s->o->timeout_ms : DEFAULT_TIMEOUT_MS,
				   s->o->cancel, &mi, msg, sizeof(msg));
	if (r < 0) {
		if (r == -ETIMEDOUT || r == -ECANCELED)
			qmig_cmd_migrate_cancel(s->c);
		return sfail(s, r, "save: %s", msg);
	}
	s->res->save_ms = (uint64_t)((qm_sr_now_ns() - t0) / MS);
	if (fstat(s->fd, &st) < 0 || (uint64_t)st.st_size <= s->h.stream_offset)
		return sfail(s, -EIO, "%s: QEMU said completed but wrote nothing", s->o->path);
	s->h.stream_bytes = (uint64_t)st.st_size - s->h.stream_offset;
	t1 = qm_sr_now_ns();
	/* Read back through the same file, not the path (which may have moved). */
	snprintf(msg, sizeof(msg), "/proc/self/fd/%d", s->fd);
	rfd = open(msg, O_RDONLY | O_CLOEXEC);
	r = rfd < 0 ? -errno
		    : qm_sf_sha256(rfd, s->h.stream_offset, s->h.stream_bytes, s->h.sha256);
	if (rfd >= 0)
		close(rfd);
	if (r < 0)
		return sfail(s, r, "%s: reading it back for the checksum: %s", s->o->path,
			     strerror(-r));
	s->res->checksum_ms = (uint64_t)((qm_sr_now_ns() - t1) / MS);
	s->h.format = 1;
	s->h.saved_at = (int64_t)time(NULL);
	/* From the header on the file owns the guest: a recovery must quit
	 * the source, never resume it next to a complete file. */
	s->j.owner = "destination";
	s->j.phase = "finish";
	qm_sr_journal_write(&s->j, NULL, "write the header");
	r = qm_sf_write_header(s->fd, &s->h);
	if (r < 0)
		return sfail(s, r, "%s: writing the header: %s", s->o->path, strerror(-r));
	fstat(s->fd, &st);
	s->res->stream_bytes = s->h.stream_bytes;
	s->res->disk_bytes = (uint64_t)st.st_blocks * 512;
	return 0;
}

/* Failure before the header was written: the source gets the guest back. */
static void save_rollback(struct save *s)
{
	struct qmig_migrate_info mi;
	char msg[200];

	if (s->c) {
		if (qmig_cmd_query_migrate(s->c, &mi) == 0 &&
		    (!strcmp(mi.status, "active") || !strcmp(mi.status, "setup") ||
		     !strcmp(mi.status, "device"))) {
			qmig_cmd_migrate_cancel(s->c);
			qm_sr_wait_migration(s->c, 30000, &mi, msg, sizeof(msg));
		}
		if (s->stopped && qmig_cmd_cont(s->c) < 0)
			qm_sr_log(&s->o->log, QMIG_LOG_ERROR, "source: cont: %s",
				  qmig_qmp_conn_error(s->c));
	}
	if (s->created)
		unlink(s->o->path);
	snprintf(s->res->owner, sizeof(s->res->owner), "source");
}

int qmig_save(const struct qmig_save_opts *o, struct qmig_save_result *out)
{
	struct save s = {.o = o, .res = out, .fd = -1, .fdset = -1};
	int64_t t0 = qm_sr_now_ns();
	int r;

	if (!o || !out || o->version < 1 || o->version > QMIG_SAVE_OPTS_VERSION || !o->path)
		return -EINVAL;
	memset(out, 0, sizeof(*out));
	snprintf(out->owner, sizeof(out->owner), "source");
	r = qm_sr_journal_init(&s.j, o->journal_dir, o->job_id, "save",
			       o->src_qmp ? "attach" : "launch");
	if (r < 0) {
		sfail(&s, r, "journal: %s", strerror(-r));
		goto out;
	}
	/* Never through a symbolic link, never over an existing file. */
	/* Write-only: QEMU matches an fdset's descriptor by its access mode. */
	s.fd = open(o->path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (s.fd < 0) {
		r = sfail(&s, -errno, "%s: %s%s", o->path, strerror(errno),
			  errno == EEXIST ? " (qmigrate save never overwrites a file)" : "");
		goto out;
	}
	s.created = 1;
	r = save_connect(&s);
	if (!r)
		r = save_identify(&s);
	if (!r)
		r = save_run(&s);
	if (s.c) {
		/* The changes go back either way; the guest stays stopped on success. */
		if (s.fdset >= 0)
			qmig_cmd_remove_fd(s.c, s.fdset);
		if (s.getfd && r < 0)
			qmig_cmd_closefd(s.c, FDNAME);
		qm_sr_restore(s.c, &s.sv);
	}
	if (r < 0) {
		save_rollback(&s);
		goto out;
	}
	/* The file owns the guest now: the source is never resumed. */
	snprintf(out->owner, sizeof(out->owner), "file");
	if (!o->keep_source || s.vm) {
		r = qmig_cmd_quit(s.c);
		out->source_quit = r == 0 || r == -ECONNRESET;
		r = 0;
	}
out:
	qm_sr_journal_remove(&s.j);
	if (s.fd >= 0)
		close(s.fd);
	snprintf(out->status, sizeof(out->status), "%s",
		 r == -ECANCELED ? "cancelled"
		 : r < 0	 ? "failed"
				 : "saved");
	snprintf(out->method, sizeof(out->method), "%s", s.h.method);
	out->multifd_channels = s.h.multifd_channels;
	snprintf(out->qemu, sizeof(out->qemu), "%s", s.h.qemu);
	snprintf(out->machine, sizeof(out->machine), "%s", s.h.machine);
	snprintf(out->sha256, sizeof(out->sha256), "%s", s.h.sha256);
	out->ram_bytes = s.h.ram_bytes;
	out->total_ms = (uint64_t)((qm_sr_now_ns() - t0) / MS);
	if (!r)
		snprintf(out->message, sizeof(out->message),
			 "saved %s (%s%s%.0d), RAM %llu MiB, QEMU %s, machine %s; the source %s",
			 o->path, s.h.method, s.h.multifd_channels ? ", multifd " : "",
			 s.h.multifd_channels, (unsigned long long)(s.h.ram_bytes >> 20), s.h.qemu,
			 s.h.machine,
			 out->source_quit ? "was quit" : "is left paused (it must not be resumed)");
	else if (out->message[0])
		snprintf(out->message + strlen(out->message),
			 sizeof(out->message) - strlen(out->message),
			 "; the source keeps the guest%s, no file left",
			 s.h.was_running ? " running" : "");
	qm_sr_saved_free(&s.sv);
	qm_probe_free(s.hb);
	qmig_schema_free(s.schema);
	qmig_qmp_conn_close(s.c);
	qmig_vm_free(s.vm);
	return r;
}
