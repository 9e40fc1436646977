/* qmigrate doctor: known QEMU migration bugs and traps for a pair of QEMUs. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <json-c/json.h>

#include "cli.h"
#include "qmigrate.h"

static void usage(FILE *f)
{
	fprintf(f, "usage: qmigrate doctor --src-qmp SOCK [--dst-qmp SOCK] [--dst-netns NS]\n"
		   "                      [--listen-addr ADDR] [--port-range LO-HI]\n"
		   "                      [--remote] [--json]\n\n"
		   "Look for what would make a migration fail or corrupt the guest: the\n"
		   "QEMU < 9.0 TCG dirty-bitmap bug (RAM a multiple of 256 KiB), a machine type\n"
		   "or CPU model the destination lacks, a disk missing on the destination,\n"
		   "too little memory on the destination host, a full or blocked port range,\n"
		   "QEMUs in the wrong state. --remote: the destination is on another host (do\n"
		   "not check files and memory here). Exit 0 when nothing refuses, 1 when\n"
		   "something does, 3 when a QEMU cannot be reached or answers with a reply\n"
		   "of the wrong shape. The same checks run\n"
		   "before every qmigrate migrate (--force overrides the refusals).\n");
}

static struct qmig_qmp_conn *open_or_die(const char *path)
{
	struct qmig_qmp_conn_opts co = QMIG_QMP_CONN_OPTS_INIT;
	struct qmig_qmp_conn *c;
	int r;

	co.log.fn = cli_log; /* why the handshake failed (a limit, a bad greeting) */
	r = qmig_qmp_conn_open(&c, path, &co);
	if (r < 0)
		die(EXIT_SETUP, "%s: %s", path, strerror(-r));
	return c;
}

int cmd_doctor(int argc, char **argv)
{
	static const struct option lo[] = {
		{"src-qmp", 1, 0, 's'}, {"dst-qmp", 1, 0, 'd'}, {"dst-netns", 1, 0, 'n'},
		{"listen-addr", 1, 0, 'l'}, {"port-range", 1, 0, 'p'}, {"remote", 0, 0, 'r'},
		{"json", 0, 0, 'j'}, {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
	struct qmig_doctor_opts o = QMIG_DOCTOR_OPTS_INIT;
	const char *src = NULL, *dst = NULL;
	struct qmig_qmp_conn *sc, *dc = NULL;
	struct qmig_finding *f;
	char err[512] = "";
	size_t n;
	int json = 0, refuse = 0, c, r;

	optind = 1;
	while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		switch (c) {
		case 's': src = optarg; break;
		case 'd': dst = optarg; break;
		case 'n': o.dst_netns = optarg; break;
		case 'l': o.listen_addr = optarg; break;
		case 'p': parse_port_range("--port-range", optarg, &o.port_lo, &o.port_hi); break;
		case 'r': o.same_host = 0; break;
		case 'j': json = 1; break;
		case 'h': usage(stdout); return EXIT_OK;
		default: usage(stderr); return EXIT_USAGE;
		}
	}
	if (!src)
		die(EXIT_USAGE, "give --src-qmp (and --dst-qmp for the pair checks)");
	sc = open_or_die(src);
	if (dst)
		dc = open_or_die(dst);
	o.err = err;
	o.err_len = sizeof(err);
	r = qmig_doctor_run(sc, dc, &o, &f, &n);
	if (r < 0) {
		qmig_qmp_conn_close(sc);
		qmig_qmp_conn_close(dc);
		/* a QEMU answered with the wrong shape or went away: it cannot
		 * be checked, like one that cannot be reached */
		die(EXIT_SETUP, "doctor: %s", err[0] ? err : strerror(-r));
	}
	for (size_t i = 0; i < n; i++) {
		refuse |= f[i].severity == QMIG_FINDING_REFUSE;
		if (json) {
			struct json_object *j = json_object_new_object();

			json_object_object_add(j, "severity", json_object_new_string(
				qmig_finding_severity_name(f[i].severity)));
			json_object_object_add(j, "id", json_object_new_string(f[i].id));
			json_object_object_add(j, "problem", json_object_new_string(f[i].problem));
			json_object_object_add(j, "fix", json_object_new_string(f[i].fix));
			puts(json_object_to_json_string_ext(j, JSON_C_TO_STRING_PLAIN |
								       JSON_C_TO_STRING_NOSLASHESCAPE));
			json_object_put(j);
		} else {
			printf("%-6s %s: %s\n       fix: %s\n",
			       qmig_finding_severity_name(f[i].severity), f[i].id, f[i].problem,
			       f[i].fix);
		}
	}
	if (!n && !json)
		printf("no problems found\n");
	qmig_findings_free(f);
	qmig_qmp_conn_close(sc);
	qmig_qmp_conn_close(dc);
	return refuse ? EXIT_FAIL : EXIT_OK;
}
