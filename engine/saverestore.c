/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * qmig_save() and qmig_restore(): a guest to a file and back (the layout
 * and the ownership rule are in qmig_save.h).
 *
 * The file is opened by qmigrate (O_CREAT|O_EXCL|O_NOFOLLOW, 0600 for a
 * save; O_NOFOLLOW read-only for a restore) and handed to QEMU, which
 * never opens the path itself: add-fd and file:/dev/fdset/N for
 * mapped-ram (each multifd channel duplicates the set's fd and writes at
 * its own offsets), getfd and fd:NAME for the plain stream, with the file
 * offset already at the stream.
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
#include <openssl/evp.h>

#include "qmig_commands.h"
#include "qmp_reply.h"
#include "save_int.h"
#include "versions.h"

#define MS 1000000
#define MAGIC "QMIGRATE-SAVE 1\n"
#define DEFAULT_TIMEOUT_MS (10 * 60 * 1000)
#define BEATS_TIMEOUT_MS 15000
#define CONFIRM_BEATS 20
#define FDNAME "qmigrate-save"

/* ---- the header ----------------------------------------------------------- */

static int sha256_range(int fd, uint64_t off, uint64_t len, char hex[65])
{
	enum { CHUNK = 1 << 20 };
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	char *buf = malloc(CHUNK);
	int r = 0;

	if (!ctx || !buf || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1) {
		r = -ENOMEM;
		goto out;
	}
	while (len) {
		size_t want = len < CHUNK ? (size_t)len : CHUNK;
		ssize_t n = pread(fd, buf, want, (off_t)off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			r = n < 0 ? -errno : -EIO;
			goto out;
		}
		EVP_DigestUpdate(ctx, buf, (size_t)n);
		off += (uint64_t)n;
		len -= (uint64_t)n;
	}
	EVP_DigestFinal_ex(ctx, md, &mdlen);
	for (unsigned i = 0; i < mdlen && i < 32; i++)
		snprintf(hex + 2 * i, 3, "%02x", md[i]);
out:
	free(buf);
	EVP_MD_CTX_free(ctx);
	return r;
}

static int write_header(int fd, const struct qmig_save_header *h)
{
	struct json_object *o = json_object_new_object();
	char block[QMIG_SAVE_HEADER_SIZE];
	const char *txt;
	size_t n;
	ssize_t w;

	if (!o)
		return -ENOMEM;
#define S(k, v) json_object_object_add(o, k, json_object_new_string(v))
#define I(k, v) json_object_object_add(o, k, json_object_new_int64((int64_t)(v)))
	I("format", 1);
	S("method", h->method);
	I("multifd_channels", h->multifd_channels);
	S("qemu", h->qemu);
	I("qemu_version", h->qemu_version);
	S("machine", h->machine);
	I("ram_bytes", h->ram_bytes);
	I("stream_offset", h->stream_offset);
	I("stream_bytes", h->stream_bytes);
	S("sha256", h->sha256);
	S("guest", h->guest);
	json_object_object_add(o, "was_running", json_object_new_boolean(h->was_running));
	I("saved_at", h->saved_at);
#undef S
#undef I
	txt = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
	memset(block, 0, sizeof(block));
	n = strlen(MAGIC) + strlen(txt) + 1;
	if (n >= sizeof(block)) {
		json_object_put(o);
		return -E2BIG;
	}
	snprintf(block, sizeof(block), "%s%s\n", MAGIC, txt);
	json_object_put(o);
	w = pwrite(fd, block, sizeof(block), 0);
	if (w != (ssize_t)sizeof(block))
		return w < 0 ? -errno : -EIO;
	return fsync(fd) < 0 ? -errno : 0;
}

static int bad(char *msg, size_t len, int err, const char *path, const char *what)
{
	snprintf(msg, len, "%s: %s", path, what);
	return err;
}

/* The header is a file's, i.e. anyone's: typed access and every value checked. */
static int parse_header(int fd, const char *path, struct qmig_save_header *h, char *msg,
			size_t len)
{
	char block[QMIG_SAVE_HEADER_SIZE + 1];
	struct json_object *o;
	struct qm_rd rd;
	struct stat st;
	ssize_t n;
	int r = 0;

	memset(h, 0, sizeof(*h));
	n = pread(fd, block, QMIG_SAVE_HEADER_SIZE, 0);
	if (n < 0)
		return bad(msg, len, -errno, path, "cannot read its header");
	block[n] = 0;
	if ((size_t)n < strlen(MAGIC) || memcmp(block, MAGIC, strlen(MAGIC))) {
		int zero = 1;

		for (ssize_t i = 0; i < n && zero; i++)
			zero = !block[i];
		return bad(msg, len, -EBADMSG,
			   path, zero && n ? "no qmigrate header: the save that wrote it did not "
					     "complete"
					   : "not a file written by qmigrate save");
	}
	o = json_tokener_parse(block + strlen(MAGIC));
	if (!json_object_is_type(o, json_type_object)) {
		json_object_put(o);
		return bad(msg, len, -EBADMSG, path, "its qmigrate header is not readable JSON");
	}
	qm_rd_init(&rd, "the save file's header");
	h->format = (int)qm_rd_i64(&rd, o, "format");
	qm_rd_strcpy(&rd, o, "method", h->method, sizeof(h->method));
	h->multifd_channels = (int)qm_rd_i64(&rd, o, "multifd_channels");
	qm_rd_strcpy(&rd, o, "qemu", h->qemu, sizeof(h->qemu));
	h->qemu_version = (unsigned)qm_rd_u64(&rd, o, "qemu_version");
	qm_rd_strcpy(&rd, o, "machine", h->machine, sizeof(h->machine));
	h->ram_bytes = qm_rd_u64(&rd, o, "ram_bytes");
	h->stream_offset = qm_rd_u64(&rd, o, "stream_offset");
	h->stream_bytes = qm_rd_u64(&rd, o, "stream_bytes");
	qm_rd_strcpy(&rd, o, "sha256", h->sha256, sizeof(h->sha256));
	qm_rd_opt_strcpy(&rd, o, "guest", h->guest, sizeof(h->guest), "none");
	h->was_running = qm_rd_opt_bool(&rd, o, "was_running", 1);
	h->saved_at = qm_rd_opt_i64(&rd, o, "saved_at", 0);
	json_object_put(o);
	if (rd.err) {
		snprintf(msg, len, "%s: bad header: %s", path, rd.msg);
		return -EBADMSG;
	}
	if (h->format != 1)
		r = bad(msg, len, -EPROTONOSUPPORT, path, "header format is not 1 (a newer qmigrate?)");
	else if (strcmp(h->method, "mapped-ram") && strcmp(h->method, "stream"))
		r = bad(msg, len, -EBADMSG, path, "unknown save method in its header");
	else if (h->multifd_channels < 0 || h->multifd_channels > 255)
		r = bad(msg, len, -EBADMSG, path, "impossible multifd channel count");
	else if (h->stream_offset < QMIG_SAVE_HEADER_SIZE || h->stream_offset > (1u << 20) ||
		 h->stream_offset % 4096)
		r = bad(msg, len, -EBADMSG, path, "impossible stream offset");
	else if (strlen(h->sha256) != 64 || strspn(h->sha256, "0123456789abcdef") != 64)
		r = bad(msg, len, -EBADMSG, path, "the header's checksum is not SHA-256 hex");
	else if (!h->machine[0] || strspn(h->machine, "abcdefghijklmnopqrstuvwxyz0123456789.-_") !=
					   strlen(h->machine))
		r = bad(msg, len, -EBADMSG, path, "impossible machine type in its header");
	else if (fstat(fd, &st) < 0 || (uint64_t)st.st_size < h->stream_offset ||
		 (uint64_t)st.st_size - h->stream_offset != h->stream_bytes)
		r = bad(msg, len, -EBADMSG, path,
			"the file's length does not match its header (truncated or appended to)");
	return r;
}

int qmig_save_read_header(const char *path, struct qmig_save_header *out, char *msg,
			  size_t msg_len)
{
	struct qmig_save_header h;
	int fd, r;

	if (!path || !out)
		return -EINVAL;
	fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		r = -errno;
		snprintf(msg, msg_len, "%s: %s", path, strerror(-r));
		return r;
	}
	r = parse_header(fd, path, &h, msg, msg_len);
	close(fd);
	if (r == 0)
		*out = h;
	return r;
}

/* ---- save ------------------------------------------------------------------- */

struct save {
	const struct qmig_save_opts *o;
	struct qmig_save_result *res;
	struct qmig_vm *vm;
	struct qmig_hb *hb;
	struct qmig_qmp_conn *c;
	struct qmig_schema *schema;
	struct qm_sr_saved sv;
	struct qmig_save_header h;
	int fd;
	int created;
	int stopped;       /* we stopped the guest */
	int64_t fdset;     /* -1 none */
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
		    qmig_hb_open(&s->hb, qmig_vm_serial_path(s->vm)) == 0) {
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
	if (qm_sr_machine_type(s->c, s->h.machine, sizeof(s->h.machine)) < 0)
		return sfail(s, -EPROTO, "qom-get /machine type: no usable answer (%s)",
			     qmig_qmp_conn_error(s->c));
	r = qmig_cmd_query_memory_size(s->c, &s->h.ram_bytes);
	if (r < 0)
		return sfail(s, r, "query-memory-size-summary: %s", qmig_qmp_conn_error(s->c));
	snprintf(s->h.guest, sizeof(s->h.guest), "%s",
		 s->vm && s->o->guest.guest == QMIG_GUEST_TINY    ? "tiny"
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
	/* A save to a local file should go as fast as the disk takes it
	 * (QEMU 7.2's default limit is 128 MiB/s). */
	if (qmig_schema_has_parameter(s->schema, "max-bandwidth"))
		r = qm_sr_set_param(s->c, &s->sv, "max-bandwidth", INT64_C(1) << 40);
	if (!r && !strcmp(s->h.method, "mapped-ram")) {
		r = qm_sr_set_cap(s->c, &s->sv, "mapped-ram", 1);
		if (!r)
			r = qm_sr_set_cap(s->c, &s->sv, "multifd", s->h.multifd_channels > 0);
		if (!r && s->h.multifd_channels)
			r = qm_sr_set_param(s->c, &s->sv, "multifd-channels", s->h.multifd_channels);
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
	r = qm_sr_wait_migration_c(s->c,
				   s->o->timeout_ms ? s->o->timeout_ms : DEFAULT_TIMEOUT_MS,
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
	r = rfd < 0 ? -errno : sha256_range(rfd, s->h.stream_offset, s->h.stream_bytes, s->h.sha256);
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
	r = write_header(s->fd, &s->h);
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
		 r == -ECANCELED ? "cancelled" : r < 0 ? "failed" : "saved");
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
	qmig_hb_free(s.hb);
	qmig_schema_free(s.schema);
	qmig_qmp_conn_close(s.c);
	qmig_vm_free(s.vm);
	return r;
}

/* ---- restore ------------------------------------------------------------------ */

struct restore {
	const struct qmig_restore_opts *o;
	struct qmig_restore_result *res;
	struct qmig_save_header h;
	struct qmig_vm *vm;
	struct qmig_hb *hb;
	struct qmig_qmp_conn *c;
	struct qmig_schema *schema;
	int fd;
};

static int rfail(struct restore *s, int err, const char *status, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static int rfail(struct restore *s, int err, const char *status, const char *fmt, ...)
{
	va_list ap;

	if (s->res->error)
		return s->res->error;
	va_start(ap, fmt);
	vsnprintf(s->res->message, sizeof(s->res->message), fmt, ap);
	va_end(ap);
	s->res->error = err;
	snprintf(s->res->status, sizeof(s->res->status), "%s", status);
	return err;
}

static const char *vstr(unsigned v, char *buf, size_t len)
{
	snprintf(buf, len, "%u.%u.%u", v / 10000, v / 100 % 100, v % 100);
	return buf;
}

/* The refusals that need no QEMU running: version and machine of a binary. */
static int restore_check_binary(struct restore *s)
{
	const char *bin = s->o->guest.qemu_binary;
	unsigned v = qm_binary_version(bin);
	char a[16];
	int has;

	if (v && v < s->h.qemu_version)
		return rfail(s, -EPROTONOSUPPORT, "refused",
			     "%s was saved by QEMU %s; %s is QEMU %s, older: a migration stream "
			     "is readable only by the same or a newer QEMU",
			     s->o->path, s->h.qemu, bin ? bin : "qemu-system-x86_64",
			     vstr(v, a, sizeof(a)));
	has = qm_binary_has_machine(bin, s->h.machine);
	if (has == 0)
		return rfail(s, -EPROTONOSUPPORT, "refused",
			     "%s needs machine type %s, which %s does not have", s->o->path,
			     s->h.machine, bin ? bin : "qemu-system-x86_64");
	return 0;
}

static int restore_launch(struct restore *s)
{
	struct qmig_vm_spec spec = s->o->guest;
	const char *args[3] = {"-machine", s->h.machine, NULL};
	char msg[512] = "";
	int r;

	if (!strcmp(s->h.guest, "tiny"))
		spec.guest = QMIG_GUEST_TINY;
	else if (!strcmp(s->h.guest, "linux"))
		spec.guest = QMIG_GUEST_LINUX;
	else
		return rfail(s, -EINVAL, "refused",
			     "%s holds a guest qmigrate did not launch: restore it with --dst-qmp "
			     "into a QEMU started like the original with -incoming defer",
			     s->o->path);
	r = restore_check_binary(s);
	if (r < 0)
		return r;
	spec.mem_bytes = s->h.ram_bytes;
	spec.no_mem_workaround = 1; /* the saved size is the size */
	spec.incoming = 1;
	spec.paused = 1;            /* verified before it runs */
	spec.detach = s->o->keep_running;
	spec.extra_args = args;
	spec.log = s->o->log;
	spec.log.free = NULL;
	r = qmig_vm_launch(&s->vm, &spec, msg, sizeof(msg));
	if (r < 0)
		return rfail(s, r, "failed", "cannot launch QEMU to restore into: %s", msg);
	return 0;
}

static int restore_connect(struct restore *s)
{
	struct qmig_qmp_conn_opts co = QMIG_QMP_CONN_OPTS_INIT;
	const char *qmp = s->vm ? qmig_vm_qmp_path(s->vm) : s->o->dst_qmp;
	const char *serial = s->vm ? qmig_vm_serial_path(s->vm) : s->o->dst_serial;
	int r;

	co.timeout_ms = s->o->qmp_timeout_ms ? s->o->qmp_timeout_ms : 10000;
	r = qmig_qmp_conn_open(&s->c, qmp, &co);
	if (r < 0)
		return rfail(s, r, "failed", "cannot connect to QMP %s: %s", qmp, strerror(-r));
	r = qmig_schema_probe(&s->schema, s->c);
	if (r < 0)
		return rfail(s, r, "failed", "query-qmp-schema: %s", qmig_qmp_conn_error(s->c));
	if (serial && (r = qmig_hb_open(&s->hb, serial)) < 0)
		return rfail(s, r, "failed", "serial socket %s: %s", serial, strerror(-r));
	return 0;
}

/* The running QEMU against the header: the refusals, before anything changes. */
static int restore_check_qemu(struct restore *s)
{
	struct qmig_vm_status st;
	char ver[32], mt[64], a[16];
	unsigned v = 0;
	uint64_t ram = 0;
	int r;

	r = qmig_cmd_query_status(s->c, &st);
	if (r < 0)
		return rfail(s, r, "failed", "query-status: %s", qmig_qmp_conn_error(s->c));
	if (strcmp(st.status, "inmigrate"))
		return rfail(s, -EBUSY, "refused",
			     "the QEMU to restore into is '%s': start it with -incoming defer",
			     st.status);
	if (qm_sr_qemu_version(s->c, ver, sizeof(ver), &v) < 0)
		return rfail(s, -EPROTO, "failed", "query-version: no usable answer");
	if (v < s->h.qemu_version)
		return rfail(s, -EPROTONOSUPPORT, "refused",
			     "%s was saved by QEMU %s; this QEMU is %s, older: a migration stream "
			     "is readable only by the same or a newer QEMU",
			     s->o->path, s->h.qemu, vstr(v, a, sizeof(a)));
	if (!strcmp(s->h.method, "mapped-ram") &&
	    (!qmig_schema_has_capability(s->schema, "mapped-ram") ||
	     !qmig_schema_has_command(s->schema, "add-fd")))
		return rfail(s, -EPROTONOSUPPORT, "refused",
			     "%s was saved with mapped-ram by QEMU %s; QEMU %s has no mapped-ram "
			     "capability",
			     s->o->path, s->h.qemu, ver);
	if (qm_sr_machine_type(s->c, mt, sizeof(mt)) == 0 && strcmp(mt, s->h.machine))
		return rfail(s, -EPROTONOSUPPORT, "refused",
			     "%s holds a %s machine; this QEMU was started as %s (use -machine %s)",
			     s->o->path, s->h.machine, mt, s->h.machine);
	if (qmig_cmd_query_memory_size(s->c, &ram) == 0 && ram != s->h.ram_bytes)
		return rfail(s, -EPROTONOSUPPORT, "refused",
			     "%s holds %llu KiB of RAM; this QEMU has %llu KiB (use -m %lluk)",
			     s->o->path, (unsigned long long)(s->h.ram_bytes >> 10),
			     (unsigned long long)(ram >> 10),
			     (unsigned long long)(s->h.ram_bytes >> 10));
	return 0;
}

static int restore_load(struct restore *s)
{
	struct qm_sr_saved sv = {0};
	struct qmig_migrate_info mi;
	char uri[128], msg[400];
	int64_t fdset, qfd, t0;
	int r = 0;

	if (!strcmp(s->h.method, "mapped-ram")) {
		r = qm_sr_set_cap(s->c, &sv, "mapped-ram", 1);
		if (!r)
			r = qm_sr_set_cap(s->c, &sv, "multifd", s->h.multifd_channels > 0);
		if (!r && s->h.multifd_channels)
			r = qm_sr_set_param(s->c, &sv, "multifd-channels", s->h.multifd_channels);
	}
	qm_sr_saved_free(&sv); /* this QEMU exists for this guest: nothing to put back */
	if (r < 0)
		return rfail(s, r, "failed", "setting migration capabilities: %s",
			     qmig_qmp_conn_error(s->c));
	if (!strcmp(s->h.method, "mapped-ram")) {
		r = qmig_cmd_add_fd(s->c, s->fd, -1, &fdset, &qfd);
		if (r < 0)
			return rfail(s, r, "failed", "add-fd: %s", qmig_qmp_conn_error(s->c));
		snprintf(uri, sizeof(uri), "file:/dev/fdset/%lld,offset=%llu", (long long)fdset,
			 (unsigned long long)s->h.stream_offset);
	} else {
		if (lseek(s->fd, (off_t)s->h.stream_offset, SEEK_SET) < 0)
			return rfail(s, -errno, "failed", "lseek: %s", strerror(errno));
		r = qmig_cmd_getfd(s->c, s->fd, FDNAME);
		if (r < 0)
			return rfail(s, r, "failed", "getfd: %s", qmig_qmp_conn_error(s->c));
		snprintf(uri, sizeof(uri), "fd:%s", FDNAME);
	}
	t0 = qm_sr_now_ns();
	r = qmig_cmd_migrate_incoming(s->c, uri);
	if (r < 0)
		return rfail(s, r, "failed", "migrate-incoming %s: %s", uri,
			     qmig_qmp_conn_error(s->c));
	r = qm_sr_wait_migration_c(s->c,
				   s->o->timeout_ms ? s->o->timeout_ms : DEFAULT_TIMEOUT_MS,
				   s->o->cancel, &mi, msg, sizeof(msg));
	if (r < 0)
		return rfail(s, r, r == -ECANCELED ? "cancelled" : "failed", "loading %s: %s",
			     s->o->path, msg);
	s->res->load_ms = (uint64_t)((qm_sr_now_ns() - t0) / MS);
	if (!strcmp(s->h.method, "mapped-ram"))
		qmig_cmd_remove_fd(s->c, fdset);
	return 0;
}

/* Stamps while it is stopped, then heartbeats once it runs. */
static int restore_verify_and_run(struct restore *s)
{
	const char *dir = s->vm ? qmig_vm_runtime_dir(s->vm) : NULL;
	int run = s->o->paused == 2 || (s->o->paused != 1 && s->h.was_running);
	char msg[400];
	int r;

	s->res->verified = -1;
	snprintf(s->res->verify_method, sizeof(s->res->verify_method), "none");
	if (!s->o->no_verify) {
		r = qm_sr_check_stamps(s->c, dir, &s->res->pages_checked, msg, sizeof(msg));
		if (r == 0) {
			s->res->verified = 0;
			return rfail(s, -EBADMSG, "failed", "restored guest: %s", msg);
		}
		if (r == 1) {
			s->res->verified = 1;
			snprintf(s->res->verify_method, sizeof(s->res->verify_method), "stamps");
		} else if (r != -ENOMSG) {
			return rfail(s, r, "failed", "restored guest: %s", msg);
		}
	}
	if (!run) {
		qmig_cmd_stop(s->c);
		return 0;
	}
	r = qmig_cmd_cont(s->c);
	if (r < 0)
		return rfail(s, r, "failed", "cont: %s", qmig_qmp_conn_error(s->c));
	s->res->running = 1;
	if (s->o->no_verify)
		return 0;
	if (s->hb) {
		r = qm_sr_beats(s->hb, CONFIRM_BEATS, BEATS_TIMEOUT_MS, msg, sizeof(msg));
		if (r <= 0) {
			s->res->verified = 0;
			return rfail(s, r ? r : -EBADMSG, "failed", "restored guest: %s", msg);
		}
		if (s->res->verified < 0) {
			s->res->verified = 1;
			snprintf(s->res->verify_method, sizeof(s->res->verify_method), "heartbeats");
		}
	} else if (s->res->verified < 0) {
		struct qmig_vm_status st;

		r = qmig_cmd_query_status(s->c, &st);
		s->res->verified = r == 0 && st.running;
		snprintf(s->res->verify_method, sizeof(s->res->verify_method), "running");
	}
	return 0;
}

int qmig_restore(const struct qmig_restore_opts *o, struct qmig_restore_result *out)
{
	struct restore s = {.o = o, .res = out, .fd = -1};
	int64_t t0 = qm_sr_now_ns(), t1;
	char hex[65] = "", hmsg[512] = "";
	int r;

	if (!o || !out || o->version < 1 || o->version > QMIG_RESTORE_OPTS_VERSION || !o->path)
		return -EINVAL;
	memset(out, 0, sizeof(*out));
	out->verified = -1;
	out->pid = -1;
	snprintf(out->owner, sizeof(out->owner), "file");
	s.fd = open(o->path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (s.fd < 0) {
		r = rfail(&s, -errno, "refused", "%s: %s", o->path, strerror(errno));
		goto out;
	}
	r = parse_header(s.fd, o->path, &s.h, hmsg, sizeof(hmsg));
	if (r < 0) {
		r = rfail(&s, r, "refused", "%s", hmsg);
		goto out;
	}
	snprintf(out->method, sizeof(out->method), "%s", s.h.method);
	t1 = qm_sr_now_ns();
	r = sha256_range(s.fd, s.h.stream_offset, s.h.stream_bytes, hex);
	out->checksum_ms = (uint64_t)((qm_sr_now_ns() - t1) / MS);
	if (r < 0) {
		r = rfail(&s, r, "refused", "%s: reading it: %s", o->path, strerror(-r));
		goto out;
	}
	if (strcmp(hex, s.h.sha256)) {
		r = rfail(&s, -EBADMSG, "refused",
			  "%s: the stream's SHA-256 does not match its header: the file is "
			  "damaged",
			  o->path);
		goto out;
	}
	r = o->dst_qmp ? 0 : restore_launch(&s);
	if (!r)
		r = restore_connect(&s);
	if (!r)
		r = restore_check_qemu(&s);
	if (!r)
		r = restore_load(&s);
	if (!r) {
		/* The QEMU holds the guest now; the file stays as it was. */
		snprintf(out->owner, sizeof(out->owner), "destination");
		r = restore_verify_and_run(&s);
	}
out:
	if (s.fd >= 0)
		close(s.fd);
	if (!r) {
		snprintf(out->status, sizeof(out->status), "restored");
		snprintf(out->message, sizeof(out->message),
			 "restored %s (%s, saved by QEMU %s, machine %s, RAM %llu MiB)%s", o->path,
			 s.h.method, s.h.qemu, s.h.machine,
			 (unsigned long long)(s.h.ram_bytes >> 20),
			 out->running ? ": the guest runs" : ": the guest is paused");
	}
	if (!r && s.vm && o->keep_running) {
		snprintf(out->qmp, sizeof(out->qmp), "%s", qmig_vm_qmp_path(s.vm));
		out->pid = qmig_vm_pid(s.vm);
	} else if (s.vm && s.c) {
		qmig_cmd_quit(s.c);
	}
	if (r < 0 && s.vm)
		qmig_vm_kill(s.vm);
	out->total_ms = (uint64_t)((qm_sr_now_ns() - t0) / MS);
	qmig_hb_free(s.hb);
	qmig_schema_free(s.schema);
	qmig_qmp_conn_close(s.c);
	qmig_vm_free(s.vm);
	return r;
}
