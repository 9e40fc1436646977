/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libqmigrate — guest plug-ins: what the engine may learn from the guest
 * itself.
 *
 * The engine knows nothing of any particular guest. A guest that reports
 * its liveness on its serial line (heartbeats) or can check its own
 * memory is described to the engine by a table of callbacks, struct
 * qmig_guest_ops, registered for a whole process
 * (qmig_launch_defaults.guest_ops, qmig_launch.h) or for one migration
 * (qmig_migration_set_guest_ops, qmig_migrate.h). The engine then uses it
 * to measure the downtime the guest saw, to wait for a resumed guest, and
 * to verify the guest's memory after a move. Without a table the engine
 * reads no serial line and verifies a guest by its running on the
 * destination (and, with --verify=memory, by comparing RAM).
 *
 * qmigrate's own test guests (the tiny multiboot guest and the small
 * Linux guest) are one such plug-in, in a separate test-support library
 * (libqmigrate-guests.a, tests/guests/host/qmig_guests.h), not in
 * libqmigrate.
 */
#ifndef QMIG_GUEST_H
#define QMIG_GUEST_H

#include <stddef.h>
#include <stdint.h>

#include "qmig_qmp.h"

#ifdef __cplusplus
extern "C" {
#endif

/* What a probe has read of a guest's serial line so far. An output struct:
 * the caller sets size (QMIG_GUEST_STATS_INIT); a plug-in writes no more
 * than size bytes (0: the size of this header's struct). Times are the
 * host's CLOCK_MONOTONIC when a line was read, in ns. */
struct qmig_guest_stats {
	size_t size;
	uint64_t beats;          /* heartbeat lines seen */
	uint64_t last_seq;       /* the guest's sequence number in the last one */
	uint64_t generation;     /* the guest's pass over its working set */
	uint64_t pages_written;
	uint64_t guest_rate;     /* bytes/s, as the guest measures itself */
	int64_t first_ns, last_ns; /* host times of the first and last beat */
	int64_t max_gap_ns;      /* largest gap between two beats */
	int64_t max_gap_end_ns;  /* when that gap ended */
	int corrupt;             /* the guest reported a failed self-check */
	char corrupt_msg[160];
	int ready;               /* the guest said it is ready */
	uint64_t seq_missed;     /* beats the guest numbered that never arrived */
	char last_msg[160];      /* the last line that was not a heartbeat */
	int self_check;          /* the guest said it can check its own memory
				    on request (check_ask below) */
	/* Added at the end (size tells a plug-in whether the caller has them). */
	int has_work;            /* the guest counts its non-writing work */
	uint64_t work;           /* units of that work done, at the last beat */
	uint64_t work_first;     /* ... at the first beat */
};

#define QMIG_GUEST_STATS_INIT {.size = sizeof(struct qmig_guest_stats)}

/* A verdict on a guest's memory (a guest's own check, or the host's). */
struct qmig_verify_report {
	uint64_t pages_checked;
	uint64_t pages_bad;
	uint64_t first_bad_gpa;   /* guest-physical address of the first bad page */
	uint64_t generation;      /* the guest's pass at the time of the check */
	char detail[256];         /* what was wrong with the first bad page */
	uint64_t seq;             /* a guest's own check: its heartbeat number when
				     it checked (0: unknown) */
};

struct qmig_vm_spec;

/* What boots a launched guest: filled by a plug-in's boot callback. */
struct qmig_guest_boot {
	char kernel[4096];        /* passed to QEMU as -kernel */
	char initrd[4096];        /* -initrd; "" for none */
	char append[1024];        /* the kernel's command line (-append) */
};

#define QMIG_GUEST_OPS_VERSION 1

/* A guest plug-in. Every callback is optional (NULL: the engine does
 * without). The table and what user_data points to are borrowed: they
 * must outlive every launch and migration that uses them. Callbacks run
 * inside the library's calls (qmig_migration_process() for a migration):
 * they must not block; QMP calls they make on the connection given, and
 * qmig_guest_yield(), suspend the step instead. Errors are negative
 * errno values. */
struct qmig_guest_ops {
	unsigned int version;     /* QMIG_GUEST_OPS_VERSION */
	const char *name;         /* for log lines, e.g. "qmigrate test guests" */

	/* A probe reads the guest's serial socket (a unix stream socket
	 * QEMU serves) without blocking. open: 0 and *probe set, or a
	 * negative errno. fd: what to poll for POLLIN. process: read what is
	 * there; 0, or -ECONNRESET when QEMU went away. get: what was read
	 * so far. close: NULL is fine. */
	int (*probe_open)(void **probe, const char *serial_socket, void *user_data);
	int (*probe_fd)(void *probe);
	int (*probe_process)(void *probe);
	void (*probe_get)(void *probe, struct qmig_guest_stats *out);
	void (*probe_close)(void *probe);

	/* A guest that checks its own memory (stats.self_check): ask it,
	 * running on the destination, through its QMP connection (0 or a
	 * negative errno); then answer is called after each probe_process
	 * until it returns 1 (*report filled: pages_bad 0 is a clean check)
	 * or a negative errno (-EBADMSG: an unreadable answer, report->detail
	 * holds it); 0: no answer yet. */
	int (*check_ask)(void *probe, struct qmig_qmp_conn *conn);
	int (*check_answer)(void *probe, struct qmig_verify_report *report);

	/* The host's check of a stopped guest's memory (dumped into dir,
	 * NULL: the system's temporary directory): 0 verified, 1 bad pages
	 * (report says which), or a negative errno when it could not check
	 * (-ENOMSG: not a guest this plug-in knows). */
	int (*verify_memory)(struct qmig_qmp_conn *conn, const char *dir,
			     struct qmig_verify_report *report, void *user_data);

	/* What boots a guest of kind spec->guest (not QMIG_GUEST_NONE) that
	 * qmig_vm_launch() starts: 0 with *boot filled, or a negative errno
	 * with msg saying why (-ENOENT: not built). guest_dir and linux_dir
	 * are the process's qmig_launch_defaults, resolved. The launch also
	 * asks it for the tiny guest to smoke-test KVM (accel "auto"). */
	int (*boot)(const struct qmig_vm_spec *spec, const char *guest_dir, const char *linux_dir,
		    struct qmig_guest_boot *boot, char *msg, size_t msg_len, void *user_data);

	void *user_data;          /* passed to open, verify_memory and boot */
};

#define QMIG_GUEST_OPS_INIT {.version = QMIG_GUEST_OPS_VERSION}

/* For a plug-in's long callback (a memory check): let the caller's event
 * loop run. Inside qmig_migration_process() the callback continues in a
 * later call; elsewhere it returns 0 at once. -ECANCELED: the migration
 * was abandoned (qmig_migration_free()): return at once. */
int qmig_guest_yield(void);

#ifdef __cplusplus
}
#endif
#endif
