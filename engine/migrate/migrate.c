/* The migration handle: its life cycle, the embedding interface (one
 * epoll fd, a timeout, a non-blocking step), events and results. The
 * phases themselves are in phases.c. */
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "migrate.h"
#include "converge/converge.h"
#include "guest/guest.h"
#include "journal/journal.h"
#include "link/link.h"
#include "storage/storage.h"
#include "qm_abi.h"
#include "qm_wait.h"

static char *dup_opt(struct qmig_migration *m, int i, const char *s)
{
	if (!s)
		return NULL;
	m->strs[i] = strdup(s);
	return m->strs[i];
}

/* Where each version of struct qmig_migrate_opts ends (docs/API.md). */
static const size_t opts_ends[] = {
	/* 1 and 2: retired with SOVERSION 1, when the embedded qmig_vm_spec
	 * grew (runas, no_sandbox, shared_mem) and moved every later field. */
	0, 0,
	offsetof(struct qmig_migrate_opts, transport),       /* 3 */
	offsetof(struct qmig_migrate_opts, copy_storage),    /* 4 */
	offsetof(struct qmig_migrate_opts, multifd_compression), /* 5 */
	sizeof(struct qmig_migrate_opts),                    /* 6 */
};
_Static_assert(sizeof(opts_ends) / sizeof(opts_ends[0]) == QMIG_MIGRATE_OPTS_VERSION,
	       "a new version of qmig_migrate_opts needs its end in opts_ends");

int qmig_migration_new(struct qmig_migration **out, const struct qmig_migrate_opts *opts)
{
	struct qmig_migrate_opts o = QMIG_MIGRATE_OPTS_INIT;
	struct qmig_migration *m;

	if (!out || !opts || QM_OPTS_IMPORT(&o, opts, opts_ends) < 0)
		return -EINVAL;
	if (!o.src_qmp != !o.dst_qmp)
		return -EINVAL; /* attach mode needs both sockets */
	if (!o.src_qmp && o.guest.guest == QMIG_GUEST_NONE && !o.guest.extra_args)
		return -EINVAL; /* launch mode needs something to launch */
	m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	m->last.size = sizeof(m->last); /* handed out in events as it is */
	m->res.size = sizeof(m->res);
	m->o = o;
	m->o.src_qmp = dup_opt(m, 0, o.src_qmp);
	m->o.dst_qmp = dup_opt(m, 1, o.dst_qmp);
	m->o.src_netns = dup_opt(m, 2, o.src_netns);
	m->o.dst_netns = dup_opt(m, 3, o.dst_netns);
	m->o.dst_addr = dup_opt(m, 4, o.dst_addr ? o.dst_addr : "127.0.0.1");
	m->o.listen_addr = dup_opt(m, 5, o.listen_addr ? o.listen_addr : m->o.dst_addr);
	m->o.port_lock_dir = dup_opt(m, 6, o.port_lock_dir);
	m->o.guest.qemu_binary = dup_opt(m, 7, o.guest.qemu_binary);
	m->o.guest.accel = dup_opt(m, 8, o.guest.accel);
	m->o.src_serial = dup_opt(m, 9, o.src_serial);
	m->o.dst_serial = dup_opt(m, 10, o.dst_serial);
	m->o.tls_dir = dup_opt(m, 11, o.tls_dir);
	m->o.tls_dst_dir = dup_opt(m, 12, o.tls_dst_dir ? o.tls_dst_dir : o.tls_dir);
	m->o.tls_hostname = dup_opt(m, 13, o.tls_hostname ? o.tls_hostname
							   : m->o.dst_addr);
	m->o.tls_authz = dup_opt(m, 14, o.tls_authz);
	m->o.trace_path = dup_opt(m, 15, o.trace_path);
	m->o.policy = dup_opt(m, 16, o.policy);
	m->o.policy_plugin = dup_opt(m, 17, o.policy_plugin);
	m->o.guest.runas = dup_opt(m, 18, o.guest.runas);
	m->o.multifd_compression = dup_opt(m, 19, o.multifd_compression);
	if (m->o.transport != QMIG_TRANSPORT_DIRECT && m->o.transport != QMIG_TRANSPORT_RELAY) {
		free(m);
		return -EINVAL;
	}
	if (m->o.transport == QMIG_TRANSPORT_RELAY) {
		m->o.relay_src_netns = dup_opt(m, 20, o.relay_src_netns ? o.relay_src_netns
								    : o.src_netns);
		m->o.relay_dst_netns = dup_opt(m, 21, o.relay_dst_netns ? o.relay_dst_netns
								    : o.dst_netns);
	}
	/* The caller's arrays must outlive the handle: documented in qmigrate(3). */
	if (!m->o.port_lo)
		m->o.port_lo = 49152;
	if (!m->o.port_hi)
		m->o.port_hi = 49215;
	if (!m->o.timeout_ms)
		m->o.timeout_ms = 600000;
	if (!m->o.sample_ms)
		m->o.sample_ms = 100;
	if (!m->o.qmp_timeout_ms)
		m->o.qmp_timeout_ms = 10000;
	m->side[SRC].name = "source";
	m->side[DST].name = "destination";
	m->side[SRC].m = m;
	m->side[DST].m = m;
	m->epfd = epoll_create1(EPOLL_CLOEXEC);
	m->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (m->epfd < 0 || m->tfd < 0) {
		int err = -errno;

		if (m->epfd >= 0)
			close(m->epfd);
		if (m->tfd >= 0)
			close(m->tfd);
		for (int i = 0; i < QM_NSTRS; i++)
			free(m->strs[i]);
		free(m);
		return err;
	}
	if (m->o.trace_path) {
		/* A new file, never through a link; an existing one only
		 * when asked (it may be another run's trace, or not a trace). */
		int fd = open(m->o.trace_path,
			      O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC |
				      (m->o.trace_overwrite ? O_TRUNC : O_EXCL),
			      0644);

		m->trace = fd >= 0 ? fdopen(fd, "w") : NULL;
		if (!m->trace) {
			int err = -errno;

			if (fd >= 0)
				close(fd);
			close(m->epfd);
			close(m->tfd);
			for (int i = 0; i < QM_NSTRS; i++)
				free(m->strs[i]);
			free(m);
			return err;
		}
	}
	qm_watch_fd(m, m->tfd);
	m->t_start_ns = qm_now_ns();
	m->deadline_ns = m->t_start_ns + (int64_t)m->o.timeout_ms * 1000000;
	m->res.verified = -1;
	m->res.switchover_ms = -1;
	m->res.guest_downtime_ms = -1;
	m->res.memory_verified = -1;
	m->res.disks_verified = -1;
	m->res.guest_slowdown = -1;
	m->phase = QMIG_PHASE_INIT;
	m->guest_ops = qm_guest_default();
	{
		int jr = qm_journal_init(m);

		if (jr < 0) {
			close(m->epfd);
			close(m->tfd);
			if (m->trace)
				fclose(m->trace);
			for (int i = 0; i < QM_NSTRS; i++)
				free(m->strs[i]);
			free(m);
			return jr;
		}
	}
	*out = m;
	return 0;
}

int qmig_migration_set_guest_ops(struct qmig_migration *m, const struct qmig_guest_ops *ops)
{
	if (!m || (ops && (ops->version < 1 || ops->version > QMIG_GUEST_OPS_VERSION)))
		return -EINVAL;
	if (m->phase != QMIG_PHASE_INIT)
		return -EBUSY;
	m->guest_ops = ops;
	return 0;
}

static void side_release(struct side *s)
{
	qm_probe_free(s->hb);
	qmig_schema_free(s->schema);
	qmig_qmp_conn_close(s->qmp);
	qmig_vm_free(s->vm);
	json_object_put(s->orig_caps);
	json_object_put(s->orig_params);
	json_object_put(s->set_caps);
	json_object_put(s->set_params);
	s->hb = NULL;
	s->schema = NULL;
	s->qmp = NULL;
	s->vm = NULL;
	s->orig_caps = s->orig_params = s->set_caps = s->set_params = NULL;
}

static void unwatch_fiber(struct qmig_migration *m);
static void engine_turn(void *arg);

/* Freed before the end. No rollback here: it can take many seconds and
 * would call back into a caller that is tearing us down. A step suspended
 * mid-command is unwound (every wait fails at once), and the journal is
 * marked abandoned so that `qmigrate recover` (or qmig_recover_job) puts
 * things right by the ownership rule. Launched QEMUs die with the handle,
 * so their job leaves nothing to recover. An embedder who wants the
 * rollback calls qmig_migration_cancel() and drives process() to the end
 * before freeing (docs/API.md). */
static void abandon(struct qmig_migration *m)
{
	m->abandoned = 1;
	if (qm_fiber_waiting(m->fiber)) {
		qm_fiber_cancel(m->fiber);
		while (qm_fiber_run(m->fiber, engine_turn, m) == 0)
			;
	}
	if (!m->o.src_qmp) {
		qm_journal_remove(m);
		return;
	}
	qm_journal(m, NULL, "abandoned", NULL);
}

void qmig_migration_free(struct qmig_migration *m)
{
	if (!m)
		return;
	if (m->phase != QMIG_PHASE_INIT && !m->finished)
		abandon(m);
	unwatch_fiber(m);
	qm_fiber_free(m->fiber);
	qm_relay_release(m);
	side_release(&m->side[SRC]);
	side_release(&m->side[DST]);
	qm_policy_close(m);
	qmig_port_free(m->port);
	qm_storage_free(m);
	free(m->feat);
	qm_plan_clear(&m->plan);
	close(m->epfd);
	close(m->tfd);
	if (m->trace)
		fclose(m->trace);
	if (m->o.on_event.free)
		m->o.on_event.free(m->o.on_event.user_data);
	if (m->o.log.free)
		m->o.log.free(m->o.log.user_data);
	for (int i = 0; i < QM_NSTRS; i++)
		free(m->strs[i]);
	free(m);
}

int qmig_migration_get_fd(const struct qmig_migration *m)
{
	return m->epfd;
}

static int64_t step_due_ns(const struct qmig_migration *m);

/* The earliest of what the step and the relay halves need (0: nothing
 * but input). */
static int64_t next_due_ns(const struct qmig_migration *m)
{
	int64_t due = step_due_ns(m), relay = qm_relay_due_ns(m);

	return relay && (!due || relay < due) ? relay : due;
}

static int64_t step_due_ns(const struct qmig_migration *m)
{
	int64_t due = m->deadline_ns;

	if (m->kick)
		return qm_now_ns();
	/* A suspended step runs again when its wait is over, and only then:
	 * samples and deadlines wait for it (0: no deadline, only its fd). */
	if (qm_fiber_waiting(m->fiber))
		return m->fiber_due_ns;

	/* --timeout bounds only what the source owns: past the hand-over the
	 * deadline is no due time (else a postcopy outliving it would spin). */
	if (m->owner != OWNER_SOURCE || m->res.postcopy_started || m->phase >= QMIG_PHASE_CONFIRM)
		due = qm_now_ns() + 1000000000LL;
	if (m->next_sample_ns && m->next_sample_ns < due)
		due = m->next_sample_ns;
	if (m->wait_until_ns && m->wait_until_ns < due)
		due = m->wait_until_ns;
	return due;
}

int qmig_migration_get_timeout(const struct qmig_migration *m)
{
	int64_t due = m->finished ? 0 : next_due_ns(m), left;

	if (!due)
		return -1;
	left = due - qm_now_ns();
	if (left <= 0)
		return 0;
	return (int)((left + 999999) / 1000000);
}

/* Keep the timerfd armed for the next due time, so that polling the epoll
 * fd alone (without our timeout) still wakes the caller. Its system calls
 * only when they matter: a relay moving a stream wakes us tens of
 * thousands of times a second, and a timerfd_settime and a read at every
 * wake were 7% of qmigrate's CPU. A timer armed earlier than needed stays
 * (it wakes us once, and we arm it again then); only one that fired is
 * read, and only a later one or none is replaced by an earlier due time. */
static void arm_timer(struct qmig_migration *m)
{
	struct itimerspec its = {0};
	int64_t due = m->finished ? 0 : next_due_ns(m);
	uint64_t junk;

	/* A one-shot timer that fired is disarmed; one due a moment ago may
	 * fire a little later, and is read at the wake it makes then. */
	if (m->tfd_due && qm_now_ns() >= m->tfd_due && read(m->tfd, &junk, sizeof(junk)) > 0)
		m->tfd_due = 0;
	if (!due && m->tfd_due) {
		timerfd_settime(m->tfd, TFD_TIMER_ABSTIME, &its, NULL); /* disarm */
		m->tfd_due = 0;
	}
	if (!due || (m->tfd_due && m->tfd_due <= due))
		return;
	its.it_value.tv_sec = due / 1000000000;
	its.it_value.tv_nsec = due % 1000000000;
	if (!its.it_value.tv_sec && !its.it_value.tv_nsec)
		its.it_value.tv_nsec = 1;
	timerfd_settime(m->tfd, TFD_TIMER_ABSTIME, &its, NULL);
	m->tfd_due = due;
}

static void drain_side(struct qmig_migration *m, struct side *s)
{
	int r;

	if (s->qmp) {
		r = qmig_qmp_conn_process(s->qmp);
		if (r < 0 && s->quitting) {
			/* The QEMU we told to quit has done so. */
			qmig_qmp_conn_close(s->qmp);
			s->qmp = NULL;
		} else if (r < 0 && !m->error && m->phase < QMIG_PHASE_DONE) {
			qm_qmp_fail(m, s, r, "QMP connection lost");
			qmig_qmp_conn_close(s->qmp);
			s->qmp = NULL;
		}
	}
	if (s->hb)
		qm_probe_process(s->hb);
}

static int64_t thread_cpu_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* One turn of the engine, run on the fiber: every wait inside it (a QMP
 * round trip, a launch, a RAM comparison's pauses) suspends the fiber and
 * returns from process() instead of blocking the caller. */
static void engine_turn(void *arg)
{
	struct qmig_migration *m = arg;

	m->step_r = qm_phase_step(m);
}

static void unwatch_fiber(struct qmig_migration *m)
{
	if (m->fiber && m->fiber_wfd >= 0) {
		epoll_ctl(m->epfd, EPOLL_CTL_DEL, m->fiber_wfd, NULL);
		close(m->fiber_wfd);
	}
	m->fiber_wfd = -1;
	m->fiber_due_ns = 0;
}

/* The fiber waits: put what it waits for into the caller's view (the epoll
 * fd and the timer). A dup of its fd gets a registration of its own, with
 * the events it wants, whatever else watches the same socket. */
static int watch_fiber(struct qmig_migration *m)
{
	int fd;
	short events;
	int64_t due;

	qm_fiber_wants(m->fiber, &fd, &events, &due);
	m->fiber_due_ns = due;
	if (fd >= 0) {
		struct epoll_event ev = {.events = (events & POLLIN ? EPOLLIN : 0) |
						   (events & POLLOUT ? EPOLLOUT : 0)};

		m->fiber_wfd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
		if (m->fiber_wfd < 0)
			return -errno;
		ev.data.fd = m->fiber_wfd;
		if (epoll_ctl(m->epfd, EPOLL_CTL_ADD, m->fiber_wfd, &ev) < 0) {
			int err = -errno;

			close(m->fiber_wfd);
			m->fiber_wfd = -1;
			return err;
		}
	}
	return 0;
}

int qmig_migration_process(struct qmig_migration *m)
{
	int64_t cpu0 = thread_cpu_ns();
	int r;

	if (m->finished)
		return 1;
	if (!m->fiber) {
		r = qm_fiber_new(&m->fiber, 0);
		if (r < 0)
			return r;
		m->fiber_wfd = -1;
	}
	/* Outside the fiber, so that a suspended step does not hold up the
	 * heartbeats or the other side's events (a connection with a call in
	 * progress is left to that call). */
	drain_side(m, &m->side[SRC]);
	drain_side(m, &m->side[DST]);
	qm_relay_pump(m);
	/* Before the step: the result record is emitted from inside it. */
	m->res.engine_cpu_ms += (thread_cpu_ns() - cpu0) / 1e6;
	cpu0 = thread_cpu_ns();
	unwatch_fiber(m);
	m->kick = 0;
	r = qm_fiber_run(m->fiber, engine_turn, m);
	if (r < 0)
		return r; /* called from inside one of our own callbacks */
	if (r == 0 && (r = watch_fiber(m)) < 0)
		return r;
	m->res.engine_cpu_ms += (thread_cpu_ns() - cpu0) / 1e6;
	arm_timer(m);
	return qm_fiber_waiting(m->fiber) ? 0 : m->step_r;
}

int qmig_migration_run(struct qmig_migration *m)
{
	struct pollfd pfd = {.fd = m->epfd, .events = POLLIN};
	int r;

	/* Level-triggered: process() drains what made the fd readable. */
	while ((r = qmig_migration_process(m)) == 0)
		if (poll(&pfd, 1, qmig_migration_get_timeout(m)) < 0 && errno != EINTR)
			return -errno;
	return r < 0 ? r : m->res.error;
}

void qmig_migration_cancel(struct qmig_migration *m)
{
	if (m && !m->finished)
		m->cancel_requested = 1;
}

enum qmig_phase qmig_migration_phase(const struct qmig_migration *m)
{
	return m->phase;
}

void qmig_migration_last_sample(const struct qmig_migration *m, struct qmig_sample *out)
{
	qm_out_copy(out, &m->last, sizeof(m->last));
}

void qmig_migration_result(const struct qmig_migration *m, struct qmig_result *out)
{
	qm_out_copy(out, &m->res, sizeof(m->res));
}

const char *qmig_migration_error(const struct qmig_migration *m)
{
	return m->err;
}

