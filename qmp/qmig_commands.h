/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libqmigrate — the whole QMP vocabulary the engine uses, one small
 * function per command. Each returns 0 or a negative errno; on an error
 * reply -EREMOTEIO with the class and description on the connection.
 * timeout_ms < 0 means the connection's default.
 */
#ifndef QMIG_COMMANDS_H
#define QMIG_COMMANDS_H

#include <stdint.h>

#include "qmig_qmp.h"

#ifdef __cplusplus
extern "C" {
#endif

/* query-status */
struct qmig_vm_status {
	int running;
	char status[32]; /* "running", "paused", "inmigrate", "postmigrate", ... */
};
int qmig_cmd_query_status(struct qmig_qmp_conn *c, struct qmig_vm_status *out);
int qmig_cmd_stop(struct qmig_qmp_conn *c);
int qmig_cmd_cont(struct qmig_qmp_conn *c);
int qmig_cmd_quit(struct qmig_qmp_conn *c);

/* query-migrate, flattened. Fields QEMU did not send are 0; has_* say
 * which optional groups were present. */
struct qmig_migrate_info {
	char status[32]; /* "none", "setup", "active", "postcopy-active",
			    "postcopy-paused", "pre-switchover", "device",
			    "completed", "failed", "cancelling", "cancelled", ... */
	int has_ram;
	uint64_t total_time_ms, setup_time_ms, downtime_ms, expected_downtime_ms;
	uint64_t ram_transferred, ram_remaining, ram_total, ram_duplicate, ram_normal;
	uint64_t ram_normal_bytes, ram_dirty_pages_rate, ram_dirty_sync_count;
	uint64_t ram_postcopy_requests, ram_page_size, ram_multifd_bytes;
	uint64_t ram_pages_per_second, ram_precopy_bytes, ram_downtime_bytes;
	uint64_t ram_postcopy_bytes;
	double ram_mbps;
	int64_t cpu_throttle_percentage;
	char error_desc[256];
};
int qmig_cmd_query_migrate(struct qmig_qmp_conn *c, struct qmig_migrate_info *out);

/* migrate-set-capabilities: caps is a json object {"name": bool, ...}
 * (-EINVAL when a value is not a boolean). */
int qmig_cmd_migrate_set_capabilities(struct qmig_qmp_conn *c, struct json_object *caps);
/* query-migrate-capabilities as {"name": bool, ...}; *out is a new reference. */
int qmig_cmd_query_migrate_capabilities(struct qmig_qmp_conn *c, struct json_object **out);
/* migrate-set-parameters: params is the argument object itself. */
int qmig_cmd_migrate_set_parameters(struct qmig_qmp_conn *c, struct json_object *params);
/* query-migrate-parameters' return object; *out is a new reference. */
int qmig_cmd_query_migrate_parameters(struct qmig_qmp_conn *c, struct json_object **out);

int qmig_cmd_migrate(struct qmig_qmp_conn *c, const char *uri, int resume);
int qmig_cmd_migrate_incoming(struct qmig_qmp_conn *c, const char *uri);
int qmig_cmd_migrate_cancel(struct qmig_qmp_conn *c);
int qmig_cmd_migrate_recover(struct qmig_qmp_conn *c, const char *uri);
int qmig_cmd_migrate_pause(struct qmig_qmp_conn *c);
int qmig_cmd_migrate_start_postcopy(struct qmig_qmp_conn *c);
int qmig_cmd_migrate_continue(struct qmig_qmp_conn *c, const char *state);

/* pmemsave: size bytes of guest-physical memory from addr into path
 * (written by QEMU itself), waiting at most timeout_ms (<0: the
 * connection's default; a large dump needs more). */
int qmig_cmd_pmemsave(struct qmig_qmp_conn *c, uint64_t addr, uint64_t size, const char *path,
		      int timeout_ms);
/* inject-nmi: an NMI to the guest's vCPUs. */
int qmig_cmd_inject_nmi(struct qmig_qmp_conn *c);
/* query-memory-size-summary: base-memory in bytes. */
int qmig_cmd_query_memory_size(struct qmig_qmp_conn *c, uint64_t *base_memory);

/* getfd/closefd: the fd travels with SCM_RIGHTS. */
int qmig_cmd_getfd(struct qmig_qmp_conn *c, int fd, const char *fdname);
int qmig_cmd_closefd(struct qmig_qmp_conn *c, const char *fdname);
/* add-fd: returns the fdset id and the fd number inside QEMU. */
int qmig_cmd_add_fd(struct qmig_qmp_conn *c, int fd, int64_t fdset_id, int64_t *fdset_out,
		    int64_t *fd_out);
int qmig_cmd_remove_fd(struct qmig_qmp_conn *c, int64_t fdset_id);

/* object-add with a ready argument object; object-del by id. */
int qmig_cmd_object_add(struct qmig_qmp_conn *c, struct json_object *args);
int qmig_cmd_object_del(struct qmig_qmp_conn *c, const char *id);

/* calc-dirty-rate / query-dirty-rate (mode: "page-sampling", ...). */
int qmig_cmd_calc_dirty_rate(struct qmig_qmp_conn *c, int64_t calc_time_s, const char *mode);
/* The same with sample-pages (pages sampled per GiB; 0: QEMU's default, 512). */
int qmig_cmd_calc_dirty_rate_pages(struct qmig_qmp_conn *c, int64_t calc_time_s, const char *mode,
				   int64_t sample_pages);
/* set-vcpu-dirty-limit on every vCPU (MiB/s; needs the dirty ring). */
int qmig_cmd_set_vcpu_dirty_limit(struct qmig_qmp_conn *c, int64_t dirty_rate_mib);
struct qmig_dirty_rate {
	char status[24]; /* "unstarted", "measuring", "measured" */
	int64_t dirty_rate_mib; /* MiB/s, -1 if not measured */
	int64_t calc_time_s;
};
int qmig_cmd_query_dirty_rate(struct qmig_qmp_conn *c, struct qmig_dirty_rate *out);

/* query-name / query-uuid / query-kvm, for plans and the doctor. */
int qmig_cmd_query_kvm(struct qmig_qmp_conn *c, int *enabled, int *present);
/* *out is a new reference to the return array. */
int qmig_cmd_query_machines(struct qmig_qmp_conn *c, struct json_object **out);
int qmig_cmd_query_cpu_definitions(struct qmig_qmp_conn *c, struct json_object **out);
/* query-cpus-fast: *out the array as QEMU sent it. */
int qmig_cmd_query_cpus_fast(struct qmig_qmp_conn *c, struct json_object **out);
/* query-block as QEMU sent it (an array; qmig_cmd_query_block reads it). */
int qmig_cmd_query_block_raw(struct qmig_qmp_conn *c, struct json_object **out);

/* ---- block devices, jobs and NBD (storage migration) ---- */

/* query-block: one entry per block device. Empty drives (no medium) have
 * inserted 0 and nothing else filled. */
struct qmig_block_dev {
	char name[128];       /* the device, else the qdev id (or QOM path) */
	char node[128];       /* the root node's name ("" when QEMU gave none) */
	char file[1024];      /* the image's file name */
	char format[32];      /* "raw", "qcow2", ... */
	uint64_t virtual_size;
	int inserted, ro, removable;
	int backing_depth;    /* 0: no backing file */
};
/* *out is a new array of *n entries (free() it), at most 64 devices. */
int qmig_cmd_query_block(struct qmig_qmp_conn *c, struct qmig_block_dev **out, int *n);

/* query-block-jobs: at most 64 jobs. */
struct qmig_block_job {
	char id[128];         /* "device": the job id */
	char type[32];        /* "mirror", ... */
	char status[24];      /* "running", "ready", "concluded", ... */
	char error[256];      /* "" unless the job failed */
	uint64_t len, offset, speed;
	int ready;
};
int qmig_cmd_query_block_jobs(struct qmig_qmp_conn *c, struct qmig_block_job **out, int *n);

/* query-named-block-nodes (flat): the node names, as one string of
 * names each followed by '\n' (at most len-1 bytes; longer fails). */
int qmig_cmd_query_node_names(struct qmig_qmp_conn *c, char *names, size_t len);
/* query-block-exports: the export ids, the same way. */
int qmig_cmd_query_export_ids(struct qmig_qmp_conn *c, char *ids, size_t len);

/* blockdev-add with a ready argument object; blockdev-del by node name. */
int qmig_cmd_blockdev_add(struct qmig_qmp_conn *c, struct json_object *args);
int qmig_cmd_blockdev_del(struct qmig_qmp_conn *c, const char *node);
/* block-job-cancel: force 0 on a ready mirror completes it leaving the
 * target a consistent copy; force 1 abandons it. job-dismiss removes a
 * concluded job (started with auto-dismiss off). */
int qmig_cmd_block_job_cancel(struct qmig_qmp_conn *c, const char *job, int force);
int qmig_cmd_job_dismiss(struct qmig_qmp_conn *c, const char *job);
int qmig_cmd_block_job_set_speed(struct qmig_qmp_conn *c, const char *job, uint64_t speed);
/* nbd-server-stop, block-export-del (force: even with clients attached). */
int qmig_cmd_nbd_server_stop(struct qmig_qmp_conn *c);
int qmig_cmd_block_export_del(struct qmig_qmp_conn *c, const char *id, int force);
/* yank the connection of an NBD client node: its requests fail at once
 * (a client stuck on a cut link otherwise waits for TCP's timeout). */
int qmig_cmd_yank_block_node(struct qmig_qmp_conn *c, const char *node);

/* Storage verification across hosts: an NBD server on HOST:PORT (inet,
 * no TLS) and a read-only NBD export of a node. 0 or -errno. */
int qmig_cmd_nbd_server_start_inet(struct qmig_qmp_conn *c, const char *host, unsigned port);
int qmig_cmd_block_export_add_ro(struct qmig_qmp_conn *c, const char *id, const char *node,
				 const char *name);
/* ---- commands whose arguments the caller builds ----------------------- */

/* The engine's plan builds each step's arguments as data (journaled, shown
 * by --dry-run); these send such an object as it is (borrowed). */
int qmig_cmd_migrate_set_capabilities_args(struct qmig_qmp_conn *c, struct json_object *args);
int qmig_cmd_migrate_args(struct qmig_qmp_conn *c, struct json_object *args);
int qmig_cmd_migrate_incoming_args(struct qmig_qmp_conn *c, struct json_object *args);
int qmig_cmd_nbd_server_start(struct qmig_qmp_conn *c, struct json_object *args);
int qmig_cmd_block_export_add(struct qmig_qmp_conn *c, struct json_object *args);
int qmig_cmd_blockdev_mirror(struct qmig_qmp_conn *c, struct json_object *args);
int qmig_cmd_block_job_change(struct qmig_qmp_conn *c, struct json_object *args);

/* ---- QOM, the version ------------------------------------------------- */

/* qom-get: *out a new reference to the property's value (any type). */
int qmig_cmd_qom_get(struct qmig_qmp_conn *c, const char *path, const char *property,
		     struct json_object **out);
/* qom-list: *out a new reference to the array of {name, type}. */
int qmig_cmd_qom_list(struct qmig_qmp_conn *c, const char *path, struct json_object **out);

struct qmig_qemu_version {
	unsigned major, minor, micro;
};
/* query-version: QEMU's own version numbers. */
int qmig_cmd_query_version(struct qmig_qmp_conn *c, struct qmig_qemu_version *out);

/* query-migrate as QEMU sent it (new reference), for display. */
int qmig_cmd_query_migrate_raw(struct qmig_qmp_conn *c, struct json_object **out);

#ifdef __cplusplus
}
#endif
#endif
