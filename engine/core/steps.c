/* What the parts of the engine share to build a plan: the list of steps
 * each part adds to (storage's NBD and mirror, TLS objects, the plan's own
 * capabilities and parameters), a side's schema, the port and its URI. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core.h"

static int add_step(struct plan *p, enum side_id side, const char *cmd,
		    struct json_object *args, const char *why)
{
	if (p->n == p->cap) {
		int cap = p->cap ? p->cap * 2 : 8;
		struct plan_step *n = realloc(p->steps, cap * sizeof(*n));

		if (!n) {
			json_object_put(args);
			return -ENOMEM;
		}
		p->steps = n;
		p->cap = cap;
	}
	p->steps[p->n++] = (struct plan_step){side, strdup(cmd), args, why};
	return 0;
}

int qm_plan_add(struct qmig_migration *m, enum side_id side, const char *cmd,
		struct json_object *args, const char *why)
{
	return add_step(&m->plan, side, cmd, args, why);
}

void qm_plan_clear(struct plan *p)
{
	for (int i = 0; i < p->n; i++) {
		free(p->steps[i].command);
		json_object_put(p->steps[i].args);
	}
	free(p->steps);
	memset(p, 0, sizeof(*p));
}

int qm_alloc_port(struct qmig_migration *m)
{
	struct qmig_port_opts po = QMIG_PORT_OPTS_INIT;
	char msg[256] = "";
	int r;

	qmig_port_free(m->port);
	m->port = NULL;
	po.lo = m->o.port_lo;
	po.hi = m->o.port_hi;
	po.bind_addr = m->o.listen_addr;
	po.lock_dir = m->o.port_lock_dir;
	/* With the relay, the destination half listens, not QEMU. */
	po.netns = qm_relay_on(m) ? m->o.relay_dst_netns : m->o.dst_netns;
	r = qmig_port_alloc(&m->port, &po, msg, sizeof(msg));
	if (r == -EADDRNOTAVAIL && !po.netns) {
		/* The destination listens on another host (or in a namespace we
		 * were not told of): its bind cannot be tried from here, so the
		 * port is only locked against our own processes, and a port QEMU
		 * cannot bind is retried (retry_incoming). */
		qm_log(m, QMIG_LOG_INFO, "port: %s is not an address here; the port is "
					 "checked on this host only", po.bind_addr);
		po.bind_addr = NULL;
		r = qmig_port_alloc(&m->port, &po, msg, sizeof(msg));
	}
	if (r < 0)
		return qm_fail(m, r, "port: %s", *msg ? msg : strerror(-r));
	m->res.port = qmig_port_number(m->port);
	return 0;
}

void qm_tcp_uri(char *buf, size_t len, const char *host, unsigned port)
{
	int n = snprintf(buf, len, "tcp:");

	qmig_addr_format(buf + n, len - (size_t)n, host, port);
}

/* The schema of one side, probed on first use; NULL if that failed. */
struct qmig_schema *qm_side_schema(struct qmig_migration *m, struct side *s)
{
	int r;

	if (!s->schema && s->qmp) {
		r = qmig_schema_probe(&s->schema, s->qmp);
		if (r < 0)
			qm_log(m, QMIG_LOG_WARN, "%s: query-qmp-schema: %s", s->name,
			       qmig_qmp_conn_error(s->qmp));
	}
	return s->schema;
}

