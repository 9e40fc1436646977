/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libqmigrate — starting QEMU, and the built-in test guests.
 *
 * A launched VM lives in a private runtime directory (mode 0700) holding
 * its QMP socket, its serial socket and serial log, and QEMU's stderr.
 * QEMU is started from an argv array (never a shell), as an unprivileged
 * user (runas below) under its own seccomp sandbox, with capabilities
 * reduced by libcap-ng, tracked by a pidfd, and killed when its owner dies.
 */
#ifndef QMIG_LAUNCH_H
#define QMIG_LAUNCH_H

#include <stdint.h>

#include "qmig_qmp.h"
#include "qmig_guest.h"

#ifdef __cplusplus
extern "C" {
#endif

enum qmig_guest_kind {
	QMIG_GUEST_NONE,  /* no built-in guest: the caller's extra_args say it all */
	QMIG_GUEST_TINY,  /* the freestanding multiboot guest */
	QMIG_GUEST_LINUX  /* the small Linux guest (kernel + our initramfs) */
};

#define QMIG_VM_SPEC_VERSION 1

struct qmig_vm_spec {
	unsigned int version;
	const char *qemu_binary;     /* NULL: qemu-system-x86_64 from PATH */
	const char *accel;           /* "auto" (NULL), "tcg" or "kvm" */
	enum qmig_guest_kind guest;
	uint64_t mem_bytes;          /* as asked; see mem_workaround */
	uint64_t wss_bytes;          /* guest working set, 0: the guest's default */
	uint64_t dirty_rate;         /* bytes/s the guest writes, 0: idle */
	int incoming;                /* destination: -incoming defer */
	int paused;                  /* start with -S */
	int net;                     /* linux guest: virtio-net with user networking */
	int host_port;               /* with net: host port forwarded to the guest's http */
	const char *netns;           /* run QEMU inside this network namespace */
	const char *runtime_dir;     /* NULL: a new private directory under $XDG_RUNTIME_DIR or /tmp */
	const char *const *extra_args; /* NULL-terminated, appended to QEMU's argv */
	int detach;                  /* outlive the caller (qmigrate launch) */
	int no_mem_workaround;       /* keep a 256 KiB-aligned RAM size even where QEMU corrupts it */
	struct qmig_log_cb log;
	/* appended fields (all optional, zero means the default) */
	unsigned int hb_ms;          /* guest heartbeat period, 0: 1 ms */
	const char *guest_append;    /* more words for the guest's command line, e.g.
					"mode=hot hot=32" for the tiny guest */
	int change_id;               /* run QEMU as uid/gid below (the runtime dir is
					handed to that user) */
	unsigned int uid, gid;
	int userfaultfd;             /* keep CAP_SYS_PTRACE: a postcopy destination needs
					userfaultfd, which vm.unprivileged_userfaultfd=0
					reserves to it */
	/* Who QEMU runs as when the caller is root (and change_id is 0):
	 * a user name or "UID[:GID]"; NULL: QMIG_RUNAS_DEFAULT when that
	 * user exists, else root without capabilities (logged as a warning);
	 * "root": no change. The runtime directory is handed to that user;
	 * the guest's kernel and initrd are passed as open files. Ignored
	 * when the caller is not root (QEMU runs as the caller). */
	const char *runas;
	int no_sandbox;              /* leave out "-sandbox on,...": QEMU's seccomp filter */
	int shared_mem;              /* guest RAM in a shared memfd backend, with
					aux-ram-share=on (cpr-transfer: qmigrate update) */
	uint64_t disk_bytes;         /* a virtio-blk disk (id vdisk0) of this size: a raw
					image made with qemu-img in the runtime dir; 0 none */
	const char *disk_backing;    /* with disk_bytes: a qcow2 overlay on this image
					(raw, or qcow2 by its .qcow2 name) instead */
	uint64_t disk_write_rate;    /* linux guest: bytes/s of stamped blocks it writes
					to the disk (and checks); 0: none */
};

/* The system user launched QEMUs run as (tools/deps.sh, make install). */
#define QMIG_RUNAS_DEFAULT "qmigrate-qemu"

#define QMIG_VM_SPEC_INIT {.version = QMIG_VM_SPEC_VERSION}

struct qmig_vm;

/* Start QEMU and wait until its QMP socket accepts (bounded). On failure
 * nothing is left running and *out is untouched; msg (if non-NULL, size
 * msg_len) receives QEMU's own error text. */
int qmig_vm_launch(struct qmig_vm **out, const struct qmig_vm_spec *spec, char *msg,
		   size_t msg_len);
/* Kill (unless detached), reap, remove the runtime directory. NULL is fine. */
void qmig_vm_free(struct qmig_vm *vm);
/* Kill now (SIGKILL) and reap. */
int qmig_vm_kill(struct qmig_vm *vm);
/* Has QEMU exited? 1 yes (status in *wstatus), 0 no. */
int qmig_vm_exited(struct qmig_vm *vm, int *wstatus);

int qmig_vm_pid(const struct qmig_vm *vm);
int qmig_vm_pidfd(const struct qmig_vm *vm);
const char *qmig_vm_qmp_path(const struct qmig_vm *vm);
const char *qmig_vm_serial_path(const struct qmig_vm *vm);     /* socket, for live readers */
const char *qmig_vm_serial_log(const struct qmig_vm *vm);      /* file with all output */
const char *qmig_vm_runtime_dir(const struct qmig_vm *vm);
/* The uid and gid QEMU runs as. */
void qmig_vm_ids(const struct qmig_vm *vm, unsigned int *uid, unsigned int *gid);
const char *qmig_vm_accel(const struct qmig_vm *vm);           /* "tcg" or "kvm", as chosen */
uint64_t qmig_vm_mem_bytes(const struct qmig_vm *vm);          /* as launched, after workaround */
/* QEMU's stderr so far (for error messages). */
const char *qmig_vm_stderr(struct qmig_vm *vm);

/* The RAM size to launch with: size itself, or size plus a few KiB when
 * this QEMU under TCG loses dirty pages on 256 KiB-multiple RAM blocks
 * (QEMU < 9.0). Returns 1 when it changed the size. */
int qmig_vm_mem_workaround(uint64_t size, const char *accel, unsigned qemu_version,
			   uint64_t *out);

/* Process-wide defaults for every launch of this process. The library
 * reads no environment variable for these and has no path of its source
 * tree built in: the qmigrate CLI fills them from QMIGRATE_GUEST_DIR,
 * QMIGRATE_LINUX_DIR and QMIGRATE_ACCEL (see qmigrate(1)). Strings are
 * copied. Set them before launching (a launch running meanwhile sees the
 * old or the new values, never a mix of one value). */
#define QMIG_LAUNCH_DEFAULTS_VERSION 2

struct qmig_launch_defaults {
	unsigned int version;
	const char *guest_dir;   /* where the built-in test guests are (handed to the
				    guest plug-in's boot, which finds tiny/tiny.elf or
				    tiny.elf there); NULL: the installed
				    QMIG_INSTALL_GUESTDIR */
	const char *linux_dir;   /* the Linux guest's vmlinux and initramfs.cpio.gz
				    (handed to boot too); NULL: linux/ under guest_dir */
	const char *accel;       /* what a spec's "auto" (or NULL) accel means:
				    NULL or "auto": probe (KVM only if the tiny guest
				    passes a smoke test), "tcg" or "kvm" */
	/* version 2 */
	const struct qmig_guest_ops *guest_ops; /* the guest plug-in of every launch,
				    migration, save, restore and update of the process
				    (qmig_guest.h); borrowed, not copied; NULL: none, and
				    launching QMIG_GUEST_TINY or _LINUX fails (-ENOTSUP) */
};

#define QMIG_LAUNCH_DEFAULTS_INIT {.version = QMIG_LAUNCH_DEFAULTS_VERSION}

/* 0; -EINVAL for an unknown version, accelerator or plug-in version; -ENOMEM. */
int qmig_launch_defaults_set(const struct qmig_launch_defaults *d);

#ifdef __cplusplus
}
#endif
#endif
