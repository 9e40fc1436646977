/* qmigrate launch: start a test guest (or a bare QEMU) detached, and say
 * where its QMP socket, serial socket and serial log are. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <json-c/json.h>

#include "cli.h"
#include "qmig_launch.h"

#define MAX_EXTRA 64

static void usage(FILE *f)
{
	fprintf(f,
		"usage: qmigrate launch --guest tiny|linux|none --mem SIZE [--wss SIZE]\n"
		"                       [--dirty-rate RATE] [--mode stamp|hot] [--hb MS]\n"
		"                       [--guest-args WORDS] [--incoming] [--paused]\n"
		"                       [--netns NS] [--accel auto|tcg|kvm] [--net]\n"
		"                       [--host-port PORT] [--qemu BINARY] [--runtime-dir DIR]\n"
		"                       [--no-mem-workaround] [--runas USER] [--postcopy]\n"
		"                       [--disk SIZE [--disk-backing IMAGE]\n"
		"                       [--disk-write-rate RATE]] [--json] [-- QEMU-ARGS...]\n\n"
		"Starts QEMU detached, in a private runtime directory, with capabilities\n"
		"dropped, under QEMU's seccomp sandbox (-sandbox on), as an unprivileged\n"
		"user when run as root: --runas USER (a name or UID[:GID]; default\n"
		"qmigrate-qemu, made by 'make install' or tools/deps.sh; when it does not\n"
		"exist, root without capabilities, with a warning; 'root' keeps root). The\n"
		"runtime directory belongs to that user. It prints QEMU's pid, QMP socket,\n"
		"serial socket and serial log (--json: one JSON object with pid, qmp,\n"
		"serial, serial_socket, runtime_dir,\n"
		"accel, mem_bytes, stderr). The guest runs until it is told to quit (QMP\n"
		"'quit') or killed; the runtime directory is then the caller's to remove.\n\n"
		"--guest tiny is the freestanding test guest: it writes --wss bytes at\n"
		"--dirty-rate bytes/s with stamped pages ('qmigrate verify' checks them)\n"
		"and prints a heartbeat every --hb ms (1). --mode hot keeps rewriting a\n"
		"small set of pages (the QEMU 7.2 TCG dirty-bitmap canary). --guest-args\n"
		"pace=cpu ties its writes to the CPU it gets (throttling slows them) and\n"
		"counts its non-writing work in its heartbeats (work=). --guest linux\n"
		"needs 'make linux-guest'; --net gives it a virtio NIC on user networking\n"
		"with host 127.0.0.1:--host-port forwarded to its port 80.\n"
		"--accel auto (default) uses KVM only when /dev/kvm works and the tiny guest\n"
		"passes a boot smoke test under it, else TCG. Under TCG a RAM size that is a\n"
		"multiple of 256 KiB gets 8 KiB more (QEMU < 9.0 loses dirty pages on such\n"
		"RAM during migration) unless --no-mem-workaround. --postcopy keeps the one\n"
		"capability a postcopy destination needs (userfaultfd).\n"
		"--disk SIZE gives the guest a virtio-blk disk (id vdisk0): RUNTIME_DIR/disk.img,\n"
		"raw, made with qemu-img (a qcow2 overlay on --disk-backing IMAGE); the Linux\n"
		"guest writes stamped blocks to it at --disk-write-rate and reads them back.\n");
}

static enum qmig_guest_kind parse_guest(const char *s)
{
	if (!strcmp(s, "tiny"))
		return QMIG_GUEST_TINY;
	if (!strcmp(s, "linux"))
		return QMIG_GUEST_LINUX;
	if (!strcmp(s, "none"))
		return QMIG_GUEST_NONE;
	die(EXIT_USAGE, "launch: --guest must be tiny, linux or none, not '%s'", s);
}

static const char *guest_name(enum qmig_guest_kind g)
{
	return g == QMIG_GUEST_TINY ? "tiny" : g == QMIG_GUEST_LINUX ? "linux" : "none";
}

static void print_result(struct qmig_vm *vm, enum qmig_guest_kind g, int json)
{
	const char *sock = qmig_vm_serial_path(vm), *log = qmig_vm_serial_log(vm);
	char err[4096];

	snprintf(err, sizeof(err), "%s/qemu.stderr", qmig_vm_runtime_dir(vm));
	if (json) {
		struct json_object *o = json_object_new_object();

		json_object_object_add(o, "pid", json_object_new_int(qmig_vm_pid(vm)));
		json_object_object_add(o, "qmp", json_object_new_string(qmig_vm_qmp_path(vm)));
		json_object_object_add(o, "serial", log ? json_object_new_string(log) : NULL);
		json_object_object_add(o, "serial_socket",
				       sock ? json_object_new_string(sock) : NULL);
		json_object_object_add(o, "runtime_dir",
				       json_object_new_string(qmig_vm_runtime_dir(vm)));
		json_object_object_add(o, "accel", json_object_new_string(qmig_vm_accel(vm)));
		json_object_object_add(o, "mem_bytes",
				       json_object_new_uint64(qmig_vm_mem_bytes(vm)));
		json_object_object_add(o, "guest", json_object_new_string(guest_name(g)));
		json_object_object_add(o, "stderr", json_object_new_string(err));
		printf("%s\n", json_object_to_json_string_ext(
				       o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
		json_object_put(o);
		return;
	}
	printf("pid            %d\n", qmig_vm_pid(vm));
	printf("qmp            %s\n", qmig_vm_qmp_path(vm));
	if (sock) {
		printf("serial socket  %s\n", sock);
		printf("serial log     %s\n", log);
	}
	printf("runtime dir    %s\n", qmig_vm_runtime_dir(vm));
	printf("accel          %s\n", qmig_vm_accel(vm));
	printf("memory         %llu bytes\n", (unsigned long long)qmig_vm_mem_bytes(vm));
}

int cmd_launch(int argc, char **argv)
{
	static const struct option opts[] = {
		{"guest", required_argument, 0, 'g'},
		{"mem", required_argument, 0, 'm'},
		{"wss", required_argument, 0, 'w'},
		{"dirty-rate", required_argument, 0, 'r'},
		{"mode", required_argument, 0, 'M'},
		{"hb", required_argument, 0, 'H'},
		{"guest-args", required_argument, 0, 'A'},
		{"incoming", no_argument, 0, 'i'},
		{"paused", no_argument, 0, 'S'},
		{"netns", required_argument, 0, 'n'},
		{"accel", required_argument, 0, 'a'},
		{"net", no_argument, 0, 'N'},
		{"host-port", required_argument, 0, 'p'},
		{"qemu", required_argument, 0, 'q'},
		{"runtime-dir", required_argument, 0, 'd'},
		{"no-mem-workaround", no_argument, 0, 'W'},
		{"runas", required_argument, 0, 'u'},
		{"json", no_argument, 0, 'j'},
		{"postcopy", no_argument, 0, 'P'},
		{"disk", required_argument, 0, 'D'},
		{"disk-backing", required_argument, 0, 'B'},
		{"disk-write-rate", required_argument, 0, 'R'},
		{"help", no_argument, 0, 'h'},
		{0, 0, 0, 0},
	};
	struct qmig_vm_spec spec = QMIG_VM_SPEC_INIT;
	struct qmig_vm *vm = NULL;
	const char *mode = NULL, *gargs = NULL;
	char append[512], msg[2048] = "";
	int c, json = 0, have_guest = 0, r;

	spec.detach = 1;
	spec.log = (struct qmig_log_cb){cli_log, NULL, NULL};
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'g': spec.guest = parse_guest(optarg); have_guest = 1; break;
		case 'm': spec.mem_bytes = parse_size("--mem", optarg); break;
		case 'w': spec.wss_bytes = parse_size("--wss", optarg); break;
		case 'r': spec.dirty_rate = parse_rate("--dirty-rate", optarg); break;
		case 'M': mode = optarg; break;
		case 'H': spec.hb_ms = (unsigned)parse_long("--hb", optarg, 0, 60000); break;
		case 'A': gargs = optarg; break;
		case 'i': spec.incoming = 1; break;
		case 'S': spec.paused = 1; break;
		case 'n': spec.netns = optarg; break;
		case 'a': spec.accel = optarg; break;
		case 'N': spec.net = 1; break;
		case 'p': spec.host_port = (int)parse_long("--host-port", optarg, 1, 65535); break;
		case 'q': spec.qemu_binary = optarg; break;
		case 'd': spec.runtime_dir = optarg; break;
		case 'W': spec.no_mem_workaround = 1; break;
		case 'u': spec.runas = optarg; break;
		case 'j': json = 1; break;
		case 'P': spec.userfaultfd = 1; break;
		case 'D': spec.disk_bytes = parse_size("--disk", optarg); break;
		case 'B': spec.disk_backing = optarg; break;
		case 'R': spec.disk_write_rate = parse_rate("--disk-write-rate", optarg); break;
		case 'h': usage(stdout); return EXIT_OK;
		default: usage(stderr); return EXIT_USAGE;
		}
	}
	if (!have_guest)
		die(EXIT_USAGE, "launch: --guest tiny|linux|none is required");
	if (spec.accel && strcmp(spec.accel, "auto") && strncmp(spec.accel, "tcg", 3) &&
	    strncmp(spec.accel, "kvm", 3))
		die(EXIT_USAGE, "launch: --accel must be auto, tcg or kvm, not '%s'", spec.accel);
	if (mode && strcmp(mode, "stamp") && strcmp(mode, "hot"))
		die(EXIT_USAGE, "launch: --mode must be stamp or hot, not '%s'", mode);
	if (mode && spec.guest != QMIG_GUEST_TINY)
		die(EXIT_USAGE, "launch: --mode is for the tiny guest");
	snprintf(append, sizeof(append), "%s%s%s%s", mode ? "mode=" : "", mode ? mode : "",
		 mode && gargs ? " " : "", gargs ? gargs : "");
	if (*append)
		spec.guest_append = append;
	if (optind < argc) {
		static const char *extra[MAX_EXTRA + 1];
		int n = 0;

		for (; optind < argc && n < MAX_EXTRA; optind++)
			extra[n++] = argv[optind];
		if (optind < argc)
			die(EXIT_USAGE, "launch: more than %d QEMU arguments", MAX_EXTRA);
		extra[n] = NULL;
		spec.extra_args = extra;
	}
	r = qmig_vm_launch(&vm, &spec, msg, sizeof(msg));
	if (r < 0)
		die(EXIT_SETUP, "launch: %s", *msg ? msg : strerror(-r));
	print_result(vm, spec.guest, json);
	fflush(stdout);
	qmig_vm_free(vm); /* detached: QEMU runs on */
	return EXIT_OK;
}
