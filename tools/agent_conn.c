/* One control connection of the agent: hello, then requests, one JSON
 * object per line (docs/PROTOCOL.md). A connection carries at most one
 * inbound migration; when it is lost the ownership rule decides what
 * becomes of the destination. A "qmp" connection turns into the QMP
 * tunnel: raw bytes to and from the destination QEMU's monitor. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <netdb.h>
#include <time.h>
#include <unistd.h>

#include "agent.h"
#include "qm_wait.h"

#define MS 1000000LL

struct conn {
	struct agent *a;
	struct qm_aconn *c;
	struct agent_job *job;
	char listen_addr[64];
};

static struct json_object *reply(const char *op, int ok)
{
	struct json_object *o = json_object_new_object();

	json_object_object_add(o, "ok", json_object_new_boolean(ok));
	json_object_object_add(o, "op", json_object_new_string(op));
	return o;
}

static int send_free(struct conn *k, struct json_object *o)
{
	int r = qm_aconn_send(k->c, o, qm_wait_now_ns() + 10000 * MS);

	json_object_put(o);
	return r;
}

static int send_error(struct conn *k, const char *op, const char *job, const char *err,
		      const char *msg)
{
	struct json_object *o = reply(op ? op : "?", 0);

	json_object_object_add(o, "error", json_object_new_string(err));
	json_object_object_add(o, "message", json_object_new_string(msg));
	agent_audit(k->a, k->c->peer, op, job, err, msg);
	return send_free(k, o);
}

static int allowed(struct agent *a, const char *subject)
{
	const char *cn = strstr(subject, "/CN=");
	char cnv[256] = "";

	if (!a->cfg.n_allow)
		return 1;
	if (cn) {
		snprintf(cnv, sizeof(cnv), "%s", cn + 4);
		cnv[strcspn(cnv, "/")] = 0;
	}
	for (int i = 0; i < a->cfg.n_allow; i++)
		if (!strcmp(a->cfg.allow[i], subject) || !strcmp(a->cfg.allow[i], cnv))
			return 1;
	return 0;
}

/* Wait for a place under the inbound limit, first come first served,
 * telling the source it is queued. 0, or -errno (the source left). */
static int take_place(struct conn *k, const char *job)
{
	struct agent *a = k->a;
	struct agent_waiter me = {.job = job, .peer = k->c->peer, .since = qm_wait_now_ns()}, **pp;
	int told = 0, r = 0;
	int64_t until = qm_wait_now_ns() + (int64_t)a->cfg.queue_ms * MS;

	pthread_mutex_lock(&a->lock);
	for (pp = &a->queue; *pp; pp = &(*pp)->next)
		;
	*pp = &me;
	while (a->queue != &me || a->inbound >= a->cfg.max_inbound) {
		struct timespec ts;

		if (!told) {
			struct json_object *o;
			int64_t pos = 1;

			for (struct agent_waiter *w = a->queue; w != &me; w = w->next)
				pos++;
			pthread_mutex_unlock(&a->lock);
			o = reply("prepare", 1);
			json_object_object_add(o, "status", json_object_new_string("queued"));
			json_object_object_add(o, "job", json_object_new_string(job));
			json_object_object_add(o, "position", json_object_new_int64(pos));
			agent_audit(a, k->c->peer, "prepare", job, "queued", NULL);
			agent_queue_file(a, job, k->c->peer, 1);
			r = send_free(k, o);
			told = 1;
			pthread_mutex_lock(&a->lock);
			if (r < 0)
				break;
			continue;
		}
		/* Wake every 200 ms to notice a source that left the queue. */
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 200000000;
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		pthread_cond_timedwait(&a->cond, &a->lock, &ts);
		if (a->queue == &me && a->inbound < a->cfg.max_inbound)
			break;
		pthread_mutex_unlock(&a->lock);
		{
			struct pollfd p = {qm_aconn_fd(k->c), POLLIN, 0};

			/* Any input while queued (EOF included) ends the wait. */
			if (qm_aconn_pending(k->c) || poll(&p, 1, 0) > 0 ||
			    qm_wait_now_ns() > until)
				r = -ECONNRESET;
		}
		pthread_mutex_lock(&a->lock);
		if (r < 0)
			break;
	}
	for (pp = &a->queue; *pp; pp = &(*pp)->next)
		if (*pp == &me) {
			*pp = me.next;
			break;
		}
	if (r == 0)
		a->inbound++;
	pthread_cond_broadcast(&a->cond);
	pthread_mutex_unlock(&a->lock);
	if (told)
		agent_queue_file(a, job, k->c->peer, 0);
	return r;
}

static void give_place(struct agent *a)
{
	pthread_mutex_lock(&a->lock);
	a->inbound--;
	pthread_cond_broadcast(&a->cond);
	pthread_mutex_unlock(&a->lock);
}

/* QMIGRATE_AGENT_DEBUG_STOP=begin|prepare|finish|confirm (tests only, not
 * documented for users): at that point of a job the whole agent stops
 * itself (SIGSTOP) after an audit line, so that a test can kill -9 the
 * agent, or the source waiting on it, exactly there. begin: a prepare
 * arrived; prepare: its destination is launched and journaled, the reply
 * not sent; finish, confirm: the request arrived. */
static void debug_stop(struct conn *k, const char *at, const char *job)
{
	const char *v = getenv("QMIGRATE_AGENT_DEBUG_STOP");

	if (!v || strcmp(v, at))
		return;
	agent_audit(k->a, k->c->peer, at, job, "debug-stop", NULL);
	/* To this thread: it takes the stop itself before it runs another
	 * instruction of the job (sent to the process, the stop waits for the
	 * main thread to be scheduled, and this thread could go on meanwhile). */
	tgkill(getpid(), gettid(), SIGSTOP);
}

/* Write one PEM the source sent into dir. */
static int put_pem(const char *dir, const char *name, const char *pem)
{
	char path[PATH_MAX];
	size_t n = strlen(pem);
	int fd, ok;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	ok = write(fd, pem, n) == (ssize_t)n;
	close(fd);
	return ok ? 0 : -EIO;
}

/* A TLS stream ("tls" in the prepare): the destination QEMU will load this
 * agent's certificates, on this host, where the source cannot look. Check
 * them here, before anything is launched: the server certificate names
 * the host the source connects to, chains to the source's CA, and the
 * source's client certificate chains to ours. 0, or -1 with err and msg. */
static int check_stream_tls(struct conn *k, struct json_object *tls, const char **err,
			    char *msg, size_t len)
{
	const char *host = qm_aj_str(tls, "hostname"), *ca = qm_aj_str(tls, "ca_cert"),
		   *cl = qm_aj_str(tls, "client_cert");
	const char *dir = k->a->cfg.tls_dir;
	char tmp[PATH_MAX], m[400] = "";
	int r;

	if (!json_object_is_type(tls, json_type_object)) {
		*err = "bad-request";
		snprintf(msg, len, "'tls' must be an object");
		return -1;
	}
	if (!dir) {
		*err = "tls-unavailable";
		snprintf(msg, len, "the stream is to use TLS but this agent has no certificates "
				   "for its QEMU (start it with --tls DIR)");
		return -1;
	}
	r = qmig_tls_validate(dir, host, QMIG_TLS_SERVER, m, sizeof(m));
	if (r < 0) {
		*err = "tls-invalid";
		snprintf(msg, len, "the agent's certificates for the stream (--tls %s): %s", dir, m);
		return -1;
	}
	if (!ca || !cl)
		return 0; /* an older source: the control channel's check only */
	snprintf(tmp, sizeof(tmp), "%s/tls-check-XXXXXX", k->a->cfg.state_dir);
	if (!mkdtemp(tmp)) {
		*err = "internal";
		snprintf(msg, len, "cannot create a directory in %s: %s", k->a->cfg.state_dir,
			 strerror(errno));
		return -1;
	}
	r = put_pem(tmp, "ca-cert.pem", ca);
	if (r == 0)
		r = put_pem(tmp, "client-cert.pem", cl);
	if (r == 0)
		r = qmig_tls_validate_pair(tmp, dir, m, sizeof(m));
	else
		snprintf(m, sizeof(m), "storing the source's certificates: %s", strerror(-r));
	{
		char p[PATH_MAX + 32];

		snprintf(p, sizeof(p), "%s/ca-cert.pem", tmp);
		unlink(p);
		snprintf(p, sizeof(p), "%s/client-cert.pem", tmp);
		unlink(p);
		rmdir(tmp);
	}
	if (r < 0) {
		char *at = strstr(m, tmp), said[400];

		/* The temporary directory's name means nothing to the source. */
		if (at) {
			*at = 0;
			snprintf(said, sizeof(said), "%sthe source's --tls directory%s", m,
				 at + strlen(tmp));
			snprintf(m, sizeof(m), "%s", said);
		}
		*err = "tls-invalid";
		snprintf(msg, len, "the source's stream certificates and this agent's (--tls %s) "
				   "do not trust each other: %s", dir, m);
		return -1;
	}
	return 0;
}

static void end_job(struct conn *k, int confirmed, int wait_stream, const char *why);

static int do_prepare(struct conn *k, struct json_object *req)
{
	const char *job = qm_aj_str(req, "job"), *err = "internal";
	struct json_object *o;
	char msg[512] = "";
	int r;

	if (k->job)
		return send_error(k, "prepare", job, "bad-request",
				  "this connection already carries a job");
	if (!job || !qm_aj_str(req, "profile"))
		return send_error(k, "prepare", job, "bad-request",
				  "prepare needs 'job' and 'profile'");
	if (!agent_valid_name(job))
		return send_error(k, "prepare", NULL, "bad-request",
				  "'job' must be 1-63 letters, digits, '-' or '_'");
	{
		struct json_object *tls;
		int has = qm_aj_obj(req, "tls", &tls);

		if (has < 0)
			return send_error(k, "prepare", job, "bad-request", "'tls' must be an object");
		if (has && check_stream_tls(k, tls, &err, msg, sizeof(msg)) < 0)
			return send_error(k, "prepare", job, err, msg);
	}
	debug_stop(k, "begin", job);
	r = take_place(k, job);
	if (r < 0) {
		agent_audit(k->a, k->c->peer, "prepare", job, "left-queue", NULL);
		return r;
	}
	r = agent_job_prepare(k->a, req, k->c->peer, k->listen_addr, &k->job, &err, msg,
			      sizeof(msg));
	if (r < 0) {
		give_place(k->a);
		return send_error(k, "prepare", job, err, *msg ? msg : strerror(-r));
	}
	debug_stop(k, "prepare", job);
	o = reply("prepare", 1);
	json_object_object_add(o, "status", json_object_new_string("prepared"));
	json_object_object_add(o, "job", json_object_new_string(k->job->id));
	json_object_object_add(o, "token", json_object_new_string(k->job->token));
	json_object_object_add(o, "port", json_object_new_int((int)k->job->port));
	if (k->job->ndisks) /* the next port, for the NBD server of the disks' copy */
		json_object_object_add(o, "port_hi", json_object_new_int((int)k->job->port_hi));
	json_object_object_add(o, "listen_addr", json_object_new_string(k->listen_addr));
	json_object_object_add(o, "launch_ms", json_object_new_int64(k->job->launch_ms));
	if (k->a->cfg.tls_dir)
		json_object_object_add(o, "tls_dir",
				       json_object_new_string(*k->job->tls ? k->job->tls
									   : k->a->cfg.tls_dir));
	if (k->a->cfg.max_bw)
		json_object_object_add(o, "max_bandwidth",
				       json_object_new_int64((int64_t)k->a->cfg.max_bw));
	agent_audit(k->a, k->c->peer, "prepare", job, "prepared", qm_aj_str(req, "profile"));
	r = send_free(k, o);
	if (agent_job_watch(k->job, msg, sizeof(msg)) < 0) {
		/* The source finds its tunnel closed; it still owns the guest. */
		agent_audit(k->a, k->c->peer, "prepare", job, "launch-failed", msg);
		end_job(k, 0, 0, msg);
		return -EIO;
	}
	return r;
}

/* Claim a job's tunnel, all under the lock: the job's own thread may end
 * it (and free it) at any moment. 1 claimed, 0 refused, -1 not here. */
static int tunnel_claim(struct agent *a, const char *id, const char *tok, const char *peer,
			char *qmp, size_t len)
{
	int r = -1;

	pthread_mutex_lock(&a->lock);
	for (int i = 0; id && i < AGENT_MAX_JOBS; i++) {
		struct agent_job *j = a->jobs[i];

		if (!j || strcmp(j->id, id))
			continue;
		r = 0;
		if (tok && !strcmp(tok, j->token) && !strcmp(peer, j->peer) && !j->tunnel_busy &&
		    strlen(j->qmp) < len) {
			j->tunnel_busy = 1;
			j->tunnel_seen = 1;
			memcpy(qmp, j->qmp, strlen(j->qmp) + 1);
			r = 1;
		}
	}
	pthread_mutex_unlock(&a->lock);
	return r;
}

static void tunnel_release(struct agent *a, const char *id)
{
	pthread_mutex_lock(&a->lock);
	for (int i = 0; i < AGENT_MAX_JOBS; i++)
		if (a->jobs[i] && !strcmp(a->jobs[i]->id, id))
			a->jobs[i]->tunnel_busy = 0;
	pthread_mutex_unlock(&a->lock);
}

/* The tunnel: this connection now carries the destination QEMU's QMP. */
static void do_tunnel(struct conn *k, struct json_object *req)
{
	const char *id = qm_aj_str(req, "job"), *tok = qm_aj_str(req, "token");
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	char buf[16384];
	int fd = -1, busy = 1, mine;

	mine = tunnel_claim(k->a, id, tok, k->c->peer, sa.sun_path, sizeof(sa.sun_path));
	if (mine == 1)
		busy = 0;
	else if (mine < 0 && agent_job_lookup_tunnel(k->a, id, tok, k->c->peer, sa.sun_path,
						     sizeof(sa.sun_path)) == 0)
		busy = 0; /* the job is another agent process's (ssh) */
	if (busy) {
		send_error(k, "qmp", id, "forbidden",
			   "no such job for this client, a wrong token, or its tunnel is open");
		return;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0 || (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 && errno != EINPROGRESS)) {
		send_error(k, "qmp", id, "internal", "cannot reach the destination's QMP socket");
		goto out;
	}
	agent_audit(k->a, k->c->peer, "qmp", id, "ok", "tunnel open");
	if (send_free(k, reply("qmp", 1)) < 0)
		goto out;
	for (;;) {
		struct pollfd p[2] = {{qm_aconn_fd(k->c), POLLIN, 0}, {fd, POLLIN, 0}};
		ssize_t n;

		if (!qm_aconn_pending(k->c) && poll(p, 2, -1) < 0 && errno != EINTR)
			break;
		if (qm_aconn_pending(k->c) || p[0].revents) {
			n = qm_aconn_read_now(k->c, buf, sizeof(buf));
			if (n == 0 || (n < 0 && n != -EAGAIN))
				break;
			if (n > 0) {
				const char *q = buf;

				while (n > 0) {
					ssize_t w = write(fd, q, (size_t)n);

					if (w > 0) {
						q += w;
						n -= w;
					} else if (w < 0 && errno == EAGAIN) {
						if (qm_wait_fd(fd, POLLOUT, qm_wait_now_ns() + 10000 * MS) <= 0)
							goto out;
					} else {
						goto out;
					}
				}
			}
		}
		if (p[1].revents) {
			n = read(fd, buf, sizeof(buf));
			if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
				break;
			if (n > 0 && qm_aconn_write(k->c, buf, (size_t)n,
						    qm_wait_now_ns() + 10000 * MS) < 0)
				break;
		}
	}
out:
	if (fd >= 0)
		close(fd);
	if (mine == 1)
		tunnel_release(k->a, id);
}

static int do_status(struct conn *k)
{
	struct json_object *o = reply("status", 1), *arr = json_object_new_array();
	struct agent *a = k->a;

	pthread_mutex_lock(&a->lock);
	for (int i = 0; i < AGENT_MAX_JOBS; i++) {
		struct agent_job *j = a->jobs[i];
		struct json_object *e;

		if (!j)
			continue;
		e = json_object_new_object();
		json_object_object_add(e, "job", json_object_new_string(j->id));
		json_object_object_add(e, "profile", json_object_new_string(j->profile));
		json_object_object_add(e, "status", json_object_new_string("prepared"));
		json_object_object_add(e, "owner", json_object_new_string(j->ran ? "destination"
										 : "source"));
		json_object_object_add(e, "port", json_object_new_int((int)j->port));
		json_object_array_add(arr, e);
	}
	json_object_object_add(o, "inbound", json_object_new_int(a->inbound));
	json_object_object_add(o, "max_inbound", json_object_new_int(a->cfg.max_inbound));
	{
		int64_t nq = 0, now = qm_wait_now_ns();

		/* Waiting for a place, in order. */
		for (struct agent_waiter *w = a->queue; w; w = w->next) {
			struct json_object *e = json_object_new_object();

			nq++;
			json_object_object_add(e, "job", json_object_new_string(w->job));
			json_object_object_add(e, "status", json_object_new_string("queued"));
			json_object_object_add(e, "position", json_object_new_int64(nq));
			json_object_object_add(e, "waited_ms",
					       json_object_new_int64((now - w->since) / MS));
			json_object_object_add(e, "peer", json_object_new_string(w->peer));
			json_object_array_add(arr, e);
		}
		json_object_object_add(o, "queued", json_object_new_int64(nq));
	}
	pthread_mutex_unlock(&a->lock);
	json_object_object_add(o, "jobs", arr);
	return send_free(k, o);
}

static void end_job(struct conn *k, int confirmed, int wait_stream, const char *why)
{
	if (!k->job)
		return;
	agent_job_end(k->a, k->job, confirmed, wait_stream, why);
	k->job = NULL;
	give_place(k->a);
}

static int do_request(struct conn *k, struct json_object *req)
{
	const char *op = qm_aj_str(req, "op"), *job = qm_aj_str(req, "job");
	struct json_object *o;
	char msg[512] = "";

	if (!op)
		return send_error(k, NULL, job, "bad-request", "a request needs 'op'");
	if (!strcmp(op, "ping") || !strcmp(op, "status") || !strcmp(op, "profiles"))
		agent_audit(k->a, k->c->peer, op, job, "ok", NULL);
	if (!strcmp(op, "ping"))
		return send_free(k, reply("ping", 1));
	if (!strcmp(op, "status"))
		return do_status(k);
	if (!strcmp(op, "profiles")) {
		o = reply("profiles", 1);
		json_object_object_add(o, "profiles", agent_profile_list(k->a));
		return send_free(k, o);
	}
	if (!strcmp(op, "prepare"))
		return do_prepare(k, req);
	if (!strcmp(op, "finish") || !strcmp(op, "confirm") || !strcmp(op, "abort")) {
		if (!k->job || !job || strcmp(job, k->job->id))
			return send_error(k, op, job, "unknown-job",
					  "no such job on this connection");
	}
	if (!strcmp(op, "finish")) {
		int r;

		debug_stop(k, "finish", job);
		o = reply("finish", 1);
		r = agent_job_finish(k->a, k->job, o, msg, sizeof(msg));
		if (r < 0) {
			json_object_put(o);
			return send_error(k, op, job, r == -EBADMSG ? "verify-failed" : "not-running",
					  msg);
		}
		json_object_object_add(o, "qmp", json_object_new_string(k->job->qmp));
		json_object_object_add(o, "pid", json_object_new_int(k->job->pid));
		agent_audit(k->a, k->c->peer, op, job, "ok", "the destination runs");
		return send_free(k, o);
	}
	if (!strcmp(op, "confirm")) {
		debug_stop(k, "confirm", job);
		if (!k->job->ran)
			return send_error(k, op, job, "not-running",
					  "confirm comes after a successful finish");
		agent_audit(k->a, k->c->peer, op, job, "ok", NULL);
		end_job(k, 1, 0, "confirmed");
		return send_free(k, reply("confirm", 1));
	}
	if (!strcmp(op, "abort")) {
		int ran = k->job->ran;

		agent_audit(k->a, k->c->peer, op, job, "ok", qm_aj_str(req, "reason"));
		end_job(k, 0, 0, "aborted by the source");
		o = reply("abort", 1);
		json_object_object_add(o, "kept", json_object_new_boolean(ran));
		return send_free(k, o);
	}
	snprintf(msg, sizeof(msg), "unknown op '%.40s'", op);
	return send_error(k, op, job, "bad-request", msg);
}

/* Wait for the next request. With a job, the destination's monitor is
 * watched meanwhile (RESUME: it has run) and there is no idle limit. */
static int next_request(struct conn *k, struct json_object **req)
{
	for (;;) {
		int64_t dl;
		struct pollfd p[2];
		int r;

		if (!k->job)
			return qm_aconn_recv(k->c, req, qm_wait_now_ns() + (int64_t)k->a->cfg.idle_ms * MS);
		if (qm_aconn_pending(k->c))
			return qm_aconn_recv(k->c, req, qm_wait_now_ns() + 10000 * MS);
		/* A source that prepared and then never drives its destination
		 * holds a place: the idle limit applies until its tunnel opens. */
		if (!k->job->tunnel_seen &&
		    qm_wait_now_ns() - k->job->t_prepared > (int64_t)k->a->cfg.idle_ms * MS) {
			snprintf(k->c->err, sizeof(k->c->err),
				 "no QMP tunnel within the idle timeout after prepare");
			return -ETIMEDOUT;
		}
		p[0] = (struct pollfd){qm_aconn_fd(k->c), POLLIN, 0};
		p[1] = (struct pollfd){agent_job_mon_fd(k->job), POLLIN, 0};
		r = poll(p, 2, 1000);
		if (r < 0 && errno != EINTR)
			return -errno;
		if (p[1].revents && agent_job_poll(k->job) < 0) {
			/* The destination QEMU is gone (a failed stream ends it). */
			return -ECHILD;
		}
		if (p[0].revents) {
			dl = qm_wait_now_ns() + 10000 * MS;
			return qm_aconn_recv(k->c, req, dl);
		}
	}
}

void agent_serve(struct agent *a, struct qm_aconn *c)
{
	struct conn k = {.a = a, .c = c};
	struct json_object *req = NULL;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	int64_t v = 0;
	int r;

	if (getsockname(qm_aconn_fd(c), (struct sockaddr *)&ss, &sl) == 0 &&
	    (ss.ss_family == AF_INET || ss.ss_family == AF_INET6)) {
		char h[64];

		if (getnameinfo((struct sockaddr *)&ss, sl, h, sizeof(h), NULL, 0, NI_NUMERICHOST) == 0)
			snprintf(k.listen_addr, sizeof(k.listen_addr), "%s", h);
	}
	if (!*k.listen_addr && getenv("SSH_CONNECTION")) {
		/* "client port server port": the address the source reached. */
		char sc[256], *w, *save = NULL;
		int i = 0;

		snprintf(sc, sizeof(sc), "%s", getenv("SSH_CONNECTION"));
		for (w = strtok_r(sc, " ", &save); w; w = strtok_r(NULL, " ", &save), i++)
			if (i == 2 && strlen(w) < sizeof(k.listen_addr))
				memcpy(k.listen_addr, w, strlen(w) + 1);
	}
	if (!*k.listen_addr)
		snprintf(k.listen_addr, sizeof(k.listen_addr), "0.0.0.0");
	if (!allowed(a, c->peer)) {
		send_error(&k, "hello", NULL, "forbidden", "this client's certificate is not on the "
							   "agent's allow list");
		return;
	}
	r = qm_aconn_recv(c, &req, qm_wait_now_ns() + (int64_t)a->cfg.idle_ms * MS);
	if (r < 0) {
		agent_audit(a, c->peer, "hello", NULL, r == -EMSGSIZE ? "too-large" : "bad-request",
			    c->err);
		if (r == -EMSGSIZE || r == -EBADMSG)
			send_error(&k, "hello", NULL, r == -EMSGSIZE ? "too-large" : "bad-request",
				   c->err);
		return;
	}
	if (!qm_aj_str(req, "op") || strcmp(qm_aj_str(req, "op"), "hello") ||
	    qm_aj_int(req, "version", &v) < 0 || v != QMIG_AGENT_PROTOCOL) {
		char m[160];

		snprintf(m, sizeof(m), "start with {\"op\":\"hello\",\"version\":%d}",
			 QMIG_AGENT_PROTOCOL);
		send_error(&k, "hello", NULL, "version", m);
		json_object_put(req);
		return;
	}
	json_object_put(req);
	{
		struct json_object *o = reply("hello", 1);
		char host[256] = "";

		gethostname(host, sizeof(host) - 1);
		json_object_object_add(o, "version", json_object_new_int(QMIG_AGENT_PROTOCOL));
		json_object_object_add(o, "agent", json_object_new_string("qmigrate " QMIG_VERSION));
		json_object_object_add(o, "host", json_object_new_string(host));
		json_object_object_add(o, "max_inbound", json_object_new_int(a->cfg.max_inbound));
		if (send_free(&k, o) < 0)
			return;
	}
	for (;;) {
		const char *op;

		req = NULL;
		r = next_request(&k, &req);
		if (r < 0) {
			if (r == -EMSGSIZE || r == -EBADMSG)
				send_error(&k, "?", k.job ? k.job->id : NULL,
					   r == -EMSGSIZE ? "too-large" : "bad-request", c->err);
			break;
		}
		op = qm_aj_str(req, "op");
		if (op && !strcmp(op, "qmp") && !k.job) {
			do_tunnel(&k, req);
			json_object_put(req);
			return;
		}
		r = do_request(&k, req);
		json_object_put(req);
		if (r < 0)
			break;
	}
	if (k.job) {
		char why[300];

		snprintf(why, sizeof(why), "the source's connection was lost (%s)",
			 r == -ECHILD ? "the destination QEMU exited" : *c->err ? c->err : "closed");
		agent_audit(a, c->peer, "lost", k.job->id, "ownership-rule", why);
		end_job(&k, 0, 1, why);
	}
}
