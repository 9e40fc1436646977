/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * What boots the test guests (the plug-in's boot callback): their kernel,
 * initrd and command line, from the directories the process set in
 * qmig_launch_defaults. Both guests read the same words (the Linux one with
 * a "qmig." prefix, after the kernel's own): rate, hb, wss, and net and
 * drate for Linux.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "qmig_launch.h"
#include "qmig_guests.h"

static int file_ok(const char *path)
{
	return access(path, R_OK) == 0;
}

static void cmdline(char *app, size_t len, const char *head, const char *pfx,
		    const struct qmig_vm_spec *spec)
{
	size_t n = (size_t)snprintf(app, len, "%s%srate=%llu %shb=%u", head, pfx,
				    (unsigned long long)spec->dirty_rate, pfx,
				    spec->hb_ms ? spec->hb_ms : 1);

	if (spec->wss_bytes && n < len)
		n += (size_t)snprintf(app + n, len - n, " %swss=%llu", pfx,
				      (unsigned long long)spec->wss_bytes);
	if (spec->net && *pfx && n < len)
		n += (size_t)snprintf(app + n, len - n, " %snet=1", pfx);
	if (spec->disk_bytes && spec->disk_write_rate && *pfx && n < len)
		n += (size_t)snprintf(app + n, len - n, " %sdrate=%llu", pfx,
				      (unsigned long long)spec->disk_write_rate);
	if (spec->guest_append && n < len)
		snprintf(app + n, len - n, " %s", spec->guest_append);
}

static int tiny(const struct qmig_vm_spec *spec, const char *dir, struct qmig_guest_boot *b,
		char *msg, size_t msg_len)
{
	snprintf(b->kernel, sizeof(b->kernel), "%s/tiny/tiny.elf", dir);
	if (!file_ok(b->kernel))
		snprintf(b->kernel, sizeof(b->kernel), "%s/tiny.elf", dir); /* installed flat */
	if (!file_ok(b->kernel)) {
		snprintf(msg, msg_len,
			 "the tiny guest (tiny/tiny.elf) is not in %s: run 'make guests' "
			 "(or set the guest directory: QMIGRATE_GUEST_DIR for qmigrate, "
			 "qmig_launch_defaults_set for the library)", dir);
		return -ENOENT;
	}
	cmdline(b->append, sizeof(b->append), "", "", spec);
	return 0;
}

static int linux_guest(const struct qmig_vm_spec *spec, const char *dir,
		       struct qmig_guest_boot *b, char *msg, size_t msg_len)
{
	snprintf(b->kernel, sizeof(b->kernel), "%s/vmlinux", dir);
	snprintf(b->initrd, sizeof(b->initrd), "%s/initramfs.cpio.gz", dir);
	if (!file_ok(b->kernel) || !file_ok(b->initrd)) {
		snprintf(msg, msg_len,
			 "the Linux guest is not built (%s missing): run 'make linux-guest' "
			 "(or set QMIGRATE_LINUX_DIR for qmigrate)",
			 file_ok(b->kernel) ? b->initrd : b->kernel);
		return -ENOENT;
	}
	cmdline(b->append, sizeof(b->append), "console=ttyS0 quiet ", "qmig.", spec);
	return 0;
}

int qmig_test_guest_boot(const struct qmig_vm_spec *spec, const char *guest_dir,
			 const char *linux_dir, struct qmig_guest_boot *b, char *msg,
			 size_t msg_len, void *user_data)
{
	(void)user_data;
	if (spec->guest == QMIG_GUEST_TINY)
		return tiny(spec, guest_dir, b, msg, msg_len);
	if (spec->guest == QMIG_GUEST_LINUX)
		return linux_guest(spec, linux_dir, b, msg, msg_len);
	snprintf(msg, msg_len, "not a test guest (kind %d)", (int)spec->guest);
	return -EINVAL;
}
