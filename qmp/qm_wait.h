/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Waiting without blocking the caller's event loop.
 *
 * Every wait inside the library goes through qm_wait_fd() / qm_sleep_until() /
 * qm_yield(). Called on an ordinary stack they block (poll), as a command-line
 * tool expects. Called inside a fiber they suspend the fiber instead: the
 * fiber's runner (qm_fiber_run) returns to its caller, which watches the fd
 * and the deadline in its own event loop and runs the fiber again when either
 * is due. This is how qmig_migration_process() never waits while the phases
 * stay written as straight-line code: a QMP round trip inside a phase is a
 * suspension point, not a blocking call.
 *
 * Not installed; the qm_ prefix keeps these out of the shared library's ABI. */
#ifndef QM_WAIT_H
#define QM_WAIT_H

#include <stddef.h>
#include <stdint.h>

/* Monotonic time in ns (CLOCK_MONOTONIC). */
int64_t qm_wait_now_ns(void);

/* Wait until fd has one of `events` (POLLIN, POLLOUT) or the deadline
 * (monotonic ns; 0 = none) passes. fd < 0 waits for the deadline alone.
 * Returns the revents (> 0), 0 when the deadline passed first, or -errno:
 * -ECANCELED when the running fiber was cancelled (its work must unwind and
 * not wait again), -EDEADLK for an endless wait on no fd. */
int qm_wait_fd(int fd, short events, int64_t deadline_ns);

/* qm_wait_fd(-1, 0, deadline). */
int qm_sleep_until(int64_t deadline_ns);

/* Let the caller's loop run before going on (long computations call this
 * every few milliseconds of work). A no-op outside a fiber. Returns 0 or
 * -ECANCELED. */
int qm_yield(void);

/* Reap child pid, waiting (as above) until it exits or the deadline passes
 * (0: none). Returns 0 with *status filled, -ETIMEDOUT (the child is left
 * running; the caller kills it), -ECANCELED, or -errno. */
int qm_wait_pid(int pid, int *status, int64_t deadline_ns);

/* Inside a fiber? (Code that must not suspend can check.) */
int qm_in_fiber(void);

struct qm_fiber;

/* A fiber with a stack of `stack_size` bytes (0: the default, 1 MiB,
 * reserved but only touched pages are used; a guard page below). */
int qm_fiber_new(struct qm_fiber **out, size_t stack_size);
/* Only when the fiber is not suspended (qm_fiber_waiting() == 0). */
void qm_fiber_free(struct qm_fiber *f);

/* Start fn(arg) on the fiber, or resume it where it waits. Returns 1 when
 * fn has returned, 0 when it waits again (see qm_fiber_wants), -EBUSY when
 * called from inside a fiber (fibers do not nest). */
int qm_fiber_run(struct qm_fiber *f, void (*fn)(void *), void *arg);

/* Is the fiber suspended in a wait? */
int qm_fiber_waiting(const struct qm_fiber *f);

/* What a suspended fiber waits for: fd (-1 for none), events, deadline (0
 * for none). */
void qm_fiber_wants(const struct qm_fiber *f, int *fd, short *events, int64_t *deadline_ns);

/* Wake a suspended fiber's wait even if its fd shows nothing: the wait
 * returns its events as if ready, and the waiter looks again (used when
 * input it waits for was consumed elsewhere). */
void qm_fiber_kick(struct qm_fiber *f);

/* From now on every wait in the fiber returns -ECANCELED at once, so that
 * its work unwinds through its error paths. */
void qm_fiber_cancel(struct qm_fiber *f);

#endif
