/* qmigrate verify: check the memory stamps of a running or stopped tiny
 * test guest. Exit 0 verified, 1 bad pages (the first one named), 3 when it
 * could not check (not our guest, QMP unreachable). */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <json-c/json.h>

#include "cli.h"
#include "qmig_commands.h"
#include "qmig_launch.h"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: qmigrate verify --qmp SOCKET [--keep-stopped] [--dir DIR] [--json]\n\n"
		"Checks every stamped page of the tiny test guest behind the QMP socket.\n"
		"A running guest is stopped for the check (its memory is dumped with\n"
		"pmemsave into a private file in DIR, default $TMPDIR or /tmp) and resumed\n"
		"afterwards unless --keep-stopped. Exit status: 0 verified, 1 bad pages\n"
		"(the first one is named), 3 could not check.\n");
}

static void report(const struct qmig_verify_report *rep, int r, double ms, int json)
{
	if (json) {
		struct json_object *o = json_object_new_object();

		json_object_object_add(o, "verified", json_object_new_boolean(r == 0));
		json_object_object_add(o, "pages_checked",
				       json_object_new_uint64(rep->pages_checked));
		json_object_object_add(o, "pages_bad", json_object_new_uint64(rep->pages_bad));
		json_object_object_add(o, "generation", json_object_new_uint64(rep->generation));
		if (r) {
			char gpa[32];

			snprintf(gpa, sizeof(gpa), "0x%llx",
				 (unsigned long long)rep->first_bad_gpa);
			json_object_object_add(o, "first_bad_gpa", json_object_new_string(gpa));
			json_object_object_add(o, "detail", json_object_new_string(rep->detail));
		}
		json_object_object_add(o, "ms", json_object_new_double(ms));
		printf("%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
		json_object_put(o);
		return;
	}
	if (r == 0)
		printf("verified: %llu pages, generation %llu, in %.0f ms\n",
		       (unsigned long long)rep->pages_checked,
		       (unsigned long long)rep->generation, ms);
	else
		printf("BAD: %llu of %llu pages wrong, first at gpa 0x%llx: %s\n",
		       (unsigned long long)rep->pages_bad, (unsigned long long)rep->pages_checked,
		       (unsigned long long)rep->first_bad_gpa, rep->detail);
}

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

int cmd_verify(int argc, char **argv)
{
	static const struct option opts[] = {
		{"qmp", required_argument, 0, 'q'},
		{"keep-stopped", no_argument, 0, 'k'},
		{"dir", required_argument, 0, 'd'},
		{"json", no_argument, 0, 'j'},
		{"help", no_argument, 0, 'h'},
		{0, 0, 0, 0},
	};
	struct qmig_qmp_conn_opts co = QMIG_QMP_CONN_OPTS_INIT;
	struct qmig_qmp_conn *conn = NULL;
	struct qmig_verify_report rep = {0};
	struct qmig_vm_status st;
	const char *qmp = NULL, *dir = NULL;
	int c, keep = 0, json = 0, stopped = 0, r, r2;
	double t0;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'q': qmp = optarg; break;
		case 'k': keep = 1; break;
		case 'd': dir = optarg; break;
		case 'j': json = 1; break;
		case 'h': usage(stdout); return EXIT_OK;
		default: usage(stderr); return EXIT_USAGE;
		}
	}
	if (!qmp || optind < argc)
		die(EXIT_USAGE, "verify: --qmp SOCKET is required (see --help)");
	co.log = (struct qmig_log_cb){cli_log, NULL, NULL};
	r = qmig_qmp_conn_open(&conn, qmp, &co);
	if (r < 0)
		die(EXIT_SETUP, "verify: cannot connect to %s: %s", qmp, strerror(-r));
	t0 = now_ms();
	r = qmig_cmd_query_status(conn, &st);
	if (r == 0 && st.running) {
		r = qmig_cmd_stop(conn);
		stopped = r == 0;
	}
	if (r < 0) {
		warnx("verify: %s: %s", qmp, qmig_qmp_conn_error(conn));
		qmig_qmp_conn_close(conn);
		return EXIT_SETUP;
	}
	r = qmig_tiny_verify(conn, dir, &rep);
	r2 = (stopped && !keep) ? qmig_cmd_cont(conn) : 0;
	if (r2 < 0)
		warnx("verify: could not resume the guest: %s", qmig_qmp_conn_error(conn));
	if (r < 0) {
		const char *why = r == -ENOMSG ? "no tiny-guest header at 4 MiB (not our guest, "
						 "or it has not booted)"
			       : r == -EINPROGRESS ? "an incoming migration has not finished"
			       : r == -EREMOTEIO ? qmig_qmp_conn_error(conn)
						  : strerror(-r);

		warnx("verify: cannot check %s: %s", qmp, why);
		qmig_qmp_conn_close(conn);
		return EXIT_SETUP;
	}
	qmig_qmp_conn_close(conn);
	report(&rep, r, now_ms() - t0, json);
	return r == 0 ? EXIT_OK : EXIT_FAIL;
}
