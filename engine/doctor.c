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
#include "qmig_transport.h"
#include "versions.h"

struct doc {
	struct qmig_finding *f;
	size_t n, cap;
	const struct qmig_doctor_opts *o;
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

static struct json_object *call(struct qmig_qmp_conn *c, const char *cmd, const char *args)
{
	struct json_object *a = args ? json_tokener_parse(args) : NULL, *ret = NULL;

	if (qmig_qmp_conn_call(c, cmd, a, &ret, -1) < 0)
		ret = NULL;
	json_object_put(a);
	return ret;
}

static const char *str_of(struct json_object *o, const char *k)
{
	struct json_object *v;

	return o && json_object_object_get_ex(o, k, &v) ? json_object_get_string(v) : NULL;
}

/* QEMU < 9.0 under TCG: the dirty bitmap loses pages on RAM blocks whose
 * size is a multiple of 256 KiB. A bug fixed in a known release, so here
 * the version is the right signal. */
static void check_tcg_bitmap(struct doc *d, struct qmig_qmp_conn *c, const char *side)
{
	unsigned ver = qmig_qmp_qemu_version(qmig_qmp_conn_core(c));
	int enabled = 0, present = 0;
	uint64_t ram = 0;

	if (qmig_cmd_query_kvm(c, &enabled, &present) < 0 || enabled || !ver || ver >= 90000)
		return;
	if (qmig_cmd_query_memory_size(c, &ram) < 0 || ram % (256 * 1024))
		return;
	add(d, QMIG_FINDING_WARN, "tcg-dirty-bitmap-256k",
	    "use postcopy, or a RAM size that is not a multiple of 256 KiB (e.g. -m 524296k "
	    "instead of -m 512M), the same on both sides; --verify=memory checks the result",
	    "%s: QEMU %u.%u under TCG with %llu KiB of RAM, a multiple of 256 KiB: QEMU before "
	    "9.0 loses dirty pages during precopy on such RAM blocks (fixed by commit "
	    "03bfc2188f), so the destination may run with stale memory",
	    side, ver / 10000, ver / 100 % 100, (unsigned long long)(ram >> 10));
}

static char *machine_type(struct qmig_qmp_conn *c, char *buf, size_t len)
{
	struct json_object *r = call(c, "qom-get", "{\"path\":\"/machine\",\"property\":\"type\"}");
	const char *t = r ? json_object_get_string(r) : NULL;
	char *suffix;

	if (!t) {
		json_object_put(r);
		return NULL;
	}
	snprintf(buf, len, "%s", t);
	json_object_put(r);
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

	if (!machine_type(src, sm, sizeof(sm)))
		return;
	if (qmig_cmd_query_machines(dst, &machines) == 0) {
		for (size_t i = 0; i < json_object_array_length(machines); i++) {
			struct json_object *m = json_object_array_get_idx(machines, i);
			const char *name = str_of(m, "name"), *alias = str_of(m, "alias");

			if ((name && !strcmp(name, sm)) || (alias && !strcmp(alias, sm)))
				found = 1;
		}
		json_object_put(machines);
		if (!found)
			add(d, QMIG_FINDING_REFUSE, "machine-type-missing",
			    "run a destination QEMU that has this machine type (a newer QEMU keeps "
			    "the old versioned types), or start the source with a common one",
			    "the source runs machine type %s, which the destination QEMU does not "
			    "have", sm);
	}
	if (found && machine_type(dst, dm, sizeof(dm)) && strcmp(sm, dm))
		add(d, QMIG_FINDING_REFUSE, "machine-type-differs",
		    "start the destination with the source's machine type (-M ...)",
		    "the source runs machine type %s, the destination %s: the device state "
		    "will not load", sm, dm);
}

static char *cpu_model(struct qmig_qmp_conn *c, char *buf, size_t len)
{
	struct json_object *cpus = call(c, "query-cpus-fast", NULL), *t = NULL;
	const char *path = cpus && json_object_array_length(cpus)
				   ? str_of(json_object_array_get_idx(cpus, 0), "qom-path")
				   : NULL;
	char args[300], *suffix;

	if (path) {
		snprintf(args, sizeof(args), "{\"path\":\"%s\",\"property\":\"type\"}", path);
		t = call(c, "qom-get", args);
	}
	json_object_put(cpus);
	if (!t)
		return NULL;
	snprintf(buf, len, "%s", json_object_get_string(t));
	json_object_put(t);
	suffix = strstr(buf, "-x86_64-cpu");
	if (suffix)
		*suffix = 0;
	return buf;
}

static void check_cpu(struct doc *d, struct qmig_qmp_conn *src, struct qmig_qmp_conn *dst)
{
	struct json_object *defs;
	char model[128];
	int found = 0;

	if (!cpu_model(src, model, sizeof(model)) ||
	    qmig_cmd_query_cpu_definitions(dst, &defs) < 0)
		return;
	for (size_t i = 0; i < json_object_array_length(defs); i++) {
		const char *n = str_of(json_object_array_get_idx(defs, i), "name");

		if (n && !strcmp(n, model))
			found = 1;
	}
	json_object_put(defs);
	if (!found)
		add(d, QMIG_FINDING_REFUSE, "cpu-model-missing",
		    "start the source with a CPU model both QEMUs know (-cpu ...)",
		    "the source's CPU model %s is not among the destination's CPU definitions",
		    model);
}

/* Each source disk must exist on the destination, and (on this host) its
 * image file too. */
static void check_disks(struct doc *d, struct qmig_qmp_conn *src, struct qmig_qmp_conn *dst)
{
	struct json_object *sb = call(src, "query-block", NULL), *db = call(dst, "query-block", NULL);

	for (size_t i = 0; sb && i < json_object_array_length(sb); i++) {
		struct json_object *dev = json_object_array_get_idx(sb, i), *ins, *match = NULL;
		const char *name = str_of(dev, "device"), *file;
		struct stat st;

		if (!name || !*name || !json_object_object_get_ex(dev, "inserted", &ins))
			continue;
		for (size_t j = 0; db && j < json_object_array_length(db); j++) {
			const char *dn = str_of(json_object_array_get_idx(db, j), "device");

			if (dn && !strcmp(dn, name))
				match = json_object_array_get_idx(db, j);
		}
		if (!match) {
			add(d, QMIG_FINDING_REFUSE, "disk-missing",
			    "give the destination the same -drive/-blockdev (shared storage, or a copy)",
			    "the source's disk %s (%s) has no counterpart on the destination", name,
			    str_of(ins, "file") ? str_of(ins, "file") : "?");
			continue;
		}
		if (!d->o->same_host || !json_object_object_get_ex(match, "inserted", &ins))
			continue;
		file = str_of(ins, "file");
		if (file && file[0] == '/' && stat(file, &st) < 0)
			add(d, QMIG_FINDING_REFUSE, "disk-missing",
			    "restore the image file at that path, or point the destination's drive at "
			    "the shared storage",
			    "the destination's disk %s uses %s, which does not exist (%s)", name, file,
			    strerror(errno));
	}
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
	if (!kb || qmig_cmd_query_memory_size(src, &ram) < 0 || !ram)
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

	if (qmig_cmd_query_migrate(src, &mi) == 0 &&
	    (!strcmp(mi.status, "active") || !strcmp(mi.status, "setup") ||
	     !strncmp(mi.status, "postcopy", 8)))
		add(d, QMIG_FINDING_REFUSE, "source-migrating",
		    "wait for it, or cancel it (qmigrate cancel / migrate_cancel)",
		    "the source is already migrating (%s)", mi.status);
	if (dst && qmig_cmd_query_status(dst, &st) == 0 && strcmp(st.status, "inmigrate"))
		add(d, QMIG_FINDING_REFUSE, "destination-not-incoming",
		    "start the destination QEMU with -incoming defer",
		    "the destination QEMU is '%s', not waiting for a migration", st.status);
}

static void check_ram(struct doc *d, struct qmig_qmp_conn *src, struct qmig_qmp_conn *dst)
{
	uint64_t a = 0, b = 0;

	if (qmig_cmd_query_memory_size(src, &a) == 0 && qmig_cmd_query_memory_size(dst, &b) == 0 &&
	    a != b)
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

	if (!src || !findings || !n || (opts && opts->version != QMIG_DOCTOR_OPTS_VERSION))
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
	}
	if (d.o->same_host)
		check_memory(&d, src);
	if (!d.o->skip_ports)
		check_ports(&d);
	*findings = d.f;
	*n = d.n;
	return 0;
}

void qmig_findings_free(struct qmig_finding *f)
{
	free(f);
}
