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
#include "qmp_reply.h"

/* Control characters replaced in place. */
static char *printable(char *s)
{
	for (char *p = s; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = '?';
	return s;
}

struct plan_values {
	struct json_object *src, *dst; /* name -> value the plan sets */
	struct json_object *feat;      /* the plan's "feature" records' arguments + why */
};

/* The plan's records are the engine's own, but the names and values in
 * them came from the QEMUs: read them like a reply. */
static void collect(const struct qmig_migration_event *ev, void *ud)
{
	struct plan_values *pv = ud;
	struct json_object *args, *list, *target, *v;
	const char *side, *cmd, *k;
	struct qm_rd_iter it;
	struct qm_rd rd;

	qm_rd_init(&rd, "plan");
	if (strcmp(ev->type, "plan") || !qm_rd_has(&rd, ev->record, "command") ||
	    !qm_rd_has(&rd, ev->record, "arguments"))
		return;
	cmd = qm_rd_str(&rd, ev->record, "command");
	args = qm_rd_obj(&rd, ev->record, "arguments");
	side = qm_rd_opt_str(&rd, ev->record, "side", "");
	if (rd.err)
		return;
	target = !strcmp(side, "source") ? pv->src : pv->dst;
	if (!strcmp(side, "qmigrate") && !strcmp(cmd, "feature")) {
		struct json_object *row = NULL;

		if (json_object_deep_copy(args, &row, NULL) < 0)
			return;

		json_object_object_add(row, "why", json_object_new_string(
			qm_rd_opt_str(&rd, ev->record, "why", "")));
		json_object_array_add(pv->feat, row);
	} else if (!strcmp(cmd, "migrate-set-parameters")) {
		qm_rd_iter_init(&rd, args, &it);
		while (qm_rd_iter_next(&it, &k, &v))
			json_object_object_add(target, k, json_object_get(v));
	} else if (!strcmp(cmd, "migrate-set-capabilities") &&
		   (list = qm_rd_opt_arr(&rd, args, "capabilities"))) {
		for (size_t i = 0; i < qm_rd_len(&rd, list); i++) {
			struct json_object *c = qm_rd_idx_obj(&rd, list, i);
			const char *n = qm_rd_str(&rd, c, "capability");
			int st = qm_rd_bool(&rd, c, "state");

			if (rd.err)
				break;
			json_object_object_add(target, n, json_object_new_boolean(st));
		}
	}
}

/* The dry run: plans on the real pair, changes nothing. */
static int dry_plan(const char *src, const char *dst, struct plan_values *pv)
{
	struct qmig_migrate_opts o = QMIG_MIGRATE_OPTS_INIT;
	struct qmig_migration *m;
	struct qmig_result res = QMIG_RESULT_INIT;
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

/* A value for the table: its JSON text, printable characters only (a
 * name or value from a QEMU must not reach the terminal as escapes). */
static const char *val_str(struct json_object *o, const char *k, char *buf, size_t len)
{
	struct json_object *v;
	struct qm_rd rd;

	qm_rd_init(&rd, "caps");
	if (!o || !qm_rd_has(&rd, o, k))
		return "-";
	v = qm_rd_any(&rd, o, k);
	snprintf(buf, len, "%s",
		 v && json_object_is_type(v, json_type_string)
		     ? qm_rd_str(&rd, o, k)
		     : json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN));
	return printable(buf);
}

static void usage(FILE *f)
{
	fprintf(f, "usage: qmigrate caps --src-qmp SOCK --dst-qmp SOCK [--json]\n\n"
		   "List every migration capability and parameter of a pair of QEMUs: on\n"
		   "the source, on the destination, whether both have it, and the value\n"
		   "qmigrate migrate would set (from a dry run; the destination must be\n"
		   "waiting with -incoming for that column), then the newer features\n"
		   "qmigrate uses when both QEMUs have them (zero-page-detection, multifd\n"
		   "compression, switchover-ack, channels, avail-switchover-bandwidth):\n"
		   "which side has each, whether it would be used, and why. Changes nothing.\n");
}

/* The newer features qmigrate uses by itself when both QEMUs have them. */
static void features(struct json_object *feat, struct json_object *out)
{
	struct qm_rd rd;
	char nm[64], why[200];

	qm_rd_init(&rd, "features");
	if (out) {
		json_object_object_add(out, "features", json_object_get(feat));
		return;
	}
	printf("\n%-32s %-12s %-12s %-6s %s\n", "features", "source", "destination", "used",
	       "why");
	for (size_t i = 0; i < qm_rd_len(&rd, feat); i++) {
		struct json_object *f = qm_rd_idx_obj(&rd, feat, i);

		if (!f)
			break;
		snprintf(nm, sizeof(nm), "%s", qm_rd_opt_str(&rd, f, "name", "?"));
		snprintf(why, sizeof(why), "%s", qm_rd_opt_str(&rd, f, "why", ""));
		printf("%-32s %-12s %-12s %-6s %s\n", printable(nm),
		       qm_rd_opt_bool(&rd, f, "source", 0) ? "yes" : "no",
		       qm_rd_opt_bool(&rd, f, "destination", 0) ? "yes" : "no",
		       qm_rd_opt_bool(&rd, f, "used", 0) ? "YES" : "no", printable(why));
	}
}

static void table(const char *what, struct json_object *s, struct json_object *d,
		  struct json_object *ps, struct json_object *pd, struct json_object *out)
{
	char a[64], b[64], c[64], e[64], nm[64];
	struct json_object *arr = json_object_new_array(), *sv, *dv;
	struct qm_rd_iter it;
	struct qm_rd rd;
	const char *name;

	qm_rd_init(&rd, what);
	if (!out)
		printf("\n%-32s %-12s %-12s %-6s %s\n", what, "source", "destination", "both",
		       "qmigrate sets (src/dst)");
	qm_rd_iter_init(&rd, s, &it);
	while (qm_rd_iter_next(&it, &name, &sv)) {
		int both = qm_rd_has(&rd, d, name);
		struct json_object *row;

		if (!out) {
			char set[140];

			snprintf(set, sizeof(set), "%s/%s", val_str(ps, name, c, sizeof(c)),
				 val_str(pd, name, e, sizeof(e)));
			snprintf(nm, sizeof(nm), "%s", name);
			printf("%-32s %-12.12s %-12.12s %-6s %s\n", printable(nm),
			       val_str(s, name, a, sizeof(a)), val_str(d, name, b, sizeof(b)),
			       both ? "yes" : "NO", strcmp(set, "-/-") ? set : "");
			continue;
		}
		row = json_object_new_object();
		json_object_object_add(row, "name", json_object_new_string(name));
		json_object_object_add(row, "source", json_object_get(sv));
		if (both)
			json_object_object_add(row, "destination",
					       json_object_get(qm_rd_any(&rd, d, name)));
		json_object_object_add(row, "both", json_object_new_boolean(both));
		if (ps && qm_rd_has(&rd, ps, name))
			json_object_object_add(row, "set_source",
					       json_object_get(qm_rd_any(&rd, ps, name)));
		if (pd && qm_rd_has(&rd, pd, name))
			json_object_object_add(row, "set_destination",
					       json_object_get(qm_rd_any(&rd, pd, name)));
		json_object_array_add(arr, row);
	}
	/* Names only the destination has. */
	qm_rd_iter_init(&rd, d, &it);
	while (qm_rd_iter_next(&it, &name, &dv)) {
		struct json_object *row;

		if (qm_rd_has(&rd, s, name))
			continue;
		if (!out) {
			snprintf(nm, sizeof(nm), "%s", name);
			printf("%-32s %-12s %-12.12s %-6s\n", printable(nm), "-",
			       val_str(d, name, b, sizeof(b)), "NO");
			continue;
		}
		row = json_object_new_object();
		json_object_object_add(row, "name", json_object_new_string(name));
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
	struct plan_values pv = {json_object_new_object(), json_object_new_object(),
				 json_object_new_array()};
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
		struct qmig_qmp_conn_opts co = QMIG_QMP_CONN_OPTS_INIT;
		struct qmig_qmp_conn *q;
		int r;

		/* The reason a connection failed (a limit, a bad greeting) is
		 * only told to the log: print it. */
		co.log.fn = cli_log;
		r = qmig_qmp_conn_open(&q, path, &co);
		if (r < 0)
			die(EXIT_SETUP, "%s: cannot connect: %s", path, strerror(-r));
		if (qmig_cmd_query_migrate_capabilities(q, &caps[i]) < 0 ||
		    qmig_cmd_query_migrate_parameters(q, &params[i]) < 0)
			die(EXIT_SETUP, "%s", qmig_qmp_conn_error(q)); /* names the socket */
		qmig_qmp_conn_close(q); /* the dry run opens its own */
	}
	dry_plan(src, dst, &pv);
	if (json)
		out = json_object_new_object();
	table("capabilities", caps[0], caps[1], pv.src, pv.dst, out);
	table("parameters", params[0], params[1], pv.src, pv.dst, out);
	features(pv.feat, out);
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
	json_object_put(pv.feat);
	return EXIT_OK;
}
