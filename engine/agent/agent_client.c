/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The source side of a migration through a destination agent: hello,
 * prepare (possibly queued), the QMP tunnel offered as a local unix
 * socket, then finish + confirm, or abort. docs/PROTOCOL.md is the
 * contract. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stddef.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "agent.h"
#include "core/core.h"
#include "qm_wait.h"
#include "qmig_commands.h"
#include "qmig_migrate.h"
#include "qmig_transport.h"

#define MS 1000000LL

struct qmig_agent_session {
	struct qmig_agent_opts o;
	SSL_CTX *ctx;
	struct qm_aconn ctl, tun;
	int have_ctl, have_tun;
	char host[QMIG_HOST_MAX];
	unsigned ctl_port;
	char job[64], token[80], listen_addr[QMIG_HOST_MAX], dst_tls_dir[512];
	unsigned port, port_hi;      /* with disks: port_hi = port + 1 (NBD) */
	uint64_t max_bw;
	struct json_object *disks;   /* the prepare's "disks" (a storage copy) */
	char dir[128], sock[160], lockdir[160];
	int listen_fd, client_fd, ep;
	int lost;
	int64_t t0, t_prepared, t_tunnel, launch_ms; /* monotonic ns; the agent's ms */
	int ssh;            /* connections come from o.connect */
	/* Tunnel -> engine bytes the engine's socket could not take yet: the
	 * tunnel is not read again until they are written (backpressure), and
	 * process() never waits on the engine, which runs in the same loop. */
	char pend[16384];
	size_t pend_len;
	char *err;
};

/* The local ends of live sessions' QMP tunnels: a migration whose
 * destination QMP is one of them has its destination on another host
 * (qm_agent_remote_dst). */
static pthread_mutex_t remote_lock = PTHREAD_MUTEX_INITIALIZER;
static struct qmig_agent_session *remote_list[64];

static void remote_add(struct qmig_agent_session *s)
{
	pthread_mutex_lock(&remote_lock);
	for (size_t i = 0; i < sizeof(remote_list) / sizeof(remote_list[0]); i++)
		if (!remote_list[i]) {
			remote_list[i] = s;
			break;
		}
	pthread_mutex_unlock(&remote_lock);
}

static void remote_del(struct qmig_agent_session *s)
{
	pthread_mutex_lock(&remote_lock);
	for (size_t i = 0; i < sizeof(remote_list) / sizeof(remote_list[0]); i++)
		if (remote_list[i] == s)
			remote_list[i] = NULL;
	pthread_mutex_unlock(&remote_lock);
}

int qm_agent_remote_dst(const char *dst_qmp)
{
	int r = 0;

	if (!dst_qmp)
		return 0;
	pthread_mutex_lock(&remote_lock);
	for (size_t i = 0; !r && i < sizeof(remote_list) / sizeof(remote_list[0]); i++)
		r = remote_list[i] && !strcmp(remote_list[i]->sock, dst_qmp);
	pthread_mutex_unlock(&remote_lock);
	return r;
}

/* The caller's options, as long as its version has them. */
static void copy_opts(struct qmig_agent_opts *to, const struct qmig_agent_opts *from)
{
	memset(to, 0, sizeof(*to));
	memcpy(to, from, from->version >= 3 ? sizeof(*to)
			 : from->version == 2 ? offsetof(struct qmig_agent_opts, queued)
					      : offsetof(struct qmig_agent_opts, stream_tls_dir));
	to->version = QMIG_AGENT_OPTS_VERSION;
}

static void slog(struct qmig_agent_session *s, enum qmig_log_level lvl, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void slog(struct qmig_agent_session *s, enum qmig_log_level lvl, const char *fmt, ...)
{
	char buf[512];
	va_list ap;

	if (!s->o.log.fn)
		return;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	s->o.log.fn(lvl, buf, s->o.log.user_data);
}

static int64_t deadline(const struct qmig_agent_session *s)
{
	return qm_wait_now_ns() + (int64_t)(s->o.timeout_ms ? s->o.timeout_ms : 30000) * MS;
}

static int parse_url(struct qmig_agent_session *s, char *msg, size_t len)
{
	const char *u = s->o.url, *p = "qmigrate+tls://";

	if (!strncmp(u, "ssh://", 6)) {
		const char *at = strchr(u + 6, '@');

		if (!s->o.connect.fn) {
			snprintf(msg, len, "%s needs a connect callback", u);
			return -EINVAL;
		}
		s->ssh = 1;
		u = at ? at + 1 : u + 6;
	} else if (strncmp(u, p, strlen(p))) {
		snprintf(msg, len, "'%s' is not qmigrate+tls://HOST[:PORT] or ssh://[USER@]HOST",
			 u);
		return -EINVAL;
	} else {
		u += strlen(p);
	}
	if (strchr(u, '/') || qmig_addr_parse(u, QMIG_AGENT_PORT_DEFAULT, s->host,
					       sizeof(s->host), &s->ctl_port) < 0 || !*s->host) {
		snprintf(msg, len, "'%s' is not qmigrate+tls://HOST[:PORT]", s->o.url);
		return -EINVAL;
	}
	return 0;
}

/* Open one connection to the agent and say hello. */
static int open_conn(struct qmig_agent_session *s, struct qm_aconn *c, char *msg, size_t len)
{
	struct json_object *m, *rep = NULL;
	int64_t v = 0;
	int fd, r;

	if (s->ssh) {
		int rfd = -1, wfd = -1;

		r = s->o.connect.fn(&rfd, &wfd, s->o.connect.user_data);
		if (r < 0) {
			snprintf(msg, len, "cannot reach the agent through %s: %s", s->o.url,
				 strerror(-r));
			return r;
		}
		fcntl(rfd, F_SETFL, fcntl(rfd, F_GETFL) | O_NONBLOCK);
		fcntl(wfd, F_SETFL, fcntl(wfd, F_GETFL) | O_NONBLOCK);
		qm_aconn_plain(c, rfd, wfd, 1);
	} else {
		fd = qmig_tcp_connect(s->host, s->ctl_port, s->o.timeout_ms ? s->o.timeout_ms : 30000,
				      msg, len);
		if (fd < 0) {
			if (!*msg)
				snprintf(msg, len, "cannot connect to the agent at %s port %u: %s",
					 s->host, s->ctl_port, strerror(-fd));
			return fd;
		}
		r = qm_aconn_tls(c, s->ctx, fd, 0, s->host, deadline(s));
		if (r < 0) {
			snprintf(msg, len, "agent %s:%u: %s", s->host, s->ctl_port, c->err);
			qm_aconn_close(c);
			return r == -ECONNRESET ? -EACCES : r;
		}
	}
	m = json_object_new_object();
	json_object_object_add(m, "op", json_object_new_string("hello"));
	json_object_object_add(m, "version", json_object_new_int(QMIG_AGENT_PROTOCOL));
	json_object_object_add(m, "client", json_object_new_string("qmigrate " QMIG_VERSION));
	r = qm_aconn_send(c, m, deadline(s));
	json_object_put(m);
	if (r == 0)
		r = qm_aconn_recv(c, &rep, deadline(s));
	if (r < 0) {
		/* A server that refuses our certificate closes after the handshake. */
		snprintf(msg, len, "agent: no hello: %s%s", c->err,
			 r == -ECONNRESET ? " (was our client certificate refused?)" : "");
		qm_aconn_close(c);
		return r == -ECONNRESET ? -EACCES : r;
	}
	if (!json_object_get_boolean(json_object_object_get(rep, "ok")) ||
	    qm_aj_int(rep, "version", &v) < 0 || v != QMIG_AGENT_PROTOCOL) {
		snprintf(msg, len, "agent refused hello: %s",
			 qm_aj_str(rep, "message") ? qm_aj_str(rep, "message")
						   : "protocol version mismatch");
		json_object_put(rep);
		qm_aconn_close(c);
		return -EPROTO;
	}
	json_object_put(rep);
	return 0;
}

/* A reply that is not ok: its message, -EACCES. */
static int refused(struct json_object *rep, const char *what, char *msg, size_t len)
{
	const char *e = qm_aj_str(rep, "error"), *t = qm_aj_str(rep, "message");

	snprintf(msg, len, "agent refused %s: %s%s%s%s", what, t ? t : "no reason given",
		 e ? " (" : "", e ? e : "", e ? ")" : "");
	return -EACCES;
}

/* A storage copy: the disks the engine will mirror (writable, with a
 * medium; those in migrate_disks when given), for the agent to create
 * images of the same size. Into s->disks. */
static int describe_disks(struct qmig_agent_session *s, struct qmig_qmp_conn *q, char *msg,
			  size_t len)
{
	struct qmig_block_dev *b = NULL;
	int n = 0, r;

	r = qmig_cmd_query_block(q, &b, &n);
	if (r < 0) {
		snprintf(msg, len, "source: query-block failed");
		return r;
	}
	s->disks = json_object_new_array();
	for (int i = 0; i < n; i++) {
		struct json_object *d;

		if (!b[i].inserted || b[i].ro ||
		    (s->o.migrate_disks && !qm_listed(s->o.migrate_disks, b[i].name)))
			continue;
		d = json_object_new_object();
		json_object_object_add(d, "device", json_object_new_string(b[i].name));
		json_object_object_add(d, "size", json_object_new_int64((int64_t)b[i].virtual_size));
		json_object_object_add(d, "format", json_object_new_string(b[i].format));
		json_object_array_add(s->disks, d);
	}
	free(b);
	if (!json_object_array_length(s->disks)) {
		snprintf(msg, len, "storage: the source has no writable disk to copy%s%s",
			 s->o.migrate_disks ? " named in " : "",
			 s->o.migrate_disks ? s->o.migrate_disks : "");
		return -ENODEV;
	}
	return 0;
}

static int describe_vm(struct qmig_agent_session *s, struct json_object *vm, char *msg,
		       size_t len)
{
	struct qmig_qmp_conn_opts co = QMIG_QMP_CONN_OPTS_INIT;
	struct qmig_qmp_conn *q;
	uint64_t mem = 0;
	int r;

	if (!s->o.src_qmp)
		return 0;
	r = qmig_qmp_conn_open(&q, s->o.src_qmp, &co);
	if (r < 0) {
		snprintf(msg, len, "source QMP %s: %s", s->o.src_qmp, strerror(-r));
		return r;
	}
	r = qmig_cmd_query_memory_size(q, &mem);
	if (r < 0) {
		qmig_qmp_conn_close(q);
		snprintf(msg, len, "source: query-memory-size-summary failed");
		return r;
	}
	json_object_object_add(vm, "mem", json_object_new_int64((int64_t)mem));
	if (s->o.copy_storage)
		r = describe_disks(s, q, msg, len);
	qmig_qmp_conn_close(q);
	return r;
}

/* A public certificate of this host's stream directory, for the agent. */
static int read_pem(const char *dir, const char *name, const char *key, struct json_object *to,
		    char *msg, size_t len)
{
	char path[PATH_MAX], buf[16384];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		snprintf(msg, len, "TLS: %s: %s", path, strerror(errno));
		return -errno;
	}
	n = read(fd, buf, sizeof(buf));
	close(fd);
	if (n <= 0 || n == (ssize_t)sizeof(buf)) {
		snprintf(msg, len, "TLS: %s: %s", path, n < 0 ? strerror(errno)
							 : "empty or over 16 KiB");
		return -EINVAL;
	}
	json_object_object_add(to, key, json_object_new_string_len(buf, (int)n));
	return 0;
}

/* "tls" in the prepare: the destination's certificates are the agent's,
 * on its host; it checks them against what the source will use. */
static int stream_tls(struct qmig_agent_session *s, struct json_object *m, char *msg,
		      size_t len)
{
	struct json_object *t = json_object_new_object();
	int r;

	json_object_object_add(t, "hostname", json_object_new_string(
			       s->o.stream_tls_hostname ? s->o.stream_tls_hostname : s->host));
	r = read_pem(s->o.stream_tls_dir, "ca-cert.pem", "ca_cert", t, msg, len);
	if (r == 0)
		r = read_pem(s->o.stream_tls_dir, "client-cert.pem", "client_cert", t, msg, len);
	json_object_object_add(m, "tls", t);
	return r;
}

static int prepare_send(struct qmig_agent_session *s, char *msg, size_t len)
{
	struct json_object *m = json_object_new_object(), *set = json_object_new_object();
	struct json_object *vm = json_object_new_object();
	int r;

	r = describe_vm(s, vm, msg, len);
	for (const char *const *kv = s->o.set; r == 0 && kv && *kv; kv++) {
		const char *eq = strchr(*kv, '=');
		char key[64];

		if (!eq || eq == *kv || (size_t)(eq - *kv) >= sizeof(key)) {
			snprintf(msg, len, "--set '%s' is not KEY=VALUE", *kv);
			r = -EINVAL;
			break;
		}
		snprintf(key, sizeof(key), "%.*s", (int)(eq - *kv), *kv);
		json_object_object_add(set, key, json_object_new_string(eq + 1));
	}
	if (r == 0 && s->o.stream_tls_dir)
		r = stream_tls(s, m, msg, len);
	json_object_object_add(m, "op", json_object_new_string("prepare"));
	json_object_object_add(m, "job", json_object_new_string(s->job));
	json_object_object_add(m, "profile", json_object_new_string(s->o.profile));
	json_object_object_add(m, "vm", vm);
	json_object_object_add(m, "set", set);
	if (s->disks)
		json_object_object_add(m, "disks", json_object_get(s->disks));
	if (r == 0)
		r = qm_aconn_send(&s->ctl, m, deadline(s));
	json_object_put(m);
	return r;
}

/* The prepare's answer: "prepared" (after a "queued" or not). *queued is
 * set when the agent said the request waits for a place. */
static int prepare_wait(struct qmig_agent_session *s, int *queued, char *msg, size_t len)
{
	struct json_object *rep = NULL;
	int64_t qdl = qm_wait_now_ns() +
		      (int64_t)(s->o.queue_timeout_ms ? s->o.queue_timeout_ms : 600000) * MS;
	int64_t port = 0;
	int r = 0;

	while (r == 0) {
		const char *st;

		r = qm_aconn_recv(&s->ctl, &rep, qdl);
		if (r < 0) {
			snprintf(msg, len, "agent: prepare: %s", s->ctl.err);
			break;
		}
		if (!json_object_get_boolean(json_object_object_get(rep, "ok"))) {
			r = refused(rep, "prepare", msg, len);
			break;
		}
		st = qm_aj_str(rep, "status");
		if (st && !strcmp(st, "queued")) {
			int64_t pos = 0;

			qm_aj_int(rep, "position", &pos);
			/* The caller first: once the log says queued, its record is there. */
			if (s->o.queued.fn)
				s->o.queued.fn((long)pos, s->o.queued.user_data);
			slog(s, QMIG_LOG_WARN, "agent: queued (position %lld): the destination "
					       "host's inbound limit is reached; waiting", (long long)pos);
			*queued = 1;
			json_object_put(rep);
			rep = NULL;
			continue;
		}
		if (!st || strcmp(st, "prepared") || !qm_aj_str(rep, "token") ||
		    qm_aj_int(rep, "port", &port) < 0 || port < 1 || port > 65535 ||
		    !qm_aj_str(rep, "listen_addr")) {
			snprintf(msg, len, "agent: a prepare reply without status, token, port "
					   "or listen_addr");
			r = -EPROTO;
			break;
		}
		snprintf(s->token, sizeof(s->token), "%s", qm_aj_str(rep, "token"));
		s->port_hi = (unsigned)port;
		if (s->disks) {
			/* The NBD server's port: the agent reserved the next one. */
			int64_t hi = 0;

			if (qm_aj_int(rep, "port_hi", &hi) < 0 || hi != port + 1) {
				snprintf(msg, len, "agent: no port for the NBD server in the prepare "
						   "reply (an agent older than the storage copy?)");
				r = -EPROTO;
				break;
			}
			s->port_hi = (unsigned)hi;
		}
		snprintf(s->listen_addr, sizeof(s->listen_addr), "%s", qm_aj_str(rep, "listen_addr"));
		if (qm_aj_str(rep, "tls_dir"))
			snprintf(s->dst_tls_dir, sizeof(s->dst_tls_dir), "%s",
				 qm_aj_str(rep, "tls_dir"));
		if (s->o.stream_tls_dir && !*s->dst_tls_dir) {
			snprintf(msg, len, "agent: the stream is to use TLS but the agent named no "
					   "certificate directory for its QEMU (start it with --tls DIR)");
			r = -EPROTO;
			break;
		}
		s->port = (unsigned)port;
		if (qm_aj_int(rep, "max_bandwidth", &port) == 0 && port > 0)
			s->max_bw = (uint64_t)port;
		qm_aj_int(rep, "launch_ms", &s->launch_ms);
		s->t_prepared = qm_wait_now_ns();
		break;
	}
	json_object_put(rep);
	return r;
}

static int open_tunnel(struct qmig_agent_session *s, char *msg, size_t len)
{
	struct json_object *m, *rep = NULL;
	int r;

	if (!s->have_tun) {
		r = open_conn(s, &s->tun, msg, len);
		if (r < 0)
			return r;
		s->have_tun = 1;
	}
	m = json_object_new_object();
	json_object_object_add(m, "op", json_object_new_string("qmp"));
	json_object_object_add(m, "job", json_object_new_string(s->job));
	json_object_object_add(m, "token", json_object_new_string(s->token));
	r = qm_aconn_send(&s->tun, m, deadline(s));
	json_object_put(m);
	if (r == 0)
		r = qm_aconn_recv(&s->tun, &rep, deadline(s));
	if (r < 0) {
		snprintf(msg, len, "agent: QMP tunnel: %s", s->tun.err);
		return r;
	}
	if (!json_object_get_boolean(json_object_object_get(rep, "ok")))
		r = refused(rep, "the QMP tunnel", msg, len);
	json_object_put(rep);
	return r;
}

/* Sessions of processes that died (kill -9) left their directory: the
 * name carries the pid, so the next session removes it. */
static void gc_local(const char *base)
{
	DIR *d = opendir(base);
	struct dirent *e;

	while (d && (e = readdir(d))) {
		char path[PATH_MAX], f[PATH_MAX + 32], proc[32];
		long pid;
		char *end;

		if (strncmp(e->d_name, "qmig-agent-", 11))
			continue;
		pid = strtol(e->d_name + 11, &end, 10);
		if (pid <= 0 || *end != '-' || pid == getpid())
			continue;
		snprintf(proc, sizeof(proc), "/proc/%ld", pid);
		if (access(proc, F_OK) == 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", base, e->d_name);
		snprintf(f, sizeof(f), "%s/dst-qmp.sock", path);
		unlink(f);
		snprintf(f, sizeof(f), "%s/ports", path);
		rmdir(f);
		rmdir(path);
	}
	if (d)
		closedir(d);
}

static const char *local_base(void)
{
	const char *base = getenv("XDG_RUNTIME_DIR");

	return !base || !*base || strlen(base) > 60 ? "/tmp" : base;
}

static int make_local(struct qmig_agent_session *s, char *msg, size_t len)
{
	const char *base = local_base();
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	struct epoll_event ev = {.events = EPOLLIN};

	snprintf(s->dir, sizeof(s->dir), "%s/qmig-agent-%d-XXXXXX", base, (int)getpid());
	if (!mkdtemp(s->dir)) {
		snprintf(msg, len, "cannot create a directory in %s: %s", base, strerror(errno));
		*s->dir = 0;
		return -errno;
	}
	snprintf(s->sock, sizeof(s->sock), "%s/dst-qmp.sock", s->dir);
	snprintf(s->lockdir, sizeof(s->lockdir), "%s/ports", s->dir);
	if (mkdir(s->lockdir, 0700) < 0)
		return -errno;
	if (strlen(s->sock) >= sizeof(a.sun_path))
		return -ENAMETOOLONG;
	memcpy(a.sun_path, s->sock, strlen(s->sock) + 1);
	s->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (s->listen_fd < 0 || bind(s->listen_fd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
	    listen(s->listen_fd, 1) < 0) {
		snprintf(msg, len, "cannot listen on %s: %s", s->sock, strerror(errno));
		return -errno;
	}
	s->ep = epoll_create1(EPOLL_CLOEXEC);
	if (s->ep < 0)
		return -errno;
	/* The tunnel joins the set when the engine connects: until then
	 * QEMU's greeting waits in the socket for it. */
	ev.data.fd = s->listen_fd;
	epoll_ctl(s->ep, EPOLL_CTL_ADD, s->listen_fd, &ev);
	return 0;
}

static void make_job_id(struct qmig_agent_session *s)
{
	struct timespec ts;

	if (s->o.job_id) {
		snprintf(s->job, sizeof(s->job), "%s", s->o.job_id);
		return;
	}
	clock_gettime(CLOCK_REALTIME, &ts);
	snprintf(s->job, sizeof(s->job), "m%ld-%d-%03ld", (long)ts.tv_sec, (int)getpid(),
		 (long)(ts.tv_nsec / 1000000));
}

int qmig_agent_session_new(struct qmig_agent_session **out, const struct qmig_agent_opts *o,
			   char *msg, size_t msg_len)
{
	struct qmig_agent_session *s;
	char dummy[8];
	int r;

	if (!msg || !msg_len) {
		msg = dummy;
		msg_len = sizeof(dummy);
	}
	*msg = 0;
	if (!out || !o || o->version < 1 || o->version > QMIG_AGENT_OPTS_VERSION || !o->url ||
	    !o->profile) {
		snprintf(msg, msg_len, "agent: options need a version, url and profile");
		return -EINVAL;
	}
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	copy_opts(&s->o, o);
	s->listen_fd = s->client_fd = s->ep = -1;
	s->ctl.rfd = s->ctl.wfd = s->tun.rfd = s->tun.wfd = -1;
	s->t0 = qm_wait_now_ns();
	make_job_id(s);
	r = parse_url(s, msg, msg_len);
	if (r == 0 && !s->ssh) {
		if (!o->tls_dir) {
			snprintf(msg, msg_len, "agent: qmigrate+tls:// needs a TLS directory");
			r = -EINVAL;
		} else if (!(s->ctx = qm_agent_tls_ctx(o->tls_dir, 0, msg, msg_len))) {
			r = -EKEYREJECTED;
		}
	}
	if (r == 0 && (r = open_conn(s, &s->ctl, msg, msg_len)) == 0)
		s->have_ctl = 1;
	if (r == 0)
		r = prepare_send(s, msg, msg_len);
	if (r == 0) {
		char early[256];
		int queued = 0;

		/* While the agent launches the destination (the longest step
		 * before the stream), do our own chores and open the tunnel's
		 * connection: its handshake and hello overlap the launch. */
		gc_local(local_base());
		if (open_conn(s, &s->tun, early, sizeof(early)) == 0)
			s->have_tun = 1; /* else: tried again, and reported, below */
		r = prepare_wait(s, &queued, msg, msg_len);
		if (r == 0 && queued && s->have_tun) {
			/* It idled through the queue: the agent may have closed it. */
			qm_aconn_close(&s->tun);
			s->have_tun = 0;
		}
	}
	if (r == 0)
		r = open_tunnel(s, msg, msg_len);
	s->t_tunnel = qm_wait_now_ns();
	if (r == 0)
		r = make_local(s, msg, msg_len);
	if (r < 0) {
		/* Tell the agent at once rather than by a dropped connection. */
		if (s->have_ctl && s->port) {
			struct json_object *m = json_object_new_object();

			json_object_object_add(m, "op", json_object_new_string("abort"));
			json_object_object_add(m, "job", json_object_new_string(s->job));
			qm_aconn_send(&s->ctl, m, qm_wait_now_ns() + 2000 * MS);
			json_object_put(m);
		}
		/* the caller keeps ownership on failure */
		s->o.log.free = NULL;
		s->o.connect.free = NULL;
		s->o.queued.free = NULL;
		qmig_agent_session_free(s);
		return r;
	}
	slog(s, QMIG_LOG_INFO, "agent: job %s prepared: destination listens on %s port %u",
	     s->job, s->listen_addr, s->port);
	/* Where the time before the first byte goes (bench/agent_latency.sh). */
	slog(s, QMIG_LOG_INFO, "agent: timing: prepared after %lld ms (the agent's launch of the "
	     "destination %lld ms), tunnel open %lld ms later",
	     (long long)((s->t_prepared - s->t0) / MS), (long long)s->launch_ms,
	     (long long)((s->t_tunnel - s->t_prepared) / MS));
	remote_add(s);
	*out = s;
	return 0;
}

int qmig_agent_session_apply(struct qmig_agent_session *s, struct qmig_migrate_opts *mo)
{
	if (!s || !mo)
		return -EINVAL;
	mo->dst_qmp = s->sock;
	mo->dst_addr = s->host;
	mo->listen_addr = s->listen_addr;
	mo->port_lo = s->port;
	mo->port_hi = s->port_hi ? s->port_hi : s->port;
	/* The port is the agent's, reserved on its host; ours only keeps our
	 * own processes apart. */
	mo->port_lock_dir = s->lockdir;
	/* The destination host's limit per migration. */
	if (s->max_bw && (!mo->max_bandwidth || mo->max_bandwidth > s->max_bw))
		mo->max_bandwidth = s->max_bw;
	/* The destination's certificates are where its QEMU runs: the
	 * agent's directory (checked by the agent at prepare). */
	if (mo->tls_dir && *s->dst_tls_dir)
		mo->tls_dst_dir = s->dst_tls_dir;
	return 0;
}

int qmig_agent_session_get_fd(const struct qmig_agent_session *s)
{
	return s ? s->ep : -1;
}

static void drop_client(struct qmig_agent_session *s)
{
	s->pend_len = 0;
	if (s->client_fd < 0)
		return;
	epoll_ctl(s->ep, EPOLL_CTL_DEL, s->client_fd, NULL);
	if (s->have_tun)
		epoll_ctl(s->ep, EPOLL_CTL_DEL, qm_aconn_fd(&s->tun), NULL);
	close(s->client_fd);
	s->client_fd = -1;
}

static int lose(struct qmig_agent_session *s, const char *why)
{
	if (!s->lost)
		slog(s, QMIG_LOG_WARN, "agent: the QMP tunnel is lost: %s", why);
	s->lost = 1;
	drop_client(s);
	if (s->have_tun) {
		qm_aconn_close(&s->tun);
		s->have_tun = 0;
	}
	return -ECONNRESET;
}

/* Write what the engine's socket takes now; keep the rest in pend and
 * watch the socket for room. 0, 1 when some is left, -EPIPE. */
static int to_client(struct qmig_agent_session *s, const char *p, size_t n)
{
	struct epoll_event ev = {.events = EPOLLIN, .data.fd = s->client_fd};

	while (n) {
		ssize_t w = write(s->client_fd, p, n);

		if (w > 0) {
			p += w;
			n -= (size_t)w;
		} else if (w < 0 && errno == EINTR) {
			continue;
		} else if (w < 0 && errno == EAGAIN) {
			break;
		} else {
			return -EPIPE;
		}
	}
	if (n > sizeof(s->pend))
		return -EPIPE; /* cannot happen: callers pass at most sizeof(pend) */
	/* p may point into pend itself: memmove. */
	memmove(s->pend, p, n);
	s->pend_len = n;
	ev.events = n ? EPOLLIN | EPOLLOUT : EPOLLIN;
	epoll_ctl(s->ep, EPOLL_CTL_MOD, s->client_fd, &ev);
	return n ? 1 : 0;
}

int qmig_agent_session_process(struct qmig_agent_session *s)
{
	char buf[16384];
	ssize_t n;

	if (!s)
		return -EINVAL;
	if (s->lost)
		return -ECONNRESET;
	if (s->client_fd < 0) {
		int fd = accept4(s->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd >= 0) {
			struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd};

			s->client_fd = fd;
			epoll_ctl(s->ep, EPOLL_CTL_ADD, fd, &ev);
			ev.data.fd = qm_aconn_fd(&s->tun);
			epoll_ctl(s->ep, EPOLL_CTL_ADD, ev.data.fd, &ev);
		}
	}
	if (s->client_fd < 0)
		return 0;
	/* Bytes the engine could not take yet go first. */
	if (s->pend_len) {
		int w = to_client(s, s->pend, s->pend_len);

		if (w < 0)
			drop_client(s);
	}
	/* The agent's side: QEMU's greeting, replies and events. */
	while (s->client_fd >= 0 && !s->pend_len) {
		int w;

		n = qm_aconn_read_now(&s->tun, buf, sizeof(s->pend));
		if (n == -EAGAIN)
			break;
		if (n <= 0)
			return lose(s, n == 0 ? "the agent closed it" : strerror((int)-n));
		w = to_client(s, buf, (size_t)n);
		if (w < 0) {
			drop_client(s);
			break;
		}
	}
	while (s->client_fd >= 0) {
		n = read(s->client_fd, buf, sizeof(buf));
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			break;
		if (n <= 0) {
			/* The engine is done with the destination's monitor. */
			drop_client(s);
			break;
		}
		if (qm_aconn_write(&s->tun, buf, (size_t)n, qm_wait_now_ns() + 5000 * MS) < 0)
			return lose(s, s->tun.err);
	}
	return 0;
}

static struct json_object *request(struct qmig_agent_session *s, const char *op, int *r)
{
	struct json_object *m = json_object_new_object(), *rep = NULL;

	json_object_object_add(m, "op", json_object_new_string(op));
	json_object_object_add(m, "job", json_object_new_string(s->job));
	*r = qm_aconn_send(&s->ctl, m, deadline(s));
	json_object_put(m);
	if (*r == 0)
		*r = qm_aconn_recv(&s->ctl, &rep, deadline(s) + 60000 * MS);
	return rep;
}

int qmig_agent_session_end(struct qmig_agent_session *s, const struct qmig_result *res,
			   struct json_object **reply, char *msg, size_t msg_len)
{
	int done = res && (!strcmp(res->status, "completed") ||
			   !strcmp(res->status, "completed-with-errors"));
	struct json_object *rep;
	int r;

	if (!s || !s->have_ctl)
		return -EINVAL;
	/* The tunnel is the engine's; it is done with it now. */
	if (s->have_tun) {
		drop_client(s);
		qm_aconn_close(&s->tun);
		s->have_tun = 0;
	}
	rep = request(s, done ? "finish" : "abort", &r);
	if (r < 0) {
		snprintf(msg, msg_len, "agent: %s: %s", done ? "finish" : "abort", s->ctl.err);
		return r;
	}
	if (!json_object_get_boolean(json_object_object_get(rep, "ok"))) {
		r = refused(rep, done ? "finish" : "abort", msg, msg_len);
	} else if (done) {
		struct json_object *c = request(s, "confirm", &r);

		if (r == 0 && !json_object_get_boolean(json_object_object_get(c, "ok")))
			r = refused(c, "confirm", msg, msg_len);
		else if (r < 0)
			snprintf(msg, msg_len, "agent: confirm: %s", s->ctl.err);
		json_object_put(c);
	}
	if (reply)
		*reply = rep;
	else
		json_object_put(rep);
	return r;
}

int qmig_agent_request(const struct qmig_agent_opts *o, const char *op,
		       struct json_object **reply, char *msg, size_t msg_len)
{
	struct qmig_agent_session *s;
	struct json_object *m, *rep = NULL;
	char dummy[8];
	int r;

	if (!msg || !msg_len) {
		msg = dummy;
		msg_len = sizeof(dummy);
	}
	*msg = 0;
	if (!o || o->version < 1 || o->version > QMIG_AGENT_OPTS_VERSION || !o->url || !op ||
	    !reply) {
		snprintf(msg, msg_len, "agent: a request needs options with a url, and an op");
		return -EINVAL;
	}
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	copy_opts(&s->o, o);
	s->o.log.free = NULL;       /* the caller's, untouched */
	s->o.connect.free = NULL;
	s->o.queued.free = NULL;
	s->listen_fd = s->client_fd = s->ep = -1;
	r = parse_url(s, msg, msg_len);
	if (r == 0 && !s->ssh && !(s->ctx = o->tls_dir ? qm_agent_tls_ctx(o->tls_dir, 0, msg, msg_len)
							: NULL)) {
		if (!*msg)
			snprintf(msg, msg_len, "agent: qmigrate+tls:// needs a TLS directory");
		r = -EKEYREJECTED;
	}
	if (r == 0 && (r = open_conn(s, &s->ctl, msg, msg_len)) == 0) {
		s->have_ctl = 1;
		m = json_object_new_object();
		json_object_object_add(m, "op", json_object_new_string(op));
		r = qm_aconn_send(&s->ctl, m, deadline(s));
		json_object_put(m);
		if (r == 0)
			r = qm_aconn_recv(&s->ctl, &rep, deadline(s));
		if (r < 0)
			snprintf(msg, msg_len, "agent: %s: %s", op, s->ctl.err);
	}
	if (r == 0)
		*reply = rep;
	qmig_agent_session_free(s);
	return r;
}

const char *qmig_agent_session_job(const struct qmig_agent_session *s)
{
	return s ? s->job : NULL;
}

void qmig_agent_session_free(struct qmig_agent_session *s)
{
	if (!s)
		return;
	remote_del(s);
	json_object_put(s->disks);
	drop_client(s);
	if (s->have_tun)
		qm_aconn_close(&s->tun);
	if (s->have_ctl)
		qm_aconn_close(&s->ctl);
	if (s->listen_fd >= 0)
		close(s->listen_fd);
	if (s->ep >= 0)
		close(s->ep);
	if (*s->sock)
		unlink(s->sock);
	if (*s->lockdir)
		rmdir(s->lockdir);
	if (*s->dir)
		rmdir(s->dir);
	SSL_CTX_free(s->ctx);
	if (s->o.connect.free)
		s->o.connect.free(s->o.connect.user_data);
	if (s->o.log.free)
		s->o.log.free(s->o.log.user_data);
	if (s->o.queued.free)
		s->o.queued.free(s->o.queued.user_data);
	free(s);
}
