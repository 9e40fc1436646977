/* Host profiles: the only source of a destination's command line. A
 * request names a profile and fills in values the profile allows; this
 * file checks them and builds what to launch (docs/PROTOCOL.md, "Host
 * profiles"; examples/profiles/README). */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "agent.h"

int agent_valid_name(const char *s)
{
	size_t n = 0;

	for (; s && s[n]; n++)
		if (!isalnum((unsigned char)s[n]) && s[n] != '-' && s[n] != '_')
			return 0;
	return n > 0 && n < 64;
}

/* What a value filled into a QEMU option may contain: no commas (QEMU's
 * option separator), no '=', nothing a shell or QEMU would read specially. */
static int safe_value(const char *s)
{
	if (!*s || strlen(s) > 200)
		return 0;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && !strchr("._-/:", *s))
			return 0;
	return 1;
}

static int parse_bytes(struct json_object *v, uint64_t *out)
{
	const char *s;
	char *end;
	double d;

	if (json_object_is_type(v, json_type_int)) {
		if (json_object_get_int64(v) < 0)
			return -EINVAL;
		*out = (uint64_t)json_object_get_int64(v);
		return 0;
	}
	if (!json_object_is_type(v, json_type_string))
		return -EINVAL;
	s = json_object_get_string(v);
	errno = 0;
	d = strtod(s, &end);
	if (end == s || errno || d < 0 || d > 1e15)
		return -EINVAL;
	switch (toupper((unsigned char)*end)) {
	case 0: break;
	case 'K': d *= 1024; end++; break;
	case 'M': d *= 1024 * 1024; end++; break;
	case 'G': d *= 1024.0 * 1024 * 1024; end++; break;
	default: return -EINVAL;
	}
	if (*end == 'i' || *end == 'B')
		end++;
	if (*end)
		return -EINVAL;
	*out = (uint64_t)d;
	return 0;
}

static struct json_object *load_profile(const struct agent *a, const char *name, const char **err,
					char *msg, size_t len)
{
	char path[PATH_MAX];
	struct json_object *p;
	struct stat st;

	if (!agent_valid_name(name)) {
		*err = "unknown-profile";
		snprintf(msg, len, "'%.64s' is not a profile name", name ? name : "");
		return NULL;
	}
	snprintf(path, sizeof(path), "%s/%s.json", a->cfg.profiles_dir, name);
	if (stat(path, &st) < 0) {
		*err = "unknown-profile";
		snprintf(msg, len, "no profile '%s' on this host", name);
		return NULL;
	}
	p = json_object_from_file(path);
	if (!p || !json_object_is_type(p, json_type_object)) {
		json_object_put(p);
		*err = "bad-profile";
		snprintf(msg, len, "profile '%s' (%s) is not a JSON object", name, path);
		return NULL;
	}
	return p;
}

struct json_object *agent_profile_list(const struct agent *a)
{
	struct json_object *arr = json_object_new_array();
	DIR *d = opendir(a->cfg.profiles_dir);
	struct dirent *e;

	while (d && (e = readdir(d))) {
		size_t n = strlen(e->d_name);

		if (n > 5 && !strcmp(e->d_name + n - 5, ".json"))
			json_object_array_add(arr, json_object_new_string_len(e->d_name, (int)n - 5));
	}
	if (d)
		closedir(d);
	return arr;
}

/* The values a request chose, after the profile allowed them. */
struct chosen {
	const char *keys[40];
	char vals[40][208];
	int n;
	uint64_t mem;
	int cpus;
	const char *accel;
	int guest;
};

static void put(struct chosen *c, const char *k, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void put(struct chosen *c, const char *k, const char *fmt, ...)
{
	va_list ap;

	if (c->n == 40)
		return;
	c->keys[c->n] = k;
	va_start(ap, fmt);
	vsnprintf(c->vals[c->n], sizeof(c->vals[0]), fmt, ap);
	va_end(ap);
	c->n++;
}

static const char *get(const struct chosen *c, const char *k)
{
	for (int i = 0; i < c->n; i++)
		if (!strcmp(c->keys[i], k))
			return c->vals[i];
	return NULL;
}

static int in_list(struct json_object *arr, const char *v)
{
	if (!json_object_is_type(arr, json_type_array))
		return 0;
	for (size_t i = 0; i < json_object_array_length(arr); i++) {
		struct json_object *e = json_object_array_get_idx(arr, i);

		if (json_object_is_type(e, json_type_string) && !strcmp(json_object_get_string(e), v))
			return 1;
	}
	return 0;
}

/* A range {"min","max","default"} in bytes or plain numbers. */
static int check_range(struct json_object *spec, const char *what, uint64_t v, char *msg,
		       size_t len)
{
	struct json_object *x;
	uint64_t lo = 0, hi = UINT64_MAX;

	if (json_object_object_get_ex(spec, "min", &x) && parse_bytes(x, &lo) < 0)
		lo = UINT64_MAX;
	if (json_object_object_get_ex(spec, "max", &x) && parse_bytes(x, &hi) < 0)
		hi = 0;
	if (v < lo || v > hi) {
		snprintf(msg, len, "%s %llu is outside the profile's range %llu-%llu", what,
			 (unsigned long long)v, (unsigned long long)lo, (unsigned long long)hi);
		return -ERANGE;
	}
	return 0;
}

/* One generic value from the profile's "values": one_of, dir, or range. */
static int check_value(struct json_object *spec, const char *k, const char *v, char *msg,
		       size_t len)
{
	struct json_object *x;

	if (!safe_value(v)) {
		snprintf(msg, len, "value of '%s' may hold only letters, digits and ._-/:", k);
		return -EINVAL;
	}
	if (json_object_object_get_ex(spec, "one_of", &x)) {
		if (!in_list(x, v)) {
			snprintf(msg, len, "'%s' is not an allowed %s (%s)", v, k,
				 json_object_to_json_string_ext(x, JSON_C_TO_STRING_PLAIN));
			return -EPERM;
		}
		return 0;
	}
	if (json_object_object_get_ex(spec, "dir", &x)) {
		const char *d = json_object_get_string(x);
		size_t n = strlen(d);

		if (strncmp(v, d, n) || v[n] != '/' || strstr(v, "/../") ||
		    (strlen(v) >= 3 && !strcmp(v + strlen(v) - 3, "/..")) || strstr(v, "//")) {
			snprintf(msg, len, "%s '%s' is not a file under %s", k, v, d);
			return -EPERM;
		}
		return 0;
	}
	if (json_object_object_get_ex(spec, "min", &x) || json_object_object_get_ex(spec, "max", &x)) {
		struct json_object *sv = json_object_new_string(v);
		uint64_t n = 0;
		int r = parse_bytes(sv, &n);

		json_object_put(sv);
		if (r < 0) {
			snprintf(msg, len, "%s '%s' is not a number", k, v);
			return -EINVAL;
		}
		return check_range(spec, k, n, msg, len);
	}
	snprintf(msg, len, "the profile's value '%s' has no rule (one_of, dir, min/max)", k);
	return -EPERM;
}

static int choose(struct json_object *prof, struct json_object *req, struct chosen *c,
		  const char **err, char *msg, size_t len)
{
	struct json_object *set = NULL, *vm = NULL, *x, *values = NULL, *spec;
	const char *g = NULL;
	int64_t cpus = 1;

	*err = "not-allowed";
	json_object_object_get_ex(req, "set", &set);
	json_object_object_get_ex(req, "vm", &vm);
	if ((set && !json_object_is_type(set, json_type_object)) ||
	    (vm && !json_object_is_type(vm, json_type_object))) {
		*err = "bad-request";
		snprintf(msg, len, "'set' and 'vm' must be objects");
		return -EINVAL;
	}
	json_object_object_get_ex(prof, "values", &values);
	/* Every key the request sets must be one the profile names. */
	if (set) {
		json_object_object_foreach(set, k, v) {
			if (!json_object_is_type(v, json_type_string)) {
				*err = "bad-request";
				snprintf(msg, len, "set.%s must be a string", k);
				return -EINVAL;
			}
			if (strcmp(k, "mem") && strcmp(k, "cpus") && strcmp(k, "accel") &&
			    strcmp(k, "machine") &&
			    !(values && json_object_object_get_ex(values, k, NULL))) {
				snprintf(msg, len, "the profile does not let a request set '%.64s'",
					 k);
				return -EPERM;
			}
		}
	}
	x = json_object_object_get(prof, "guest");
	g = x ? json_object_get_string(x) : "none";
	c->guest = !strcmp(g, "tiny") ? QMIG_GUEST_TINY : !strcmp(g, "linux") ? QMIG_GUEST_LINUX
									      : QMIG_GUEST_NONE;
	/* RAM: the source's own size, or set.mem, or the profile's default. */
	c->mem = 0;
	if (set && (x = json_object_object_get(set, "mem")) && parse_bytes(x, &c->mem) < 0) {
		*err = "bad-request";
		snprintf(msg, len, "set.mem '%.64s' is not a size", json_object_get_string(x));
		return -EINVAL;
	}
	if (!c->mem && vm && (x = json_object_object_get(vm, "mem")) && parse_bytes(x, &c->mem) < 0) {
		*err = "bad-request";
		snprintf(msg, len, "vm.mem is not a size");
		return -EINVAL;
	}
	spec = json_object_object_get(prof, "mem");
	if (!c->mem && spec && (x = json_object_object_get(spec, "default")))
		parse_bytes(x, &c->mem);
	if (!c->mem) {
		*err = "bad-request";
		snprintf(msg, len, "no RAM size: the request gives none and the profile has no "
				   "default");
		return -EINVAL;
	}
	if (spec && check_range(spec, "mem", c->mem, msg, len) < 0)
		return -ERANGE;
	put(c, "mem_kib", "%llu", (unsigned long long)(c->mem / 1024));
	put(c, "mem_mib", "%llu", (unsigned long long)(c->mem >> 20));
	spec = json_object_object_get(prof, "cpus");
	if (spec && (x = json_object_object_get(spec, "default")))
		cpus = json_object_get_int64(x);
	if (set && (x = json_object_object_get(set, "cpus"))) {
		char *end;

		cpus = strtoll(json_object_get_string(x), &end, 10);
		if (*end || end == json_object_get_string(x)) {
			*err = "bad-request";
			snprintf(msg, len, "set.cpus is not a number");
			return -EINVAL;
		}
	}
	if (cpus < 1 || (spec && check_range(spec, "cpus", (uint64_t)cpus, msg, len) < 0)) {
		if (cpus < 1)
			snprintf(msg, len, "cpus %lld is not a count", (long long)cpus);
		return -ERANGE;
	}
	c->cpus = (int)cpus;
	put(c, "cpus", "%d", c->cpus);
	/* accel and machine: the request picks from the profile's list. */
	{
		static const char *const keys[2] = {"accel", "machine"};
		static const char *const lists[2] = {"accel", "machines"};

		for (int i = 0; i < 2; i++) {
			struct json_object *arr = json_object_object_get(prof, lists[i]);
			const char *v = NULL;

			if (set && (x = json_object_object_get(set, keys[i])))
				v = json_object_get_string(x);
			if (v && !in_list(arr, v)) {
				snprintf(msg, len, "%s '%.64s' is not allowed here (%s)", keys[i], v,
					 arr ? json_object_to_json_string_ext(arr, JSON_C_TO_STRING_PLAIN)
					     : "the profile names none");
				return -EPERM;
			}
			if (!v && arr && json_object_array_length(arr))
				v = json_object_get_string(json_object_array_get_idx(arr, 0));
			if (v)
				put(c, keys[i], "%s", v);
		}
	}
	c->accel = get(c, "accel");
	if (values) {
		json_object_object_foreach(values, k, vs) {
			const char *v = NULL;

			if (set && (x = json_object_object_get(set, k)))
				v = json_object_get_string(x);
			else if ((x = json_object_object_get(vs, "default")))
				v = json_object_get_string(x);
			if (!v)
				continue;
			if (check_value(vs, k, v, msg, len) < 0)
				return -EPERM;
			put(c, k, "%s", v);
		}
	}
	return 0;
}

/* "disks" in the request (a storage copy, --copy-storage-all): allowed
 * only by the profile's "disks" rule {"dir", "max", "max_size", "model"};
 * each becomes an image DIR/JOB-DEVICE.raw of the source disk's size,
 * given to QEMU as a MODEL device with the source's id. */
static int choose_disks(struct json_object *prof, const char *name, struct json_object *req,
			const char *job, struct agent_launch *out, const char **err, char *msg,
			size_t len)
{
	struct json_object *arr, *rule, *x;
	uint64_t max_size = UINT64_MAX;
	int64_t max = AGENT_MAX_DISKS;
	const char *dir, *model = "virtio-blk-pci";
	size_t n;

	*err = "bad-request";
	switch (qm_aj_arr(req, "disks", &arr)) {
	case 0:
		return 0;
	case -1:
		snprintf(msg, len, "'disks' must be an array");
		return -EINVAL;
	}
	n = json_object_array_length(arr);
	if (!n)
		return 0;
	rule = json_object_object_get(prof, "disks");
	if (!rule) {
		*err = "not-allowed";
		snprintf(msg, len, "profile '%s' allows no disk copies (it has no \"disks\" rule)",
			 name);
		return -EPERM;
	}
	*err = "bad-profile";
	x = json_object_is_type(rule, json_type_object) ? json_object_object_get(rule, "dir") : NULL;
	dir = json_object_is_type(x, json_type_string) ? json_object_get_string(x) : NULL;
	if (!dir || *dir != '/' || !safe_value(dir) || strstr(dir, "..")) {
		snprintf(msg, len, "profile '%s': disks.dir must be an absolute directory of "
			 "letters, digits and ._-/: (it goes into QEMU's options)", name);
		return -EINVAL;
	}
	if ((x = json_object_object_get(rule, "max"))) {
		if (!json_object_is_type(x, json_type_int) || json_object_get_int64(x) < 0) {
			snprintf(msg, len, "profile '%s': disks.max must be a count", name);
			return -EINVAL;
		}
		max = json_object_get_int64(x);
		if (max > AGENT_MAX_DISKS)
			max = AGENT_MAX_DISKS;
	}
	if ((x = json_object_object_get(rule, "max_size")) && parse_bytes(x, &max_size) < 0) {
		snprintf(msg, len, "profile '%s': disks.max_size must be a size", name);
		return -EINVAL;
	}
	if ((x = json_object_object_get(rule, "model"))) {
		model = json_object_is_type(x, json_type_string) ? json_object_get_string(x) : "";
		if (!safe_value(model)) {
			snprintf(msg, len, "profile '%s': disks.model must be a device model name",
				 name);
			return -EINVAL;
		}
	}
	*err = "not-allowed";
	if ((int64_t)n > max) {
		snprintf(msg, len, "%zu disks to copy: profile '%s' allows at most %lld", n, name,
			 (long long)max);
		return -EPERM;
	}
	snprintf(out->disk_model, sizeof(out->disk_model), "%s", model);
	for (size_t i = 0; i < n; i++) {
		struct json_object *e = json_object_array_get_idx(arr, i);
		const char *dev = qm_aj_str(e, "device");
		int64_t size = 0;
		struct agent_disk *d = &out->disks[i];

		*err = "bad-request";
		if (!json_object_is_type(e, json_type_object) || !agent_valid_name(dev) ||
		    qm_aj_int(e, "size", &size) < 0) {
			snprintf(msg, len, "each of 'disks' needs a 'device' (1-63 letters, digits, "
					   "'-' or '_') and a 'size'");
			return -EINVAL;
		}
		for (size_t k = 0; k < i; k++)
			if (!strcmp(out->disks[k].device, dev)) {
				snprintf(msg, len, "disk '%s' is listed twice", dev);
				return -EINVAL;
			}
		if (size <= 0 || size % 512) {
			snprintf(msg, len, "disk '%s': size %lld is not a positive multiple of 512",
				 dev, (long long)size);
			return -EINVAL;
		}
		if ((uint64_t)size > max_size) {
			*err = "not-allowed";
			snprintf(msg, len, "disk '%s' of %lld bytes is over profile '%s''s max_size "
				 "%llu", dev, (long long)size, name, (unsigned long long)max_size);
			return -EPERM;
		}
		snprintf(d->device, sizeof(d->device), "%s", dev);
		snprintf(d->path, sizeof(d->path), "%s/%s-%s.raw", dir, job, dev);
		d->size = (uint64_t)size;
		out->ndisks++;
	}
	return 0;
}

/* "{name}" replaced by chosen values; an unknown name refuses. */
static int expand(const char *t, const struct chosen *c, char *out, size_t len, char *msg,
		  size_t mlen)
{
	size_t o = 0;

	while (*t) {
		if (*t == '{') {
			const char *e = strchr(t, '}');
			char k[64];
			const char *v;

			if (!e || (size_t)(e - t - 1) >= sizeof(k)) {
				snprintf(msg, mlen, "profile template: unbalanced '{' in '%s'", t);
				return -EINVAL;
			}
			snprintf(k, sizeof(k), "%.*s", (int)(e - t - 1), t + 1);
			v = get(c, k);
			if (!v) {
				snprintf(msg, mlen, "profile template: no value for {%s}", k);
				return -EINVAL;
			}
			if (o + strlen(v) >= len)
				return -E2BIG;
			memcpy(out + o, v, strlen(v));
			o += strlen(v);
			t = e + 1;
			continue;
		}
		if (o + 1 >= len)
			return -E2BIG;
		out[o++] = *t++;
	}
	out[o] = 0;
	return 0;
}

int agent_profile_build(const struct agent *a, const char *name, struct json_object *req,
			struct agent_launch *out, const char **err, char *msg, size_t len)
{
	struct json_object *prof, *targs, *x;
	struct chosen c = {0};
	int r;

	memset(out, 0, sizeof(*out));
	prof = load_profile(a, name, err, msg, len);
	if (!prof)
		return -ENOENT;
	r = choose(prof, req, &c, err, msg, len);
	if (r == 0)
		r = choose_disks(prof, name, req, qm_aj_str(req, "job"), out, err, msg, len);
	targs = json_object_object_get(prof, "args");
	for (size_t i = 0; r == 0 && targs && i < json_object_array_length(targs); i++) {
		x = json_object_array_get_idx(targs, i);
		if (out->nargs == AGENT_MAX_ARGS || !json_object_is_type(x, json_type_string)) {
			*err = "bad-profile";
			snprintf(msg, len, "profile '%s': args must be at most %d strings", name,
				 AGENT_MAX_ARGS);
			r = -EINVAL;
			break;
		}
		r = expand(json_object_get_string(x), &c, out->args[out->nargs],
			   sizeof(out->args[0]), msg, len);
		if (r < 0)
			*err = "bad-profile";
		out->nargs++;
	}
	if (r == 0) {
		x = json_object_object_get(prof, "qemu");
		if (x && (!json_object_is_type(x, json_type_string) ||
			  strlen(json_object_get_string(x)) >= sizeof(out->qemu))) {
			*err = "bad-profile";
			snprintf(msg, len, "profile '%s': qemu must be a path under %zu bytes", name,
				 sizeof(out->qemu));
			r = -EINVAL;
		} else if (x) {
			memcpy(out->qemu, json_object_get_string(x), strlen(json_object_get_string(x)) + 1);
		}
		if (c.accel)
			snprintf(out->accel, sizeof(out->accel), "%s", c.accel);
		out->guest = c.guest;
		out->mem = c.mem;
		out->userfaultfd = json_object_get_boolean(json_object_object_get(prof, "postcopy"));
	}
	json_object_put(prof);
	return r;
}
