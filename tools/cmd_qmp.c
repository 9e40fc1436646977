/* qmigrate qmp: send one QMP command to a running QEMU and print its reply. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>

#include "cli.h"
#include "qmig_qmp.h"

static void usage(FILE *f)
{
	fprintf(f, "usage: qmigrate qmp [--timeout MS] SOCKET COMMAND [ARGUMENTS-JSON]\n\n"
		   "Send COMMAND to the QEMU monitor at SOCKET (a unix socket path, or\n"
		   "tcp:HOST:PORT) and print the reply's \"return\" value as JSON: indented\n"
		   "on a terminal, one line otherwise. ARGUMENTS-JSON is a JSON object.\n\n"
		   "Exit codes: 0 ok; 1 QEMU replied with an error (its class and\n"
		   "description go to stderr); 2 usage or bad JSON; 3 cannot connect.\n");
}

/* Keeps the reason a connection failed, for one clear message. */
static char open_err[512];

static void log_cb(enum qmig_log_level level, const char *msg, void *user_data)
{
	if (level == QMIG_LOG_ERROR)
		snprintf(open_err, sizeof(open_err), "%s", msg);
	else
		cli_log(level, msg, user_data);
}

/* The arguments must be a JSON object; say exactly what is wrong if not. */
static struct json_object *parse_args(const char *text)
{
	enum json_tokener_error jerr;
	struct json_object *o = json_tokener_parse_verbose(text, &jerr);

	if (!o)
		die(EXIT_USAGE, "arguments are not valid JSON (%s): %s",
		    json_tokener_error_desc(jerr), text);
	if (!json_object_is_type(o, json_type_object)) {
		json_object_put(o);
		die(EXIT_USAGE, "arguments must be a JSON object like '{\"key\": 1}': %s", text);
	}
	return o;
}

int cmd_qmp(int argc, char **argv)
{
	struct qmig_qmp_conn_opts opts = QMIG_QMP_CONN_OPTS_INIT;
	struct json_object *args = NULL, *ret = NULL;
	struct qmig_qmp_conn *conn;
	int i = 1, r, flags;

	for (; i < argc && argv[i][0] == '-' && argv[i][1]; i++) {
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			usage(stdout);
			return EXIT_OK;
		} else if (!strcmp(argv[i], "--timeout") && i + 1 < argc) {
			opts.timeout_ms = (int)parse_long("--timeout", argv[++i], 1, 3600000);
		} else {
			usage(stderr);
			die(EXIT_USAGE, "qmp: unknown option '%s'", argv[i]);
		}
	}
	if (argc - i < 2 || argc - i > 3) {
		usage(stderr);
		return EXIT_USAGE;
	}
	if (argc - i == 3)
		args = parse_args(argv[i + 2]);
	/* Errors are kept for one message below, not printed twice. */
	opts.log.fn = log_cb;
	r = qmig_qmp_conn_open(&conn, argv[i], &opts);
	if (r < 0)
		die(EXIT_SETUP, "%s", open_err[0] ? open_err : strerror(-r));
	r = qmig_qmp_conn_call(conn, argv[i + 1], args, &ret, -1); /* raw QMP: the passthrough */
	json_object_put(args);
	if (r == -EREMOTEIO) {
		warnx("%s: %s", qmig_qmp_conn_error_class(conn), qmig_qmp_conn_error(conn));
		qmig_qmp_conn_close(conn);
		return EXIT_FAIL;
	}
	if (r < 0) {
		warnx("%s", qmig_qmp_conn_error(conn));
		qmig_qmp_conn_close(conn);
		return EXIT_FAIL;
	}
	flags = isatty(STDOUT_FILENO) ? JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED
				      : JSON_C_TO_STRING_PLAIN;
	printf("%s\n", json_object_to_json_string_ext(ret, flags | JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(ret);
	qmig_qmp_conn_close(conn);
	return EXIT_OK;
}
