/* qmp/wait.c: waits that block on a plain stack and suspend in a fiber.
 * Runs under ASan too, which checks the stack switches. */
#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "qm_wait.h"
#include "unit.h"

#define MS 1000000ll

struct job {
	int fd;
	int64_t deadline;
	int result, steps;
	char big[8192]; /* something on the fiber's stack that must survive */
};

static void wait_job(void *arg)
{
	struct job *j = arg;
	char local[4096];

	memset(local, 0x5a, sizeof(local));
	j->steps++;
	j->result = qm_wait_fd(j->fd, POLLIN, j->deadline);
	j->steps++;
	for (size_t i = 0; i < sizeof(local); i++)
		if (local[i] != 0x5a)
			j->result = -EFAULT; /* the stack did not survive */
}

static void t_suspend_resume(void)
{
	struct qm_fiber *f;
	struct job j = {0};
	int p[2], fd;
	short ev;
	int64_t due;

	CU_ASSERT_FATAL(pipe(p) == 0);
	CU_ASSERT_FATAL(qm_fiber_new(&f, 0) == 0);
	j.fd = p[0];
	j.deadline = qm_wait_now_ns() + 60000 * MS;
	/* Nothing to read: the fiber suspends and says what it waits for. */
	CU_ASSERT_EQUAL(qm_fiber_run(f, wait_job, &j), 0);
	CU_ASSERT_EQUAL(j.steps, 1);
	CU_ASSERT_TRUE(qm_fiber_waiting(f));
	qm_fiber_wants(f, &fd, &ev, &due);
	CU_ASSERT_EQUAL(fd, p[0]);
	CU_ASSERT_EQUAL(ev, POLLIN);
	CU_ASSERT_EQUAL(due, j.deadline);
	CU_ASSERT_FALSE(qm_in_fiber());
	/* Resumed with still nothing there: it suspends again. */
	CU_ASSERT_EQUAL(qm_fiber_run(f, wait_job, &j), 0);
	CU_ASSERT_EQUAL(j.steps, 1);
	CU_ASSERT_EQUAL(write(p[1], "x", 1), 1);
	CU_ASSERT_EQUAL(qm_fiber_run(f, wait_job, &j), 1);
	CU_ASSERT_EQUAL(j.steps, 2);
	CU_ASSERT_TRUE(j.result & POLLIN);
	CU_ASSERT_FALSE(qm_fiber_waiting(f));
	/* The idle fiber starts afresh: data is ready, so no suspension. */
	j.steps = 0;
	CU_ASSERT_EQUAL(qm_fiber_run(f, wait_job, &j), 1);
	CU_ASSERT_EQUAL(j.steps, 2);
	qm_fiber_free(f);
	close(p[0]);
	close(p[1]);
}

static void t_deadline(void)
{
	struct qm_fiber *f;
	struct job j = {0};
	int p[2];

	CU_ASSERT_FATAL(pipe(p) == 0);
	CU_ASSERT_FATAL(qm_fiber_new(&f, 64 << 10) == 0);
	j.fd = p[0];
	j.deadline = qm_wait_now_ns() + 20 * MS;
	CU_ASSERT_EQUAL(qm_fiber_run(f, wait_job, &j), 0);
	/* Resume after the deadline (wait for it with the blocking form). */
	CU_ASSERT_EQUAL(qm_sleep_until(j.deadline), 0);
	CU_ASSERT_TRUE(qm_wait_now_ns() >= j.deadline);
	CU_ASSERT_EQUAL(qm_fiber_run(f, wait_job, &j), 1);
	CU_ASSERT_EQUAL(j.result, 0);
	qm_fiber_free(f);
	close(p[0]);
	close(p[1]);
}

static void t_cancel_kick(void)
{
	struct qm_fiber *f;
	struct job j = {0};
	int p[2];

	CU_ASSERT_FATAL(pipe(p) == 0);
	CU_ASSERT_FATAL(qm_fiber_new(&f, 0) == 0);
	j.fd = p[0];
	j.deadline = 0; /* no deadline: only the fd, a kick or a cancel end it */
	CU_ASSERT_EQUAL(qm_fiber_run(f, wait_job, &j), 0);
	qm_fiber_kick(f);
	CU_ASSERT_EQUAL(qm_fiber_run(f, wait_job, &j), 1);
	CU_ASSERT_EQUAL(j.result, POLLIN); /* woken as if ready; the waiter looks again */
	j.steps = 0;
	CU_ASSERT_EQUAL(qm_fiber_run(f, wait_job, &j), 0);
	qm_fiber_cancel(f);
	CU_ASSERT_EQUAL(qm_fiber_run(f, wait_job, &j), 1);
	CU_ASSERT_EQUAL(j.result, -ECANCELED);
	qm_fiber_free(f);
	close(p[0]);
	close(p[1]);
}

static int yields;

static void yield_job(void *arg)
{
	int *n = arg;

	for (int i = 0; i < 5; i++) {
		if (qm_yield() < 0)
			return;
		(*n)++;
	}
}

static void nested_job(void *arg)
{
	struct qm_fiber *inner = arg;

	yields = qm_fiber_run(inner, yield_job, &yields);
}

static void t_yield_nest(void)
{
	struct qm_fiber *f, *g;
	int n = 0, runs = 0, fd;
	short ev;
	int64_t due;

	CU_ASSERT_FATAL(qm_fiber_new(&f, 0) == 0);
	CU_ASSERT_FATAL(qm_fiber_new(&g, 0) == 0);
	while (qm_fiber_run(f, yield_job, &n) == 0) {
		qm_fiber_wants(f, &fd, &ev, &due);
		CU_ASSERT_EQUAL(fd, -1);
		CU_ASSERT_TRUE(due <= qm_wait_now_ns()); /* due at once */
		runs++;
	}
	CU_ASSERT_EQUAL(n, 5);
	CU_ASSERT_EQUAL(runs, 5);
	/* Outside a fiber a yield is a no-op and waits block. */
	CU_ASSERT_EQUAL(qm_yield(), 0);
	CU_ASSERT_EQUAL(qm_wait_fd(-1, 0, 0), -EDEADLK);
	/* Fibers do not nest. */
	CU_ASSERT_EQUAL(qm_fiber_run(f, nested_job, g), 1);
	CU_ASSERT_EQUAL(yields, -EBUSY);
	qm_fiber_free(f);
	qm_fiber_free(g);
}

static void t_blocking(void)
{
	int p[2];
	int64_t t0 = qm_wait_now_ns();

	CU_ASSERT_FATAL(pipe(p) == 0);
	CU_ASSERT_EQUAL(qm_wait_fd(p[0], POLLIN, t0 + 10 * MS), 0);
	CU_ASSERT_TRUE(qm_wait_now_ns() - t0 >= 10 * MS);
	CU_ASSERT_EQUAL(write(p[1], "x", 1), 1);
	CU_ASSERT_TRUE(qm_wait_fd(p[0], POLLIN, 0) & POLLIN);
	close(p[0]);
	close(p[1]);
}

struct reap {
	int pid, status, result;
};

static void reap_job(void *arg)
{
	struct reap *r = arg;

	r->result = qm_wait_pid(r->pid, &r->status, qm_wait_now_ns() + 60000 * MS);
}

static void t_wait_pid(void)
{
	struct qm_fiber *f;
	struct reap r = {0};
	int p[2], st = 0, runs = 0;
	char c;

	/* Blocking form. */
	r.pid = fork();
	CU_ASSERT_FATAL(r.pid >= 0);
	if (r.pid == 0)
		_exit(3);
	CU_ASSERT_EQUAL(qm_wait_pid(r.pid, &st, 0), 0);
	CU_ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 3);
	/* In a fiber: suspended on the child's pidfd until it exits. */
	CU_ASSERT_FATAL(pipe(p) == 0);
	r.pid = fork();
	CU_ASSERT_FATAL(r.pid >= 0);
	if (r.pid == 0) {
		close(p[1]);
		_exit(read(p[0], &c, 1) == 1 ? 7 : 1);
	}
	close(p[0]);
	CU_ASSERT_FATAL(qm_fiber_new(&f, 0) == 0);
	CU_ASSERT_EQUAL(qm_fiber_run(f, reap_job, &r), 0);
	CU_ASSERT_EQUAL(write(p[1], "x", 1), 1);
	while (qm_fiber_run(f, reap_job, &r) == 0) {
		int fd;
		short ev;
		int64_t due;

		qm_fiber_wants(f, &fd, &ev, &due);
		CU_ASSERT_TRUE(fd >= 0);
		/* As an event loop would: wait for what the fiber waits for. */
		CU_ASSERT_TRUE(qm_wait_fd(fd, ev, due) >= 0);
		runs++;
	}
	CU_ASSERT_EQUAL(r.result, 0);
	CU_ASSERT_TRUE(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 7);
	CU_ASSERT_TRUE(runs <= 2);
	qm_fiber_free(f);
	close(p[1]);
}

UNIT_SUITE(wait, NULL, NULL, {"a fiber suspends on its fd and resumes", t_suspend_resume},
	   {"a wait ends at its deadline", t_deadline},
	   {"kick and cancel end a wait with no deadline", t_cancel_kick},
	   {"yields, no nesting", t_yield_nest},
	   {"waits block outside a fiber", t_blocking},
	   {"a child reaped through its pidfd, blocking and in a fiber", t_wait_pid})
