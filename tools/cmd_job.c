/* qmigrate status / qmigrate cancel: talk to a running `qmigrate migrate`
 * through its control socket, or (status --qmp) ask a QEMU directly. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <json-c/json.h>

#include "cli.h"
#include "job.h"
#include "qmigrate.h"

static void usage(FILE *f, const char *cmd)
{
	if (!strcmp(cmd, "status"))
		fprintf(f, "usage: qmigrate status [--job PID | --qmp SOCK] [--json]\n\n"
			   "Show a running migration: its phase, pass, bytes sent and left, rates\n"
			   "and expected downtime. --qmp asks a QEMU directly (query-migrate) when\n"
			   "no qmigrate job holds its socket.\n");
	else
		fprintf(f, "usage: qmigrate cancel [--job PID]\n\n"
			   "Cancel a running migration. The job rolls back: the source guest keeps\n"
			   "running, a destination it launched is stopped, its port is released.\n");
}

static void print_status(const char *line, int json)
{
	struct json_object *o = json_tokener_parse(line), *v;
	char a[32], b[32], c[32];

	if (json || !o) {
		puts(line);
		json_object_put(o);
		return;
	}
#define I(k) (json_object_object_get_ex(o, k, &v) ? json_object_get_int64(v) : 0)
#define S(k) (json_object_object_get_ex(o, k, &v) ? json_object_get_string(v) : "")
	format_size(a, sizeof(a), (double)I("transferred"));
	format_size(b, sizeof(b), (double)I("remaining"));
	format_size(c, sizeof(c), (double)I("bandwidth"));
	printf("job:                %s (pid %lld)\n"
	       "phase:              %s\n"
	       "status:             %s\n"
	       "elapsed:            %lld ms\n"
	       "pass:               %lld\n"
	       "transferred:        %s\n"
	       "remaining:          %s\n"
	       "bandwidth:          %s/s\n"
	       "expected downtime:  %lld ms\n",
	       S("job"), (long long)I("pid"), S("phase"), S("status"), (long long)I("elapsed_ms"),
	       (long long)I("pass"), a, b, c, (long long)I("expected_downtime_ms"));
#undef I
#undef S
	json_object_put(o);
}

static int status_qmp(const char *sock, int json)
{
	struct qmig_qmp_conn *c;
	struct json_object *ret = NULL;
	int r;

	r = qmig_qmp_conn_open(&c, sock, NULL);
	if (r < 0)
		die(EXIT_SETUP, "%s: %s", sock, strerror(-r));
	r = qmig_qmp_conn_call(c, "query-migrate", NULL, &ret, -1);
	if (r < 0) {
		warnx("query-migrate: %s", qmig_qmp_conn_error(c));
		qmig_qmp_conn_close(c);
		return EXIT_FAIL;
	}
	puts(json_object_to_json_string_ext(ret, json ? JSON_C_TO_STRING_PLAIN
						      : JSON_C_TO_STRING_PRETTY));
	json_object_put(ret);
	qmig_qmp_conn_close(c);
	return EXIT_OK;
}

static int job_cmd(int argc, char **argv, int cancel)
{
	static const struct option lo[] = {{"job", 1, 0, 'j'}, {"qmp", 1, 0, 'q'},
					   {"json", 0, 0, 'J'}, {"help", 0, 0, 'h'},
					   {0, 0, 0, 0}};
	const char *qmp = NULL;
	int pid = 0, json = 0, c;
	char msg[300];
	char *rep;

	optind = 1;
	while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		switch (c) {
		case 'j': pid = (int)parse_long("--job", optarg, 1, 1 << 22); break;
		case 'q': qmp = optarg; break;
		case 'J': json = 1; break;
		case 'h': usage(stdout, argv[0]); return EXIT_OK;
		default: usage(stderr, argv[0]); return EXIT_USAGE;
		}
	}
	if (optind < argc)
		die(EXIT_USAGE, "unexpected argument '%s'", argv[optind]);
	if (qmp && !cancel)
		return status_qmp(qmp, json);
	if (qmp)
		die(EXIT_USAGE, "cancel works on jobs: use --job PID");
	rep = job_request(pid, cancel ? "cancel" : "status", msg, sizeof(msg));
	if (!rep)
		die(EXIT_FAIL, "%s", msg);
	if (cancel)
		printf("%s\n", json ? rep : "cancel requested; the job rolls back");
	else
		print_status(rep, json);
	free(rep);
	return EXIT_OK;
}

int cmd_status(int argc, char **argv)
{
	return job_cmd(argc, argv, 0);
}

int cmd_cancel(int argc, char **argv)
{
	return job_cmd(argc, argv, 1);
}
