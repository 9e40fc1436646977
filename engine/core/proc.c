/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* What /proc says about a process (the one reader of /proc/PID/stat), and
 * the one reader of a comma-separated list of names. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core.h"

int64_t qm_proc_start_time(int pid)
{
	char path[64], buf[1024], *p, *end;
	long long v;
	ssize_t n;
	int fd;

	if (pid <= 0)
		return -1;
	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = 0;
	/* The command name may hold spaces and parentheses: the last ')' ends
	 * it. Then " S " with the state, then fields 4 on. */
	p = strrchr(buf, ')');
	if (!p || p[1] != ' ' || !p[2] || p[2] == 'Z' || p[2] == 'X')
		return -1;
	p += 2;
	for (int field = 3; field < 22; field++) {
		p = strchr(p, ' ');
		if (!p)
			return -1;
		p++;
	}
	v = strtoll(p, &end, 10);
	if (end == p || v < 0)
		return -1;
	return v;
}

/* Is name one of the comma-separated list "a,b,c"? */
int qm_listed(const char *list, const char *name)
{
	size_t l = strlen(name);

	for (const char *p = list; p && *p;) {
		const char *e = strchr(p, ',');
		size_t n = e ? (size_t)(e - p) : strlen(p);

		if (n == l && !strncmp(p, name, n))
			return 1;
		p = e ? e + 1 : NULL;
	}
	return 0;
}
