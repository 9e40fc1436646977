/* qmigrate update: replace a running QEMU by a new QEMU process on the
 * same host with cpr-transfer; guest RAM stays in place. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <json-c/json.h>

#include "cli.h"
#include "job.h"
#include "qmig_save.h"


static void usage(FILE *f)
{
	fprintf(f,
		"usage: qmigrate update --src-qmp SOCK [--qemu PATH] [OPTIONS]\n"
		"       qmigrate update --launch --guest tiny|linux --mem SIZE [--qemu PATH]\n"
		"                       [--src-qemu PATH] [OPTIONS]\n\n"
		"Replace a running QEMU by a new QEMU process on the same host (a new\n"
		"binary version, or the same one) with cpr-transfer (QEMU 10.0 and later):\n"
		"guest RAM stays in place in shared memory, its file descriptors pass to\n"
		"the new QEMU over a cpr channel, and only device state is copied. The new\n"
		"QEMU is started from the running one's own command line (its binary\n"
		"replaced by --qemu, its machine type pinned), with its QMP and serial\n"
		"sockets in a new private directory (printed at the end).\n\n"
		"The running QEMU must have: the cpr-transfer mode; guest RAM in a shared\n"
		"memory backend (-machine memory-backend=ram0,aux-ram-share=on -object\n"
		"memory-backend-memfd,id=ram0,size=SIZE,share=on); otherwise update refuses\n"
		"with the reason and changes nothing. --launch starts the source that way.\n\n"
		"  --src-qmp SOCK          QMP socket of the running QEMU\n"
		"  --src-serial SOCK       its test guest's serial socket (heartbeats)\n"
		"  --qemu PATH             the new QEMU binary (default: the running one's);\n"
		"                          with --launch also the source's unless --src-qemu\n"
		"  --launch                start a test guest set up for cpr-transfer first\n"
		"  --src-qemu PATH         --launch: the source's QEMU\n"
		"  --guest tiny|linux      the built-in test guest (default tiny)\n"
		"  --mem SIZE              guest RAM (default 256M)\n"
		"  --wss SIZE              guest working set\n"
		"  --dirty-rate RATE       bytes/s the guest writes\n"
		"  --accel auto|tcg|kvm    accelerator (default auto)\n"
		"  --keep-running          --launch: leave the new QEMU running\n"
		"  --no-verify             skip heartbeats and stamps\n"
		"  --timeout SECS          give up (and keep the old QEMU) after SECS (120)\n"
		"  --json                  the result as one JSON object\n"
		"\nThe result gives the bytes moved (a small fraction of RAM), the\n"
		"guest-observed downtime (heartbeats of our test guests) and verification.\n"
		"Ownership as for a migration: until the new QEMU runs the guest, a failure\n"
		"kills it and the old QEMU runs on as before; after that the old one is\n"
		"quit, never resumed.\n"
		"Exit codes: 0 updated, 2 usage, 3 refused or could not start (nothing\n"
		"changed), 4 failed and the old QEMU keeps the guest, 5 cancelled by a\n"
		"signal (the same), 6 the new QEMU failed verification, 8 completed with\n"
		"errors (the new QEMU runs the guest).\n");
}

/* --debug-stop-at STEP (hidden, for the kill tests): stop this process
 * (SIGSTOP) when the library journals STEP, so that a test can kill it
 * there deterministically, however fast the machine. */
static const char *stop_at;

static void update_log(enum qmig_log_level level, const char *msg, void *ud)
{
	char want[64];

	if (stop_at) {
		snprintf(want, sizeof(want), "journaled: %s", stop_at);
		if (!strncmp(msg, want, strlen(want))) {
			raise(SIGSTOP);
			return;
		}
	}
	cli_log(level, msg, ud);
}

int cmd_update(int argc, char **argv)
{
	enum { O_SRC = 256, O_SSER, O_QEMU, O_LAUNCH, O_SQEMU, O_GUEST, O_MEM, O_WSS, O_RATE,
	       O_ACCEL, O_KEEP, O_NOVER, O_TIMEOUT, O_JSON, O_HELP, O_DSTOP };
	static const struct option lo[] = {
		{"src-qmp", 1, 0, O_SRC},      {"src-serial", 1, 0, O_SSER},
		{"qemu", 1, 0, O_QEMU},        {"launch", 0, 0, O_LAUNCH},
		{"src-qemu", 1, 0, O_SQEMU},   {"guest", 1, 0, O_GUEST},
		{"mem", 1, 0, O_MEM},          {"wss", 1, 0, O_WSS},
		{"dirty-rate", 1, 0, O_RATE},  {"accel", 1, 0, O_ACCEL},
		{"keep-running", 0, 0, O_KEEP}, {"no-verify", 0, 0, O_NOVER},
		{"timeout", 1, 0, O_TIMEOUT},  {"json", 0, 0, O_JSON},
		{"help", 0, 0, O_HELP},        {"debug-stop-at", 1, 0, O_DSTOP},
		{0, 0, 0, 0}};
	struct qmig_update_opts o = QMIG_UPDATE_OPTS_INIT;
	struct qmig_update_result r;
	const char *src_qemu = NULL;
	char jdir[200];
	int launch = 0, json = 0, c, rc;

	o.guest.guest = QMIG_GUEST_TINY;
	o.guest.mem_bytes = 256ull << 20;
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		switch (c) {
		case O_SRC: o.src_qmp = optarg; break;
		case O_SSER: o.src_serial = optarg; break;
		case O_QEMU: o.new_qemu = optarg; break;
		case O_LAUNCH: launch = 1; break;
		case O_SQEMU: src_qemu = optarg; break;
		case O_GUEST: o.guest.guest = parse_guest_kind(optarg); break;
		case O_MEM: o.guest.mem_bytes = parse_size("--mem", optarg); break;
		case O_WSS: o.guest.wss_bytes = parse_size("--wss", optarg); break;
		case O_RATE: o.guest.dirty_rate = parse_rate("--dirty-rate", optarg); break;
		case O_ACCEL: o.guest.accel = parse_accel(optarg); break;
		case O_KEEP: o.keep_running = 1; break;
		case O_NOVER: o.no_verify = 1; break;
		case O_TIMEOUT: o.timeout_ms = (int)parse_long("--timeout", optarg, 1, 86400) * 1000; break;
		case O_JSON: json = 1; break;
		case O_DSTOP: stop_at = optarg; break;
		case 'h': case O_HELP: usage(stdout); return EXIT_OK;
		default: usage(stderr); return EXIT_USAGE;
		}
	}
	if (optind < argc)
		die(EXIT_USAGE, "unexpected argument '%s' (see 'qmigrate update --help')", argv[optind]);
	if (launch == !!o.src_qmp)
		die(EXIT_USAGE, "give --src-qmp SOCK (a running QEMU) or --launch");
	if (!launch && (src_qemu || o.keep_running))
		die(EXIT_USAGE, "--src-qemu and --keep-running go with --launch");
	if (launch && o.src_serial)
		die(EXIT_USAGE, "--src-serial goes with --src-qmp");
	if (launch)
		o.guest.qemu_binary = src_qemu ? src_qemu : o.new_qemu;
	o.log = (struct qmig_log_cb){update_log, NULL, NULL};
	o.journal_dir = job_journal_dir(jdir, sizeof(jdir));
	o.cancel = &cli_cancel_flag;
	cli_catch_cancel();
	rc = qmig_update(&o, &r);
	if (rc == -EINVAL && !r.status[0])
		die(EXIT_USAGE, "bad options");
	if (json) {
		struct json_object *j = json_object_new_object();

#define JS(k, v) json_object_object_add(j, k, json_object_new_string(v))
#define JI(k, v) json_object_object_add(j, k, json_object_new_int64((int64_t)(v)))
		JS("type", "result");
		JS("status", r.status);
		JS("message", r.message);
		JS("owner", r.owner);
		JI("ram_bytes", r.ram_bytes);
		JI("transferred_bytes", r.transferred_bytes);
		json_object_object_add(j, "transferred_pct_of_ram",
				       json_object_new_double(r.ram_bytes ? 100.0 * (double)r.transferred_bytes /
									    (double)r.ram_bytes
									  : 0));
		JI("total_ms", r.total_ms);
		JI("qemu_downtime_ms", r.qemu_downtime_ms);
		JI("guest_downtime_ms", r.guest_downtime_ms);
		json_object_object_add(j, "verified", json_object_new_boolean(r.verified == 1));
		JS("verify_method", r.verify_method);
		JI("pages_checked", r.pages_checked);
		JS("old_qemu", r.old_qemu);
		JS("new_qemu", r.new_qemu);
		JI("new_pid", r.new_pid);
		JS("new_qmp", r.new_qmp);
		json_object_object_add(j, "changed", json_object_new_boolean(r.changed));
		JI("error", r.error);
#undef JS
#undef JI
		puts(json_object_to_json_string_ext(j, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
		json_object_put(j);
	} else if (rc == 0) {
		char x[32], ram[32];

		format_size(x, sizeof(x), (double)r.transferred_bytes);
		format_size(ram, sizeof(ram), (double)r.ram_bytes);
		char dt[64];

		if (r.guest_downtime_ms >= 0)
			snprintf(dt, sizeof(dt), "%lld ms", (long long)r.guest_downtime_ms);
		else
			snprintf(dt, sizeof(dt), "unknown (no heartbeats)");
		fprintf(stderr,
			"qmigrate: %s\n  total        %llu ms\n"
			"  downtime     guest-observed %s, QEMU %llu ms\n"
			"  transferred  %s of %s RAM\n  verified     %s (%s)\n",
			r.message, (unsigned long long)r.total_ms, dt,
			(unsigned long long)r.qemu_downtime_ms, x, ram,
			r.verified == 1 ? "yes" : r.verified == 0 ? "NO" : "not checked",
			r.verify_method);
		if (o.src_qmp || o.keep_running)
			printf("%d %s\n", r.new_pid, r.new_qmp);
	} else {
		fprintf(stderr, "qmigrate: update %s: %s\n", r.status, r.message);
	}
	if (!rc)
		return EXIT_OK;
	if (!strcmp(r.status, "refused"))
		return EXIT_SETUP;
	if (rc == -ECANCELED)
		return EXIT_CANCELLED;
	if (!r.changed)
		return EXIT_SETUP;
	if (!strcmp(r.status, "completed-with-errors"))
		return r.verified == 0 ? EXIT_VERIFY : EXIT_HANDOVER;
	return EXIT_ROLLEDBACK;
}
