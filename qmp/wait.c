/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Waits that block on an ordinary stack and suspend inside a fiber
 * (qm_wait.h says why). A fiber is a ucontext on an mmap'ed stack with a
 * guard page; switching costs two swapcontext calls. AddressSanitizer is
 * told about every stack switch, so the unit tests run under it. */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#include "qm_wait.h"

#if defined(__SANITIZE_ADDRESS__)
#define QM_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define QM_ASAN 1
#endif
#endif

#ifdef QM_ASAN
void __sanitizer_start_switch_fiber(void **fake_stack_save, const void *bottom, size_t size);
void __sanitizer_finish_switch_fiber(void *fake_stack_save, const void **bottom_old,
				     size_t *size_old);
#endif

enum fiber_state { FIBER_IDLE, FIBER_RUNNING, FIBER_WAITING };

struct qm_fiber {
	ucontext_t ctx, caller;
	char *map;             /* guard page + stack */
	size_t map_size, page;
	enum fiber_state state;
	int cancelled, kicked;
	void (*fn)(void *);
	void *arg;
	int fd;
	short events;
	int64_t deadline_ns;
#ifdef QM_ASAN
	void *fake_stack;
	const void *caller_bottom;
	size_t caller_size;
#endif
};

static __thread struct qm_fiber *current;

int64_t qm_wait_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int qm_in_fiber(void)
{
	return current != NULL;
}

/* ---- blocking waits, on an ordinary stack ------------------------------ */

static int poll_until(int fd, short events, int64_t deadline_ns)
{
	for (;;) {
		struct pollfd p = {fd, events, 0};
		int64_t left = deadline_ns ? deadline_ns - qm_wait_now_ns() : -1;
		int ms, r;

		if (deadline_ns && left <= 0)
			return 0;
		if (fd < 0 && !deadline_ns)
			return -EDEADLK;
		ms = left < 0 ? -1 : left > 3600000000000ll ? 3600000 : (int)((left + 999999) / 1000000);
		r = poll(fd >= 0 ? &p : NULL, fd >= 0 ? 1 : 0, ms);
		if (r < 0 && errno != EINTR)
			return -errno;
		if (r > 0)
			return p.revents ? p.revents : events;
	}
}

/* ---- switching --------------------------------------------------------- */

/* From the fiber to whoever ran it. */
static void to_caller(struct qm_fiber *f, int exiting)
{
#ifdef QM_ASAN
	__sanitizer_start_switch_fiber(exiting ? NULL : &f->fake_stack, f->caller_bottom,
				       f->caller_size);
#else
	(void)exiting;
#endif
	swapcontext(&f->ctx, &f->caller);
#ifdef QM_ASAN
	/* Back in the fiber: remember the caller's stack for the next switch. */
	__sanitizer_finish_switch_fiber(f->fake_stack, &f->caller_bottom, &f->caller_size);
#endif
}

static void trampoline(void)
{
	struct qm_fiber *f = current;

#ifdef QM_ASAN
	__sanitizer_finish_switch_fiber(NULL, &f->caller_bottom, &f->caller_size);
#endif
	f->fn(f->arg);
	f->state = FIBER_IDLE;
	to_caller(f, 1);
	abort(); /* an idle fiber is never resumed, only restarted */
}

int qm_fiber_new(struct qm_fiber **out, size_t stack_size)
{
	struct qm_fiber *f;
	long page = sysconf(_SC_PAGESIZE);

	if (page <= 0)
		page = 4096;
	if (!stack_size)
		stack_size = 1u << 20;
	stack_size = (stack_size + (size_t)page - 1) & ~((size_t)page - 1);
	f = calloc(1, sizeof(*f));
	if (!f)
		return -ENOMEM;
	f->page = (size_t)page;
	f->map_size = stack_size + f->page;
	f->map = mmap(NULL, f->map_size, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
	if (f->map == MAP_FAILED) {
		free(f);
		return -ENOMEM;
	}
	/* The stack grows down: a guard page at the bottom turns an overflow
	 * into a fault instead of silent corruption. */
	if (mprotect(f->map, f->page, PROT_NONE) < 0) {
		munmap(f->map, f->map_size);
		free(f);
		return -errno;
	}
	f->fd = -1;
	*out = f;
	return 0;
}

void qm_fiber_free(struct qm_fiber *f)
{
	if (!f)
		return;
	if (f->state != FIBER_IDLE)
		abort(); /* freeing a live stack would leak or corrupt what is on it */
	munmap(f->map, f->map_size);
	free(f);
}

int qm_fiber_run(struct qm_fiber *f, void (*fn)(void *), void *arg)
{
	if (current)
		return -EBUSY;
	if (f->state == FIBER_IDLE) {
		if (getcontext(&f->ctx) < 0)
			return -errno;
		f->ctx.uc_stack.ss_sp = f->map + f->page;
		f->ctx.uc_stack.ss_size = f->map_size - f->page;
		f->ctx.uc_link = NULL;
		makecontext(&f->ctx, trampoline, 0);
		f->fn = fn;
		f->arg = arg;
		f->cancelled = 0;
	}
	f->state = FIBER_RUNNING;
	current = f;
#ifdef QM_ASAN
	void *fake = NULL;
	__sanitizer_start_switch_fiber(&fake, f->map + f->page, f->map_size - f->page);
#endif
	swapcontext(&f->caller, &f->ctx);
#ifdef QM_ASAN
	__sanitizer_finish_switch_fiber(fake, NULL, NULL);
#endif
	current = NULL;
	return f->state == FIBER_IDLE;
}

int qm_fiber_waiting(const struct qm_fiber *f)
{
	return f && f->state == FIBER_WAITING;
}

void qm_fiber_wants(const struct qm_fiber *f, int *fd, short *events, int64_t *deadline_ns)
{
	*fd = f->fd;
	*events = f->events;
	*deadline_ns = f->deadline_ns;
}

void qm_fiber_kick(struct qm_fiber *f)
{
	if (f)
		f->kicked = 1;
}

void qm_fiber_cancel(struct qm_fiber *f)
{
	f->cancelled = 1;
}

/* ---- the waits ---------------------------------------------------------- */

int qm_wait_fd(int fd, short events, int64_t deadline_ns)
{
	struct qm_fiber *f = current;

	if (!f)
		return poll_until(fd, events, deadline_ns);
	if (fd < 0 && !deadline_ns)
		return -EDEADLK;
	for (;;) {
		if (f->cancelled)
			return -ECANCELED;
		if (fd >= 0) {
			struct pollfd p = {fd, events, 0};
			int r = poll(&p, 1, 0);

			if (r < 0 && errno != EINTR)
				return -errno;
			if (r > 0)
				return p.revents ? p.revents : events;
		}
		if (deadline_ns && qm_wait_now_ns() >= deadline_ns)
			return 0;
		f->fd = fd;
		f->events = events;
		f->deadline_ns = deadline_ns;
		f->state = FIBER_WAITING;
		to_caller(f, 0);
		f->state = FIBER_RUNNING;
		f->fd = -1;
		if (f->kicked) {
			f->kicked = 0;
			return fd >= 0 ? events : 0;
		}
	}
}

int qm_sleep_until(int64_t deadline_ns)
{
	int r = qm_wait_fd(-1, 0, deadline_ns);

	return r < 0 ? r : 0;
}

int qm_yield(void)
{
	struct qm_fiber *f = current;

	if (!f)
		return 0;
	if (f->cancelled)
		return -ECANCELED;
	/* Due at once: the caller's loop sees a zero timeout, runs what else
	 * is ready, and resumes us. */
	f->fd = -1;
	f->events = 0;
	f->deadline_ns = qm_wait_now_ns();
	f->state = FIBER_WAITING;
	to_caller(f, 0);
	f->state = FIBER_RUNNING;
	return f->cancelled ? -ECANCELED : 0;
}

int qm_wait_pid(int pid, int *status, int64_t deadline_ns)
{
	int st = 0, r, pfd;
	pid_t w;

	/* A pidfd becomes readable when the child exits: wait on it like on
	 * any other fd. */
	pfd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (pfd < 0)
		return -errno;
	for (;;) {
		w = waitpid(pid, &st, WNOHANG);
		if (w < 0 && errno == EINTR)
			continue;
		if (w != 0) {
			r = w < 0 ? -errno : 0;
			break;
		}
		r = qm_wait_fd(pfd, POLLIN, deadline_ns);
		if (r == 0)
			r = -ETIMEDOUT;
		if (r < 0)
			break;
	}
	close(pfd);
	if (r == 0 && status)
		*status = st;
	return r;
}
