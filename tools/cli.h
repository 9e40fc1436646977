/* The qmigrate command line: shared helpers for the subcommands.
 * Only tools/ prints and exits. */
#ifndef QMIG_CLI_H
#define QMIG_CLI_H

#include <stdint.h>
#include <stdio.h>

#include "qmig_guests.h"
#include "qmig_launch.h"
#include "qmig_qmp.h"

/* Exit codes (documented in qmigrate(1)). */
enum {
	EXIT_OK = 0,
	EXIT_FAIL = 1,       /* the operation failed (migration failed, verify found bad pages) */
	EXIT_USAGE = 2,      /* bad command line */
	EXIT_SETUP = 3,      /* could not start: QEMU, sockets, ports, schema refusal */
	EXIT_ROLLEDBACK = 4, /* migration failed and the source was restored */
	EXIT_CANCELLED = 5,  /* cancelled by the user or a signal; source restored */
	EXIT_VERIFY = 6,     /* completed, but the destination failed verification */
	EXIT_POSTCOPY = 7,   /* failed during postcopy: no rollback is possible */
	EXIT_HANDOVER = 8,   /* completed with errors: a failure after the destination
				took over; it keeps the guest, the source was not resumed */
};

extern const char *prog_name;

void die(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3), noreturn));
void warnx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Log callback for library handles: prints warnings and errors to stderr,
 * everything with -v. */
void cli_log(enum qmig_log_level level, const char *msg, void *user_data);
/* SIGINT, SIGTERM, SIGHUP set cli_cancel_flag (for options' cancel
 * pointers) instead of killing the process. */
extern volatile int cli_cancel_flag;
void cli_catch_cancel(void);
/* The journal directory for a job of this process (job_prepare_dir()), or
 * NULL after a warning that a crash could not be repaired without it. */
const char *job_journal_dir(char *buf, size_t len);
extern int cli_verbose;

/* "256M", "1G", "4096", "512k": bytes. Dies with a message naming what on error. */
uint64_t parse_size(const char *what, const char *s);
/* "50M" (bytes/s), "1gbit", "800mbit": bytes per second. */
uint64_t parse_rate(const char *what, const char *s);
/* --guest tiny|linux and --accel auto|tcg|kvm, or die with the usage error. */
enum qmig_guest_kind parse_guest_kind(const char *s);
const char *parse_accel(const char *s);
/* The library's launch defaults from QMIGRATE_GUEST_DIR (else the tree's
 * tests/guests next to this program, when it runs from the source tree),
 * QMIGRATE_LINUX_DIR (else ${XDG_CACHE_HOME:-~/.cache}/qmigrate/linux)
 * and QMIGRATE_ACCEL: the library itself reads no environment. */
void launch_defaults_from_env(void);
long parse_long(const char *what, const char *s, long min, long max);
/* "LO-HI", e.g. 49152-49215. Dies with a message naming what on error. */
void parse_port_range(const char *what, const char *s, unsigned *lo, unsigned *hi);
void format_size(char *buf, size_t len, double bytes);

/* Subcommands: argv[0] is the subcommand's name. */
int cmd_qmp(int argc, char **argv);
int cmd_launch(int argc, char **argv);
int cmd_verify(int argc, char **argv);
int cmd_migrate(int argc, char **argv);
int cmd_status(int argc, char **argv);
int cmd_cancel(int argc, char **argv);
int cmd_tls(int argc, char **argv);
int cmd_caps(int argc, char **argv);
int cmd_doctor(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_netns(int argc, char **argv);
int cmd_preflight(int argc, char **argv);
int cmd_simulate(int argc, char **argv);
int cmd_replay(int argc, char **argv);
int cmd_set(int argc, char **argv);
int cmd_postcopy(int argc, char **argv);
int cmd_recover(int argc, char **argv);
int cmd_save(int argc, char **argv);
int cmd_restore(int argc, char **argv);
int cmd_update(int argc, char **argv);
int cmd_agent(int argc, char **argv);

#endif
