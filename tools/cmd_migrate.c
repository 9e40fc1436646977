/* qmigrate migrate: a live migration, attach or launch mode, with a
 * progress bar on a terminal or JSON lines for machines. The loop here
 * is an ordinary poll() over the library's fd, a signalfd and the job's
 * control socket (for qmigrate status/cancel). */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>
#include <json-c/json.h>

#include "cli.h"
#include "agent_src.h"
#include "job.h"
#include "qmigrate.h"
#include "qmig_migrate.h"

struct ui {
	int json;
	int dry_run;
	int tty;
	int bar_shown;
	int out_closed;             /* stdout's reader went away */
	const char *stop_at;        /* --debug-stop-at: a phase name */
	uint64_t pass;
	struct qmig_migration *m;
};

static void usage(FILE *f)
{
	fprintf(f,
		"usage: qmigrate migrate --src-qmp SOCK --dst-qmp SOCK [OPTIONS]\n"
		"       qmigrate migrate --launch --guest tiny|linux --mem SIZE [OPTIONS]\n\n"
		"Move a running VM to another QEMU. In attach mode both QEMUs exist (the\n"
		"destination started with -incoming defer); in launch mode qmigrate starts\n"
		"both from one spec and shuts them down afterwards.\n\n"
		"Attach mode:\n"
		"  --src-qmp SOCK          QMP socket of the source QEMU\n"
		"  --dst-qmp SOCK          QMP socket of the destination QEMU\n"
		"  --src-serial SOCK       serial socket of a test guest (heartbeats)\n"
		"  --dst-serial SOCK       the destination's serial socket\n"
		"To another host, through its agent (qmigrate agent, docs/PROTOCOL.md):\n"
		"  --to qmigrate+tls://HOST[:PORT]  the agent (with --src-qmp; no --dst-qmp)\n"
		"  --to ssh://[USER@]HOST[:PORT]    the agent through ssh ('qmigrate agent\n"
		"                          --stdio' there; $QMIGRATE_SSH replaces 'ssh',\n"
		"                          $QMIGRATE_AGENT_COMMAND the remote command)\n"
		"  --profile NAME          the agent host's profile for the destination QEMU\n"
		"  --set KEY=VALUE         a value the profile lets requests choose (repeatable)\n"
		"  --agent-tls DIR         client certificate for the agent (default: --tls DIR)\n"
		"  --max-outbound N        at most N migrations leave this host through agents\n"
		"                          at once (default 2, or $QMIGRATE_MAX_OUTBOUND; 0: no\n"
		"                          limit); more wait, \"queued\" in 'qmigrate status'\n"
		"  (--copy-storage-all: the agent creates the destination's images by its\n"
		"  profile's \"disks\" rule; --copy-storage-inc and --transport relay are\n"
		"  refused with --to)\n"
		"Launch mode:\n"
		"  --launch                start both QEMUs\n"
		"  --guest tiny|linux      the built-in test guest (default tiny)\n"
		"  --mem SIZE              guest RAM (default 256M)\n"
		"  --wss SIZE              guest working set (default: the guest's)\n"
		"  --dirty-rate RATE       bytes/s the guest writes (e.g. 50M; default 0)\n"
		"  --accel auto|tcg|kvm    accelerator (default auto)\n"
		"  --qemu PATH             QEMU binary (default qemu-system-x86_64)\n"
		"  --src-qemu PATH         the source's QEMU, when not --qemu\n"
		"  --dst-qemu PATH         the destination's QEMU, when not --qemu; it gets\n"
		"                          the source's machine type (e.g. pc-i440fx-7.2)\n"
		"  --src-netns NS          run the source in network namespace NS\n"
		"  --dst-netns NS          run the destination in network namespace NS\n"
		"  --keep-dest             leave the destination running afterwards\n"
		"  --guest-args WORDS      more words for the test guest's command line\n"
		"                          (tiny: \"mode=hot hot=64\" keeps a hot set of pages;\n"
		"                          \"pace=cpu\" ties its writes to the CPU it gets, so a\n"
		"                          throttle slows them, and counts its work for\n"
		"                          guest_slowdown)\n"
		"  --no-mem-workaround     keep a RAM size that is a multiple of 256 KiB even\n"
		"                          under TCG on QEMU < 9.0 (which then loses pages)\n"
		"  --disk SIZE             give the guest a virtio-blk disk (vdisk0): a raw image\n"
		"                          of SIZE on each side, made with qemu-img\n"
		"  --disk-backing IMAGE    the disk is a qcow2 overlay on IMAGE (both sides)\n"
		"  --disk-write-rate RATE  linux guest: bytes/s of stamped blocks it writes to\n"
		"                          the disk and checks\n"
		"Channel:\n"
		"  --dst-addr ADDR         address the source connects to (default 127.0.0.1)\n"
		"  --listen-addr ADDR      address the destination listens on (default --dst-addr)\n"
		"  --port-range LO-HI      incoming port range (default 49152-49215)\n"
		"  --tls DIR               TLS with QEMU's tls-creds-x509 from DIR (see\n"
		"                          'qmigrate tls issue'); checked before anything changes\n"
		"  --tls-dst-dir DIR       the destination's directory, if not the same\n"
		"  --tls-hostname NAME     name the destination's certificate must carry\n"
		"                          (default --dst-addr)\n"
		"  --tls-authz ID|none     an authz object on the destination to check clients\n"
		"                          (default: one that allows only the source's\n"
		"                          certificate subject)\n"
		"  --transport direct|relay  direct (default): QEMU to QEMU over TCP; relay:\n"
		"                          both QEMUs migrate over unix sockets and qmigrate\n"
		"                          carries every channel over TCP (TLS with --tls, done\n"
		"                          by qmigrate: QEMU needs no network and no TLS)\n"
		"  --relay-src-netns NS    the relay's source half connects from namespace NS\n"
		"                          (default --src-netns)\n"
		"  --relay-dst-netns NS    the relay's destination half listens in NS\n"
		"                          (default --dst-netns)\n"
		"Tuning:\n"
		"  --max-bandwidth RATE    e.g. 1gbit, 500M (default: unlimited)\n"
		"  --downtime-limit MS     longest pause QEMU may plan for at switchover\n"
		"  --multifd N             N parallel channels\n"
		"  --cap NAME              enable migration capability NAME (repeatable)\n"
		"  --param NAME=VALUE      set migration parameter NAME (repeatable)\n"
		"  --auto-converge         let QEMU throttle the guest's CPUs to converge\n"
		"  --xbzrle-cache SIZE     compress re-sent pages with XBZRLE, this cache\n"
		"  --compress zstd|zlib    compress the multifd channels (needs --multifd N;\n"
		"                          refused, by name, unless both QEMUs list the method)\n"
		"  --no-feature NAME       do not use a newer QEMU feature qmigrate uses by\n"
		"                          itself when both QEMUs have it: zero-page-detection\n"
		"                          (=multifd, with multifd), channels (the channel-list\n"
		"                          form of migrate), switchover-ack (when the\n"
		"                          destination has a VFIO device), avail-switchover-\n"
		"                          bandwidth (fed the monitor's bandwidth); --dry-run\n"
		"                          and 'qmigrate caps' show which are used and why\n"
		"Convergence:\n"
		"  --policy NAME           passive (QEMU alone, default), nova, kubevirt,\n"
		"                          proxmox or predictive (ours: acts on the model;\n"
		"                          throttles only with --auto-converge)\n"
		"  --policy-plugin FILE    a policy from a shared object (examples/policy-plugin)\n"
		"  --max-downtime MS       the most a policy may raise downtime-limit to\n"
		"  --max-pause MS          the longest pause-to-finish a policy may choose\n"
		"                          (predictive: --max-downtime unless given)\n"
		"  --measure-dirty-rate SECS  measure the guest's dirty rate from before the\n"
		"                          first pass to its end (page sampling, again each\n"
		"                          SECS), so the model predicts in it\n"
		"                          (default: 1 s when a policy is in use; 0: never)\n"
		"Postcopy and finishing:\n"
		"  --postcopy              switch to postcopy after the first precopy pass;\n"
		"                          if the stream breaks, recover it automatically\n"
		"  --postcopy-after-passes N   switch after N passes instead\n"
		"  --postcopy-after SECS   switch after SECS of precopy instead\n"
		"  --recover-timeout SECS  how long to retry a broken postcopy (default 120)\n"
		"  --pause-after SECS      stop the guest after SECS so the migration finishes\n"
		"                          non-live (a paused source is migrated offline)\n"
		"Storage (local disks, no shared storage):\n"
		"  --copy-storage-all      copy every writable local disk to the destination's\n"
		"                          image of the same size (NBD + blockdev-mirror) while\n"
		"                          the guest runs; RAM moves once the disks are in sync\n"
		"  --copy-storage-inc      copy only the top image (sync=top): the destination's\n"
		"                          image must sit on the same backing image\n"
		"  --migrate-disks DEV,... only these disks (names as query-block gives them;\n"
		"                          default: every writable disk not on shared storage)\n"
		"  --disk-bandwidth RATE   limit each disk mirror (default: unlimited)\n"
		"  --copy-storage-synchronous  guest writes wait for the destination too\n"
		"                          (write-blocking mirror): always converges, slower\n"
		"                          guest writes (QEMU 8.2+: only once the mirrors\n"
		"                          stop converging)\n"
		"Behaviour:\n"
		"  --dry-run               print the QMP plan for both sides, change nothing\n"
		"  --force                 go ahead despite the doctor's refusals\n"
		"  --keep-source           leave the source paused instead of quitting it\n"
		"  --verify=MODE           guest (default): heartbeats and page stamps of a\n"
		"                          test guest (launched by qmigrate, or its serial\n"
		"                          sockets given); any other guest is only checked to\n"
		"                          run on the destination, never stopped again;\n"
		"                          memory: also compare every page of both sides' RAM\n"
		"                          before the destination runs (any guest);\n"
		"                          none: only check the destination runs\n"
		"  --no-verify             the same as --verify=none\n"
		"  --timeout SECS          roll back if the destination has not taken over\n"
		"                          the guest (precopy) after SECS (default 600);\n"
		"                          postcopy is bounded by --recover-timeout instead\n"
		"  --completion-timeout-per-gib SECS  precopy must complete within SECS per\n"
		"                          GiB of guest RAM, at least 60 s, else it is rolled\n"
		"                          back with the verdict and what would make it\n"
		"                          converge (default 150, as KubeVirt's\n"
		"                          completionTimeoutPerGiB)\n"
		"  --no-completion-timeout wait for convergence as long as QEMU would\n"
		"  --interval MS           monitor sample interval (default 100)\n"
		"  --json                  one JSON object per line; the last is the result\n"
		"  --trace FILE            write every record, after the configuration, to FILE\n"
		"                          (JSONL: for qmigrate replay and the simulator); a\n"
		"                          new file: an existing one is refused unless\n"
		"  --trace-overwrite       replace an existing --trace FILE\n"
		"  --runas USER            launched QEMUs run as USER (default qmigrate-qemu,\n"
		"                          or root without capabilities if it does not exist;\n"
		"                          'root' keeps root)\n"
		"\nThe progress line shows the rate on the wire and the model's verdict\n"
		"(eta when converging, STALLED or CANNOT CONVERGE with the dirty rate); a\n"
		"one-time hint names the options that would make it converge. While it\n"
		"runs, 'qmigrate status', 'cancel', 'set' and 'postcopy' reach the job.\n"
		"\nWhatever fails before postcopy, the source guest ends running as it was.\n"
		"Exit codes: 0 migrated, 3 could not start, 4 failed and rolled back, 5\n"
		"cancelled, 6 the destination failed --verify=memory (it never ran; the\n"
		"source was resumed), 7 failed during postcopy, 8 completed with errors\n"
		"(the destination took over the guest, then a step or check failed: it\n"
		"keeps running, the source is not resumed).\n");
}

static void bar(struct ui *ui, const struct qmig_sample *s, int64_t disk_left)
{
	char rate[32], rem[32], dirty[32], line[200];
	int width = 24, fill = (int)(s->percent * width / 100.0);
	struct qmig_convergence cv = QMIG_CONVERGENCE_INIT;

	qmig_migration_convergence(ui->m, &cv);
	/* The rate on the wire (QEMU's count of the stream's bytes). */
	format_size(rate, sizeof(rate), (double)cv.wire_rate);
	format_size(rem, sizeof(rem), (double)s->remaining);
	format_size(dirty, sizeof(dirty), (double)cv.dirty_rate);
	if (s->pass != ui->pass && ui->pass && ui->bar_shown) {
		/* A new pass starts the bar again: say so rather than jump back. */
		fputc('\n', stderr);
		fprintf(stderr, "  pass %llu: %s dirtied during the last pass\n",
			(unsigned long long)s->pass, rem);
	}
	ui->pass = s->pass;
	snprintf(line, sizeof(line), "  [%.*s%.*s] %5.1f%%  pass %llu  %s/s  %s left", fill,
		 "########################", width - fill, "........................",
		 s->percent, (unsigned long long)s->pass, rate, rem);
	/* The model's verdict, not a per-pass ETA that the next dirty sync
	 * takes back. */
	if (cv.verdict == QMIG_VERDICT_CONVERGING && cv.time_left_ms >= 0)
		snprintf(line + strlen(line), sizeof(line) - strlen(line), "  eta %.1fs",
			 cv.time_left_ms / 1000.0);
	else if (cv.verdict == QMIG_VERDICT_STALLED)
		snprintf(line + strlen(line), sizeof(line) - strlen(line),
			 "  STALLED (dirty %s/s)", dirty);
	else if (cv.verdict == QMIG_VERDICT_CANNOT_CONVERGE)
		snprintf(line + strlen(line), sizeof(line) - strlen(line),
			 "  CANNOT CONVERGE (dirty %s/s)", dirty);
	if (s->throttle_pct)
		snprintf(line + strlen(line), sizeof(line) - strlen(line), "  throttle %lld%%",
			 (long long)s->throttle_pct);
	if (disk_left >= 0) { /* --copy-storage-*: the mirrors' dirty bytes */
		format_size(dirty, sizeof(dirty), (double)disk_left);
		snprintf(line + strlen(line), sizeof(line) - strlen(line), "  disk %s", dirty);
	}
	fprintf(stderr, "\r%-100s", line);
	ui->bar_shown = 1;
}

/* --debug-stop-at PHASE or SIDE:EVENT (tests only, not in --help): stop
 * this process with SIGSTOP as the phase begins, or as the first QEMU
 * event EVENT from SIDE (source, destination) arrives, after its record
 * is out, so that a test can kill -9 it there, however short the moment. */
static void debug_stop(struct ui *ui, const struct qmig_migration_event *ev)
{
	const char *colon = ui->stop_at ? strchr(ui->stop_at, ':') : NULL;
	struct json_object *v, *side;

	if (!ui->stop_at)
		return;
	if (!colon && (strcmp(ev->type, "phase") ||
		       !json_object_object_get_ex(ev->record, "phase", &v) ||
		       strcmp(json_object_get_string(v), ui->stop_at)))
		return;
	if (colon && (strcmp(ev->type, "event") ||
		      !json_object_object_get_ex(ev->record, "side", &side) ||
		      !json_object_object_get_ex(ev->record, "event", &v) ||
		      strncmp(json_object_get_string(side), ui->stop_at,
			      (size_t)(colon - ui->stop_at)) ||
		      json_object_get_string(side)[colon - ui->stop_at] ||
		      strcmp(json_object_get_string(v), colon + 1)))
		return;
	ui->stop_at = NULL;
	raise(SIGSTOP);
}

static void print_event(const struct qmig_migration_event *ev, void *user_data)
{
	struct ui *ui = user_data;
	struct json_object *v;

	if (ui->json) {
		if (agent_src_hold(ev))
			return;
		/* A reader that went away (qmigrate migrate --json | head -1)
		 * ends the printing, not the migration: SIGPIPE is ignored,
		 * and EPIPE here only stops the output. */
		if (ui->out_closed)
			return;
		if (puts(json_object_to_json_string_ext(ev->record, JSON_C_TO_STRING_PLAIN |
							JSON_C_TO_STRING_NOSLASHESCAPE)) < 0 ||
		    fflush(stdout) == EOF) {
			ui->out_closed = 1;
			warnx("standard output closed (%s): the migration goes on without it",
			      strerror(errno));
		}
		return;
	}
	if (!strcmp(ev->type, "disk") && ui->tty) {
		struct json_object *t, *rem;
		char a[32], b[32];

		if (json_object_object_get_ex(ev->record, "total", &t) &&
		    json_object_object_get_ex(ev->record, "remaining", &rem)) {
			format_size(a, sizeof(a), (double)json_object_get_int64(rem));
			format_size(b, sizeof(b), (double)json_object_get_int64(t));
			fprintf(stderr, "\r  disks: %s of %s left to mirror%-40s", a, b, "");
			ui->bar_shown = 1;
		}
	} else if (!strcmp(ev->type, "sample") && ui->tty) {
		struct json_object *dr;

		bar(ui, ev->sample, json_object_object_get_ex(ev->record, "disk_remaining", &dr)
					    ? json_object_get_int64(dr) : -1);
	} else if (!strcmp(ev->type, "phase")) {
		if (ui->bar_shown) {
			fputc('\n', stderr);
			ui->bar_shown = 0;
		}
		json_object_object_get_ex(ev->record, "phase", &v);
		fprintf(stderr, "qmigrate: %s\n", json_object_get_string(v));
	} else if (!strcmp(ev->type, "plan") && (ui->dry_run || cli_verbose)) {
		struct json_object *side, *cmd, *args;

		json_object_object_get_ex(ev->record, "side", &side);
		json_object_object_get_ex(ev->record, "command", &cmd);
		json_object_object_get_ex(ev->record, "arguments", &args);
		fprintf(ui->dry_run ? stdout : stderr, "%-12s %s %s", json_object_get_string(side),
			json_object_get_string(cmd),
			args ? json_object_to_json_string_ext(args, JSON_C_TO_STRING_PLAIN |
								   JSON_C_TO_STRING_NOSLASHESCAPE) : "");
		/* A feature's decision says why (features: used or not). */
		if (!strcmp(json_object_get_string(cmd), "feature") &&
		    json_object_object_get_ex(ev->record, "why", &v))
			fprintf(ui->dry_run ? stdout : stderr, ": %s", json_object_get_string(v));
		fputc('\n', ui->dry_run ? stdout : stderr);
	}
}

static void on_event(const struct qmig_migration_event *ev, void *user_data)
{
	print_event(ev, user_data);
	debug_stop(user_data, ev);
}

static void summary(const struct qmig_result *r)
{
	char xfer[32], guest[160];

	format_size(xfer, sizeof(xfer), (double)r->transferred_bytes);
	if (!strcmp(r->status, "dry-run")) {
		fprintf(stderr, "qmigrate: %s\n", r->message);
		return;
	}
	fprintf(stderr, "\nqmigrate: %s: %s\n", r->status, r->message);
	if (strcmp(r->status, "completed"))
		return;
	if (r->guest_downtime_ms >= 0)
		snprintf(guest, sizeof(guest), "guest-observed %lld ms", (long long)r->guest_downtime_ms);
	else
		snprintf(guest, sizeof(guest), "guest-observed not measured (%s)",
			 r->guest_downtime_reason[0] ? r->guest_downtime_reason : "unknown");
	fprintf(stderr,
		"  total        %llu ms (QEMU %llu ms, setup %llu ms)\n"
		"  downtime     %s, switchover %lld ms, QEMU %llu ms\n"
		"  transferred  %s in %llu passes, %.0f Mbit/s\n"
		"  port         %u\n"
		"  verified     %s%s%s%s\n",
		(unsigned long long)r->engine_total_ms, (unsigned long long)r->total_ms,
		(unsigned long long)r->setup_ms, guest,
		(long long)r->switchover_ms, (unsigned long long)r->downtime_ms, xfer,
		(unsigned long long)r->passes, r->throughput_mbps, r->port,
		r->verified == 1 ? "yes" : r->verified == 0 ? "NO" : "not checked",
		r->verify_method[0] ? " (" : "", r->verify_method, r->verify_method[0] ? ")" : "");
	if (r->verify_ms)
		fprintf(stderr, "               %llu ms verifying (not counted as downtime)\n",
			(unsigned long long)r->verify_ms);
	if (r->postcopy_started)
		fprintf(stderr, "  postcopy     %llu page requests, %d recoveries (%d attempts)\n",
			(unsigned long long)r->postcopy_requests, r->recoveries, r->recovery_attempts);
	if (r->throttle_pct_max || r->paused_to_finish)
		fprintf(stderr, "  convergence  CPU throttle up to %lld%%%s\n",
			(long long)r->throttle_pct_max,
			r->paused_to_finish ? ", guest paused to finish" : "");
	if (r->disks_migrated) {
		char db[32];

		format_size(db, sizeof(db), (double)r->disk_bytes);
		fprintf(stderr, "  disks        %d mirrored (%s in %llu ms), ended in %llu ms of "
			"the switchover, %s\n", r->disks_migrated, db,
			(unsigned long long)r->disk_mirror_ms, (unsigned long long)r->disk_cancel_ms,
			r->disks_verified == 1 ? "identical on both sides"
			: r->disks_verified == 0 ? "DIFFER" : "not compared");
	}
	if (r->memory_verified >= 0)
		fprintf(stderr, "  memory       %llu pages compared, %llu differ (%llu ms)\n",
			(unsigned long long)r->pages_compared, (unsigned long long)r->pages_differ,
			(unsigned long long)r->memory_verify_ms);
}

static int exit_code(const struct qmig_result *r)
{
	if (!strcmp(r->status, "completed") || !strcmp(r->status, "dry-run"))
		return EXIT_OK;
	if (!strcmp(r->status, "completed-with-errors"))
		return EXIT_HANDOVER;
	if (r->error == -ECANCELED)
		return EXIT_CANCELLED;
	if (r->verified == 0)
		return EXIT_VERIFY;
	if (r->postcopy_started)
		return EXIT_POSTCOPY;
	if (r->failed_phase <= QMIG_PHASE_NEGOTIATE)
		return EXIT_SETUP;
	return EXIT_ROLLEDBACK;
}

/* ---- the job's control socket: status, cancel, set, postcopy ---- */

static void status_add(struct json_object *o, struct job_migration *jm)
{
	struct qmig_migration *m = jm->m;
	struct qmig_convergence cv = QMIG_CONVERGENCE_INIT;
	struct qmig_sample s = QMIG_SAMPLE_INIT;

	qmig_migration_last_sample(m, &s);
	qmig_migration_convergence(m, &cv);
#define ADD_I(k, v) json_object_object_add(o, k, json_object_new_int64((int64_t)(v)))
	ADD_I("pid", getpid());
	json_object_object_add(o, "job", json_object_new_string(jm->label));
	json_object_object_add(o, "phase",
			       json_object_new_string(qmig_phase_name(qmig_migration_phase(m))));
	json_object_object_add(o, "status", json_object_new_string(s.status));
	ADD_I("elapsed_ms", s.t_ms);
	ADD_I("pass", s.pass);
	ADD_I("transferred", s.transferred);
	ADD_I("remaining", s.remaining);
	ADD_I("total", s.total);
	ADD_I("dirty_rate", s.dirty_rate);
	ADD_I("bandwidth", s.bandwidth);
	ADD_I("wire_rate", cv.wire_rate);
	ADD_I("expected_downtime_ms", s.expected_downtime_ms);
	json_object_object_add(o, "verdict", json_object_new_string(qmig_verdict_name(cv.verdict)));
	json_object_object_add(o, "verdict_text", json_object_new_string(cv.text));
	ADD_I("eta_ms", cv.time_left_ms);
	ADD_I("completion_bound_left_ms", cv.bound_left_ms);
#undef ADD_I
}

/* A plain decimal number (the client converted units already). */
static int plain_number(const char *v, int64_t *out)
{
	char *end;
	long long x;

	if (!*v || *v == '-' || *v == '+')
		return -1;
	errno = 0;
	x = strtoll(v, &end, 10);
	if (*end || errno)
		return -1;
	*out = x;
	return 0;
}

static int answer_set(struct qmig_migration *m, const struct job_request *rq, char *msg,
		      size_t len)
{
	enum qmig_limit which;
	int64_t v;

	if (!strcmp(rq->name, "downtime-limit"))
		which = QMIG_LIMIT_DOWNTIME_MS;
	else if (!strcmp(rq->name, "max-bandwidth"))
		which = QMIG_LIMIT_BANDWIDTH;
	else {
		snprintf(msg, len, "cannot set '%s' (downtime-limit, max-bandwidth)", rq->name);
		return -EINVAL;
	}
	if (plain_number(rq->value, &v) < 0) {
		snprintf(msg, len, "%s: '%s' is not a number", rq->name, rq->value);
		return -EINVAL;
	}
	return qmig_migration_set_limit(m, which, v, msg, len);
}

char *job_answer_migration(const struct job_request *rq, void *user_data)
{
	struct job_migration *jm = user_data;
	struct json_object *o = json_object_new_object();
	const char *why;
	char msg[256] = "", *txt;
	int r = 0;

	switch (rq->kind) {
	case JOB_REQ_STATUS:
		break;
	case JOB_REQ_CANCEL:
		why = qmig_migration_cancel_ignored(jm->m);
		json_object_object_add(o, "cancel",
				       json_object_new_string(why ? "ignored" : "requested"));
		if (why)
			json_object_object_add(o, "reason", json_object_new_string(why));
		else
			qmig_migration_cancel(jm->m);
		break;
	case JOB_REQ_SET:
		r = answer_set(jm->m, rq, msg, sizeof(msg));
		break;
	case JOB_REQ_POSTCOPY:
		r = qmig_migration_start_postcopy(jm->m, msg, sizeof(msg));
		break;
	}
	if (rq->kind == JOB_REQ_SET || rq->kind == JOB_REQ_POSTCOPY) {
		json_object_object_add(o, "ok", json_object_new_boolean(!r));
		if (r < 0)
			json_object_object_add(o, "error", json_object_new_string(msg));
	}
	status_add(o, jm);
	txt = strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
	json_object_put(o);
	return txt;
}

static void add_cap(const char **caps, int *n, const char *name)
{
	if (*n == 32)
		die(EXIT_USAGE, "--cap: at most 32 capabilities");
	caps[(*n)++] = name;
}

/* The loop: the migration, signals, and the job's control socket. */
static int drive(struct qmig_migration *m, struct job *job)
{
	sigset_t set;
	int sfd, r;

	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	sigprocmask(SIG_BLOCK, &set, NULL);
	/* A background job may have inherited SIGINT ignored; we want it. */
	signal(SIGINT, SIG_DFL);
	sfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
	while ((r = qmig_migration_process(m)) == 0) {
		struct pollfd p[4] = {{qmig_migration_get_fd(m), POLLIN, 0},
				      {sfd, POLLIN, 0},
				      {job_fd(job), POLLIN, 0},
				      {agent_src_active() ? agent_src_fd() : -1, POLLIN, 0}};
		struct signalfd_siginfo si;
		int t = qmig_migration_get_timeout(m), tj = job_timeout(job);

		if (tj >= 0 && (t < 0 || tj < t))
			t = tj;
		if (poll(p, 4, t) < 0 && errno != EINTR)
			break;
		agent_src_process(); /* the QMP tunnel to a remote destination */
		if (p[1].revents && read(sfd, &si, sizeof(si)) == sizeof(si)) {
			const char *why = qmig_migration_cancel_ignored(m);

			if (why)
				warnx("signal %u: not cancelling: %s", si.ssi_signo, why);
			else
				warnx("signal %u: cancelling, the source will keep running",
				      si.ssi_signo);
			qmig_migration_cancel(m);
		}
		/* Deadlines too, not only readiness. */
		job_serve(job);
	}
	close(sfd);
	return r;
}

/* --no-feature NAME: the QMIG_FEATURE_* bit. */
static unsigned parse_feature(const char *name)
{
	static const struct {
		const char *name;
		unsigned bit;
	} f[] = {{"zero-page-detection", QMIG_FEATURE_ZERO_PAGE_DETECTION},
		 {"channels", QMIG_FEATURE_CHANNELS},
		 {"switchover-ack", QMIG_FEATURE_SWITCHOVER_ACK},
		 {"avail-switchover-bandwidth", QMIG_FEATURE_AVAIL_SWITCHOVER_BANDWIDTH}};

	for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++)
		if (!strcmp(name, f[i].name))
			return f[i].bit;
	die(EXIT_USAGE, "--no-feature: '%s' is not zero-page-detection, channels, switchover-ack "
			"or avail-switchover-bandwidth", name);
	return 0;
}

int cmd_migrate(int argc, char **argv)
{
	enum { O_SRC = 256, O_DST, O_LAUNCH, O_GUEST, O_MEM, O_WSS, O_RATE, O_ACCEL, O_QEMU,
	       O_SNS, O_DNS, O_KEEPD, O_DADDR, O_LADDR, O_RANGE, O_BW, O_DL, O_MULTIFD, O_CAP,
	       O_DRY, O_KEEPS, O_NOVER, O_TIMEOUT, O_INTERVAL, O_JSON, O_HELP, O_SSER, O_DSER, O_VERIFY, O_PARAM, O_AC, O_XBZ, O_PC, O_PCN, O_PCT,
	       O_RECT, O_PAUSE, O_TLS, O_TLSD, O_TLSH, O_TLSA, O_GARGS, O_NOWA, O_TRACE, O_POL,
	       O_POLP, O_MAXD, O_MAXP, O_MEAS, O_FORCE, O_SQEMU, O_DQEMU, O_CTPG, O_NOCT,
	       O_RUNAS, O_TROVER, O_DSTOP, O_TO, O_PROFILE, O_SET, O_ATLS,
	       O_CSALL, O_CSINC, O_MDISKS, O_DBW, O_CSSYNC, O_DISK, O_DBACK, O_DRATE };
	enum { O_TRANSPORT = 400, O_RSNS, O_RDNS };
	enum { O_COMPRESS = 450, O_NOFEAT, O_MAXOUT };
	static const struct option lo[] = {
		{"src-qmp", 1, 0, O_SRC},      {"dst-qmp", 1, 0, O_DST},
		{"launch", 0, 0, O_LAUNCH},    {"guest", 1, 0, O_GUEST},
		{"mem", 1, 0, O_MEM},          {"wss", 1, 0, O_WSS},
		{"dirty-rate", 1, 0, O_RATE},  {"accel", 1, 0, O_ACCEL},
		{"qemu", 1, 0, O_QEMU},        {"src-netns", 1, 0, O_SNS},
		{"dst-netns", 1, 0, O_DNS},    {"keep-dest", 0, 0, O_KEEPD},
		{"dst-addr", 1, 0, O_DADDR},   {"listen-addr", 1, 0, O_LADDR},
		{"port-range", 1, 0, O_RANGE}, {"max-bandwidth", 1, 0, O_BW},
		{"downtime-limit", 1, 0, O_DL}, {"multifd", 1, 0, O_MULTIFD},
		{"cap", 1, 0, O_CAP},          {"dry-run", 0, 0, O_DRY},
		{"keep-source", 0, 0, O_KEEPS}, {"no-verify", 0, 0, O_NOVER},
		{"timeout", 1, 0, O_TIMEOUT},  {"interval", 1, 0, O_INTERVAL},
		{"json", 0, 0, O_JSON},        {"help", 0, 0, O_HELP},
		{"src-serial", 1, 0, O_SSER},  {"dst-serial", 1, 0, O_DSER},
		{"verify", 1, 0, O_VERIFY},   {"param", 1, 0, O_PARAM},
		{"auto-converge", 0, 0, O_AC}, {"xbzrle-cache", 1, 0, O_XBZ},
		{"postcopy", 0, 0, O_PC},      {"postcopy-after-passes", 1, 0, O_PCN},
		{"postcopy-after", 1, 0, O_PCT}, {"recover-timeout", 1, 0, O_RECT},
		{"pause-after", 1, 0, O_PAUSE}, {"tls", 1, 0, O_TLS},
		{"tls-dst-dir", 1, 0, O_TLSD}, {"tls-hostname", 1, 0, O_TLSH},
		{"tls-authz", 1, 0, O_TLSA},  {"guest-args", 1, 0, O_GARGS},
		{"no-mem-workaround", 0, 0, O_NOWA}, {"trace", 1, 0, O_TRACE},
		{"policy", 1, 0, O_POL},       {"policy-plugin", 1, 0, O_POLP},
		{"max-downtime", 1, 0, O_MAXD}, {"max-pause", 1, 0, O_MAXP},
		{"measure-dirty-rate", 1, 0, O_MEAS}, {"force", 0, 0, O_FORCE},
		{"src-qemu", 1, 0, O_SQEMU},   {"dst-qemu", 1, 0, O_DQEMU},
		{"completion-timeout-per-gib", 1, 0, O_CTPG},
		{"no-completion-timeout", 0, 0, O_NOCT},
		{"runas", 1, 0, O_RUNAS},      {"trace-overwrite", 0, 0, O_TROVER},
		{"debug-stop-at", 1, 0, O_DSTOP},
		{"transport", 1, 0, O_TRANSPORT}, {"relay-src-netns", 1, 0, O_RSNS},
		{"relay-dst-netns", 1, 0, O_RDNS},
		{"to", 1, 0, O_TO},            {"profile", 1, 0, O_PROFILE},
		{"set", 1, 0, O_SET},          {"agent-tls", 1, 0, O_ATLS},
		{"max-outbound", 1, 0, O_MAXOUT},
		{"copy-storage-all", 0, 0, O_CSALL}, {"copy-storage-inc", 0, 0, O_CSINC},
		{"migrate-disks", 1, 0, O_MDISKS}, {"disk-bandwidth", 1, 0, O_DBW},
		{"copy-storage-synchronous", 0, 0, O_CSSYNC}, {"disk", 1, 0, O_DISK},
		{"disk-backing", 1, 0, O_DBACK}, {"disk-write-rate", 1, 0, O_DRATE},
		{"compress", 1, 0, O_COMPRESS}, {"no-feature", 1, 0, O_NOFEAT},
		{0, 0, 0, 0}};
	struct qmig_migrate_opts o = QMIG_MIGRATE_OPTS_INIT;
	struct ui ui = {0};
	struct qmig_migration *m;
	struct qmig_result res = QMIG_RESULT_INIT;
	struct job *job = NULL;
	struct job_migration jm = {0};
	const char *caps[33] = {0}, *params[34] = {0};
	char xbzrle[64];
	int ncaps = 0, nparams = 0, launch = 0, c, r;
	char jobmsg[256] = "";
	char jdir[200];
	const char *src_qemu = NULL, *dst_qemu = NULL;
	const char *to = NULL, *profile = NULL, *agent_tls = NULL, *sets[33] = {0};
	int max_out = 0;
	int nsets = 0;

	o.guest.guest = QMIG_GUEST_TINY;
	o.guest.mem_bytes = 256ull << 20;
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		switch (c) {
		case O_SRC: o.src_qmp = optarg; break;
		case O_DST: o.dst_qmp = optarg; break;
		case O_LAUNCH: launch = 1; break;
		case O_GUEST: o.guest.guest = parse_guest_kind(optarg); break;
		case O_MEM: o.guest.mem_bytes = parse_size("--mem", optarg); break;
		case O_WSS: o.guest.wss_bytes = parse_size("--wss", optarg); break;
		case O_RATE: o.guest.dirty_rate = parse_rate("--dirty-rate", optarg); break;
		case O_ACCEL: o.guest.accel = parse_accel(optarg); break;
		case O_QEMU: o.guest.qemu_binary = optarg; break;
		case O_SNS: o.src_netns = optarg; break;
		case O_DNS: o.dst_netns = optarg; break;
		case O_KEEPD: o.keep_dest = 1; break;
		case O_DADDR: o.dst_addr = optarg; break;
		case O_LADDR: o.listen_addr = optarg; break;
		case O_RANGE: parse_port_range("--port-range", optarg, &o.port_lo, &o.port_hi); break;
		case O_BW: o.max_bandwidth = parse_rate("--max-bandwidth", optarg); break;
		case O_DL: o.downtime_limit_ms = parse_long("--downtime-limit", optarg, 1, 2000000); break;
		case O_MULTIFD: o.multifd_channels = (int)parse_long("--multifd", optarg, 1, 255); break;
		case O_CAP: add_cap(caps, &ncaps, optarg); break;
		case O_DRY: o.dry_run = 1; break;
		case O_KEEPS: o.keep_source = 1; break;
		case O_NOVER: o.no_verify = 1; break;
		case O_TIMEOUT: o.timeout_ms = (int)parse_long("--timeout", optarg, 1, 86400) * 1000; break;
		case O_INTERVAL: o.sample_ms = (int)parse_long("--interval", optarg, 10, 60000); break;
		case O_JSON: ui.json = 1; break;
		case O_VERIFY:
			if (!strcmp(optarg, "memory"))
				o.verify_memory = 1;
			else if (!strcmp(optarg, "none"))
				o.no_verify = 1;
			else if (strcmp(optarg, "guest"))
				die(EXIT_USAGE, "--verify: '%s' is not guest, memory or none", optarg);
			break;
		case O_PARAM:
			if (nparams == 32)
				die(EXIT_USAGE, "--param: at most 32");
			params[nparams++] = optarg;
			break;
		case O_AC: add_cap(caps, &ncaps, "auto-converge"); break;
		case O_XBZ:
			if (nparams >= 32)
				die(EXIT_USAGE, "--param: at most 32");
			add_cap(caps, &ncaps, "xbzrle");
			snprintf(xbzrle, sizeof(xbzrle), "xbzrle-cache-size=%llu",
				 (unsigned long long)parse_size("--xbzrle-cache", optarg));
			params[nparams++] = xbzrle;
			break;
		case O_PC: o.postcopy = 1; break;
		case O_PCN:
			o.postcopy = 1;
			o.postcopy_after_passes = (int)parse_long("--postcopy-after-passes", optarg, 1, 1000);
			break;
		case O_PCT:
			o.postcopy = 1;
			o.postcopy_after_ms = (int)parse_long("--postcopy-after", optarg, 0, 86400) * 1000;
			break;
		case O_RECT: o.recover_timeout_ms = (int)parse_long("--recover-timeout", optarg, 1, 86400) * 1000; break;
		case O_PAUSE: o.pause_after_ms = (int)parse_long("--pause-after", optarg, 0, 86400) * 1000; break;
		case O_GARGS: o.guest.guest_append = optarg; break;
		case O_TRACE: o.trace_path = optarg; break;
		case O_TROVER: o.trace_overwrite = 1; break;
		case O_RUNAS: o.guest.runas = optarg; break;
		case O_POL:
			if (!qmig_policy_builtin(optarg))
				die(EXIT_USAGE, "--policy: '%s' is not one of %s", optarg,
				    qmig_policy_names());
			o.policy = optarg;
			break;
		case O_POLP: o.policy_plugin = optarg; break;
		case O_FORCE: o.force = 1; break;
		case O_CTPG:
			o.completion_timeout_per_gib_s =
				(int)parse_long("--completion-timeout-per-gib", optarg, 1, 86400);
			break;
		case O_NOCT: o.completion_timeout_per_gib_s = -1; break;
		case O_DSTOP: ui.stop_at = optarg; break;
		case O_MEAS:
			o.measure_dirty_s = (int)parse_long("--measure-dirty-rate", optarg, 0, 60);
			if (!o.measure_dirty_s)
				o.measure_dirty_s = -1;
			break;
		case O_MAXD: o.max_downtime_ms = parse_long("--max-downtime", optarg, 1, 2000000); break;
		case O_MAXP: o.max_pause_ms = parse_long("--max-pause", optarg, 1, 86400000); break;
		case O_NOWA: o.guest.no_mem_workaround = 1; break;
		case O_SQEMU: src_qemu = optarg; break;
		case O_DQEMU: dst_qemu = optarg; break;
		case O_TLS: o.tls_dir = optarg; break;
		case O_TRANSPORT:
			if (!strcmp(optarg, "relay"))
				o.transport = QMIG_TRANSPORT_RELAY;
			else if (!strcmp(optarg, "direct"))
				o.transport = QMIG_TRANSPORT_DIRECT;
			else
				die(EXIT_USAGE, "--transport: '%s' is neither direct nor relay", optarg);
			break;
		case O_RSNS: o.relay_src_netns = optarg; break;
		case O_RDNS: o.relay_dst_netns = optarg; break;
		case O_TLSD: o.tls_dst_dir = optarg; break;
		case O_TLSH: o.tls_hostname = optarg; break;
		case O_TLSA: o.tls_authz = optarg; break;
		case O_TO: to = optarg; break;
		case O_PROFILE: profile = optarg; break;
		case O_ATLS: agent_tls = optarg; break;
		case O_MAXOUT:
			agent_src_max_outbound(parse_long("--max-outbound", optarg, 0, 1024));
			max_out = 1;
			break;
		case O_SET:
			if (nsets == 32)
				die(EXIT_USAGE, "--set: at most 32");
			sets[nsets++] = optarg;
			break;
		case O_CSALL: o.copy_storage = QMIG_COPY_STORAGE_ALL; break;
		case O_CSINC: o.copy_storage = QMIG_COPY_STORAGE_INC; break;
		case O_MDISKS: o.migrate_disks = optarg; break;
		case O_DBW: o.disk_bandwidth = parse_rate("--disk-bandwidth", optarg); break;
		case O_CSSYNC: o.copy_storage_synchronous = 1; break;
		case O_DISK: o.guest.disk_bytes = parse_size("--disk", optarg); break;
		case O_DBACK: o.guest.disk_backing = optarg; break;
		case O_DRATE: o.guest.disk_write_rate = parse_rate("--disk-write-rate", optarg); break;
		case O_COMPRESS: o.multifd_compression = optarg; break;
		case O_NOFEAT: o.features_off |= parse_feature(optarg); break;
		case O_SSER: o.src_serial = optarg; break;
		case O_DSER: o.dst_serial = optarg; break;
		case 'h': case O_HELP: usage(stdout); return EXIT_OK;
		default: usage(stderr); return EXIT_USAGE;
		}
	}
	if (optind < argc)
		die(EXIT_USAGE, "unexpected argument '%s' (see 'qmigrate migrate --help')", argv[optind]);
	if (ui.stop_at && !strchr(ui.stop_at, ':')) {
		int ph = QMIG_PHASE_INIT;

		while (ph <= QMIG_PHASE_FAILED && strcmp(qmig_phase_name(ph), ui.stop_at))
			ph++;
		if (ph > QMIG_PHASE_FAILED)
			die(EXIT_USAGE, "--debug-stop-at: '%s' is not a phase", ui.stop_at);
	}
	if (launch && (o.src_qmp || o.dst_qmp))
		die(EXIT_USAGE, "--launch starts both QEMUs: drop --src-qmp/--dst-qmp");
	if (!launch && (src_qemu || dst_qemu))
		die(EXIT_USAGE, "--src-qemu and --dst-qemu choose what --launch starts");
	if (src_qemu || dst_qemu) { /* --qemu names both; these one side each */
		const char *both = o.guest.qemu_binary ? o.guest.qemu_binary : "qemu-system-x86_64";
		o.guest.qemu_binary = src_qemu ? src_qemu : both;
		o.dst_qemu_binary = dst_qemu ? dst_qemu : both;
	}
	if (to && !launch) { /* the destination is another host's agent's */
		const char *t = o.tls_dir;

		o.tls_dir = agent_tls ? agent_tls : t;
		agent_src_stream_tls(t, o.tls_hostname);
		agent_src_start(&o, to, profile, sets);
		o.tls_dir = t;
		if (!t)
			o.tls_dst_dir = NULL; /* the stream is plain */
	} else if (to || profile || nsets || agent_tls || max_out) {
		die(EXIT_USAGE, "--profile, --set, --agent-tls and --max-outbound go with --to (and "
				"--src-qmp)");
	}
	if ((o.migrate_disks || o.disk_bandwidth || o.copy_storage_synchronous) &&
	    !o.copy_storage)
		die(EXIT_USAGE, "--migrate-disks, --disk-bandwidth and --copy-storage-synchronous "
				"need --copy-storage-all or --copy-storage-inc");
	if ((o.guest.disk_backing || o.guest.disk_write_rate) && !o.guest.disk_bytes)
		die(EXIT_USAGE, "--disk-backing and --disk-write-rate need --disk SIZE");
	if (o.multifd_compression && o.multifd_channels <= 0)
		die(EXIT_USAGE, "--compress %s needs --multifd N: QEMU compresses in the multifd "
				"channels", o.multifd_compression);
	if (!launch && (!o.src_qmp || !o.dst_qmp))
		die(EXIT_USAGE, "give --src-qmp and --dst-qmp (attach), or --launch");
	if (o.dst_netns && !o.dst_addr)
		die(EXIT_USAGE, "--dst-netns needs --dst-addr: the destination's address in %s",
		    o.dst_netns);
	if ((o.relay_src_netns || o.relay_dst_netns) && o.transport != QMIG_TRANSPORT_RELAY)
		die(EXIT_USAGE, "--relay-src-netns and --relay-dst-netns need --transport relay");
	if (o.transport == QMIG_TRANSPORT_RELAY && o.tls_authz)
		die(EXIT_USAGE, "--tls-authz checks QEMU's TLS clients; with --transport relay "
				"the relay does TLS and QEMU none");
	if ((o.tls_dst_dir || o.tls_hostname || o.tls_authz) && !o.tls_dir)
		die(EXIT_USAGE, "--tls-dst-dir, --tls-hostname and --tls-authz need --tls DIR");
	o.caps = caps;
	o.params = params;
	ui.tty = isatty(STDERR_FILENO);
	ui.dry_run = o.dry_run;
	o.on_event = (struct qmig_migration_event_cb){on_event, &ui, NULL};
	o.log = (struct qmig_log_cb){cli_log, NULL, NULL};
	/* The job journal lives beside the control sockets: if this process
	 * dies, `qmigrate recover` finds it there. */
	if (!o.dry_run) {
		o.journal_dir = job_journal_dir(jdir, sizeof(jdir));
	}
	r = qmig_migration_new(&m, &o);
	if (r == -EEXIST && o.trace_path)
		die(EXIT_USAGE, "cannot start: --trace %s already exists (--trace-overwrite "
			       "replaces it)", o.trace_path);
	if (r < 0 && o.trace_path)
		die(EXIT_USAGE, "cannot start: --trace %s: %s", o.trace_path, strerror(-r));
	if (r < 0)
		die(EXIT_USAGE, "cannot start: %s", strerror(-r));
	ui.m = m;
	jm.m = m;
	snprintf(jm.label, sizeof(jm.label), "%s", o.src_qmp ? o.src_qmp : "launch");
	if (job_open(&job, NULL, job_answer_migration, &jm, jobmsg, sizeof(jobmsg)) < 0)
		warnx("no control socket (qmigrate status/cancel will not see this job): %s",
		      jobmsg);
	r = drive(m, job);
	job_close(job);
	qmig_migration_result(m, &res);
	agent_src_end(&res, ui.json);
	if (ui.bar_shown)
		fputc('\n', stderr);
	if (!ui.json)
		summary(&res);
	qmig_migration_free(m);
	if (r < 0 && !res.status[0])
		die(EXIT_FAIL, "internal error: %s", strerror(-r));
	return exit_code(&res);
}
