/* qmigrate save / qmigrate restore: a guest to a file and back, like virsh
 * save and restore. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <json-c/json.h>

#include "cli.h"
#include "job.h"
#include "qmig_save.h"


static void save_usage(FILE *f)
{
	fprintf(f,
		"usage: qmigrate save --src-qmp SOCK [OPTIONS] FILE\n"
		"       qmigrate save --launch --guest tiny|linux --mem SIZE [OPTIONS] FILE\n\n"
		"Save a guest to FILE, like virsh save: the guest is stopped, its RAM and\n"
		"device state written, and its QEMU quit (--keep-source: left paused; it\n"
		"must then not be resumed, the file owns the guest). Where QEMU has the\n"
		"mapped-ram capability (QEMU 9.0 and later; probed from its schema) RAM goes\n"
		"to fixed offsets of the file, written by multifd channels in parallel, so\n"
		"the file is never larger than RAM plus device state; elsewhere (QEMU 7.2)\n"
		"the plain migration stream is written. FILE must not exist; qmigrate opens\n"
		"it itself (no symbolic links) and hands QEMU the descriptor. A header\n"
		"records the QEMU version, machine type, RAM size and a SHA-256 of the\n"
		"stream; it is written last, so an interrupted save leaves no usable file.\n"
		"If the save fails, the file is removed and the guest runs on as before.\n\n"
		"  --src-qmp SOCK          QMP socket of the QEMU to save\n"
		"  --launch                start a test guest first (then save it)\n"
		"  --guest tiny|linux      the built-in test guest (default tiny)\n"
		"  --mem SIZE              guest RAM (default 256M)\n"
		"  --wss SIZE              guest working set\n"
		"  --dirty-rate RATE       bytes/s the guest writes\n"
		"  --accel auto|tcg|kvm    accelerator (default auto)\n"
		"  --qemu PATH             QEMU binary (default qemu-system-x86_64)\n"
		"  --multifd N             mapped-ram with N channels (default 4)\n"
		"  --no-multifd            mapped-ram with one channel\n"
		"  --plain                 the plain stream even where mapped-ram exists\n"
		"  --max-bandwidth RATE    write at most RATE (e.g. 100M; default: as fast\n"
		"                          as the disk takes it)\n"
		"  --keep-source           leave the source paused instead of quitting it\n"
		"  --timeout SECS          give up (and resume the source) after SECS (600)\n"
		"  --json                  the result as one JSON object\n"
		"\nExit codes: 0 saved, 2 usage, 3 could not start (nothing changed), 4 the\n"
		"save failed and the source keeps the guest, 5 cancelled (a signal) and the\n"
		"source keeps the guest.\n");
}

static void restore_usage(FILE *f)
{
	fprintf(f,
		"usage: qmigrate restore FILE --dst-qmp SOCK [OPTIONS]\n"
		"       qmigrate restore FILE --launch [--qemu PATH] [OPTIONS]\n\n"
		"Restore a guest saved by 'qmigrate save', like virsh restore. The file's\n"
		"checksum is checked first, then the QEMU: it must be the same as or newer\n"
		"than the one that saved, have the saved machine type and RAM size, and\n"
		"have mapped-ram if the file was saved with it; else restore refuses\n"
		"before anything is loaded. Our test guests are verified: page stamps\n"
		"while the restored guest is still stopped, then heartbeats once it runs.\n"
		"The guest runs afterwards if it ran when saved (--paused, --running).\n\n"
		"  --dst-qmp SOCK          a QEMU started like the saved one, with\n"
		"                          -incoming defer\n"
		"  --dst-serial SOCK       its test guest's serial socket (heartbeats)\n"
		"  --launch                start QEMU from the header (test guests only):\n"
		"                          machine type and RAM size as saved\n"
		"  --qemu PATH             the QEMU binary for --launch\n"
		"  --accel auto|tcg|kvm    accelerator for --launch (default auto)\n"
		"  --keep-running          --launch: leave the restored QEMU running\n"
		"  --paused                leave the guest paused\n"
		"  --running               run the guest even if it was saved paused\n"
		"  --no-verify             do not check stamps and heartbeats\n"
		"  --header                print the file's header and check nothing else\n"
		"  --timeout SECS          give up after SECS (600)\n"
		"  --json                  the result as one JSON object\n"
		"\nExit codes: 0 restored, 2 usage, 3 refused (bad file or mismatched QEMU;\n"
		"nothing loaded), 1 loading failed, 6 the restored guest failed verification.\n");
}

static void print_json(struct json_object *o)
{
	puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(o);
}

#define JS(o, k, v) json_object_object_add(o, k, json_object_new_string(v))
#define JI(o, k, v) json_object_object_add(o, k, json_object_new_int64((int64_t)(v)))
#define JB(o, k, v) json_object_object_add(o, k, json_object_new_boolean(v))

int cmd_save(int argc, char **argv)
{
	enum { O_SRC = 256, O_LAUNCH, O_GUEST, O_MEM, O_WSS, O_RATE, O_ACCEL, O_QEMU, O_MFD,
	       O_NOMFD, O_PLAIN, O_KEEP, O_TIMEOUT, O_JSON, O_HELP, O_BW };
	static const struct option lo[] = {
		{"src-qmp", 1, 0, O_SRC},     {"launch", 0, 0, O_LAUNCH},
		{"guest", 1, 0, O_GUEST},     {"mem", 1, 0, O_MEM},
		{"wss", 1, 0, O_WSS},         {"dirty-rate", 1, 0, O_RATE},
		{"accel", 1, 0, O_ACCEL},     {"qemu", 1, 0, O_QEMU},
		{"multifd", 1, 0, O_MFD},     {"no-multifd", 0, 0, O_NOMFD},
		{"plain", 0, 0, O_PLAIN},     {"keep-source", 0, 0, O_KEEP},
		{"timeout", 1, 0, O_TIMEOUT}, {"json", 0, 0, O_JSON},
		{"help", 0, 0, O_HELP},       {"max-bandwidth", 1, 0, O_BW},
		{0, 0, 0, 0}};
	struct qmig_save_opts o = QMIG_SAVE_OPTS_INIT;
	struct qmig_save_result r;
	char jdir[200];
	int launch = 0, json = 0, c, rc;

	o.guest.guest = QMIG_GUEST_TINY;
	o.guest.mem_bytes = 256ull << 20;
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		switch (c) {
		case O_SRC: o.src_qmp = optarg; break;
		case O_LAUNCH: launch = 1; break;
		case O_GUEST: o.guest.guest = parse_guest_kind(optarg); break;
		case O_MEM: o.guest.mem_bytes = parse_size("--mem", optarg); break;
		case O_WSS: o.guest.wss_bytes = parse_size("--wss", optarg); break;
		case O_RATE: o.guest.dirty_rate = parse_rate("--dirty-rate", optarg); break;
		case O_ACCEL: o.guest.accel = parse_accel(optarg); break;
		case O_QEMU: o.guest.qemu_binary = optarg; break;
		case O_MFD: o.multifd_channels = (int)parse_long("--multifd", optarg, 1, 255); break;
		case O_NOMFD: o.multifd_channels = -1; break;
		case O_PLAIN: o.plain = 1; break;
		case O_BW: o.max_bandwidth = parse_rate("--max-bandwidth", optarg); break;
		case O_KEEP: o.keep_source = 1; break;
		case O_TIMEOUT: o.timeout_ms = (int)parse_long("--timeout", optarg, 1, 86400) * 1000; break;
		case O_JSON: json = 1; break;
		case 'h': case O_HELP: save_usage(stdout); return EXIT_OK;
		default: save_usage(stderr); return EXIT_USAGE;
		}
	}
	if (optind != argc - 1)
		die(EXIT_USAGE, "give one FILE to save to (see 'qmigrate save --help')");
	if (launch == !!o.src_qmp)
		die(EXIT_USAGE, "give --src-qmp SOCK (a running QEMU) or --launch");
	o.path = argv[optind];
	o.log = (struct qmig_log_cb){cli_log, NULL, NULL};
	/* Journaled like a migration: 'qmigrate recover' repairs a save whose
	 * qmigrate died (the source resumed, or quit once the file is whole). */
	o.journal_dir = job_journal_dir(jdir, sizeof(jdir));
	o.cancel = &cli_cancel_flag;
	cli_catch_cancel();
	rc = qmig_save(&o, &r);
	if (rc == -EINVAL && !r.status[0])
		die(EXIT_USAGE, "bad options");
	if (json) {
		struct json_object *j = json_object_new_object();

		JS(j, "type", "result");
		JS(j, "status", r.status);
		JS(j, "message", r.message);
		JS(j, "owner", r.owner);
		JS(j, "file", o.path);
		JS(j, "method", r.method);
		JI(j, "multifd_channels", r.multifd_channels);
		JS(j, "qemu", r.qemu);
		JS(j, "machine", r.machine);
		JI(j, "ram_bytes", r.ram_bytes);
		JI(j, "stream_bytes", r.stream_bytes);
		JI(j, "disk_bytes", r.disk_bytes);
		JI(j, "save_ms", r.save_ms);
		JI(j, "checksum_ms", r.checksum_ms);
		JI(j, "total_ms", r.total_ms);
		JB(j, "source_quit", r.source_quit);
		JB(j, "changed", r.changed);
		JS(j, "sha256", r.sha256);
		JI(j, "error", r.error);
		print_json(j);
	} else if (rc == 0) {
		char s1[32], s2[32];

		format_size(s1, sizeof(s1), (double)r.stream_bytes);
		format_size(s2, sizeof(s2), (double)r.disk_bytes);
		fprintf(stderr, "qmigrate: %s\n  save         %llu ms (checksum %llu ms)\n"
				"  file         %s stream, %s on disk\n",
			r.message, (unsigned long long)r.save_ms, (unsigned long long)r.checksum_ms,
			s1, s2);
	} else {
		fprintf(stderr, "qmigrate: save %s: %s\n", r.status, r.message);
	}
	if (!rc)
		return EXIT_OK;
	if (rc == -ECANCELED)
		return EXIT_CANCELLED;
	return r.changed ? EXIT_ROLLEDBACK : EXIT_SETUP;
}

static int print_header(const char *path, int json)
{
	struct qmig_save_header h;
	char msg[512];
	int r = qmig_save_read_header(path, &h, msg, sizeof(msg));

	if (r < 0)
		die(EXIT_SETUP, "%s", msg);
	if (json) {
		struct json_object *j = json_object_new_object();

		JI(j, "format", h.format);
		JS(j, "method", h.method);
		JI(j, "multifd_channels", h.multifd_channels);
		JS(j, "qemu", h.qemu);
		JS(j, "machine", h.machine);
		JI(j, "ram_bytes", h.ram_bytes);
		JI(j, "stream_offset", h.stream_offset);
		JI(j, "stream_bytes", h.stream_bytes);
		JS(j, "sha256", h.sha256);
		JS(j, "guest", h.guest);
		JB(j, "was_running", h.was_running);
		JI(j, "saved_at", h.saved_at);
		print_json(j);
	} else {
		printf("method      %s%s\nQEMU        %s\nmachine     %s\nRAM         %llu KiB\n"
		       "stream      %llu bytes at offset %llu\nsha256      %s\nguest       %s (%s)\n",
		       h.method, h.multifd_channels ? " (multifd)" : "", h.qemu, h.machine,
		       (unsigned long long)(h.ram_bytes >> 10), (unsigned long long)h.stream_bytes,
		       (unsigned long long)h.stream_offset, h.sha256, h.guest,
		       h.was_running ? "was running" : "was paused");
	}
	return EXIT_OK;
}

int cmd_restore(int argc, char **argv)
{
	enum { O_DST = 256, O_DSER, O_LAUNCH, O_QEMU, O_ACCEL, O_KEEP, O_PAUSED, O_RUNNING,
	       O_NOVER, O_HDR, O_TIMEOUT, O_JSON, O_HELP };
	static const struct option lo[] = {
		{"dst-qmp", 1, 0, O_DST},       {"dst-serial", 1, 0, O_DSER},
		{"launch", 0, 0, O_LAUNCH},     {"qemu", 1, 0, O_QEMU},
		{"accel", 1, 0, O_ACCEL},       {"keep-running", 0, 0, O_KEEP},
		{"paused", 0, 0, O_PAUSED},     {"running", 0, 0, O_RUNNING},
		{"no-verify", 0, 0, O_NOVER},   {"header", 0, 0, O_HDR},
		{"timeout", 1, 0, O_TIMEOUT},   {"json", 0, 0, O_JSON},
		{"help", 0, 0, O_HELP},         {0, 0, 0, 0}};
	struct qmig_restore_opts o = QMIG_RESTORE_OPTS_INIT;
	struct qmig_restore_result r;
	int launch = 0, json = 0, header = 0, c, rc;

	optind = 1;
	while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		switch (c) {
		case O_DST: o.dst_qmp = optarg; break;
		case O_DSER: o.dst_serial = optarg; break;
		case O_LAUNCH: launch = 1; break;
		case O_QEMU: o.guest.qemu_binary = optarg; break;
		case O_ACCEL: o.guest.accel = parse_accel(optarg); break;
		case O_KEEP: o.keep_running = 1; break;
		case O_PAUSED: o.paused = 1; break;
		case O_RUNNING: o.paused = 2; break;
		case O_NOVER: o.no_verify = 1; break;
		case O_HDR: header = 1; break;
		case O_TIMEOUT: o.timeout_ms = (int)parse_long("--timeout", optarg, 1, 86400) * 1000; break;
		case O_JSON: json = 1; break;
		case 'h': case O_HELP: restore_usage(stdout); return EXIT_OK;
		default: restore_usage(stderr); return EXIT_USAGE;
		}
	}
	if (optind != argc - 1)
		die(EXIT_USAGE, "give one FILE to restore (see 'qmigrate restore --help')");
	o.path = argv[optind];
	if (header)
		return print_header(o.path, json);
	if (launch == !!o.dst_qmp)
		die(EXIT_USAGE, "give --dst-qmp SOCK (a QEMU with -incoming defer) or --launch");
	if (!launch && (o.guest.qemu_binary || o.guest.accel || o.keep_running))
		die(EXIT_USAGE, "--qemu, --accel and --keep-running go with --launch");
	if (launch && o.dst_serial)
		die(EXIT_USAGE, "--dst-serial goes with --dst-qmp");
	o.log = (struct qmig_log_cb){cli_log, NULL, NULL};
	o.cancel = &cli_cancel_flag;
	cli_catch_cancel();
	rc = qmig_restore(&o, &r);
	if (rc == -EINVAL && !r.status[0])
		die(EXIT_USAGE, "bad options");
	if (json) {
		struct json_object *j = json_object_new_object();

		JS(j, "type", "result");
		JS(j, "status", r.status);
		JS(j, "message", r.message);
		JS(j, "owner", r.owner);
		JS(j, "file", o.path);
		JS(j, "method", r.method);
		JI(j, "load_ms", r.load_ms);
		JI(j, "checksum_ms", r.checksum_ms);
		JI(j, "total_ms", r.total_ms);
		JB(j, "verified", r.verified == 1);
		JS(j, "verify_method", r.verify_method);
		JI(j, "pages_checked", r.pages_checked);
		JB(j, "running", r.running);
		if (r.qmp[0]) {
			JS(j, "qmp", r.qmp);
			JI(j, "pid", r.pid);
		}
		JI(j, "error", r.error);
		print_json(j);
	} else if (rc == 0) {
		fprintf(stderr,
			"qmigrate: %s\n  load         %llu ms (checksum %llu ms)\n"
			"  verified     %s (%s, %llu pages)\n",
			r.message, (unsigned long long)r.load_ms, (unsigned long long)r.checksum_ms,
			r.verified == 1 ? "yes" : r.verified == 0 ? "NO" : "not checked",
			r.verify_method, (unsigned long long)r.pages_checked);
		if (r.qmp[0])
			printf("%d %s\n", r.pid, r.qmp);
	} else {
		fprintf(stderr, "qmigrate: restore %s: %s\n", r.status, r.message);
	}
	if (!rc)
		return EXIT_OK;
	if (!strcmp(r.status, "refused"))
		return EXIT_SETUP;
	return r.verified == 0 ? EXIT_VERIFY : EXIT_FAIL;
}
