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

/* An output struct (its first member `size_t size`, set by the caller):
 * copy no more than the caller's size of the library's full struct (0:
 * the caller did not set it, and gets the whole struct), and set size to
 * what was written. */
static inline void qm_out_copy(void *dst, const void *full, size_t full_size)
{
	size_t want = *(const size_t *)dst;
	size_t n = !want || want > full_size ? full_size : want;

	if (n < sizeof(size_t))
		return;
	memcpy((char *)dst + sizeof(size_t), (const char *)full + sizeof(size_t),
	       n - sizeof(size_t));
	*(size_t *)dst = n;
}

/* The other way: a caller's output struct read back by the library (e.g.
 * a result turned into JSON): what its size has, zeros after it. */
static inline void qm_out_read(void *full, size_t full_size, const void *src)
{
	size_t have = *(const size_t *)src;
	size_t n = !have || have > full_size ? full_size : have;

	memset(full, 0, full_size);
	if (n >= sizeof(size_t))
		memcpy(full, src, n);
	*(size_t *)full = full_size;
}

#endif
