/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The engine's side of a guest plug-in (qmig_guest.h): the only code that
 * calls a struct qmig_guest_ops. It checks what the plug-in left out, sizes
 * the output structs, and does the one thing a plug-in must not: wait
 * (through qm_wait_fd, so a wait suspends the migration's step).
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>

#include "qm_wait.h"
#include "launch/launch.h"
#include "guest.h"

struct qm_probe {
	const struct qmig_guest_ops *ops;
	void *p;
};

const struct qmig_guest_ops *qm_guest_default(void)
{
	return qm_launch_guest_ops();
}

int qmig_guest_yield(void)
{
	return qm_yield();
}

int qm_probe_open(struct qm_probe **out, const struct qmig_guest_ops *ops,
		  const char *serial_socket)
{
	struct qm_probe *p;
	int r;

	if (!out || !serial_socket)
		return -EINVAL;
	if (ops && (ops->version < 1 || ops->version > QMIG_GUEST_OPS_VERSION))
		return -EINVAL;
	if (!ops || !ops->probe_open || !ops->probe_fd || !ops->probe_process ||
	    !ops->probe_get)
		return -ENOTSUP;
	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->ops = ops;
	r = ops->probe_open(&p->p, serial_socket, ops->user_data);
	if (r < 0) {
		free(p);
		return r;
	}
	*out = p;
	return 0;
}

void qm_probe_free(struct qm_probe *p)
{
	if (!p)
		return;
	if (p->ops->probe_close)
		p->ops->probe_close(p->p);
	free(p);
}

int qm_probe_fd(const struct qm_probe *p)
{
	return p ? p->ops->probe_fd(p->p) : -1;
}

int qm_probe_process(struct qm_probe *p)
{
	return p ? p->ops->probe_process(p->p) : 0;
}

void qm_probe_get(const struct qm_probe *p, struct qmig_guest_stats *out)
{
	memset(out, 0, sizeof(*out));
	out->size = sizeof(*out);
	if (p)
		p->ops->probe_get(p->p, out);
	out->size = sizeof(*out);
}

int qm_probe_wait(struct qm_probe *p, unsigned n, int timeout_ms)
{
	int64_t end = qm_wait_now_ns() + (int64_t)timeout_ms * 1000000;
	struct qmig_guest_stats st;
	uint64_t want;
	int r;

	if (!p)
		return -EINVAL;
	qm_probe_get(p, &st);
	want = st.beats + n;
	for (;;) {
		r = qm_probe_process(p);
		if (r < 0)
			return r;
		qm_probe_get(p, &st);
		if (st.beats >= want)
			return 0;
		if (qm_wait_now_ns() >= end)
			return -ETIMEDOUT;
		r = qm_wait_fd(qm_probe_fd(p), POLLIN, end);
		if (r < 0)
			return r;
	}
}

int qm_probe_can_check(const struct qm_probe *p)
{
	struct qmig_guest_stats st;

	if (!p || !p->ops->check_ask || !p->ops->check_answer)
		return 0;
	qm_probe_get(p, &st);
	return st.self_check;
}

int qm_probe_check_ask(struct qm_probe *p, struct qmig_qmp_conn *conn)
{
	if (!p || !p->ops->check_ask || !p->ops->check_answer)
		return -ENOTSUP;
	return p->ops->check_ask(p->p, conn);
}

int qm_probe_check_answer(struct qm_probe *p, struct qmig_verify_report *rep)
{
	if (!p || !p->ops->check_answer)
		return -ENOTSUP;
	memset(rep, 0, sizeof(*rep));
	return p->ops->check_answer(p->p, rep);
}

int qm_guest_verify(const struct qmig_guest_ops *ops, struct qmig_qmp_conn *conn,
		    const char *dir, struct qmig_verify_report *rep)
{
	if (!ops || !ops->verify_memory)
		return -ENOTSUP;
	if (ops->version < 1 || ops->version > QMIG_GUEST_OPS_VERSION)
		return -EINVAL;
	memset(rep, 0, sizeof(*rep));
	return ops->verify_memory(conn, dir, rep, ops->user_data);
}
