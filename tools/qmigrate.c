/* qmigrate: the command-line tool. Each subcommand is a thin layer over
 * libqmigrate in its own tools/cmd_*.c file. */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"

struct subcommand {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *summary;
};

static const struct subcommand subcommands[] = {
	{"migrate", cmd_migrate, "move a running VM to another QEMU (attach or launch mode)"},
	{"status", cmd_status, "show a running migration (like virsh domjobinfo), queued and orphaned jobs, agent queues"},
	{"caps", cmd_caps, "every capability and parameter of a pair of QEMUs, and what qmigrate sets"},
	{"preflight", cmd_preflight, "measure the dirty rate, predict, recommend a strategy"},
	{"doctor", cmd_doctor, "known QEMU migration bugs and traps for a pair of QEMUs"},
	{"save", cmd_save, "save a guest to a file (mapped-ram or a stream), like virsh save"},
	{"restore", cmd_restore, "restore a guest from a file written by qmigrate save"},
	{"update", cmd_update, "replace a running QEMU by a new one, RAM in place (cpr-transfer)"},
	{"recover", cmd_recover, "finish or roll back migrations whose qmigrate died (journals; a dead agent's too)"},
	{"cancel", cmd_cancel, "cancel a running migration; the source keeps running"},
	{"bench", cmd_bench, "run a matrix of migrations; JSONL, CSV, summary and SVG plots"},
	{"simulate", cmd_simulate, "run precopy offline through a convergence policy"},
	{"replay", cmd_replay, "feed a recorded migration's rates to another policy"},
	{"tls", cmd_tls, "create or check TLS certificates for migration"},
	{"qmp", cmd_qmp, "send one QMP command to a running QEMU and print its reply"},
	{"agent", cmd_agent, "the destination host's daemon: migrations from other hosts (docs/PROTOCOL.md)"},
	{"launch", cmd_launch, "start a test guest (or QEMU) and say where its sockets are"},
	{"verify", cmd_verify, "check the memory stamps of a tiny test guest"},
	{"set", cmd_set, "change downtime-limit or max-bandwidth of a running migration"},
	{"postcopy", cmd_postcopy, "switch a running migration to postcopy now"},
	{"netns", cmd_netns, "two hosts on one machine (namespaces, veth, tc), for tests and bench"},
	{NULL, NULL, NULL},
};

static void usage(FILE *f)
{
	fprintf(f, "usage: qmigrate [-v] COMMAND [ARGS...]\n"
		   "       qmigrate --help | --version\n\n"
		   "Live migration of QEMU virtual machines over QMP, without libvirt.\n\n"
		   "Commands:\n");
	for (const struct subcommand *s = subcommands; s->name; s++)
		fprintf(f, "  %-10s %s\n", s->name, s->summary);
	fprintf(f, "\n'qmigrate COMMAND --help' describes each command; see qmigrate(1).\n"
		   "Exit codes: 0 ok, 1 failed, 2 usage, 3 setup failed, 4 migration failed and\n"
		   "rolled back, 5 cancelled and rolled back, 6 destination failed verification,\n"
		   "7 failed during postcopy (no rollback possible), 8 completed with errors\n"
		   "(a failure after the destination took the guest over: it keeps it, the source\n"
		   "is never resumed).\n");
}

int main(int argc, char **argv)
{
	int i = 1;

	/* A closed pipe is an error return, never a silent death (qmigrate
	 * migrate --json | head -1 must still roll back or finish). */
	signal(SIGPIPE, SIG_IGN);
	for (; i < argc && argv[i][0] == '-'; i++) {
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			usage(stdout);
			return EXIT_OK;
		} else if (!strcmp(argv[i], "--version")) {
			printf("qmigrate %s\n", QMIG_VERSION);
			return EXIT_OK;
		} else if (!strcmp(argv[i], "-v") || !strcmp(argv[i], "--verbose")) {
			cli_verbose++;
		} else {
			warnx("unknown option '%s'", argv[i]);
			usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (i >= argc) {
		usage(stderr);
		return EXIT_USAGE;
	}
	launch_defaults_from_env();
	for (const struct subcommand *s = subcommands; s->name; s++)
		if (!strcmp(s->name, argv[i]))
			return s->fn(argc - i, argv + i);
	die(EXIT_USAGE, "unknown command '%s' (see 'qmigrate --help')", argv[i]);
}
