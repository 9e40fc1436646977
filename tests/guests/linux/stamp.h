/*
 * Memory layout the Linux test guest's /init writes, shared with anything
 * on the host that checks a dump of guest RAM (pmemsave).
 *
 * Working set: npages pages of 4096 bytes, swept in index order, over and
 * over. Sweep number g (g = 1, 2, ...) writes generation g into every page;
 * before rewriting a page the writer checks it still holds generation g-1
 * (generation 0 = a zero page, as the kernel hands it out).
 *
 * A page of generation g >= 1, as 64-bit little-endian words:
 *   w[0] = QMIG_LG_PAGE_MAGIC, w[1] = page index, w[2] = g,
 *   w[k] = qmig_lg_word(index, g, k) for k = 3..511.
 *
 * Control page (its own page, found by its two magic words): how far the
 * writer got. `written` is the one counter that moves, so a stopped guest
 * is always consistent: with c = written % npages and g = written / npages
 * + 1, pages [0, c) hold g, pages (c, npages) hold g-1 and page c, which may
 * be half written, holds g-1 or g or a mix of the two.
 */
#ifndef QMIG_LG_STAMP_H
#define QMIG_LG_STAMP_H

#include <stdint.h>

#define QMIG_LG_PAGE 4096u
#define QMIG_LG_WORDS (QMIG_LG_PAGE / 8)
#define QMIG_LG_PAGE_MAGIC 0x31584e4c47494d51ull /* "QMIGLNX1" */
#define QMIG_LG_CTL_MAGIC 0x4c54434c47494d51ull  /* "QMIGLCTL" */

struct qmig_lg_ctl {
	uint64_t magic;      /* QMIG_LG_CTL_MAGIC */
	uint64_t magic_inv;  /* ~QMIG_LG_CTL_MAGIC */
	uint64_t npages;     /* pages in the working set */
	uint64_t rate;       /* bytes/s the writer aims at */
	uint64_t written;    /* pages written since boot (stored after the page) */
	uint64_t corrupt;    /* pages the guest found wrong */
};

/* Word k (3..511) of page `index` at generation `gen`: generation and index
 * are recoverable from any word, so a report can say what a page held. */
static inline uint64_t qmig_lg_word(uint64_t index, uint64_t gen, unsigned int k)
{
	return ((gen << 32) | (index & 0xffffffffu)) ^ (k * 0x9e3779b97f4a7c15ull);
}

static inline uint64_t qmig_lg_word_gen(uint64_t w, unsigned int k)
{
	return (w ^ (k * 0x9e3779b97f4a7c15ull)) >> 32;
}

/* The disk (qmig.drate): blocks of 4096 bytes on /dev/vda, swept like the
 * working set (block i of generation g: w[0] = QMIG_LG_DISK_MAGIC, w[1] =
 * i, w[2] = g, w[k] = qmig_lg_word(i, g, k) ^ QMIG_LG_DISK_SALT); a block
 * never written reads as zeros (generation 0). */
#define QMIG_LG_DISK_MAGIC 0x4b53444c47494d51ull /* "QMIGLDSK" */
#define QMIG_LG_DISK_SALT 0x5a5a5a5a00000000ull

#endif
