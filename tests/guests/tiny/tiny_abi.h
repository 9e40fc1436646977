/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The tiny guest's memory contract, shared by the guest (freestanding,
 * 32-bit) and the host-side verifier (engine/verify_tiny.c). Plain C99 with
 * <stdint.h> only, so both compilers take it.
 *
 * Layout (guest-physical):
 *   TINY_HDR_GPA   one header page: parameters and the writer's position
 *   TINY_WS_GPA    the working set: n_pages pages of TINY_PAGE bytes
 *
 * Each working-set page is either all zero (generation 0, never written)
 * or a stamped page of generation g >= 1:
 *   word 0  TINY_PAGE_MAGIC
 *   word 1  the page index
 *   word 2  g
 *   word 3  tiny_check(index, g)
 *   word j  tiny_seed(index, g) + j * TINY_GOLDEN, for j = 4..1023
 *
 * mode=stamp: the writer sweeps pages 0..n_pages-1, then the generation
 * goes up by one. For page i, with the header read while the vCPU is
 * stopped: i < cursor -> gen, else gen - 1.
 *
 * mode=hot (the canary for QEMU < 9.0 under TCG, which stops tracking
 * writes made through TLB entries that outlive a dirty-bitmap sync): in
 * generation 1 the writer sweeps all pages as above ("grow"). From then on
 * it alternates between two streams:
 *  - hot pages: hot_pages pages at index hot_base.., rewritten over and
 *    over, (hot_gen, hot_cursor) as (gen, cursor) above;
 *  - cold pages: every page whose TLB lane (index mod 256) is 128 or more,
 *    in index order, under (gen, cursor).
 * (TINY_WS_GPA is a multiple of 256 pages, so a page's lane in the working
 * set is its lane in guest-physical memory; the header page, the kernel
 * and its stack sit in lanes below 16.)
 * The two sets never share a TLB lane for any TLB of 256 or more entries,
 * so the cold sweep keeps the migration busy without evicting the hot
 * pages' entries. All other pages stay at generation 1.
 *
 * The page named by `inflight` (when not TINY_NONE) may be half rewritten:
 * each of its words holds its expected generation or the next one.
 * Each (gen, cursor) pair changes with one 8-byte store (cmpxchg8b), so a
 * stopped guest is always consistent.
 */
#ifndef QMIG_TINY_ABI_H
#define QMIG_TINY_ABI_H

#include <stdint.h>

#define TINY_PAGE 4096u
#define TINY_WORDS (TINY_PAGE / 4u)
#define TINY_HDR_GPA 0x400000u /* 4 MiB */
#define TINY_WS_GPA 0x800000u  /* 8 MiB */

#define TINY_HDR_MAGIC0 0x474d5132u /* "2QMG" */
#define TINY_HDR_MAGIC1 0x594e4954u /* "TINY" */
#define TINY_ABI_VERSION 1u
#define TINY_PAGE_MAGIC 0x31475051u /* "QPG1" */
#define TINY_GOLDEN 0x9e3779b9u
#define TINY_NONE 0xffffffffu

#define TINY_MODE_STAMP 0u
#define TINY_MODE_HOT 1u

#define TINY_LANES 256u     /* smallest TCG TLB: lanes are index mod 256 */
#define TINY_HOT_BASE 64u   /* hot pages' first index (clear of header, stack) */
#define TINY_HOT_MAX 64u
#define TINY_COLD_LANE 128u /* cold pages: lanes 128..255 */

struct tiny_hdr {
	uint32_t magic0, magic1;
	uint32_t abi_version;
	uint32_t mode;          /* TINY_MODE_* */
	uint32_t ws_gpa;        /* TINY_WS_GPA */
	uint32_t n_pages;       /* working set size in pages */
	uint32_t hot_pages;     /* mode=hot: pages rewritten over and over */
	uint32_t hb_ms;
	uint32_t rate;          /* bytes/s asked, 0 idle */
	uint32_t mem_kib;       /* RAM the guest found (multiboot), KiB */
	uint32_t tsc_per_ms;    /* TSC calibration against the PIT */
	uint32_t hot_base;      /* TINY_HOT_BASE */
	/* 8-byte aligned pairs, each stored at once with cmpxchg8b */
	uint32_t cursor, gen;         /* gen >= 1 */
	uint32_t hot_cursor, hot_gen; /* mode=hot, from generation 2 on */
	uint32_t inflight;      /* page being rewritten now, or TINY_NONE */
	uint32_t corrupt_seen;  /* self-check failures so far */
	uint64_t pages_written; /* since boot */
	uint64_t hb_seq;
	uint32_t injected;      /* pages corrupted on purpose (serial command) */
	uint32_t cold_pages;    /* mode=hot: how many pages the cold stream has */
};

static inline uint32_t tiny_mix(uint32_t x)
{
	x ^= x >> 16;
	x *= 0x7feb352du;
	x ^= x >> 15;
	x *= 0x846ca68bu;
	x ^= x >> 16;
	return x;
}

static inline uint32_t tiny_seed(uint32_t index, uint32_t gen)
{
	return tiny_mix(index * 0x85ebca6bu ^ gen * 0xc2b2ae35u ^ 0x27d4eb2fu);
}

static inline uint32_t tiny_check(uint32_t index, uint32_t gen)
{
	return tiny_mix(TINY_PAGE_MAGIC ^ tiny_mix(index) ^ (gen * 0x165667b1u));
}

/* The value of word j of page index in generation gen (gen 0: zero page). */
static inline uint32_t tiny_word(uint32_t index, uint32_t gen, uint32_t j)
{
	if (gen == 0)
		return 0;
	switch (j) {
	case 0:
		return TINY_PAGE_MAGIC;
	case 1:
		return index;
	case 2:
		return gen;
	case 3:
		return tiny_check(index, gen);
	default:
		return tiny_seed(index, gen) + j * TINY_GOLDEN;
	}
}

/* mode=hot: the cold stream's k-th page, and how many there are. */
static inline uint32_t tiny_cold_page(uint32_t k)
{
	return (k / (TINY_LANES - TINY_COLD_LANE)) * TINY_LANES + TINY_COLD_LANE +
	       k % (TINY_LANES - TINY_COLD_LANE);
}

static inline uint32_t tiny_cold_count(uint32_t n_pages)
{
	uint32_t per = TINY_LANES - TINY_COLD_LANE, rest = n_pages % TINY_LANES;

	return n_pages / TINY_LANES * per + (rest > TINY_COLD_LANE ? rest - TINY_COLD_LANE : 0);
}

/* The generation page i must carry, by the rule above. */
static inline uint32_t tiny_expected_gen(const struct tiny_hdr *h, uint32_t i)
{
	uint32_t lane = i % TINY_LANES;

	if (h->mode != TINY_MODE_HOT || h->gen == 1)
		return i < h->cursor ? h->gen : h->gen - 1;
	if (i >= h->hot_base && i < h->hot_base + h->hot_pages)
		return i - h->hot_base < h->hot_cursor ? h->hot_gen : h->hot_gen - 1;
	if (lane >= TINY_COLD_LANE) {
		uint32_t k = i / TINY_LANES * (TINY_LANES - TINY_COLD_LANE) + lane - TINY_COLD_LANE;

		return k < h->cursor ? h->gen : h->gen - 1;
	}
	return 1;
}

#endif
