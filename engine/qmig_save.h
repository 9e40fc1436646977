/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libqmigrate — saving a guest to a file, restoring it, and replacing a
 * running QEMU in place (cpr-transfer).
 *
 * Save (like virsh save): the guest is stopped, its state written to a
 * file, and the QEMU quit (or left paused). Where QEMU has the mapped-ram
 * capability (probed from the schema) RAM pages go to fixed offsets of the
 * file, written by several multifd channels in parallel, so the file is
 * never larger than RAM plus the device state; elsewhere (QEMU 7.2) the
 * ordinary migration stream is written to the file through a file
 * descriptor qmigrate opened itself (O_NOFOLLOW, passed with getfd).
 *
 * The file:
 *
 *   0        header block, QMIG_SAVE_HEADER_SIZE bytes: the line
 *            "QMIGRATE-SAVE 1\n" then one JSON object (what restoring
 *            needs: QEMU version, machine type, RAM size, method, stream
 *            length, SHA-256 of the stream, the guest's run state), NUL
 *            padded. Written last: a file whose save did not complete has
 *            no header and is refused.
 *   4096     zeros (sparse)
 *   65536    QEMU's stream (QMIG_SAVE_STREAM_OFFSET; mapped-ram's file:
 *            URI is given this offset), to the end of the file.
 *
 * Ownership: the source owns the guest until the save completed and the
 * header is on disk; a failure before that ends with the source running
 * as before (if it was) and no file. From then on the file owns it: the
 * source is never resumed by qmigrate.
 *
 * Restore refuses, before starting anything, a file that is not complete
 * or whose checksum does not match, a QEMU older than the one that saved
 * (a stream is readable only by the same or a newer QEMU), one without
 * mapped-ram for a mapped-ram file, one without the machine type, and (in
 * attach mode) one with another machine type or RAM size.
 *
 * These calls block until done (bounded by their timeouts); they start no
 * threads and print nothing.
 */
#ifndef QMIG_SAVE_H
#define QMIG_SAVE_H

#include <stddef.h>
#include <stdint.h>

#include "qmig_qmp.h"
#include "qmig_launch.h"

#ifdef __cplusplus
extern "C" {
#endif

#define QMIG_SAVE_HEADER_SIZE 4096u
#define QMIG_SAVE_STREAM_OFFSET 65536u

/* What the header says (qmig_save_read_header). */
struct qmig_save_header {
	int format;
	char method[16];          /* "mapped-ram" or "stream" */
	int multifd_channels;     /* 0: none */
	char qemu[32];            /* "10.0.2" */
	unsigned qemu_version;    /* major*10000+minor*100+micro */
	char machine[64];         /* "pc-i440fx-10.0" */
	uint64_t ram_bytes;
	uint64_t stream_offset, stream_bytes;
	char sha256[65];          /* hex */
	char guest[8];            /* "tiny", "linux" or "none": what --launch restores */
	int was_running;          /* the guest ran when it was saved */
	int64_t saved_at;         /* seconds since the epoch */
};

/* Read and check the header of path (not the checksum). 0, or a negative
 * errno with msg saying what is wrong with the file. */
int qmig_save_read_header(const char *path, struct qmig_save_header *out, char *msg,
			  size_t msg_len);

#define QMIG_SAVE_OPTS_VERSION 1

struct qmig_save_opts {
	unsigned int version;
	const char *path;          /* the file to create; must not exist */
	const char *src_qmp;       /* attach mode: the running QEMU */
	struct qmig_vm_spec guest; /* launch mode (src_qmp NULL): start this first */
	int multifd_channels;      /* mapped-ram: 0 the default (4), -1 none */
	int plain;                 /* the plain stream even where mapped-ram exists */
	uint64_t max_bandwidth;    /* bytes/s the save may write, 0: unlimited (so it
				      does not starve other users of the disk) */
	int keep_source;           /* leave the source paused instead of quitting it */
	int timeout_ms;            /* the save itself; 0: 10 minutes */
	int qmp_timeout_ms;        /* per QMP command; 0: 10 s */
	int warmup_beats;          /* launch mode: heartbeats to wait for first (0: 200) */
	struct qmig_log_cb log;
	/* The job journal (see qmig_journal.h): JOURNAL_DIR/JOB.journal while
	 * the save runs; qmig_recover_job() resumes the source of a save whose
	 * process died before the file was complete. NULL: none. */
	const char *journal_dir;
	const char *job_id;        /* NULL: the process id */
	/* Set *cancel nonzero (from a signal handler, say) to stop: the
	 * engine rolls back as for a failure (status "cancelled"). */
	const volatile int *cancel;
};

#define QMIG_SAVE_OPTS_INIT {.version = QMIG_SAVE_OPTS_VERSION, .guest = QMIG_VM_SPEC_INIT}

struct qmig_save_result {
	char status[24];           /* "saved" or "failed" */
	int error;
	char message[512];
	char owner[8];             /* "source" (not saved) or "file" */
	char method[16];
	int multifd_channels;
	char qemu[32];
	char machine[64];
	uint64_t ram_bytes;
	uint64_t stream_bytes;     /* from the stream offset to the end */
	uint64_t disk_bytes;       /* blocks the file really holds */
	uint64_t save_ms;          /* migrate command to completed */
	uint64_t checksum_ms;
	uint64_t total_ms;
	int source_quit;           /* the source QEMU was quit */
	char sha256[65];
	int changed;               /* the source was changed (on failure: put back) */
};

int qmig_save(const struct qmig_save_opts *opts, struct qmig_save_result *out);

#define QMIG_RESTORE_OPTS_VERSION 1

struct qmig_restore_opts {
	unsigned int version;
	const char *path;
	/* Attach mode: a QEMU started with -incoming defer. */
	const char *dst_qmp;
	const char *dst_serial;    /* a test guest's serial socket, for heartbeats */
	/* Launch mode (dst_qmp NULL): the guest, RAM size and machine type come
	 * from the header; qemu_binary and accel from here. */
	struct qmig_vm_spec guest;
	int keep_running;          /* launch mode: leave the restored QEMU running */
	int paused;                /* 1 leave paused, 2 run even if it was paused */
	int no_verify;
	int timeout_ms, qmp_timeout_ms;
	struct qmig_log_cb log;
	/* Set *cancel nonzero (from a signal handler, say) to stop: the
	 * engine rolls back as for a failure (status "cancelled"). */
	const volatile int *cancel;
};

#define QMIG_RESTORE_OPTS_INIT {.version = QMIG_RESTORE_OPTS_VERSION, .guest = QMIG_VM_SPEC_INIT}

struct qmig_restore_result {
	char status[24];           /* "restored", "refused", "failed" */
	int error;
	char message[512];
	char owner[16];            /* "file" or "destination" */
	char method[16];
	uint64_t load_ms;          /* migrate-incoming to completed */
	uint64_t checksum_ms;
	uint64_t total_ms;
	int verified;              /* 1 yes, 0 failed, -1 not checked */
	char verify_method[16];    /* "stamps", "heartbeats", "running", "none" */
	uint64_t pages_checked;
	int running;               /* the guest runs at the end */
	char qmp[256];             /* launch mode with keep_running: its QMP socket */
	int pid;
};

int qmig_restore(const struct qmig_restore_opts *opts, struct qmig_restore_result *out);

/* ---- live update: a new QEMU takes over, RAM stays in place ---------- */

#define QMIG_UPDATE_OPTS_VERSION 1

struct qmig_update_opts {
	unsigned int version;
	/* Attach mode: the running QEMU; the new one is started from its own
	 * command line (/proc/PID/cmdline) with new_qemu as the binary. */
	const char *src_qmp;
	const char *src_serial;    /* a test guest's serial socket, for heartbeats */
	/* Launch mode (src_qmp NULL): the source from this spec (RAM in a
	 * shared memfd: shared_mem is set by the engine). */
	struct qmig_vm_spec guest;
	const char *new_qemu;      /* NULL: the source's own binary */
	int keep_running;          /* launch mode: leave the new QEMU running */
	int no_verify;
	int timeout_ms, qmp_timeout_ms;
	int warmup_beats;          /* launch mode: heartbeats before the update (0: 200) */
	struct qmig_log_cb log;
	/* The job journal, as for a migration: the old QEMU is the source,
	 * the new one the destination; qmig_recover_job() repairs an update
	 * whose process died. NULL: none. */
	const char *journal_dir;
	const char *job_id;
	/* Set *cancel nonzero (from a signal handler, say) to stop: the
	 * engine rolls back as for a failure (status "cancelled"). */
	const volatile int *cancel;
};

#define QMIG_UPDATE_OPTS_INIT {.version = QMIG_UPDATE_OPTS_VERSION, .guest = QMIG_VM_SPEC_INIT}

struct qmig_update_result {
	char status[24];           /* "completed", "refused", "failed", "completed-with-errors" */
	int error;
	char message[512];
	char owner[16];            /* "old" or "new" */
	uint64_t ram_bytes;
	uint64_t transferred_bytes; /* the whole stream (QEMU's count) */
	uint64_t total_ms;         /* migrate command to the new QEMU running */
	uint64_t qemu_downtime_ms;
	int64_t guest_downtime_ms; /* largest heartbeat gap, -1 unknown */
	int verified;
	char verify_method[16];
	uint64_t pages_checked;
	char old_qemu[32], new_qemu[32];
	int new_pid;
	char new_qmp[256];         /* the new QEMU's QMP socket */
	int changed;               /* something was started or changed (then undone) */
};

int qmig_update(const struct qmig_update_opts *opts, struct qmig_update_result *out);

#ifdef __cplusplus
}
#endif
#endif
