/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The tiny test guest: a freestanding 32-bit multiboot kernel that dirties
 * its working set at a set rate with stamped pages (see tiny_abi.h for the
 * rule the host verifier checks), prints heartbeats on COM1, checks each
 * page before it rewrites it and reports corruption.
 *
 * Command line (-append): wss=SIZE rate=BYTES/S hb=MS mode=stamp|hot
 * hot=PAGES check=0|1 pace=time|cpu. Sizes take K, M, G suffixes (binary).
 *
 * pace=time (the default) keeps the write rate in wall-clock time: a vCPU
 * that is throttled catches up, so a CPU throttle cannot slow its writes.
 * pace=cpu ties the writes to the CPU the vCPU gets, as in most real
 * workloads: the guest computes (units of work that write no memory) and
 * writes one page every N units, N measured at boot so that an unthrottled
 * vCPU writes about rate=; its heartbeats then also count the units done
 * (work=), the guest's non-writing work.
 *
 * Timing: the TSC, calibrated against PIT channel 2 at boot; the main loop
 * sleeps with hlt between 1 kHz PIT channel 0 ticks, so an idle guest costs
 * the host little CPU. Serial output goes through a ring drained only while
 * the UART is ready, so a slow host reader never stalls the writer.
 */
#include <stdint.h>

#include "tiny_abi.h"

#define COM1 0x3f8
#define PIT_HZ 1193182u
#define TICK_HZ 1000u
#define MAX_CORRUPT_LINES 8
#define DEFAULT_WSS (64u << 20)
#define DEFAULT_HOT 32u

extern volatile uint32_t tiny_ticks, tiny_nmis;
void tiny_main(const uint32_t *mbi);
void tiny_fault(void);

static volatile struct tiny_hdr *const hdr = (volatile struct tiny_hdr *)TINY_HDR_GPA;

struct params {
	uint64_t wss;
	uint32_t rate, hb_ms, mode, hot, check, pace_cpu;
};

/* ---- freestanding helpers ------------------------------------------- */

void *memset(void *d, int c, uint32_t n);
void *memcpy(void *d, const void *s, uint32_t n);

void *memset(void *d, int c, uint32_t n)
{
	unsigned char *p = d;

	while (n--)
		*p++ = (unsigned char)c;
	return d;
}

void *memcpy(void *d, const void *s, uint32_t n)
{
	unsigned char *p = d;
	const unsigned char *q = s;

	while (n--)
		*p++ = *q++;
	return d;
}

#define barrier() __asm__ volatile("" ::: "memory")

static inline void outb(uint16_t port, uint8_t v)
{
	__asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port));
}

static inline uint8_t inb(uint16_t port)
{
	uint8_t v;

	__asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port));
	return v;
}

static inline uint64_t rdtsc(void)
{
	uint32_t lo, hi;

	__asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
	return ((uint64_t)hi << 32) | lo;
}

/* 64/32 division without libgcc: two divl steps. */
static uint64_t udiv64(uint64_t n, uint32_t d, uint32_t *rem)
{
	uint32_t hi = (uint32_t)(n >> 32), lo = (uint32_t)n, qhi, qlo, r;

	qhi = hi / d;
	r = hi % d;
	__asm__("divl %4" : "=a"(qlo), "=d"(r) : "a"(lo), "d"(r), "rm"(d));
	if (rem)
		*rem = r;
	return ((uint64_t)qhi << 32) | qlo;
}

/* A (cursor, gen) pair changes in one store so a stopped guest is
 * consistent. */
static void set_pair(volatile uint32_t *pair, uint32_t cursor, uint32_t gen)
{
	volatile uint64_t *p = (volatile uint64_t *)pair;
	uint32_t lo = pair[0], hi = pair[1];

	__asm__ volatile("1: lock cmpxchg8b %0\n\tjnz 1b"
			 : "+m"(*p), "+a"(lo), "+d"(hi)
			 : "b"(cursor), "c"(gen)
			 : "memory", "cc");
}

/* ---- serial --------------------------------------------------------- */

/* Two queues of whole lines: heartbeats, and the rare lines that matter
 * (READY, CORRUPT, INJECTED, VERIFY), sent first at the next line
 * boundary. Under TCG on a loaded host the UART may move only ~10 KB/s,
 * less than 1 ms heartbeats need: a heartbeat finding more than HB_QUEUE
 * bytes queued is dropped (its seq number says so), so beats reach the
 * host within a few ms of being written, not behind a backlog, and so does
 * an answer. */
#define HB_QUEUE 256u
static char tx_ring[8192], urg_ring[2048];
static uint32_t tx_head, tx_tail, urg_head, urg_tail; /* free-running */
static uint32_t tx_dropped;
static int tx_from; /* the queue whose line is half sent: 0 none, 1 beats, 2 urgent */
static char rx_line[64];
static uint32_t rx_len;

static void serial_init(void)
{
	outb(COM1 + 1, 0x00); /* no UART interrupts: we poll */
	outb(COM1 + 3, 0x80); /* DLAB */
	outb(COM1 + 0, 0x01); /* 115200 baud */
	outb(COM1 + 1, 0x00);
	outb(COM1 + 3, 0x03); /* 8N1 */
	outb(COM1 + 2, 0x00); /* no FIFO: THRE means the byte left */
	outb(COM1 + 4, 0x03); /* DTR, RTS */
}

static void serial_drain(void)
{
	while (inb(COM1 + 5) & 0x40) {
		char c;

		if (!tx_from)
			tx_from = urg_tail != urg_head ? 2 : tx_tail != tx_head ? 1 : 0;
		if (tx_from == 2)
			c = urg_ring[urg_tail++ % sizeof(urg_ring)];
		else if (tx_from == 1)
			c = tx_ring[tx_tail++ % sizeof(tx_ring)];
		else
			return;
		outb(COM1, (uint8_t)c);
		if (c == '\n')
			tx_from = 0;
	}
}

/* Whole lines only: a line that does not fit is dropped, never cut. */
static void emit(const char *s, uint32_t n, int important)
{
	char *ring = important ? urg_ring : tx_ring;
	uint32_t size = important ? sizeof(urg_ring) : sizeof(tx_ring);
	uint32_t *head = important ? &urg_head : &tx_head;
	uint32_t queued = *head - (important ? urg_tail : tx_tail);

	if (queued + n > (important ? size : HB_QUEUE)) {
		tx_dropped++;
		return;
	}
	for (uint32_t i = 0; i < n; i++)
		ring[(*head)++ % size] = s[i];
	serial_drain();
}

struct line {
	char b[160];
	uint32_t n;
};

static void l_str(struct line *l, const char *s)
{
	while (*s && l->n < sizeof(l->b))
		l->b[l->n++] = *s++;
}

static void l_u64(struct line *l, uint64_t v)
{
	char t[24];
	int i = 0;
	uint32_t r;

	do {
		v = udiv64(v, 10, &r);
		t[i++] = (char)('0' + r);
	} while (v);
	while (i && l->n < sizeof(l->b))
		l->b[l->n++] = t[--i];
}

static void l_hex(struct line *l, uint32_t v)
{
	int started = 0;

	for (int sh = 28; sh >= 0; sh -= 4) {
		uint32_t d = (v >> sh) & 15;

		if (!d && !started && sh)
			continue;
		started = 1;
		if (l->n < sizeof(l->b))
			l->b[l->n++] = (char)(d < 10 ? '0' + d : 'a' + d - 10);
	}
}

static void l_emit(struct line *l)
{
	l_str(l, "\n");
	emit(l->b, l->n, l->b[0] != 'H');
}

/* Fault path: no ring, no interrupts, just get the word out. */
void tiny_fault(void)
{
	const char *s = "FAULT tiny guest took a CPU exception\n";

	for (; *s; s++) {
		for (int i = 0; i < 100000 && !(inb(COM1 + 5) & 0x20); i++)
			;
		outb(COM1, (uint8_t)*s);
	}
}

/* ---- command line --------------------------------------------------- */

static uint64_t parse_num(const char *s, const char **end)
{
	uint64_t v = 0;

	while (*s >= '0' && *s <= '9')
		v = v * 10 + (uint64_t)(*s++ - '0');
	switch (*s) {
	case 'k': case 'K': v <<= 10; s++; break;
	case 'm': case 'M': v <<= 20; s++; break;
	case 'g': case 'G': v <<= 30; s++; break;
	}
	*end = s;
	return v;
}

static int word_is(const char *s, const char *key)
{
	while (*key)
		if (*s++ != *key++)
			return 0;
	return 1;
}

static void parse_cmdline(const char *s, struct params *p)
{
	while (s && *s) {
		const char *e;

		while (*s == ' ')
			s++;
		e = s;
		if (word_is(s, "wss="))
			p->wss = parse_num(s + 4, &e);
		else if (word_is(s, "rate="))
			p->rate = (uint32_t)parse_num(s + 5, &e);
		else if (word_is(s, "hb="))
			p->hb_ms = (uint32_t)parse_num(s + 3, &e);
		else if (word_is(s, "hot="))
			p->hot = (uint32_t)parse_num(s + 4, &e);
		else if (word_is(s, "check="))
			p->check = (uint32_t)parse_num(s + 6, &e);
		else if (word_is(s, "mode=hot"))
			p->mode = TINY_MODE_HOT;
		else if (word_is(s, "mode=stamp"))
			p->mode = TINY_MODE_STAMP;
		else if (word_is(s, "pace=cpu"))
			p->pace_cpu = 1;
		else if (word_is(s, "pace=time"))
			p->pace_cpu = 0;
		for (s = e; *s && *s != ' '; s++)
			;
	}
}

/* ---- timers --------------------------------------------------------- */

/* TSC ticks in 50 ms of PIT channel 2 (mode 0, gate on, speaker off). */
static uint32_t calibrate_tsc(void)
{
	const uint32_t count = PIT_HZ / 20;
	uint64_t t0, t1;

	outb(0x61, (uint8_t)((inb(0x61) & ~0x02) | 0x01));
	outb(0x43, 0xb0);
	outb(0x42, count & 0xff);
	outb(0x42, count >> 8);
	t0 = rdtsc();
	while (!(inb(0x61) & 0x20))
		;
	t1 = rdtsc();
	return (uint32_t)udiv64(t1 - t0, 50, 0);
}

static void timers_init(void)
{
	/* PIC: IRQs at vectors 32-47, only IRQ0 unmasked. */
	outb(0x20, 0x11);
	outb(0xa0, 0x11);
	outb(0x21, 0x20);
	outb(0xa1, 0x28);
	outb(0x21, 0x04);
	outb(0xa1, 0x02);
	outb(0x21, 0x01);
	outb(0xa1, 0x01);
	outb(0x21, 0xfe);
	outb(0xa1, 0xff);
	/* PIT channel 0, rate generator at TICK_HZ. */
	outb(0x43, 0x34);
	outb(0x40, (PIT_HZ / TICK_HZ) & 0xff);
	outb(0x40, (PIT_HZ / TICK_HZ) >> 8);
}

/* ---- pages ---------------------------------------------------------- */

static inline uint32_t *page_ptr(uint32_t i)
{
	return (uint32_t *)(TINY_WS_GPA + i * TINY_PAGE);
}

static void write_page(uint32_t i, uint32_t gen)
{
	uint32_t *p = page_ptr(i), v = tiny_seed(i, gen) + 4 * TINY_GOLDEN;

	p[0] = TINY_PAGE_MAGIC;
	p[1] = i;
	p[2] = gen;
	p[3] = tiny_check(i, gen);
	for (uint32_t j = 4; j < TINY_WORDS; j++, v += TINY_GOLDEN)
		p[j] = v;
}

/* The first word that differs from generation gen, or -1. */
static int check_page(uint32_t i, uint32_t gen)
{
	const volatile uint32_t *p = page_ptr(i);
	uint32_t v;

	if (gen == 0) {
		for (uint32_t j = 0; j < TINY_WORDS; j++)
			if (p[j])
				return (int)j;
		return -1;
	}
	if (p[0] != TINY_PAGE_MAGIC || p[1] != i || p[2] != gen || p[3] != tiny_check(i, gen))
		return 0;
	v = tiny_seed(i, gen) + 4 * TINY_GOLDEN;
	for (uint32_t j = 4; j < TINY_WORDS; j++, v += TINY_GOLDEN)
		if (p[j] != v)
			return (int)j;
	return -1;
}

static void report_corrupt(uint32_t i, uint32_t expected)
{
	struct line l = {.n = 0};

	if (hdr->corrupt_seen++ >= MAX_CORRUPT_LINES)
		return;
	l_str(&l, "CORRUPT page=");
	l_u64(&l, i);
	l_str(&l, " gpa=0x");
	l_hex(&l, TINY_WS_GPA + i * TINY_PAGE);
	l_str(&l, " expected_gen=");
	l_u64(&l, expected);
	l_str(&l, " found_gen=");
	l_u64(&l, page_ptr(i)[2]);
	l_emit(&l);
}

/* Check, rewrite page i from generation gen - 1 to gen, and advance the
 * stream's (cursor, gen) pair, wrapping after sweep pages. */
static void rewrite(const struct params *p, uint32_t i, volatile uint32_t *pair, uint32_t sweep)
{
	uint32_t cursor = pair[0], gen = pair[1];

	if (p->check && check_page(i, gen - 1) >= 0)
		report_corrupt(i, gen - 1);
	hdr->inflight = i;
	barrier();
	write_page(i, gen);
	barrier();
	if (cursor + 1 >= sweep)
		set_pair(pair, 0, gen + 1);
	else
		pair[0] = cursor + 1;
	barrier();
	hdr->inflight = TINY_NONE;
	hdr->pages_written++;
}

/* One page: the plain sweep, or in mode=hot (after the first pass) the hot
 * and the cold stream in turn. */
static void step(const struct params *p)
{
	static uint32_t turn;
	volatile uint32_t *main_pair = &hdr->cursor, *hot_pair = &hdr->hot_cursor;

	if (hdr->mode != TINY_MODE_HOT || hdr->gen == 1) {
		uint32_t i = hdr->cursor;

		if (hdr->mode == TINY_MODE_HOT && i + 1 >= hdr->n_pages)
			set_pair(hot_pair, 0, 2); /* read only once gen is 2 */
		rewrite(p, i, main_pair, hdr->n_pages);
		return;
	}
	if ((turn++ & 1) || !hdr->cold_pages)
		rewrite(p, hdr->hot_base + hdr->hot_cursor, hot_pair, hdr->hot_pages);
	else
		rewrite(p, tiny_cold_page(hdr->cursor), main_pair, hdr->cold_pages);
}

/* Serial command "corrupt [PAGE]": change one word of a page without
 * touching its stamp, so the verifier (and later the self-check) must
 * notice. Without PAGE, the page written last: the writer comes back to it
 * last, which leaves the host a whole sweep to stop the guest and look.
 * For tests of the tests only. */
static void inject(const char *arg)
{
	const char *e;
	uint32_t i = hdr->cursor ? hdr->cursor - 1 : 0;
	struct line l = {.n = 0};

	if (hdr->mode == TINY_MODE_HOT && hdr->gen > 1)
		i = hdr->cold_pages ? tiny_cold_page(i) : hdr->hot_base;
	while (*arg == ' ')
		arg++;
	if (*arg >= '0' && *arg <= '9')
		i = (uint32_t)parse_num(arg, &e);
	if (i >= hdr->n_pages)
		return;
	page_ptr(i)[TINY_WORDS / 2] ^= 0x5a5a5a5au;
	hdr->injected++;
	l_str(&l, "INJECTED page=");
	l_u64(&l, i);
	l_str(&l, " gpa=0x");
	l_hex(&l, TINY_WS_GPA + i * TINY_PAGE);
	l_emit(&l);
}

/* Serial command "v": check every page of the working set now, against
 * the header's (cursor, gen) pairs, and answer on one line
 *   VERIFY pages=<n> bad=<k> gen=<g> seq=<hb_seq> us=<time>[ first=<i> expected=<g> found=<g'>]
 * The engine asks a guest that has just resumed on the destination, so the
 * answer is the destination's memory as the guest itself reads it. Each
 * page's stamp (words 0-3) and two of its other words, the middle one (the
 * word "corrupt" flips) and the last: a page the migration did not bring
 * up to date (a lost dirty page, QEMU 7.2's TCG bug) holds another
 * generation, or none, in all of them. No page is in flight here (the main
 * loop runs commands between page writes). A few ms under TCG for 64 MiB;
 * a byte-exact check of every word is qmigrate verify (a stopped guest) or
 * --verify=memory. */
static int page_quick(uint32_t i, uint32_t gen)
{
	const volatile uint32_t *p = page_ptr(i);
	const uint32_t mid = TINY_WORDS / 2, last = TINY_WORDS - 1;

	if (gen == 0)
		return p[0] || p[1] || p[2] || p[3] || p[mid] || p[last];
	return p[0] != TINY_PAGE_MAGIC || p[1] != i || p[2] != gen || p[3] != tiny_check(i, gen) ||
	       p[mid] != tiny_seed(i, gen) + mid * TINY_GOLDEN ||
	       p[last] != tiny_seed(i, gen) + last * TINY_GOLDEN;
}

static void verify_all(uint32_t tsc_per_ms)
{
	struct tiny_hdr h;
	struct line l = {.n = 0};
	uint32_t bad = 0, first = 0, found = 0, expected = 0;
	uint64_t t0 = rdtsc(), us;

	for (uint32_t k = 0; k < sizeof(h) / 4; k++)
		((uint32_t *)&h)[k] = ((const volatile uint32_t *)hdr)[k];
	for (uint32_t i = 0; i < h.n_pages; i++) {
		uint32_t gen = tiny_expected_gen(&h, i);

		if (!page_quick(i, gen))
			continue;
		if (!bad++) {
			first = i;
			expected = gen;
			found = page_ptr(i)[2];
		}
	}
	us = udiv64((rdtsc() - t0) * 1000, tsc_per_ms, 0);
	l_str(&l, "VERIFY pages=");
	l_u64(&l, h.n_pages);
	l_str(&l, " bad=");
	l_u64(&l, bad);
	l_str(&l, " gen=");
	l_u64(&l, h.gen);
	l_str(&l, " seq=");
	l_u64(&l, h.hb_seq);
	l_str(&l, " us=");
	l_u64(&l, us);
	if (bad) {
		l_str(&l, " first=");
		l_u64(&l, first);
		l_str(&l, " expected=");
		l_u64(&l, expected);
		l_str(&l, " found=");
		l_u64(&l, found);
	}
	l_emit(&l);
}

static void serial_input(uint32_t tsc_per_ms)
{
	while (inb(COM1 + 5) & 0x01) {
		char c = (char)inb(COM1);

		if (c == '\n' || c == '\r') {
			rx_line[rx_len] = 0;
			if (word_is(rx_line, "corrupt"))
				inject(rx_line + 7);
			else if (rx_line[0] == 'v' && !rx_line[1])
				verify_all(tsc_per_ms);
			rx_len = 0;
		} else if (rx_len < sizeof(rx_line) - 1) {
			rx_line[rx_len++] = c;
		}
	}
}

/* ---- the main loop -------------------------------------------------- */

struct pacer {
	uint64_t base_tsc, tsc_per_s;
	int64_t allowed_at_base, written;
	uint64_t win_tsc, win_written;
	uint32_t measured; /* bytes/s over the last window of ~1 s */
	int cpu;           /* pace=cpu: units of work, not the clock, pace writes */
	uint64_t work;     /* units of work done */
	uint64_t per_page; /* units of work between two pages (0: no writes) */
	uint64_t since_page;
	uint32_t sink;     /* what the work computes, so it is not optimised away */
};

/* One unit of work: arithmetic in registers, no memory written. Short
 * (tens of microseconds under TCG), so heartbeats stay on time. */
static uint32_t work_unit(uint32_t x)
{
	for (int i = 0; i < 256; i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
	}
	return x;
}

/* pace=cpu: units of work per page, from the units done in 50 ms of TSC,
 * so that an unthrottled vCPU writes about rate bytes/s. */
static void calibrate_work(struct pacer *pc, uint32_t rate, uint32_t tsc_per_ms)
{
	uint64_t t0 = rdtsc(), end = t0 + 50ull * tsc_per_ms, units = 0;
	uint32_t x = 2463534242u;

	while (rdtsc() < end) {
		x = work_unit(x);
		units++;
	}
	pc->sink = x;
	pc->per_page = 0;
	if (rate) {
		/* units/s = units * 20; pages/s = rate / TINY_PAGE */
		pc->per_page = udiv64(units * 20 * TINY_PAGE, rate, 0);
		if (!pc->per_page)
			pc->per_page = 1;
	}
}

/* Bytes the guest may have written by now. Whole seconds move the base so
 * the products stay well inside 64 bits. */
static int64_t pace_allowed(struct pacer *pc, uint32_t rate, uint32_t tsc_per_ms, uint64_t now)
{
	uint64_t el, us;
	int64_t allowed;

	if (now < pc->base_tsc || now - pc->base_tsc > 10 * pc->tsc_per_s) {
		/* TSC jumped (migration, long stop): start afresh. */
		pc->base_tsc = now;
		pc->allowed_at_base = pc->written;
	}
	while (now - pc->base_tsc >= pc->tsc_per_s) {
		pc->base_tsc += pc->tsc_per_s;
		pc->allowed_at_base += rate;
	}
	el = now - pc->base_tsc;
	us = udiv64(el * 1000, tsc_per_ms, 0);
	allowed = pc->allowed_at_base + (int64_t)udiv64(us * rate, 1000000, 0);
	/* Forgive a backlog beyond 100 ms: no catch-up bursts after a pause. */
	if (allowed - pc->written > (int64_t)(rate / 10) + TINY_PAGE) {
		pc->allowed_at_base -= allowed - pc->written - (int64_t)(rate / 10);
		allowed = pc->written + (int64_t)(rate / 10);
	}
	return allowed;
}

static void measure(struct pacer *pc, uint32_t tsc_per_ms, uint64_t now)
{
	uint64_t el = now - pc->win_tsc, us;

	if (now < pc->win_tsc || el > 10 * pc->tsc_per_s) {
		pc->win_tsc = now;
		pc->win_written = (uint64_t)pc->written;
		return;
	}
	if (el < pc->tsc_per_s)
		return;
	us = udiv64(el * 1000, tsc_per_ms, 0);
	pc->measured = (uint32_t)udiv64(((uint64_t)pc->written - pc->win_written) * 1000000,
					(uint32_t)us, 0);
	pc->win_tsc = now;
	pc->win_written = (uint64_t)pc->written;
}

static void heartbeat(const struct pacer *pc)
{
	struct line l = {.n = 0};

	l_str(&l, "HB seq=");
	l_u64(&l, ++hdr->hb_seq);
	l_str(&l, " gen=");
	l_u64(&l, hdr->gen);
	l_str(&l, " pages=");
	l_u64(&l, hdr->pages_written);
	l_str(&l, " rate=");
	l_u64(&l, pc->measured);
	if (pc->cpu) {
		l_str(&l, " work=");
		l_u64(&l, pc->work);
	}
	l_str(&l, " tiny"); /* the host knows it can ask for a check (NMI) */
	l_emit(&l);
}

/* RAM holds anything at boot: the firmware's stack and tables may sit in
 * what becomes the working set (27 pages just below 48 MiB with 64 MiB of
 * RAM, SeaBIOS 1.16). A page of generation 0 must read as zero, so clear
 * the pages that do not; most are zero and are only read. */
static void clear_leftovers(uint32_t n)
{
	for (uint32_t i = 0; i < n; i++) {
		const uint32_t *w = (const uint32_t *)(TINY_WS_GPA + i * TINY_PAGE);

		for (uint32_t j = 0; j < TINY_WORDS; j++)
			if (w[j]) {
				memset((void *)w, 0, TINY_PAGE);
				break;
			}
	}
}

static void setup_header(const struct params *p, uint32_t mem_kib, uint32_t tsc_per_ms)
{
	uint64_t top = (uint64_t)mem_kib << 10, avail = 0, wss = p->wss;
	uint32_t n;

	if (top > TINY_WS_GPA)
		avail = top - TINY_WS_GPA;
	if (wss > avail)
		wss = avail;
	n = (uint32_t)(wss / TINY_PAGE);
	hdr->magic0 = 0; /* valid only once complete */
	clear_leftovers(n);
	hdr->abi_version = TINY_ABI_VERSION;
	hdr->ws_gpa = TINY_WS_GPA;
	hdr->n_pages = n;
	hdr->mode = p->mode;
	hdr->hot_base = TINY_HOT_BASE;
	hdr->hot_pages = 0;
	hdr->cold_pages = 0;
	if (p->mode == TINY_MODE_HOT) {
		uint32_t hot = p->hot ? p->hot : DEFAULT_HOT;

		if (hot > TINY_HOT_MAX)
			hot = TINY_HOT_MAX;
		if (n >= TINY_HOT_BASE + hot) {
			hdr->hot_pages = hot;
			hdr->cold_pages = tiny_cold_count(n);
		} else {
			hdr->mode = TINY_MODE_STAMP; /* too small to have a hot set */
		}
	}
	hdr->hb_ms = p->hb_ms;
	hdr->rate = p->rate;
	hdr->mem_kib = mem_kib;
	hdr->tsc_per_ms = tsc_per_ms;
	hdr->cursor = 0;
	hdr->gen = 1;
	hdr->hot_cursor = 0;
	hdr->hot_gen = 0;
	hdr->inflight = TINY_NONE;
	hdr->corrupt_seen = 0;
	hdr->pages_written = 0;
	hdr->hb_seq = 0;
	hdr->injected = 0;
	barrier();
	hdr->magic1 = TINY_HDR_MAGIC1;
	hdr->magic0 = TINY_HDR_MAGIC0;
}

static void ready(uint32_t mem_kib)
{
	struct line l = {.n = 0};

	l_str(&l, "INFO tsc_per_ms=");
	l_u64(&l, hdr->tsc_per_ms);
	l_emit(&l);
	l.n = 0;

	l_str(&l, "READY tiny wss=");
	l_u64(&l, (uint64_t)hdr->n_pages * TINY_PAGE);
	l_str(&l, " rate=");
	l_u64(&l, hdr->rate);
	l_str(&l, " mem=");
	l_u64(&l, (uint64_t)mem_kib << 10);
	l_emit(&l);
}

void tiny_main(const uint32_t *mbi)
{
	struct params p = {.wss = DEFAULT_WSS, .hb_ms = 1, .hot = DEFAULT_HOT, .check = 1};
	struct pacer pc = {0};
	uint32_t mem_kib = 0, tsc_per_ms, nmis_seen = 0;
	uint64_t now, hb_tsc, next_hb;

	serial_init();
	if (mbi[0] & 1)
		mem_kib = mbi[2] + 1024; /* mem_upper starts at 1 MiB */
	if (mbi[0] & 4)
		parse_cmdline((const char *)mbi[4], &p);
	tsc_per_ms = calibrate_tsc();
	if (!tsc_per_ms)
		tsc_per_ms = 1;
	setup_header(&p, mem_kib, tsc_per_ms);
	timers_init();
	ready(mem_kib);

	pc.tsc_per_s = (uint64_t)tsc_per_ms * 1000;
	pc.cpu = (int)p.pace_cpu;
	if (pc.cpu && hdr->n_pages)
		calibrate_work(&pc, p.rate, tsc_per_ms);
	now = rdtsc();
	pc.base_tsc = pc.win_tsc = now;
	hb_tsc = (uint64_t)p.hb_ms * tsc_per_ms;
	next_hb = now + hb_tsc;
	__asm__ volatile("sti");
	for (;;) {
		int busy = 0;

		now = rdtsc();
		serial_input(tsc_per_ms);
		if (tiny_nmis != nmis_seen) {
			nmis_seen = tiny_nmis;
			verify_all(tsc_per_ms);
		}
		measure(&pc, tsc_per_ms, now);
		if (p.hb_ms && now >= next_hb) {
			heartbeat(&pc);
			next_hb += hb_tsc;
			if (now >= next_hb || next_hb - now > 2 * hb_tsc)
				next_hb = now + hb_tsc; /* after a pause: no burst */
		}
		serial_drain();
		if (pc.cpu) {
			/* Work, and a page every per_page units, for 100 us between
			 * two looks at the serial line and the clock (port I/O is
			 * slow under TCG; the calibration's loop is this one). */
			uint64_t until = now + (uint64_t)tsc_per_ms / 10;

			do {
				pc.sink = work_unit(pc.sink);
				pc.work++;
				if (pc.per_page && ++pc.since_page >= pc.per_page) {
					pc.since_page = 0;
					step(&p);
					pc.written += TINY_PAGE;
				}
			} while (rdtsc() < until);
			continue;
		}
		if (p.rate && hdr->n_pages && pace_allowed(&pc, p.rate, tsc_per_ms, now) >= pc.written + TINY_PAGE) {
			step(&p);
			pc.written += TINY_PAGE;
			busy = 1;
		}
		if (!busy)
			__asm__ volatile("hlt"); /* until the next tick */
	}
}
