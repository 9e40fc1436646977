/* The doctor's checks. Each is one function reading QMP (and, for a
 * destination on this host, its files and memory) and adding findings. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <json-c/json.h>

#include "qmig_commands.h"
#include "qmig_doctor.h"
#include "qmp_reply.h"
#include "qmig_transport.h"
#include "doctor.h"

struct doc {
	struct qmig_finding *f;
	size_t n, cap;
	const struct qmig_doctor_opts *o;
	/* The first failure that is not QEMU refusing a command: a reply of
	 * the wrong shape, a broken or silent connection. It ends the run. */
	int err;
	char errmsg[512];
};

const char *qmig_finding_severity_name(enum qmig_finding_severity s)
{
	return s == QMIG_FINDING_REFUSE ? "REFUSE" : s == QMIG_FINDING_WARN ? "WARN" : "INFO";
}

__attribute__((format(printf, 5, 6))) static void add(struct doc *d,
						      enum qmig_finding_severity sev,
						      const char *id, const char *fix,
						      const char *fmt, ...)
{
	struct qmig_finding *f;
	va_list ap;

	if (d->n == d->cap) {
		size_t cap = d->cap ? d->cap * 2 : 8;
		struct qmig_finding *nf = realloc(d->f, cap * sizeof(*nf));

		if (!nf)
			return;
		d->f = nf;
		d->cap = cap;
	}
	f = &d->f[d->n++];
	f->severity = sev;
	snprintf(f->id, sizeof(f->id), "%s", id);
	snprintf(f->fix, sizeof(f->fix), "%s", fix);
	va_start(ap, fmt);
	vsnprintf(f->problem, sizeof(f->problem), fmt, ap);
	va_end(ap);
}

/* r from a QMP call on c: 1 when it succeeded. An error reply (QEMU
 * lacks the command, or refuses) only skips the check; anything else is
 * remembered and stops the doctor. */
static int ok(struct doc *d, struct qmig_qmp_conn *c, int r)
{
	if (r == 0)
		return 1;
	if (r != -EREMOTEIO && !d->err) {
		d->err = r;
		snprintf(d->errmsg, sizeof(d->errmsg), "%s", qmig_qmp_conn_error(c));
	}
	return 0;
}

/* A reader's failure, reported as the connection's. */
static int rd_ok(struct doc *d, struct qmig_qmp_conn *c, const struct qm_rd *rd)
{
	return ok(d, c, qm_call_rd(c, rd));
}

/* qom-get PATH PROPERTY as a string; args built as JSON, never pasted. */
static int qom_get_str(struct doc *d, struct qmig_qmp_conn *c, const char *path,
		       const char *prop, char *buf, size_t len)
{
	struct json_object *args, *ret = NULL;
	struct qm_rd rd;
	int r;

	if (d->err)
		return 0;
	r = qmig_cmd_qom_get(c, path, prop, &ret);
	if (!ok(d, c, r))
		return 0;
	qm_rd_init(&rd, "qom-get");
	/* wrap the string so the reader can check its type and length */
	args = json_object_new_object();
	if (args && !json_object_object_add(args, prop, ret))
		qm_rd_strcpy(&rd, args, prop, buf, len);
	else
		json_object_put(ret);
	json_object_put(args);
	return rd_ok(d, c, &rd) && buf[0];
}

/* A query whose return must be an array (NULL on any failure). */
static struct json_object *query_arr(struct doc *d, struct qmig_qmp_conn *c,
				     int (*query)(struct qmig_qmp_conn *, struct json_object **))
{
	struct json_object *ret = NULL;

	if (d->err || !ok(d, c, query(c, &ret)))
		return NULL;
	return ret;
}

/* QEMU < 9.0 under TCG: the dirty bitmap loses pages on RAM blocks whose
 * size is a multiple of 256 KiB. A bug fixed in a known release, so here
 * the version is the right signal. */
static void check_tcg_bitmap(struct doc *d, struct qmig_qmp_conn *c, const char *side)
{
	unsigned ver = qmig_qmp_qemu_version(qmig_qmp_conn_core(c));
	int enabled = 0, present = 0;
	uint64_t ram = 0;

	if (d->err || !ok(d, c, qmig_cmd_query_kvm(c, &enabled, &present)) || enabled || !ver ||
	    ver >= 90000)
		return;
	if (!ok(d, c, qmig_cmd_query_memory_size(c, &ram)) || ram % (256 * 1024))
		return;
	add(d, QMIG_FINDING_WARN, "tcg-dirty-bitmap-256k",
	    "use postcopy, or a RAM size that is not a multiple of 256 KiB (e.g. -m 524296k "
	    "instead of -m 512M), the same on both sides; --verify=memory checks the result",
	    "%s: QEMU %u.%u under TCG with %llu KiB of RAM, a multiple of 256 KiB: QEMU before "
	    "9.0 loses dirty pages during precopy on such RAM blocks (fixed by commit "
	    "03bfc2188f), so the destination may run with stale memory",
	    side, ver / 10000, ver / 100 % 100, (unsigned long long)(ram >> 10));
}

static char *machine_type(struct doc *d, struct qmig_qmp_conn *c, char *buf, size_t len)
{
	char *suffix;

	if (!qom_get_str(d, c, "/machine", "type", buf, len))
		return NULL;
	suffix = strstr(buf, "-machine");
	if (suffix && !suffix[8])
		*suffix = 0;
	return buf;
}

static void check_machine(struct doc *d, struct qmig_qmp_conn *src, struct qmig_qmp_conn *dst)
{
	char sm[128], dm[128];
	struct json_object *machines;
	int found = 0;

	if (!machine_type(d, src, sm, sizeof(sm)))
		return;
	/* The destination runs the same type: it has it (query-machines is a
	 * 10 KB reply, tens of ms under load, needed only to tell "missing"
	 * from "differs"). */
	if (machine_type(d, dst, dm, sizeof(dm)) && !strcmp(sm, dm))
		return;
	if (!d->err && (machines = query_arr(d, dst, qmig_cmd_query_machines))) {
		struct qm_rd rd;
		size_t n;

		qm_rd_init(&rd, "query-machines");
		n = qm_rd_len(&rd, machines);
		for (size_t i = 0; i < n && !rd.err; i++) {
			struct json_object *m = qm_rd_idx_obj(&rd, machines, i);
			const char *name = qm_rd_str(&rd, m, "name");
			const char *alias = qm_rd_opt_str(&rd, m, "alias", NULL);

			if ((name && !strcmp(name, sm)) || (alias && !strcmp(alias, sm)))
				found = 1;
		}
		json_object_put(machines);
		if (!rd_ok(d, dst, &rd))
			return;
		if (!found)
			add(d, QMIG_FINDING_REFUSE, "machine-type-missing",
			    "run a destination QEMU that has this machine type (a newer QEMU keeps "
			    "the old versioned types), or start the source with a common one",
			    "the source runs machine type %s, which the destination QEMU does not "
			    "have", sm);
	}
	if (found && machine_type(d, dst, dm, sizeof(dm)) && strcmp(sm, dm))
		add(d, QMIG_FINDING_REFUSE, "machine-type-differs",
		    "start the destination with the source's machine type (-M ...)",
		    "the source runs machine type %s, the destination %s: the device state "
		    "will not load", sm, dm);
}

static char *cpu_model(struct doc *d, struct qmig_qmp_conn *c, char *buf, size_t len)
{
	struct json_object *cpus = query_arr(d, c, qmig_cmd_query_cpus_fast);
	char path[1024] = "", *suffix;
	struct qm_rd rd;

	if (!cpus)
		return NULL;
	qm_rd_init(&rd, "query-cpus-fast");
	if (qm_rd_len(&rd, cpus))
		qm_rd_strcpy(&rd, qm_rd_idx_obj(&rd, cpus, 0), "qom-path", path, sizeof(path));
	json_object_put(cpus);
	if (!rd_ok(d, c, &rd) || !path[0] || !qom_get_str(d, c, path, "type", buf, len))
		return NULL;
	suffix = strstr(buf, "-x86_64-cpu");
	if (suffix)
		*suffix = 0;
	return buf;
}

static void check_cpu(struct doc *d, struct qmig_qmp_conn *src, struct qmig_qmp_conn *dst)
{
	struct json_object *defs;
	char model[128], dmodel[128];
	struct qm_rd rd;
	int found = 0;
	size_t n;

	/* The destination's own vCPUs have the source's model: it knows it
	 * (query-cpu-definitions computes every model's features under TCG:
	 * a 35 KB reply, 200 ms here under load). */
	if (!cpu_model(d, src, model, sizeof(model)) ||
	    (cpu_model(d, dst, dmodel, sizeof(dmodel)) && !strcmp(model, dmodel)) || d->err ||
	    !(defs = query_arr(d, dst, qmig_cmd_query_cpu_definitions)))
		return;
	qm_rd_init(&rd, "query-cpu-definitions");
	n = qm_rd_len(&rd, defs);
	for (size_t i = 0; i < n && !rd.err; i++) {
		const char *name = qm_rd_str(&rd, qm_rd_idx_obj(&rd, defs, i), "name");

		if (name && !strcmp(name, model))
			found = 1;
	}
	json_object_put(defs);
	if (rd_ok(d, dst, &rd) && !found)
		add(d, QMIG_FINDING_REFUSE, "cpu-model-missing",
		    "start the source with a CPU model both QEMUs know (-cpu ...)",
		    "the source's CPU model %s is not among the destination's CPU definitions",
		    model);
}

/* Storage migration (--copy-storage-*) mirrors each disk into the
 * destination's image of the same device id: it must have exactly the
 * same virtual size and be writable (the engine refuses otherwise, before
 * anything changes; here they are named ahead of time). */
static void check_disk_images(struct doc *d, struct qmig_qmp_conn *src, struct qmig_qmp_conn *dst)
{
	struct qmig_block_dev *s = NULL, *t = NULL;
	int ns = 0, nt = 0;

	if (qmig_cmd_query_block(src, &s, &ns) < 0 || qmig_cmd_query_block(dst, &t, &nt) < 0) {
		free(s);
		return; /* check_disks reports a failing query-block */
	}
	for (int i = 0; i < ns; i++)
		for (int j = 0; j < nt; j++) {
			if (strcmp(s[i].name, t[j].name) || !s[i].inserted || s[i].ro ||
			    !t[j].inserted || !strcmp(s[i].file, t[j].file))
				continue;
			if (s[i].virtual_size != t[j].virtual_size)
				add(d, QMIG_FINDING_WARN, "disk-size-differs",
				    "for --copy-storage-*, give the destination an image of exactly the "
				    "source's size (qemu-img create or qemu-img resize)",
				    "disk %s: the destination's image %s is %llu bytes, the source's %s "
				    "%llu", s[i].name, t[j].file, (unsigned long long)t[j].virtual_size,
				    s[i].file, (unsigned long long)s[i].virtual_size);
			if (t[j].ro)
				add(d, QMIG_FINDING_WARN, "disk-read-only",
				    "for --copy-storage-*, the destination's image must be writable",
				    "disk %s: the destination's image %s is read-only (%s)", s[i].name,
				    t[j].file, t[j].format);
		}
	free(s);
	free(t);
}

/* Each source disk must exist on the destination, and (on this host) its
 * image file too. */
/* query-block: each device's name, and its image file when a medium is in. */
static int read_block(struct qm_rd *rd, struct json_object *arr, size_t i, const char **name,
		      const char **file)
{
	struct json_object *dev = qm_rd_idx_obj(rd, arr, i), *ins;

	*name = qm_rd_str(rd, dev, "device");
	ins = qm_rd_opt_obj(rd, dev, "inserted");
	*file = ins ? qm_rd_str(rd, ins, "file") : NULL;
	return !rd->err && *name && **name;
}

static void check_disks(struct doc *d, struct qmig_qmp_conn *src, struct qmig_qmp_conn *dst)
{
	struct json_object *sb = query_arr(d, src, qmig_cmd_query_block_raw);
	struct json_object *db = sb ? query_arr(d, dst, qmig_cmd_query_block_raw) : NULL;
	struct qm_rd rs, rdd;
	size_t ns, nd;

	qm_rd_init(&rs, "query-block");
	qm_rd_init(&rdd, "query-block");
	ns = sb && db ? qm_rd_len(&rs, sb) : 0;
	nd = sb && db ? qm_rd_len(&rdd, db) : 0;
	for (size_t i = 0; i < ns && !rs.err && !rdd.err; i++) {
		const char *name, *sfile, *dn, *dfile = NULL;
		int match = 0;
		struct stat st;

		if (!read_block(&rs, sb, i, &name, &sfile) || !sfile)
			continue;
		for (size_t j = 0; j < nd && !match && !rdd.err; j++) {
			const char *f;

			if (read_block(&rdd, db, j, &dn, &f) && !strcmp(dn, name)) {
				match = 1;
				dfile = f;
			}
		}
		if (rdd.err)
			break;
		if (!match) {
			add(d, QMIG_FINDING_REFUSE, "disk-missing",
			    "give the destination the same -drive/-blockdev (shared storage, or a copy)",
			    "the source's disk %s (%s) has no counterpart on the destination", name,
			    sfile);
			continue;
		}
		if (!d->o->same_host)
			continue;
		if (dfile && dfile[0] == '/' && stat(dfile, &st) < 0)
			add(d, QMIG_FINDING_REFUSE, "disk-missing",
			    "restore the image file at that path, or point the destination's drive at "
			    "the shared storage",
			    "the destination's disk %s uses %s, which does not exist (%s)", name, dfile,
			    strerror(errno));
	}
	rd_ok(d, src, &rs);
	rd_ok(d, dst, &rdd);
	json_object_put(sb);
	json_object_put(db);
}

static void check_memory(struct doc *d, struct qmig_qmp_conn *src)
{
	FILE *f = fopen("/proc/meminfo", "re");
	unsigned long long kb = 0;
	uint64_t ram = 0;
	char line[128];

	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "MemAvailable: %llu kB", &kb) == 1)
			break;
	if (f)
		fclose(f);
	if (!kb || d->err || !ok(d, src, qmig_cmd_query_memory_size(src, &ram)) || !ram)
		return;
	if ((uint64_t)kb * 1024 < ram)
		add(d, QMIG_FINDING_REFUSE, "memory-low",
		    "free memory on the destination host, or migrate to another host",
		    "the destination host has %llu MiB available, the guest needs %llu MiB",
		    kb >> 10, (unsigned long long)(ram >> 20));
	else if ((uint64_t)kb * 1024 < ram + ram / 10)
		add(d, QMIG_FINDING_WARN, "memory-low",
		    "free memory on the destination host",
		    "the destination host has %llu MiB available for a %llu MiB guest (less than "
		    "10%% to spare)", kb >> 10, (unsigned long long)(ram >> 20));
}

static void check_ports(struct doc *d)
{
	struct qmig_port_opts po = QMIG_PORT_OPTS_INIT;
	struct qmig_port *p = NULL;
	char msg[256] = "";

	po.lo = d->o->port_lo;
	po.hi = d->o->port_hi;
	po.bind_addr = d->o->listen_addr;
	po.lock_dir = d->o->port_lock_dir;
	po.netns = d->o->dst_netns;
	if (qmig_port_alloc(&p, &po, msg, sizeof(msg)) < 0 && strstr(msg, "no free port"))
		add(d, QMIG_FINDING_REFUSE, "port-range-full",
		    "free a port in the range, or choose another range (--port-range)", "%s", msg);
	qmig_port_free(p);
}

static void check_states(struct doc *d, struct qmig_qmp_conn *src, struct qmig_qmp_conn *dst)
{
	struct qmig_vm_status st;
	struct qmig_migrate_info mi;

	if (ok(d, src, qmig_cmd_query_migrate(src, &mi)) &&
	    (!strcmp(mi.status, "active") || !strcmp(mi.status, "setup") ||
	     !strncmp(mi.status, "postcopy", 8)))
		add(d, QMIG_FINDING_REFUSE, "source-migrating",
		    "wait for it, or cancel it (qmigrate cancel / migrate_cancel)",
		    "the source is already migrating (%s)", mi.status);
	if (dst && !d->err && ok(d, dst, qmig_cmd_query_status(dst, &st)) &&
	    strcmp(st.status, "inmigrate"))
		add(d, QMIG_FINDING_REFUSE, "destination-not-incoming",
		    "start the destination QEMU with -incoming defer",
		    "the destination QEMU is '%s', not waiting for a migration", st.status);
}

static void check_ram(struct doc *d, struct qmig_qmp_conn *src, struct qmig_qmp_conn *dst)
{
	uint64_t a = 0, b = 0;

	if (!d->err && ok(d, src, qmig_cmd_query_memory_size(src, &a)) &&
	    ok(d, dst, qmig_cmd_query_memory_size(dst, &b)) && a != b)
		add(d, QMIG_FINDING_REFUSE, "ram-size-differs",
		    "start the destination with the same -m as the source",
		    "the source has %llu KiB of RAM, the destination %llu KiB: the destination "
		    "will reject the stream", (unsigned long long)(a >> 10),
		    (unsigned long long)(b >> 10));
}

int qmig_doctor_run(struct qmig_qmp_conn *src, struct qmig_qmp_conn *dst,
		    const struct qmig_doctor_opts *opts, struct qmig_finding **findings, size_t *n)
{
	struct qmig_doctor_opts dflt = QMIG_DOCTOR_OPTS_INIT;
	struct doc d = {0};

	if (!src || !findings || !n || (opts && (opts->version < 1 ||
						     opts->version > QMIG_DOCTOR_OPTS_VERSION)))
		return -EINVAL;
	d.o = opts ? opts : &dflt;
	check_states(&d, src, dst);
	check_tcg_bitmap(&d, src, "source");
	if (dst) {
		struct qmig_finding vf[4]; /* versions.c: the pair's direction and known bugs */
		for (size_t i = 0, k = qm_version_findings(src, dst, vf, 4); i < k; i++)
			add(&d, vf[i].severity, vf[i].id, vf[i].fix, "%s", vf[i].problem);
		check_tcg_bitmap(&d, dst, "destination");
		check_ram(&d, src, dst);
		check_machine(&d, src, dst);
		check_cpu(&d, src, dst);
		check_disks(&d, src, dst);
		check_disk_images(&d, src, dst); /* storage migration (storage.c) */
	}
	if (d.o->same_host)
		check_memory(&d, src);
	if (!d.o->skip_ports)
		check_ports(&d);
	if (d.err) {
		if (opts && opts->version >= 2 && opts->err && opts->err_len)
			snprintf(opts->err, opts->err_len, "%s", d.errmsg);
		free(d.f);
		return d.err;
	}
	*findings = d.f;
	*n = d.n;
	return 0;
}

void qmig_findings_free(struct qmig_finding *f)
{
	free(f);
}
