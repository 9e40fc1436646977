/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * qmig_restore(): a guest back from a file written by qmig_save(), like
 * virsh restore. The refusals come before anything is loaded; the test
 * guests are verified (stamps while stopped, then heartbeats).
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
#include "doctor/doctor.h"

#define MS 1000000
#define DEFAULT_TIMEOUT_MS (10 * 60 * 1000)
#define FDNAME "qmigrate-save"
#define BEATS_TIMEOUT_MS 15000
#define CONFIRM_BEATS 20

struct restore {
	const struct qmig_restore_opts *o;
	struct qmig_restore_result *res;
	struct qmig_save_header h;
	struct qmig_vm *vm;
	struct qm_probe *hb;
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
	spec.paused = 1; /* verified before it runs */
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
	if (serial && (r = qm_probe_open(&s->hb, qm_guest_default(), serial)) < 0)
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
	if (qm_machine_type(s->c, mt, sizeof(mt)) == 0 && strcmp(mt, s->h.machine))
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
	r = qm_sr_wait_migration_c(s->c, s->o->timeout_ms ? s->o->timeout_ms : DEFAULT_TIMEOUT_MS,
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
			snprintf(s->res->verify_method, sizeof(s->res->verify_method),
				 "heartbeats");
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
	r = qm_sf_parse_header(s.fd, o->path, &s.h, hmsg, sizeof(hmsg));
	if (r < 0) {
		r = rfail(&s, r, "refused", "%s", hmsg);
		goto out;
	}
	snprintf(out->method, sizeof(out->method), "%s", s.h.method);
	t1 = qm_sr_now_ns();
	r = qm_sf_sha256(s.fd, s.h.stream_offset, s.h.stream_bytes, hex);
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
	qm_probe_free(s.hb);
	qmig_schema_free(s.schema);
	qmig_qmp_conn_close(s.c);
	qmig_vm_free(s.vm);
	return r;
}
