/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* How the library reads a versioned options struct from a caller (the rule
 * is in docs/API.md): the struct starts with `unsigned int version`; a
 * caller built against an older header passes an older version, whose
 * struct ends earlier. We copy what the caller's version has over our
 * defaults and never read past it. Not installed. */
#ifndef QM_ABI_H
#define QM_ABI_H

#include <errno.h>
#include <stddef.h>
#include <string.h>

/* ends[v - 1] is the size of version v of the struct: offsetof() of the
 * first field version v + 1 added, and sizeof() for the current one.
 * An end of 0 marks a version this library no longer reads (its layout
 * changed in the middle, with a SOVERSION bump). dst holds the defaults
 * (the INIT macro). 0, or -EINVAL for a version this library does not
 * know (0, retired, or newer than it). */
static inline int qm_opts_import(void *dst, const void *src, const size_t *ends,
				 unsigned current)
{
	unsigned version = *(const unsigned int *)src;

	if (version < 1 || version > current || !ends[version - 1])
		return -EINVAL;
	memcpy(dst, src, ends[version - 1]);
	return 0;
}

#define QM_OPTS_IMPORT(dst, src, ends)                                          \
	qm_opts_import((dst), (src), (ends), (unsigned)(sizeof(ends) / sizeof((ends)[0])))

#endif
