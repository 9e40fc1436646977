/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Runtime directories whose owner died. A QEMU launched without detach dies
 * with its owner (death signal), but a SIGKILLed owner cannot remove the
 * runtime directory. So each such directory names its owner and its QEMU
 * (pid and start time, immune to pid reuse) in a file "owner", and every
 * launch removes the directories of ours whose owner and QEMU are both
 * gone. Detached launches write no such file: their directory belongs to
 * the user, who may still want the serial log after QEMU quit.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/core.h"
#include "launch.h"

#define OWNER_FILE "owner"

/* Remove what dfd holds, by fd all the way down: QEMU's user owns the
 * directory and may swap a subdirectory for a link while we work. */
static void rm_at(int dfd, int depth)
{
	struct dirent *e;
	DIR *d = fdopendir(dfd);

	if (!d) {
		close(dfd);
		return;
	}
	while ((e = readdir(d))) {
		int sub;

		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		if (unlinkat(dirfd(d), e->d_name, 0) == 0 || (errno != EISDIR && errno != EPERM))
			continue;
		if (depth >= 16)
			continue;
		sub = openat(dirfd(d), e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (sub >= 0) {
			rm_at(sub, depth + 1);
			unlinkat(dirfd(d), e->d_name, AT_REMOVEDIR);
		}
	}
	closedir(d);
}

void qm_launch_rm_tree(const char *dir)
{
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

	if (dfd < 0)
		return;
	rm_at(dfd, 0);
	rmdir(dir);
}

void qm_launch_mark_owner(const char *dir, pid_t qemu)
{
	char path[4096];
	FILE *f;
	int fd;

	snprintf(path, sizeof(path), "%.4000s/" OWNER_FILE, dir);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
	f = fd >= 0 ? fdopen(fd, "w") : NULL;
	if (!f) {
		if (fd >= 0)
			close(fd);
		return;
	}
	fprintf(f, "%d %lld %d %lld\n", (int)getpid(), (long long)qm_proc_start_time(getpid()),
		(int)qemu, (long long)qm_proc_start_time(qemu));
	fclose(f);
}

/* The owner file is ours (we wrote it) even in a directory handed to
 * QEMU's user, who could not have made a file of our uid there. */
static int orphaned(const char *dir)
{
	char path[4096];
	long long ot, qt;
	int opid, qpid, n, fd;
	struct stat st;
	FILE *f;

	snprintf(path, sizeof(path), "%.4000s/" OWNER_FILE, dir);
	fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return 0;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_uid != geteuid() ||
	    st.st_nlink != 1 || !(f = fdopen(fd, "r"))) {
		close(fd);
		return 0;
	}
	n = fscanf(f, "%d %lld %d %lld", &opid, &ot, &qpid, &qt);
	fclose(f);
	if (n != 4 || opid <= 0 || qpid <= 0)
		return 0;
	return qm_proc_start_time(opid) != ot && qm_proc_start_time(qpid) != qt;
}

void qm_launch_gc(const char *base)
{
	DIR *d = opendir(base);
	struct dirent *e;

	if (!d)
		return;
	while ((e = readdir(d))) {
		char dir[4096];
		struct stat st;

		if (strncmp(e->d_name, "qmig-vm-", 8))
			continue;
		snprintf(dir, sizeof(dir), "%.3000s/%.255s", base, e->d_name);
		/* Ours, or handed to QEMU's user by us (the owner file says). */
		if (lstat(dir, &st) < 0 || !S_ISDIR(st.st_mode))
			continue;
		if (orphaned(dir))
			qm_launch_rm_tree(dir);
	}
	closedir(d);
}
