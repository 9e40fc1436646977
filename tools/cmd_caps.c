/* qmigrate caps: for a pair of QEMUs, every migration capability and
 * parameter: on the source, on the destination, usable together, and what
 * the engine would set (taken from a dry run of the real plan, so this
 * command can never disagree with `qmigrate migrate`). */
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <json-c/json.h>

#include "cli.h"
#include "qmigrate.h"

struct plan_values {
	struct json_object *src, *dst; /* name -> value the plan sets */
};

static void collect(const struct qmig_migration_event *ev, void *ud)
{
	struct plan_values *pv = ud;
	struct json_object *side, *cmd, *args, *list, *target;

	if (strcmp(ev->type, "plan") || !json_object_object_get_ex(ev->record, "command", &cmd) ||
	    !json_object_object_get_ex(ev->record, "arguments", &args))
		return;
	json_object_object_get_ex(ev->record, "side", &side);
	target = !strcmp(json_object_get_string(side), "source") ? pv->src : pv->dst;
	if (!strcmp(json_object_get_string(cmd), "migrate-set-parameters")) {
		json_object_object_foreach(args, k, v)
			json_object_object_add(target, k, json_object_get(v));
	} else if (!strcmp(json_object_get_string(cmd), "migrate-set-capabilities") &&
		   json_object_object_get_ex(args, "capabilities", &list)) {
		for (size_t i = 0; i < json_object_array_length(list); i++) {
			struct json_object *c = json_object_array_get_idx(list, i), *n, *st;

			if (json_object_object_get_ex(c, "capability", &n) &&
			    json_object_object_get_ex(c, "state", &st))
				json_object_object_add(target, json_object_get_string(n),
						       json_object_get(st));
		}
	}
}

/* The dry run: plans on the real pair, changes nothing. */
static int dry_plan(const char *src, const char *dst, struct plan_values *pv)
{
	struct qmig_migrate_opts o = QMIG_MIGRATE_OPTS_INIT;
	struct qmig_migration *m;
	struct qmig_result res;
	int r;

	o.src_qmp = src;
	o.dst_qmp = dst;
	o.dry_run = 1;
	o.on_event = (struct qmig_migration_event_cb){collect, pv, NULL};
	if (qmig_migration_new(&m, &o) < 0)
		return -1;
	qmig_migration_run(m);
	qmig_migration_result(m, &res);
	r = strcmp(res.status, "dry-run") ? -1 : 0;
	if (r)
		warnx("no plan (%s): the engine's values are not shown", res.message);
	qmig_migration_free(m);
	return r;
}

static const char *val_str(struct json_object *o, const char *k, char *buf, size_t len)
{
	struct json_object *v;

	if (!o || !json_object_object_get_ex(o, k, &v))
		return "-";
	snprintf(buf, len, "%s", json_object_get_string(v));
	return buf;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: qmigrate caps --src-qmp SOCK --dst-qmp SOCK [--json]\n\n"
		   "List every migration capability and parameter of a pair of QEMUs: on\n"
		   "the source, on the destination, whether both have it, and the value\n"
		   "qmigrate migrate would set (from a dry run; the destination must be\n"
		   "waiting with -incoming for that column). Changes nothing.\n");
}

static void table(const char *what, struct json_object *s, struct json_object *d,
		  struct json_object *ps, struct json_object *pd, struct json_object *out)
{
	char a[64], b[64], c[64], e[64];
	struct json_object *arr = json_object_new_array();

	if (!out)
		printf("\n%-32s %-12s %-12s %-6s %s\n", what, "source", "destination", "both",
		       "qmigrate sets (src/dst)");
	json_object_object_foreach(s, name, sv)
	{
		int both = json_object_object_get_ex(d, name, NULL);
		struct json_object *row;

		(void)sv;
		if (!out) {
			char set[140];

			snprintf(set, sizeof(set), "%s/%s", val_str(ps, name, c, sizeof(c)),
				 val_str(pd, name, e, sizeof(e)));
			printf("%-32s %-12.12s %-12.12s %-6s %s\n", name, val_str(s, name, a, sizeof(a)),
			       val_str(d, name, b, sizeof(b)), both ? "yes" : "NO",
			       strcmp(set, "-/-") ? set : "");
			continue;
		}
		row = json_object_new_object();
		json_object_object_add(row, "name", json_object_new_string(name));
		json_object_object_add(row, "source", json_object_get(sv));
		if (json_object_object_get_ex(d, name, &sv))
			json_object_object_add(row, "destination", json_object_get(sv));
		json_object_object_add(row, "both", json_object_new_boolean(both));
		if (json_object_object_get_ex(ps, name, &sv))
			json_object_object_add(row, "set_source", json_object_get(sv));
		if (json_object_object_get_ex(pd, name, &sv))
			json_object_object_add(row, "set_destination", json_object_get(sv));
		json_object_array_add(arr, row);
	}
	/* Names only the destination has. */
	json_object_object_foreach(d, dname, dv)
	{
		if (json_object_object_get_ex(s, dname, NULL))
			continue;
		if (!out) {
			printf("%-32s %-12s %-12.12s %-6s\n", dname, "-", val_str(d, dname, b, sizeof(b)),
			       "NO");
			continue;
		}
		struct json_object *row = json_object_new_object();

		json_object_object_add(row, "name", json_object_new_string(dname));
		json_object_object_add(row, "destination", json_object_get(dv));
		json_object_object_add(row, "both", json_object_new_boolean(0));
		json_object_array_add(arr, row);
	}
	if (out)
		json_object_object_add(out, what, arr);
	else
		json_object_put(arr);
}

int cmd_caps(int argc, char **argv)
{
	static const struct option lo[] = {{"src-qmp", 1, 0, 's'}, {"dst-qmp", 1, 0, 'd'},
					   {"json", 0, 0, 'j'},    {"help", 0, 0, 'h'},
					   {0, 0, 0, 0}};
	const char *src = NULL, *dst = NULL;
	struct plan_values pv = {json_object_new_object(), json_object_new_object()};
	struct json_object *caps[2] = {0}, *params[2] = {0}, *out = NULL;
	int json = 0, c;

	optind = 1;
	while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		switch (c) {
		case 's': src = optarg; break;
		case 'd': dst = optarg; break;
		case 'j': json = 1; break;
		case 'h': usage(stdout); return EXIT_OK;
		default: usage(stderr); return EXIT_USAGE;
		}
	}
	if (!src || !dst)
		die(EXIT_USAGE, "give --src-qmp and --dst-qmp");
	for (int i = 0; i < 2; i++) {
		const char *path = i ? dst : src;
		struct qmig_qmp_conn *q;
		int r = qmig_qmp_conn_open(&q, path, NULL);

		if (r < 0)
			die(EXIT_SETUP, "%s: %s", path, strerror(-r));
		if (qmig_cmd_query_migrate_capabilities(q, &caps[i]) < 0 ||
		    qmig_cmd_query_migrate_parameters(q, &params[i]) < 0)
			die(EXIT_SETUP, "%s: %s", path, qmig_qmp_conn_error(q));
		qmig_qmp_conn_close(q); /* the dry run opens its own */
	}
	dry_plan(src, dst, &pv);
	if (json)
		out = json_object_new_object();
	table("capabilities", caps[0], caps[1], pv.src, pv.dst, out);
	table("parameters", params[0], params[1], pv.src, pv.dst, out);
	if (out) {
		puts(json_object_to_json_string_ext(out, JSON_C_TO_STRING_PLAIN |
							      JSON_C_TO_STRING_NOSLASHESCAPE));
		json_object_put(out);
	}
	for (int i = 0; i < 2; i++) {
		json_object_put(caps[i]);
		json_object_put(params[i]);
	}
	json_object_put(pv.src);
	json_object_put(pv.dst);
	return EXIT_OK;
}
